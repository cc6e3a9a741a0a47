use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    create_applies_defaults_and_returns_the_full_record,
    create_names_the_field_it_refuses,
    duplicate_model_id_conflicts_even_under_concurrent_creates,
    get_put_patch_delete_round_trip,
    put_replaces_tags_and_patch_merges_them,
    lifecycle_follows_the_transition_table,
    stale_versions_are_refused_and_fresh_ones_accepted,
    concurrent_edits_without_a_version_all_land,
    list_filters_search_and_paginates_newest_first,
    history_records_every_change_field_by_field_and_survives_deletion,
    audit_events_are_filtered_and_scoped_by_key,
    audit_events_are_append_only_in_the_database,
    search_follows_edits_and_deletes,
);

async fn search_follows_edits_and_deletes(app: TestApp) {
    let m = app.create_model(seed()).await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let total = |query: &'static str| {
        let app = &app;
        async move { app.get(&format!("/api/v1/models?{query}")).await.1["total"].clone() }
    };
    assert_eq!(total("search=knowledge&risk_tier=tier_2").await, json!(1));
    app.patch(&path, json!({"description": "Fraud triage", "risk_tier": "tier_1", "validation_status": "in_validation"})).await;
    assert_eq!(
        total("search=knowledge").await,
        json!(0),
        "the old text is gone from the index"
    );
    assert_eq!(total("search=fraud&risk_tier=tier_2").await, json!(0));
    assert_eq!(
        total("search=fraud&risk_tier=tier_1&validation_status=in_validation").await,
        json!(1)
    );
    let (_, page) = app
        .get("/api/v1/models?search=triage&risk_tier=tier_1")
        .await;
    assert_eq!(page["models"][0]["id"], m["id"]);
    app.delete(&path).await;
    assert_eq!(total("search=fraud").await, json!(0));
}

fn seed() -> Value {
    json!({
        "model_id": "claude-3-5-sonnet-20241022",
        "provider": "anthropic",
        "display_name": "Claude 3.5 Sonnet (Oct 2024)",
        "risk_tier": "tier_2",
        "validation_status": "pending_validation",
        "owner": "ai-risk-team@example.com",
        "description": "Conversational model for internal knowledge base queries",
        "tags": {"business_unit": "operations", "environment": "production"}
    })
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn create_applies_defaults_and_returns_the_full_record(app: TestApp) {
    let m = app.create_model(seed()).await;
    assert_eq!(m["display_name"], "Claude 3.5 Sonnet (Oct 2024)");
    assert_eq!(m["validation_status"], "pending_validation");
    assert_eq!(
        m["tags"],
        json!({"business_unit": "operations", "environment": "production"})
    );
    assert_eq!(m["version"], 1);
    assert!(m["last_seen_at"].is_null());
    assert_eq!(m["created_at"], m["updated_at"]);
    assert!(uuid::Uuid::parse_str(m["id"].as_str().expect("id"))
        .is_ok_and(|u| u.get_version_num() == 7));

    let minimal = app.create_model(json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_3",
        "intended_use": "Customer service drafts", "limitations": "No legal advice", "developer": "OpenAI",
        "validator": "model-validation@example.com", "vendor": "OpenAI", "next_review_at": "2027-03-01T00:00:00Z"})).await;
    assert_eq!(minimal["display_name"], "gpt-4o");
    assert_eq!(minimal["validation_status"], "draft");
    assert_eq!(minimal["tags"], json!({}));
    assert_eq!(minimal["vendor"], "OpenAI");
    assert_eq!(minimal["next_review_at"], "2027-03-01T00:00:00Z");

    let resp = app
        .client
        .get(app.url(&format!("/api/v1/models/{}", id_of(&m))))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["etag"], "\"1\"");
}

