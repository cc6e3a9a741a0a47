//! Inventory editing end to end: the org's sections of a model, bulk
//! operations, duplicates, drafts with enforced versions, and facets.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    sections_round_trip_and_unset_ones_inherit_the_catalog,
    bulk_create_reports_each_item_and_audits_the_good_ones,
    bulk_update_by_ids_and_by_filter_with_exclusions,
    duplicate_copies_every_section_and_starts_over_as_a_draft,
    drafts_enforce_versions_and_publish_atomically,
    concurrent_patches_of_one_draft_let_exactly_one_through,
    publishing_two_drafts_of_one_model_refuses_the_second,
    list_facets_count_providers_under_the_current_filters,
    refresh_rebuilds_counts_that_a_hand_edit_broke,
    departments_and_agents_filter_the_list_and_have_facets,
    a_model_used_by_an_active_agent_cannot_be_deleted,
    users_below_admin_edit_only_models_wholly_in_their_departments,
    model_docs_list_every_operation_with_the_scope_it_enforces,
    precomputed_group_facets_match_counting_through_every_change,
);

async fn department(app: &TestApp, name: &str) -> String {
    let (status, d) = app.post("/api/v1/departments", json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    id(&d)
}

async fn agent(app: &TestApp, name: &str, active: bool, models: &[&str]) -> Value {
    let (status, a) = app
        .post(
            "/api/v1/agents",
            json!({"name": name, "active": active, "model_ids": models}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    a
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn sections_round_trip_and_unset_ones_inherit_the_catalog(app: TestApp) {
    let (status, entry) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
                "description": "Flagship", "modalities_in": ["image", "text"], "modalities_out": ["text"],
                "pricing": {"input": 2.5, "output": 10.0, "currency": "USD"},
                "capabilities": {"reasoning_efforts": ["low", "high"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let model = app
        .create_model(
            json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "sections": {"voices": ["alloy"], "pricing": {"input": 1.0, "currency": "EUR"},
                         "flags": {"active": true, "pricing_enabled": false},
                         "values": {"max_tokens": 4096}, "aliases": ["house-gpt"]}}),
        )
        .await;
    assert_eq!(model["catalog_id"], entry["id"]);
    assert_eq!(model["sections"]["voices"], json!(["alloy"]));
    assert_eq!(model["sections"]["values"]["max_tokens"], 4096);
    assert_eq!(model["can_edit"], true);
    let eff = &model["effective_sections"];
    assert_eq!(eff["pricing"]["currency"], "EUR", "the org's value wins");
    assert_eq!(eff["reasoning_levels"], json!(["low", "high"]), "inherited");
    assert_eq!(eff["modalities"]["input"], json!(["image", "text"]));
    assert_eq!(eff["descriptions"]["default"], "Flagship");
    assert!(model["sections"].get("reasoning_levels").is_none());

    let path = format!("/api/v1/models/{}", id(&model));
    let (status, patched) = app
        .patch(
            &path,
            json!({"sections": {"voices": null, "qualities": ["hd"], "pricing": null}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["sections"].get("voices").is_none());
    assert_eq!(patched["sections"]["qualities"], json!(["hd"]));
    assert_eq!(patched["sections"]["flags"]["active"], true, "kept");
    assert_eq!(
        patched["effective_sections"]["pricing"]["currency"], "USD",
        "cleared: inherits again"
    );
    let (_, history) = app.get(&format!("{path}/history")).await;
    assert!(history.to_string().contains("\"sections\""), "{history}");

    let bad = app
        .patch(
            &path,
            json!({"sections": {"temperature_levels": [{"name": "hot", "value": 50}]}}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(
        bad.1["error"]["details"]["field"],
        "sections.temperature_levels"
    );
    let unknown = app
        .patch(&path, json!({"sections": {"colour": "red"}}))
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");
    let (_, unchanged) = app.get(&path).await;
    assert_eq!(
        unchanged["version"], patched["version"],
        "nothing half-applied"
    );
}

async fn bulk_create_reports_each_item_and_audits_the_good_ones(app: TestApp) {
    app.create_model(json!({"model_id": "taken", "provider": "p", "risk_tier": "tier_3"}))
        .await;
    let (status, body) = app
        .post(
            "/api/v1/models/bulk-create",
            json!({"models": [
                {"model_id": "a", "provider": "p", "risk_tier": "tier_1", "sections": {"voices": ["v"]}},
                {"model_id": "taken", "provider": "p", "risk_tier": "tier_1"},
                {"model_id": "b", "provider": "p", "risk_tier": "tier_9"},
                {"model_id": "c", "provider": "q", "risk_tier": "tier_2"},
                {"model_id": "a", "provider": "p", "risk_tier": "tier_1"},
                {"model_id": "d", "provider": "p", "risk_tier": "tier_2", "department_ids": ["00000000-0000-0000-0000-000000000001"]}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [201, 409, 400, 201, 409, 400]);
    assert_eq!(results[1]["error"]["error"]["code"], "model_already_exists");
    assert_eq!(
        results[2]["error"]["error"]["details"]["field"],
        "risk_tier"
    );
    assert_eq!(
        results[5]["error"]["error"]["details"]["field"],
        "department_ids"
    );
    assert_eq!(results[0]["model"]["sections"]["voices"], json!(["v"]));
    assert_eq!(results[3]["model"]["model_id"], "c");

    let (_, list) = app.get("/api/v1/models?limit=10").await;
    assert_eq!(list["total"], 3);
    let created = results[0]["id"].as_str().expect("id");
    let (_, history) = app.get(&format!("/api/v1/models/{created}/history")).await;
    assert_eq!(history["total"], 1);
    assert_eq!(history["events"][0]["action"], "create");

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"model_id": format!("x{i}"), "provider": "p", "risk_tier": "tier_4"}))
        .collect();
    let refused = app
        .post("/api/v1/models/bulk-create", json!({"models": too_many}))
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "validation_error");
    let reader = app.key_with(&["registry:read"], None).await;
    let forbidden = app
        .call(
            Method::POST,
            "/api/v1/models/bulk-create",
            Some(&reader),
            Some(json!({"models": []})),
        )
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "forbidden");
}

async fn bulk_update_by_ids_and_by_filter_with_exclusions(app: TestApp) {
    let mut ids = Vec::new();
    for (i, provider) in ["p", "p", "p", "q"].iter().enumerate() {
        let m = app
            .create_model(
                json!({"model_id": format!("m{i}"), "provider": provider, "risk_tier": "tier_3"}),
            )
            .await;
        ids.push(id(&m));
    }
    let (status, body) = app
        .post(
            "/api/v1/models/bulk-update",
            json!({"models": [
                {"id": ids[0], "owner": "risk@example.com", "sections": {"qualities": ["hd"]}},
                {"id": "00000000-0000-7000-8000-000000000000", "owner": "x@example.com"},
                {"id": ids[1], "validation_status": "validated"},
                {"owner": "no-id@example.com"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [200, 404, 422, 400]);
    assert_eq!(body["results"][0]["model"]["owner"], "risk@example.com");
    assert_eq!(body["results"][0]["model"]["version"], 2);
    assert_eq!(
        body["results"][2]["error"]["error"]["code"],
        "invalid_status_transition"
    );

    let (status, body) = app
        .post(
            "/api/v1/models/bulk-update",
            json!({"all": true, "filters": {"provider_id": ["p"]}, "excluded_ids": [ids[2]],
                   "set": {"risk_tier": "tier_1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut touched: Vec<String> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    touched.sort();
    let mut expected = vec![ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(touched, expected);
    let (_, tier1) = app.get("/api/v1/models?risk_tier=tier_1").await;
    assert_eq!(tier1["total"], 2);

    let neither = app
        .post("/api/v1/models/bulk-update", json!({"set": {"owner": "x"}}))
        .await;
    assert_error(&neither, StatusCode::BAD_REQUEST, "validation_error");

    let (status, deleted) = app
        .post(
            "/api/v1/models/bulk-delete",
            json!({"model_ids": [ids[3], "00000000-0000-7000-8000-000000000000"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["results"][0]["status"], 200);
    assert_eq!(
        deleted["results"][1]["error"]["error"]["code"],
        "model_not_found"
    );
    let (status, deleted) = app
        .post(
            "/api/v1/models/bulk-delete",
            json!({"all": true, "filters": {"search": "m0"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["results"].as_array().map(Vec::len), Some(1));
    let (_, rest) = app.get("/api/v1/models").await;
    assert_eq!(rest["total"], 2);
}

async fn duplicate_copies_every_section_and_starts_over_as_a_draft(app: TestApp) {
    let source = app
        .create_model(json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "validation_status": "pending_validation", "owner": "a@example.com",
            "tags": {"team": "search"}, "sections": {"voices": ["alloy"], "flags": {"default": true}}}))
        .await;
    let path = format!("/api/v1/models/{}/duplicate", id(&source));
    let (status, copy) = app.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_ne!(copy["id"], source["id"]);
    assert_eq!(copy["model_id"], "gpt-4o-copy");
    assert_eq!(copy["validation_status"], "draft");
    assert_eq!(copy["version"], 1);
    for field in [
        "sections",
        "tags",
        "owner",
        "risk_tier",
        "provider",
        "department_ids",
    ] {
        assert_eq!(copy[field], source[field], "{field}");
    }
    let (_, second) = app.post(&path, json!({})).await;
    assert_eq!(second["model_id"], "gpt-4o-copy-2");
    let (_, history) = app
        .get(&format!("/api/v1/models/{}/history", id(&copy)))
        .await;
    let event = &history["events"][0];
    assert_eq!(event["action"], "duplicate", "{history}");
    let copied_from = event["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["field"] == "copied_from")
        .expect("copied_from recorded");
    assert_eq!(copied_from["after"]["id"], source["id"]);
    let missing = app
        .post(
            "/api/v1/models/00000000-0000-7000-8000-000000000000/duplicate",
            json!({}),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "model_not_found");
}

async fn drafts_enforce_versions_and_publish_atomically(app: TestApp) {
    let model = app
        .create_model(json!({"model_id": "m", "provider": "p", "risk_tier": "tier_2", "owner": "a@example.com"}))
        .await;
    let (status, draft) = app
        .post(&format!("/api/v1/models/{}/drafts", id(&model)), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    assert_eq!(draft["version"], 1);
    assert_eq!(draft["base_version"], 1);
    assert_eq!(draft["form_state"]["owner"], "a@example.com");
    let dpath = format!("/api/v1/drafts/{}", id(&draft));

    let (status, patched) = app
        .patch(&dpath, json!({"expected_version": 1, "owner": "b@example.com", "sections": {"voices": ["nova"]}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["new_version"], 2);
    assert_eq!(patched["form_state"]["owner"], "b@example.com");
    let stale = app
        .patch(
            &dpath,
            json!({"expected_version": 1, "owner": "c@example.com"}),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "version_conflict");
    let missing_version = app.patch(&dpath, json!({"owner": "c@example.com"})).await;
    assert_error(
        &missing_version,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    let bad = app
        .patch(
            &dpath,
            json!({"expected_version": 2, "risk_tier": "tier_7"}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_error");

    let (_, mine) = app.get("/api/v1/drafts").await;
    assert_eq!(mine["drafts"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["drafts"][0]["form_state"]["owner"], "b@example.com");
    let other = app.key_with(&["registry:write"], None).await;
    let (_, theirs) = app
        .call(Method::GET, "/api/v1/drafts", Some(&other), None)
        .await;
    assert_eq!(theirs["drafts"], json!([]), "drafts are their author's own");
    let hidden = app.call(Method::GET, &dpath, Some(&other), None).await;
    assert_error(&hidden, StatusCode::NOT_FOUND, "draft_not_found");

    let (_, unchanged) = app.get(&format!("/api/v1/models/{}", id(&model))).await;
    assert_eq!(
        unchanged["owner"], "a@example.com",
        "a draft changes nothing until published"
    );
    let (status, published) = app.post(&format!("{dpath}/publish"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["owner"], "b@example.com");
    assert_eq!(published["sections"]["voices"], json!(["nova"]));
    assert_eq!(published["version"], 2);
    let gone = app.get(&dpath).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "draft_not_found");
    let (_, history) = app
        .get(&format!("/api/v1/models/{}/history", id(&model)))
        .await;
    assert_eq!(history["total"], 2);

    // A blank draft publishes as a new model once it is complete.
    let (status, blank) = app
        .post("/api/v1/drafts", json!({"model_id": "fresh"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{blank}");
    let bpath = format!("/api/v1/drafts/{}", id(&blank));
    let incomplete = app.post(&format!("{bpath}/publish"), json!({})).await;
    assert_error(&incomplete, StatusCode::BAD_REQUEST, "validation_error");
    let (status, _) = app
        .patch(
            &bpath,
            json!({"expected_version": 1, "provider": "p", "risk_tier": "tier_4"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = app.post(&format!("{bpath}/publish"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a blank draft creates its model: {created}"
    );
    assert_eq!(created["model_id"], "fresh");
    let (status, discard) = app.post("/api/v1/drafts", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{discard}");
    let (status, _) = app
        .delete(&format!("/api/v1/drafts/{}", id(&discard)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, none) = app.get("/api/v1/drafts").await;
    assert_eq!(none["drafts"], json!([]));
}

async fn concurrent_patches_of_one_draft_let_exactly_one_through(app: TestApp) {
    let (_, draft) = app
        .post("/api/v1/drafts", json!({"model_id": "race"}))
        .await;
    let path = format!("/api/v1/drafts/{}", id(&draft));
    let attempts = (0..8).map(|i| {
        let app = &app;
        let path = path.clone();
        async move {
            app.patch(
                &path,
                json!({"expected_version": 1, "owner": format!("o{i}@example.com")}),
            )
            .await
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let ok: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .all(|(s, b)| *s == StatusCode::CONFLICT && b["error"]["code"] == "version_conflict"));
    let (_, now) = app.get(&path).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["form_state"]["owner"], ok[0]["form_state"]["owner"]);
}

async fn publishing_two_drafts_of_one_model_refuses_the_second(app: TestApp) {
    let model = app
        .create_model(json!({"model_id": "m", "provider": "p", "risk_tier": "tier_2"}))
        .await;
    let take = format!("/api/v1/models/{}/drafts", id(&model));
    let (_, first) = app.post(&take, json!({})).await;
    let (_, second) = app.post(&take, json!({})).await;
    for (d, owner) in [(&first, "one@example.com"), (&second, "two@example.com")] {
        let (status, _) = app
            .patch(
                &format!("/api/v1/drafts/{}", id(d)),
                json!({"expected_version": 1, "owner": owner}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let publish = |d: &Value| format!("/api/v1/drafts/{}/publish", id(d));
    let (p1, p2) = (publish(&first), publish(&second));
    let (a, b) = tokio::join!(app.post(&p1, json!({})), app.post(&p2, json!({})));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::CONFLICT { &a } else { &b };
    assert_eq!(loser.1["error"]["code"], "version_conflict");
    let (_, now) = app.get(&format!("/api/v1/models/{}", id(&model))).await;
    assert_eq!(now["version"], 2, "applied once");
    let winner = if a.0 == StatusCode::OK { &a } else { &b };
    assert_eq!(now["owner"], winner.1["owner"]);
    // The refused draft is still there to rebase or discard.
    let (_, drafts) = app.get("/api/v1/drafts").await;
    assert_eq!(drafts["drafts"].as_array().map(Vec::len), Some(1));
}

async fn list_facets_count_providers_under_the_current_filters(app: TestApp) {
    for (i, (provider, tier)) in [
        ("openai", "tier_1"),
        ("openai", "tier_2"),
        ("anthropic", "tier_1"),
        ("google", "tier_3"),
    ]
    .iter()
    .enumerate()
    {
        app.create_model(json!({"model_id": format!("m{i}"), "provider": provider, "risk_tier": tier, "owner": "o@example.com"}))
            .await;
    }
    let counts = |list: &Value| -> Vec<(String, i64)> {
        list["facets"]["providers"]
            .as_array()
            .expect("providers facet")
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().expect("id").to_owned(),
                    f["count"].as_i64().expect("count"),
                )
            })
            .collect()
    };
    let (_, all) = app.get("/api/v1/models").await;
    assert_eq!(
        counts(&all),
        [
            ("openai".to_owned(), 2),
            ("anthropic".to_owned(), 1),
            ("google".to_owned(), 1)
        ]
    );
    let (_, tier1) = app.get("/api/v1/models?risk_tier=tier_1").await;
    assert_eq!(
        counts(&tier1),
        [("anthropic".to_owned(), 1), ("openai".to_owned(), 1)]
    );
    let (_, searched) = app
        .get("/api/v1/models?search=m1&owner=o@example.com")
        .await;
    assert_eq!(counts(&searched), [("openai".to_owned(), 1)]);
    let (_, picked) = app
        .get("/api/v1/models?provider_id=openai&provider_id=google")
        .await;
    assert_eq!(picked["total"], 3);
    assert_eq!(
        counts(&picked),
        [("openai".to_owned(), 2), ("google".to_owned(), 1)]
    );
    let (_, by_search) = app.get("/api/v1/models?provider_search=OPEN").await;
    assert_eq!(by_search["total"], 2);
    let (_, nothing) = app.get("/api/v1/models?department_search=nobody").await;
    assert_eq!(nothing["total"], 0);
    assert_eq!(nothing["facets"]["providers"], json!([]));
}

async fn refresh_rebuilds_counts_that_a_hand_edit_broke(app: TestApp) {
    for i in 0..3 {
        app.create_model(
            json!({"model_id": format!("m{i}"), "provider": "p", "risk_tier": "tier_2"}),
        )
        .await;
    }
    sqlx::query("UPDATE model_counts SET n = 40")
        .execute(&mut app.database().await)
        .await
        .expect("hand edit");
    let (_, broken) = app.get("/api/v1/models?risk_tier=tier_2").await;
    assert_eq!(broken["total"], 40, "the summary table answers this count");
    let (status, done) = app.post("/api/v1/admin/refresh", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["success"], true);
    assert_eq!(done["models_counted"], 3);
    assert!(done["refreshed_views"]
        .as_array()
        .expect("views")
        .contains(&json!("model_counts")));
    let (_, fixed) = app.get("/api/v1/models?risk_tier=tier_2").await;
    assert_eq!(fixed["total"], 3);
    let (_, facets) = app.get("/api/v1/models").await;
    assert_eq!(facets["facets"]["providers"][0]["count"], 3);
    let writer = app.key_with(&["registry:write"], None).await;
    let refused = app
        .call(Method::POST, "/api/v1/admin/refresh", Some(&writer), None)
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
}

async fn departments_and_agents_filter_the_list_and_have_facets(app: TestApp) {
    let research = department(&app, "Research").await;
    let sales = department(&app, "Sales").await;
    let _empty = department(&app, "Legal").await;
    let m0 = id(&app
        .create_model(json!({"model_id": "m0", "provider": "openai", "risk_tier": "tier_2", "department_ids": [research]}))
        .await);
    let m1 = id(&app
        .create_model(json!({"model_id": "m1", "provider": "anthropic", "risk_tier": "tier_2", "department_ids": [research, sales]}))
        .await);
    let _m2 = app
        .create_model(json!({"model_id": "m2", "provider": "openai", "risk_tier": "tier_1"}))
        .await;
    let support = agent(&app, "Support bot", true, &[&m1]).await;
    let batch = agent(&app, "Batch job", false, &[&m0]).await;

    let facet = |list: &Value, name: &str| -> Vec<(String, i64)> {
        list["facets"][name]
            .as_array()
            .expect("facet")
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().expect("name").to_owned(),
                    f["count"].as_i64().expect("count"),
                )
            })
            .collect()
    };
    let (_, all) = app.get("/api/v1/models").await;
    assert_eq!(
        facet(&all, "departments"),
        [
            ("Research".to_owned(), 2),
            ("Sales".to_owned(), 1),
            ("Legal".to_owned(), 0)
        ]
    );
    assert_eq!(
        facet(&all, "agents"),
        [("Batch job".to_owned(), 1), ("Support bot".to_owned(), 1)]
    );
    assert_eq!(all["facets"]["departments"][0]["id"], json!(research));

    let ids = |list: &Value| -> Vec<String> {
        list["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["model_id"].as_str().expect("model_id").to_owned())
            .collect()
    };
    let (_, in_sales) = app
        .get(&format!("/api/v1/models?department_id={sales}"))
        .await;
    assert_eq!(ids(&in_sales), ["m1"]);
    assert_eq!(
        facet(&in_sales, "departments"),
        [
            ("Research".to_owned(), 1),
            ("Sales".to_owned(), 1),
            ("Legal".to_owned(), 0)
        ]
    );
    assert_eq!(facet(&in_sales, "providers"), [("anthropic".to_owned(), 1)]);
    let (_, either) = app
        .get(&format!(
            "/api/v1/models?department_id={sales}&department_id={research}"
        ))
        .await;
    assert_eq!(either["total"], 2);
    let (_, by_name) = app.get("/api/v1/models?department_search=SEARCH").await;
    assert_eq!(ids(&by_name), ["m1", "m0"]);
    let (_, by_agent) = app.get("/api/v1/models?agent_search=support").await;
    assert_eq!(ids(&by_agent), ["m1"]);
    let (_, by_agent_id) = app
        .get(&format!("/api/v1/models?agent_id={}&search=m0", id(&batch)))
        .await;
    assert_eq!(ids(&by_agent_id), ["m0"]);
    let (_, one) = app.get(&format!("/api/v1/models/{m1}")).await;
    assert_eq!(one["agent_ids"], json!([id(&support)]));
    assert_eq!(one["department_ids"].as_array().map(Vec::len), Some(2));

    let unknown = app
        .post(
            "/api/v1/models",
            json!({"model_id": "x", "provider": "p", "risk_tier": "tier_1",
            "department_ids": ["00000000-0000-7000-8000-000000000009"]}),
        )
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(unknown.1["error"]["details"]["field"], "department_ids");
    let in_use = app.delete(&format!("/api/v1/departments/{sales}")).await;
    assert_error(&in_use, StatusCode::CONFLICT, "department_in_use");
    let (status, moved) = app
        .patch(
            &format!("/api/v1/models/{m1}"),
            json!({"department_ids": [research]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, _) = app.delete(&format!("/api/v1/departments/{sales}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "no model is in it any more");
}

async fn a_model_used_by_an_active_agent_cannot_be_deleted(app: TestApp) {
    let used = id(&app
        .create_model(json!({"model_id": "used", "provider": "p", "risk_tier": "tier_2"}))
        .await);
    let bot = agent(&app, "Support bot", true, &[&used]).await;
    let refused = app.delete(&format!("/api/v1/models/{used}")).await;
    assert_error(&refused, StatusCode::CONFLICT, "model_in_use");
    assert_eq!(
        refused.1["error"]["details"]["agents"][0]["name"],
        "Support bot"
    );
    let (_, bulk) = app
        .post("/api/v1/models/bulk-delete", json!({"model_ids": [used]}))
        .await;
    assert_eq!(bulk["results"][0]["error"]["error"]["code"], "model_in_use");
    let (_, still) = app.get(&format!("/api/v1/models/{used}")).await;
    assert_eq!(still["model_id"], "used");

    let (status, off) = app
        .patch(
            &format!("/api/v1/agents/{}", id(&bot)),
            json!({"active": false, "expected_version": bot["version"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{off}");
    let (status, _) = app.delete(&format!("/api/v1/models/{used}")).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "an inactive agent does not hold it"
    );
    let (_, bot_now) = app.get(&format!("/api/v1/agents/{}", id(&bot))).await;
    assert_eq!(bot_now["model_ids"], json!([]));
}

async fn users_below_admin_edit_only_models_wholly_in_their_departments(app: TestApp) {
    let research = department(&app, "Research").await;
    let sales = department(&app, "Sales").await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "ed@example.com", "name": "Ed", "role": "editor", "department_ids": [research]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "ed", "scopes": ["registry:read", "registry:write"], "user_id": user["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let ed = key["token"].as_str().expect("token").to_owned();
    let ours = id(&app
        .create_model(json!({"model_id": "ours", "provider": "p", "risk_tier": "tier_2", "department_ids": [research]}))
        .await);
    let shared = id(&app
        .create_model(json!({"model_id": "shared", "provider": "p", "risk_tier": "tier_2", "department_ids": [research, sales]}))
        .await);

    let (_, mine) = app
        .call(
            Method::GET,
            &format!("/api/v1/models/{ours}"),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(mine["can_edit"], true);
    assert!(mine.get("disabled_reason").is_none());
    let (_, theirs) = app
        .call(
            Method::GET,
            &format!("/api/v1/models/{shared}"),
            Some(&ed),
            None,
        )
        .await;
    assert_eq!(theirs["can_edit"], false);
    assert!(theirs["disabled_reason"]
        .as_str()
        .expect("reason")
        .contains(&sales));
    let (_, as_admin) = app.get(&format!("/api/v1/models/{shared}")).await;
    assert_eq!(
        as_admin["can_edit"], true,
        "the bootstrap key has no department limit"
    );

    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/models/{ours}"),
            Some(&ed),
            Some(json!({"owner": "ed@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = app
        .call(
            Method::PATCH,
            &format!("/api/v1/models/{shared}"),
            Some(&ed),
            Some(json!({"owner": "ed@example.com"})),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let moving_out = app
        .call(
            Method::PATCH,
            &format!("/api/v1/models/{ours}"),
            Some(&ed),
            Some(json!({"department_ids": [sales]})),
        )
        .await;
    assert_error(&moving_out, StatusCode::FORBIDDEN, "forbidden");
    let elsewhere = app
        .call(Method::POST, "/api/v1/models", Some(&ed),
            Some(json!({"model_id": "new", "provider": "p", "risk_tier": "tier_3", "department_ids": [sales]})))
        .await;
    assert_error(&elsewhere, StatusCode::FORBIDDEN, "forbidden");
    let deleting = app
        .call(
            Method::DELETE,
            &format!("/api/v1/models/{shared}"),
            Some(&ed),
            None,
        )
        .await;
    assert_error(&deleting, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = app
        .call(Method::POST, "/api/v1/models", Some(&ed),
            Some(json!({"model_id": "new", "provider": "p", "risk_tier": "tier_3", "department_ids": [research]})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

/// A body each documented request schema accepts, so a refusal can only
/// come from the scope check.
fn minimal_body(schema: &str) -> Value {
    match schema {
        "BulkCreate" | "BulkUpdate" => json!({"models": []}),
        "BulkDelete" => json!({"model_ids": []}),
        "ModelCreate" => json!({"model_id": "x", "provider": "p", "risk_tier": "tier_1"}),
        "ModelChanges" | "DraftForm" | "object" => json!({}),
        "DraftPatch" => json!({"expected_version": 1}),
        "DiscoverRequest" => json!({"dry_run": true}),
        other => panic!("no minimal body for the documented schema {other}"),
    }
}

async fn model_docs_list_every_operation_with_the_scope_it_enforces(app: TestApp) {
    let (status, docs) = app.get("/api/v1/models/docs").await;
    assert_eq!(status, StatusCode::OK, "{docs}");
    assert_eq!(docs["name"], "model");
    let field = |name: &str| -> Value {
        docs["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no field {name}"))
    };
    assert_eq!(field("model_id")["type"], "string");
    assert_eq!(field("model_id")["required"], true);
    assert_eq!(
        field("risk_tier")["values"],
        json!(["tier_1", "tier_2", "tier_3", "tier_4"])
    );
    assert_eq!(field("owner")["nullable"], true);
    assert!(docs["sections"].to_string().contains("\"pricing\""));
    let operations = docs["operations"].as_array().expect("operations");
    assert!(operations.len() >= 20, "{operations:?}");
    assert!(operations.iter().any(|o| o["method"] == "POST"
        && o["path"] == "/api/v1/models/bulk-create"
        && o["required_scope"] == "registry:write"));
    let permissions = docs["permissions"].as_array().expect("permissions");
    assert!(permissions.iter().any(|p| p["scope"] == "registry:read"
        && p["operations"].to_string().contains("GET /api/v1/models\"")));

    // Each operation refuses a key that lacks exactly its documented scope.
    let without = |scope: &str| match scope {
        "registry:read" => vec!["gateway"],
        "registry:write" => vec!["registry:read", "gateway"],
        "admin" => vec!["registry:read", "registry:write"],
        other => panic!("undocumented scope {other}"),
    };
    let some_id = "00000000-0000-7000-8000-000000000001";
    for op in operations {
        let scope = op["required_scope"].as_str().expect("scope");
        let token = app.key_with(&without(scope), None).await;
        let method =
            Method::from_bytes(op["method"].as_str().expect("method").as_bytes()).expect("method");
        let path = op["path"].as_str().expect("path").replace("{id}", some_id);
        let body = op["request_body"].as_str().map(minimal_body);
        let got = app.call(method, &path, Some(&token), body).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let anonymous = app
        .call(Method::GET, "/api/v1/models/docs", None, None)
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The department and agent facets of a list filtered by tier, status and
/// provider come from trigger-kept counts; the same filters plus an owner
/// (which every model here has) count the link rows. Both must agree after
/// each kind of change.
async fn precomputed_group_facets_match_counting_through_every_change(app: TestApp) {
    let a = department(&app, "A").await;
    let b = department(&app, "B").await;
    let model = |id: &str, provider: &str, tier: &str, depts: Vec<&String>| json!({"model_id": id, "provider": provider, "risk_tier": tier, "owner": "o@example.com", "department_ids": depts});
    let m0 = id(&app.create_model(model("m0", "p", "tier_1", vec![&a])).await);
    let m1 = id(&app
        .create_model(model("m1", "q", "tier_2", vec![&a, &b]))
        .await);
    let m2 = id(&app.create_model(model("m2", "p", "tier_1", vec![&b])).await);
    let bot = agent(&app, "X", true, &[&m0, &m1]).await;
    let spare = agent(&app, "Y", false, &[&m2]).await;

    async fn check(app: &TestApp, when: &str) {
        for filter in [
            "",
            "risk_tier=tier_1",
            "provider_id=p",
            "risk_tier=tier_2&provider_id=q",
        ] {
            let (_, counted) = app.get(&format!("/api/v1/models?{filter}")).await;
            let (_, scanned) = app
                .get(&format!("/api/v1/models?{filter}&owner=o@example.com"))
                .await;
            for facet in ["departments", "agents", "providers"] {
                assert_eq!(
                    counted["facets"][facet], scanned["facets"][facet],
                    "{when}: {facet} under {filter:?}"
                );
            }
            assert_eq!(
                counted["total"], scanned["total"],
                "{when}: total under {filter:?}"
            );
        }
    }
    check(&app, "created").await;
    let (_, all) = app.get("/api/v1/models").await;
    assert_eq!(all["facets"]["departments"][0]["count"], 2, "{all}");

    app.patch(
        &format!("/api/v1/models/{m1}"),
        json!({"risk_tier": "tier_1", "validation_status": "pending_validation"}),
    )
    .await;
    check(&app, "tier and status changed").await;
    app.patch(
        &format!("/api/v1/models/{m0}"),
        json!({"department_ids": [b]}),
    )
    .await;
    check(&app, "departments moved").await;
    let (status, _) = app.delete(&format!("/api/v1/models/{m2}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(&app, "model deleted").await;
    app.patch(
        &format!("/api/v1/agents/{}", id(&bot)),
        json!({"model_ids": [m1], "expected_version": bot["version"]}),
    )
    .await;
    check(&app, "agent models replaced").await;
    let (status, _) = app.delete(&format!("/api/v1/agents/{}", id(&spare))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(&app, "agent deleted").await;
    let (_, end) = app.get("/api/v1/models").await;
    let count_of = |name: &str| {
        end["facets"]["departments"]
            .as_array()
            .expect("departments")
            .iter()
            .find(|d| d["name"] == name)
            .map(|d| d["count"].clone())
    };
    assert_eq!(
        (count_of("A"), count_of("B")),
        (Some(json!(1)), Some(json!(2))),
        "{end}"
    );
}