async fn create_names_the_field_it_refuses(app: TestApp) {
    let cases = [
        (
            json!({"provider": "openai", "risk_tier": "tier_1"}),
            "model_id",
        ),
        (json!({"model_id": "m", "risk_tier": "tier_1"}), "provider"),
        (json!({"model_id": "m", "provider": "openai"}), "risk_tier"),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_5"}),
            "risk_tier",
        ),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_1", "validation_status": "approved"}),
            "validation_status",
        ),
        (
            json!({"model_id": "", "provider": "openai", "risk_tier": "tier_1"}),
            "model_id",
        ),
        (
            json!({"model_id": 42, "provider": "openai", "risk_tier": "tier_1"}),
            "model_id",
        ),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_1", "tags": {"a": 1}}),
            "tags.a",
        ),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_1", "colour": "red"}),
            "colour",
        ),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_1", "owner": "a@x", "validator": "a@x"}),
            "validator",
        ),
        (
            json!({"model_id": "m", "provider": "openai", "risk_tier": "tier_1", "next_review_at": "next week"}),
            "next_review_at",
        ),
    ];
    for (body, field) in cases {
        let got = app.post("/api/v1/models", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(
            got.1["error"]["details"]["field"], field,
            "for {body}: {}",
            got.1
        );
    }
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 0, "nothing was written");
}

async fn duplicate_model_id_conflicts_even_under_concurrent_creates(app: TestApp) {
    app.create_model(json!({"model_id": "dup", "provider": "a", "risk_tier": "tier_1"}))
        .await;
    let got = app
        .post(
            "/api/v1/models",
            json!({"model_id": "dup", "provider": "b", "risk_tier": "tier_2"}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "model_already_exists");

    let attempts = (0..8).map(|i| {
        app.post(
            "/api/v1/models",
            json!({"model_id": "race", "provider": format!("p{i}"), "risk_tier": "tier_4"}),
        )
    });
    let results = join_all(attempts).await;
    let created = results
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.0 == StatusCode::CONFLICT && r.1["error"]["code"] == "model_already_exists")
        .count();
    assert_eq!((created, conflicts), (1, 7), "{results:?}");
    let (_, list) = app.get("/api/v1/models?search=race").await;
    assert_eq!(list["total"], 1);
    let (_, audit) = app
        .get("/api/v1/audit-events?entity_type=model&action=create")
        .await;
    assert_eq!(audit["total"], 2, "only the winning create is audited");
}

async fn get_put_patch_delete_round_trip(app: TestApp) {
    let m = app.create_model(seed()).await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let (status, got) = app.get(&path).await;
    assert_eq!((status, &got), (StatusCode::OK, &m));

    let (status, put) = app.put(&path, json!({"risk_tier": "tier_1", "validation_status": "in_validation",
        "owner": "sr-ml-risk@example.com", "description": "Reclassified to Tier 1 after production impact review"})).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["risk_tier"], "tier_1");
    assert_eq!(put["validation_status"], "in_validation");
    assert_eq!(
        put["display_name"], m["display_name"],
        "absent fields are untouched"
    );
    assert_eq!(put["version"], 2);
    assert_ne!(put["updated_at"], m["updated_at"]);
    assert_eq!(put["created_at"], m["created_at"]);

    let (status, patched) = app
        .patch(&path, json!({"owner": null, "display_name": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(patched["owner"].is_null());
    assert_eq!(
        patched["display_name"], m["model_id"],
        "a null display name falls back to model_id"
    );

    let (status, same) = app.patch(&path, json!({"risk_tier": "tier_1"})).await;
    assert_eq!(
        (status, same["version"].clone()),
        (StatusCode::OK, json!(3)),
        "a no-op change writes nothing"
    );

    let got = app.put(&path, json!({"model_id": "renamed"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_error(
        &app.patch(&path, json!({"risk_tier": null})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    assert_eq!(
        app.delete(&path).await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
    assert_error(
        &app.get(&path).await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
    assert_error(
        &app.delete(&path).await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
    assert_error(
        &app.put(&path, json!({"owner": "x"})).await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
    let got = app.get("/api/v1/models/not-a-uuid").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "id");
}

async fn put_replaces_tags_and_patch_merges_them(app: TestApp) {
    let m = app.create_model(seed()).await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let (_, patched) = app
        .patch(
            &path,
            json!({"tags": {"environment": null, "region": "eu"}}),
        )
        .await;
    assert_eq!(
        patched["tags"],
        json!({"business_unit": "operations", "region": "eu"})
    );
    let (_, put) = app.put(&path, json!({"tags": {"only": "this"}})).await;
    assert_eq!(put["tags"], json!({"only": "this"}));
    let (_, filtered) = app.get("/api/v1/models?tag=only:this").await;
    assert_eq!(filtered["total"], 1, "the tag index follows the change");
    let (_, filtered) = app.get("/api/v1/models?tag=region:eu").await;
    assert_eq!(filtered["total"], 0);
}

async fn lifecycle_follows_the_transition_table(app: TestApp) {
    let m = app
        .create_model(json!({"model_id": "life", "provider": "p", "risk_tier": "tier_1"}))
        .await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let got = app
        .patch(&path, json!({"validation_status": "validated"}))
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        got.1,
        json!({"error": {
            "code": "invalid_status_transition",
            "message": "validation_status cannot go from draft to validated; allowed from draft: pending_validation, deprecated",
            "details": {"from": "draft", "to": "validated", "allowed": ["pending_validation", "deprecated"]}
        }})
    );
    for step in [
        "pending_validation",
        "in_validation",
        "needs_remediation",
        "in_validation",
        "validated",
    ] {
        let (status, body) = app.patch(&path, json!({"validation_status": step})).await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
        assert_eq!(body["validation_status"], step);
    }
    let (_, validated) = app.get(&path).await;
    assert!(
        validated["last_validated_at"].is_string(),
        "validating stamps last_validated_at"
    );
    assert_eq!(
        app.patch(&path, json!({"validation_status": "deprecated"}))
            .await
            .0,
        StatusCode::OK
    );
    let got = app
        .patch(&path, json!({"validation_status": "draft"}))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_status_transition",
    );
    assert_eq!(got.1["error"]["details"]["allowed"], json!([]));
    let (_, after) = app.get(&path).await;
    assert_eq!(
        after["validation_status"], "deprecated",
        "a refused transition writes nothing"
    );
}

async fn stale_versions_are_refused_and_fresh_ones_accepted(app: TestApp) {
    let m = app.create_model(seed()).await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let send = |version: &'static str, body: Value| {
        let req = app
            .client
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .header("if-match", version)
            .json(&body);
        async move {
            let resp = req.send().await.expect("sent");
            let etag = resp
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            (
                resp.status(),
                etag,
                resp.json::<Value>().await.expect("json"),
            )
        }
    };
    let (status, etag, body) = send("\"1\"", json!({"owner": "first@example.com"})).await;
    assert_eq!(
        (status, etag.as_deref()),
        (StatusCode::OK, Some("\"2\"")),
        "{body}"
    );
    let (status, _, body) = send("\"1\"", json!({"owner": "second@example.com"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "version_conflict");
    assert_eq!(
        body["error"]["details"],
        json!({"expected_version": 1, "current_version": 2})
    );
    let got = app
        .patch(
            &path,
            json!({"owner": "third@example.com", "expected_version": 1}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "version_conflict");
    let (status, ok) = app
        .patch(
            &path,
            json!({"owner": "third@example.com", "expected_version": 2}),
        )
        .await;
    assert_eq!((status, ok["version"].clone()), (StatusCode::OK, json!(3)));
    let (_, now) = app.get(&path).await;
    assert_eq!(
        now["owner"], "third@example.com",
        "the stale edits were not applied"
    );
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&app.token)
        .header("if-match", "2")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status(),
        StatusCode::CONFLICT,
        "a stale delete is refused too"
    );
    let got = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.token),
            Some(json!({"expected_version": "three"})),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
}

async fn concurrent_edits_without_a_version_all_land(app: TestApp) {
    let m = app.create_model(seed()).await;
    let path = format!("/api/v1/models/{}", id_of(&m));
    let edits = (0..6).map(|i| app.patch(&path, json!({"tags": {format!("k{i}"): "v"}})));
    let results = join_all(edits).await;
    assert!(results.iter().all(|r| r.0 == StatusCode::OK), "{results:?}");
    let (_, after) = app.get(&path).await;
    assert_eq!(after["version"], 7);
    for i in 0..6 {
        assert_eq!(
            after["tags"][format!("k{i}")],
            "v",
            "edit {i} was lost: {after}"
        );
    }
    let (_, history) = app.get(&format!("{path}/history")).await;
    assert_eq!(history["total"], 7);
}

async fn list_filters_search_and_paginates_newest_first(app: TestApp) {
    let specs = [
        (
            "gpt-4o",
            "openai",
            "tier_2",
            "validated",
            "risk@example.com",
            "Primary production model for customer service",
            json!({"bu": "retail"}),
        ),
        (
            "gpt-4o-mini",
            "OpenAI",
            "tier_3",
            "draft",
            "risk@example.com",
            "Cheap classifier",
            json!({"bu": "ops"}),
        ),
        (
            "claude-3-5-sonnet",
            "anthropic",
            "tier_2",
            "in_validation",
            "Other@Example.com",
            "Knowledge base answers",
            json!({"bu": "retail", "env": "prod"}),
        ),
        (
            "llama-3-8b",
            "self-hosted",
            "tier_4",
            "draft",
            "ml@example.com",
            "Internal experiments",
            json!({}),
        ),
    ];
    for (model_id, provider, tier, status, owner, description, tags) in specs {
        let mut body = json!({"model_id": model_id, "provider": provider, "risk_tier": tier, "owner": owner, "description": description, "tags": tags});
        if status != "draft" {
            body["validation_status"] = json!(status);
        }
        app.create_model(body).await;
    }
    let ids = |v: &Value| -> Vec<String> {
        v["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["model_id"].as_str().expect("id").to_owned())
            .collect()
    };
    let check = |query: &'static str, expect: &'static [&'static str]| {
        let app = &app;
        async move {
            let (status, body) = app.get(&format!("/api/v1/models{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            assert_eq!(ids(&body), expect, "{query}");
            assert_eq!(body["total"], expect.len(), "{query}");
        }
    };
    check(
        "",
        &["llama-3-8b", "claude-3-5-sonnet", "gpt-4o-mini", "gpt-4o"],
    )
    .await;
    check("?risk_tier=tier_2", &["claude-3-5-sonnet", "gpt-4o"]).await;
    check("?validation_status=draft", &["llama-3-8b", "gpt-4o-mini"]).await;
    check("?provider=OPENAI", &["gpt-4o-mini", "gpt-4o"]).await;
    check("?provider=host", &["llama-3-8b"]).await;
    check("?provider=nobody", &[]).await;
    check("?search=gpt", &["gpt-4o-mini", "gpt-4o"]).await;
    check("?search=customer%20serv", &["gpt-4o"]).await;
    check("?search=KNOWLEDGE", &["claude-3-5-sonnet"]).await;
    check("?search=%22%20OR%20*", &[]).await;
    check("?owner=other@example.com", &["claude-3-5-sonnet"]).await;
    check("?tag=bu:retail", &["claude-3-5-sonnet", "gpt-4o"]).await;
    check("?tag=bu:retail&tag=env:prod", &["claude-3-5-sonnet"]).await;
    check(
        "?tag=bu:retail&risk_tier=tier_2&search=gpt&provider=open",
        &["gpt-4o"],
    )
    .await;
    // Search with tags alone is decided by the full-text index on SQLite
    // (tags are index words there): same answers as the row filters.
    check("?search=gpt&tag=bu:retail", &["gpt-4o"]).await;
    check("?search=gpt&tag=bu:retail&tag=env:prod", &[]).await;
    check(
        "?search=sonnet&tag=bu:retail&tag=env:prod",
        &["claude-3-5-sonnet"],
    )
    .await;
    check("?search=gpt&tag=bu:other", &[]).await;

    let (_, page) = app.get("/api/v1/models?limit=2&offset=1").await;
    assert_eq!(ids(&page), ["claude-3-5-sonnet", "gpt-4o-mini"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(4), json!(2), json!(1))
    );
    let (_, past_end) = app.get("/api/v1/models?offset=10").await;
    assert_eq!(
        (past_end["total"].clone(), ids(&past_end).len()),
        (json!(4), 0)
    );
    for bad in [
        "?limit=0",
        "?limit=201",
        "?offset=-1",
        "?risk_tier=tier_9",
        "?tag=novalue",
        "?limit=ten",
        "?colour=red",
    ] {
        let got = app.get(&format!("/api/v1/models{bad}")).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    }
}

async fn history_records_every_change_field_by_field_and_survives_deletion(app: TestApp) {
    let m = app.create_model(seed()).await;
    let id = id_of(&m);
    let path = format!("/api/v1/models/{id}");
    app.patch(
        &path,
        json!({"risk_tier": "tier_1", "tags": {"environment": null}}),
    )
    .await;
    app.delete(&path).await;
    let (status, history) = app.get(&format!("{path}/history")).await;
    assert_eq!(status, StatusCode::OK, "history outlives the model");
    assert_eq!(history["total"], 3);
    let events = history["events"].as_array().expect("events");
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["delete", "update", "create"]);
    let update = &events[1];
    assert_eq!(update["entity_type"], "model");
    assert_eq!(update["entity_id"], id.as_str());
    assert_eq!(
        update["changes"],
        json!([
            {"field": "risk_tier", "before": "tier_2", "after": "tier_1"},
            {"field": "tags", "before": {"business_unit": "operations", "environment": "production"}, "after": {"business_unit": "operations"}},
        ])
    );
    assert!(update["actor"]["key_id"].is_string());
    assert!(update["at"].is_string());
    let create = &events[2];
    let created_fields: Vec<&str> = create["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert!(created_fields.contains(&"model_id") && created_fields.contains(&"risk_tier"));
    assert!(create["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["before"].is_null()));
    let delete = &events[0];
    assert!(delete["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .all(|c| c["after"].is_null()));
    assert_error(
        &app.get("/api/v1/models/00000000-0000-7000-8000-000000000000/history")
            .await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
}

async fn audit_events_are_filtered_and_scoped_by_key(app: TestApp) {
    let m = app.create_model(seed()).await;
    app.patch(
        &format!("/api/v1/models/{}", id_of(&m)),
        json!({"owner": "new@example.com"}),
    )
    .await;
    app.post(
        "/api/v1/users",
        json!({"email": "u@example.com", "name": "U", "role": "viewer"}),
    )
    .await;
    let (_, updates) = app
        .get("/api/v1/audit-events?action=update&entity_type=model")
        .await;
    assert_eq!(updates["total"], 1);
    let (_, all) = app.get("/api/v1/audit-events").await;
    let types: Vec<&str> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["entity_type"].as_str().expect("type"))
        .collect();
    assert!(
        types.contains(&"user")
            && types.contains(&"model")
            && types.contains(&"api_key")
            && types.contains(&"org"),
        "{types:?}"
    );
    let (_, future) = app
        .get("/api/v1/audit-events?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future["total"], 0);
    let (_, past) = app
        .get("/api/v1/audit-events?until=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(past["total"], 0);

    let reader = app.key_with(&["registry:read"], None).await;
    let (status, seen) = app
        .call(Method::GET, "/api/v1/audit-events", Some(&reader), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        seen["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["entity_type"] == "model"),
        "{seen}"
    );
    assert_eq!(seen["total"], 2);
    let got = app
        .call(
            Method::GET,
            "/api/v1/audit-events?entity_type=user",
            Some(&reader),
            None,
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
}

async fn audit_events_are_append_only_in_the_database(app: TestApp) {
    app.create_model(seed()).await;
    let mut db = app.database().await;
    let update = sqlx::query("UPDATE audit_events SET action = 'forged'")
        .execute(&mut db)
        .await;
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut db)
        .await;
    assert!(update.is_err_and(|e| e.to_string().contains("append-only")));
    assert!(delete.is_err_and(|e| e.to_string().contains("append-only")));
    let (_, audit) = app.get("/api/v1/audit-events?entity_type=model").await;
    assert_eq!(audit["events"][0]["action"], "create");
}
