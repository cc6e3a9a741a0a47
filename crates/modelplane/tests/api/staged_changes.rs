//! Staged (two-phase) changes: agent writes sent with `stage: true` are
//! checked and recorded, then accepted (applied once, audited) or rejected.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    staging_checks_the_write_and_applies_nothing,
    staged_changes_are_listed_newest_first_with_filters,
    accepting_applies_each_write_once_and_audits_it,
    rejecting_drops_the_change_and_a_decision_is_final,
    an_accept_refused_at_apply_time_is_recorded_as_failed,
    concurrent_accepts_apply_once,
    an_idempotency_key_names_the_change_and_a_repeat_stages_once,
    staged_changes_are_org_scoped_and_need_their_scopes,
);

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn path_of(key: &str) -> String {
    format!("/api/v1/staged-changes/{key}")
}

async fn call_as(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(method, path, Some(token), body).await
}

async fn model(app: &TestApp, model_id: &str) -> String {
    id_of(
        &app.create_model(json!({"model_id": model_id, "provider": "p", "risk_tier": "tier_3"}))
            .await,
    )
}

async fn agent(app: &TestApp, name: &str) -> Value {
    let (status, agent) = app.post("/api/v1/agents", json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    agent
}

/// Creates a key with `scopes` in the superadmin's org; returns (key id, token).
async fn key(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (status, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": format!("staged {}", scopes.join(" ")), "scopes": scopes}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        id_of(&key),
        key["token"].as_str().expect("token").to_owned(),
    )
}

/// Sends a staged write as `token`; asserts the 202 and returns the staged change.
async fn stage(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, accepted) = call_as(app, token, method, path, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let change = accepted["staged_change"].clone();
    assert_eq!(accepted["idempotency_key"], change["idempotency_key"]);
    assert_eq!(change["status"], "pending", "{change}");
    assert_eq!(change["result"], Value::Null);
    assert_eq!(change["decided_at"], Value::Null);
    change
}

fn key_of(change: &Value) -> String {
    change["idempotency_key"]
        .as_str()
        .expect("idempotency_key")
        .to_owned()
}

async fn decide(app: &TestApp, token: &str, change: &Value, accept: bool) -> (StatusCode, Value) {
    call_as(
        app,
        token,
        Method::POST,
        &path_of(&key_of(change)),
        Some(json!({"accept": accept})),
    )
    .await
}

/// The audit events of an agent, newest first.
async fn agent_events(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, audit) = app
        .get(&format!(
            "/api/v1/audit-events?entity_type=agent&entity_id={id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    audit["events"].as_array().expect("events").clone()
}

async fn agent_total(app: &TestApp) -> Value {
    app.get("/api/v1/agents").await.1["total"].clone()
}

async fn staging_checks_the_write_and_applies_nothing(app: TestApp) {
    let token = app.token.clone();
    let m1 = model(&app, "m1").await;
    let helpdesk = agent(&app, "Helpdesk").await;
    let id = id_of(&helpdesk);
    let path = format!("/api/v1/agents/{id}");

    let create = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Triage", "model_ids": [m1], "stage": true})),
    )
    .await;
    assert_eq!(
        (
            &create["entity"],
            &create["operation"],
            &create["target_id"],
            &create["payload"]
        ),
        (
            &json!("agent"),
            &json!("create"),
            &Value::Null,
            &json!({"name": "Triage", "model_ids": [m1]})
        )
    );
    let update = stage(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"description": "Answers tickets", "active": false, "stage": true})),
    )
    .await;
    assert_eq!(
        (
            &update["operation"],
            &update["target_id"],
            &update["payload"]
        ),
        (
            &json!("update"),
            &json!(id),
            &json!({"description": "Answers tickets", "active": false})
        )
    );
    // A delete is staged with `?stage=true` or with the body `{"stage": true}`.
    let delete = stage(
        &app,
        &token,
        Method::DELETE,
        &format!("{path}?stage=true"),
        None,
    )
    .await;
    assert_eq!(
        (
            &delete["operation"],
            &delete["target_id"],
            &delete["payload"]
        ),
        (&json!("delete"), &json!(id), &json!({}))
    );
    let by_body = stage(
        &app,
        &token,
        Method::DELETE,
        &path,
        Some(json!({"stage": true})),
    )
    .await;
    assert_ne!(key_of(&by_body), key_of(&delete), "each gets its own key");

    // Nothing was applied or audited.
    assert_eq!(agent_total(&app).await, 1);
    assert_eq!(app.get(&path).await, (StatusCode::OK, helpdesk.clone()));
    assert_eq!(agent_events(&app, &id).await.len(), 1, "only its create");

    // Staging refuses what the direct write would refuse, and stages nothing.
    let unknown = uuid::Uuid::now_v7();
    let got = app
        .post(
            "/api/v1/agents",
            json!({"name": "X", "model_ids": [unknown], "stage": true}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "model_ids");
    let got = app
        .post("/api/v1/agents", json!({"name": "Helpdesk", "stage": true}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "agent_already_exists");
    let got = app
        .post("/api/v1/agents", json!({"name": " ", "stage": true}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = app
        .post(
            "/api/v1/agents",
            json!({"name": "Y", "colour": "red", "stage": true}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "colour");
    let got = app
        .post("/api/v1/agents", json!({"name": "Y", "stage": "yes"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "stage");
    let got = app
        .patch(
            &path,
            json!({"expected_version": 7, "name": "Z", "stage": true}),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "version_conflict");
    let missing = format!("/api/v1/agents/{unknown}");
    let got = app
        .patch(&missing, json!({"name": "Z", "stage": true}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "agent_not_found");
    let got = app.delete(&format!("{missing}?stage=true")).await;
    assert_error(&got, StatusCode::NOT_FOUND, "agent_not_found");
    let got = app.delete(&format!("{path}?stage=maybe")).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");

    let (_, list) = app.get("/api/v1/staged-changes").await;
    assert_eq!(list["total"], 4, "only the four accepted ones: {list}");
    assert_eq!(agent_total(&app).await, 1);

    // Without `stage`, the routes write as before.
    let (status, _) = app.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn staged_changes_are_listed_newest_first_with_filters(app: TestApp) {
    let id = id_of(&agent(&app, "Helpdesk").await);
    let path = format!("/api/v1/agents/{id}");
    let token = app.token.clone();
    let first = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "A", "stage": true})),
    )
    .await;
    let second = stage(
        &app,
        &token,
        Method::PATCH,
        &path,
        Some(json!({"name": "B", "stage": true})),
    )
    .await;
    let third = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "C", "stage": true})),
    )
    .await;
    let (status, _) = decide(&app, &token, &second, false).await;
    assert_eq!(status, StatusCode::OK);

    let (status, list) = app.get("/api/v1/staged-changes").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let keys: Vec<&str> = list["staged_changes"]
        .as_array()
        .expect("staged_changes")
        .iter()
        .map(|c| c["idempotency_key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, [key_of(&third), key_of(&second), key_of(&first)]);
    assert_eq!(
        (&list["total"], &list["limit"], &list["offset"]),
        (&json!(3), &json!(50), &json!(0))
    );
    assert_eq!(list["staged_changes"][2], first);

    let (_, pending) = app
        .get("/api/v1/staged-changes?status=pending&entity=agent")
        .await;
    assert_eq!(pending["total"], 2);
    let (_, rejected) = app.get("/api/v1/staged-changes?status=rejected").await;
    assert_eq!(rejected["total"], 1);
    assert_eq!(rejected["staged_changes"][0]["status"], "rejected");
    let (_, page) = app.get("/api/v1/staged-changes?limit=1&offset=1").await;
    assert_eq!(page["total"], 3);
    assert_eq!(
        page["staged_changes"][0]["idempotency_key"],
        key_of(&second)
    );

    for bad in ["status=accepted", "entity=model", "limit=0", "sort=name"] {
        let got = app.get(&format!("/api/v1/staged-changes?{bad}")).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    }
    assert_eq!(
        app.get(&path_of(&key_of(&first))).await,
        (StatusCode::OK, first)
    );
    let got = app.get(&path_of("no-such-key")).await;
    assert_error(&got, StatusCode::NOT_FOUND, "staged_change_not_found");
}

async fn accepting_applies_each_write_once_and_audits_it(app: TestApp) {
    let m1 = model(&app, "m1").await;
    let (stager_id, stager) = key(&app, &["registry:write"]).await;
    let (decider_id, decider) = key(&app, &["registry:write"]).await;

    let create = stage(
        &app,
        &stager,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Triage", "model_ids": [m1], "stage": true})),
    )
    .await;
    assert_eq!(create["actor"]["key_id"], json!(stager_id));
    let (status, applied) = decide(&app, &decider, &create, true).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["decided_by"]["key_id"], json!(decider_id));
    assert!(applied["decided_at"].is_string(), "{applied}");
    let made = applied["result"].clone();
    let id = id_of(&made);
    assert_eq!(
        (&made["name"], &made["model_ids"], &made["version"]),
        (&json!("Triage"), &json!([m1]), &json!(1))
    );
    let path = format!("/api/v1/agents/{id}");
    assert_eq!(app.get(&path).await, (StatusCode::OK, made.clone()));
    assert_eq!(app.get(&path_of(&key_of(&create))).await.1, applied);

    let update = stage(
        &app,
        &stager,
        Method::PATCH,
        &path,
        Some(json!({"description": "Sorts tickets", "expected_version": 1, "stage": true})),
    )
    .await;
    let (status, applied) = decide(&app, &decider, &update, true).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "applied");
    let (_, now) = app.get(&path).await;
    assert_eq!(
        (&now["description"], &now["version"]),
        (&json!("Sorts tickets"), &json!(2))
    );
    assert_eq!(applied["result"], now);

    let delete = stage(
        &app,
        &stager,
        Method::DELETE,
        &format!("{path}?stage=true"),
        None,
    )
    .await;
    let (status, applied) = decide(&app, &decider, &delete, true).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["result"], now, "the agent as it was deleted");
    assert_error(
        &app.get(&path).await,
        StatusCode::NOT_FOUND,
        "agent_not_found",
    );

    // Each write audited once, as the key that accepted it.
    let events = agent_events(&app, &id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["delete", "update", "create"]);
    for event in &events {
        assert_eq!(event["actor"]["key_id"], json!(decider_id), "{event}");
    }

    let (_, applied) = app.get("/api/v1/staged-changes?status=applied").await;
    assert_eq!(applied["total"], 3);
}

async fn rejecting_drops_the_change_and_a_decision_is_final(app: TestApp) {
    let token = app.token.clone();
    let create = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Triage", "stage": true})),
    )
    .await;
    let (status, rejected) = decide(&app, &token, &create, false).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(
        (&rejected["status"], &rejected["result"]),
        (&json!("rejected"), &Value::Null)
    );
    assert!(rejected["decided_by"]["key_id"].is_string(), "{rejected}");
    assert_eq!(agent_total(&app).await, 0, "nothing applied");

    for accept in [true, false] {
        let got = decide(&app, &token, &create, accept).await;
        assert_error(&got, StatusCode::CONFLICT, "staged_change_already_decided");
        assert_eq!(got.1["error"]["details"]["status"], "rejected");
    }
    assert_eq!(agent_total(&app).await, 0);

    let another = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Triage", "stage": true})),
    )
    .await;
    assert_eq!(decide(&app, &token, &another, true).await.0, StatusCode::OK);
    let got = decide(&app, &token, &another, true).await;
    assert_error(&got, StatusCode::CONFLICT, "staged_change_already_decided");
    assert_eq!(got.1["error"]["details"]["status"], "applied");
    let got = decide(&app, &token, &another, false).await;
    assert_error(&got, StatusCode::CONFLICT, "staged_change_already_decided");
    assert_eq!(agent_total(&app).await, 1, "applied once");

    let got = app
        .post(&path_of(&key_of(&another)), json!({"accept": "yes"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "accept");
    let got = app
        .post(&path_of("no-such-key"), json!({"accept": true}))
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "staged_change_not_found");
}

async fn an_accept_refused_at_apply_time_is_recorded_as_failed(app: TestApp) {
    let token = app.token.clone();

    // The target was deleted meanwhile.
    let gone = id_of(&agent(&app, "Gone").await);
    let gone_path = format!("/api/v1/agents/{gone}");
    let update = stage(
        &app,
        &token,
        Method::PATCH,
        &gone_path,
        Some(json!({"name": "Renamed", "stage": true})),
    )
    .await;
    assert_eq!(app.delete(&gone_path).await.0, StatusCode::NO_CONTENT);
    let (status, failed) = decide(&app, &token, &update, true).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["result"]["error"]["code"], "agent_not_found");
    assert!(failed["result"]["error"]["message"].is_string(), "{failed}");
    assert_eq!(app.get(&path_of(&key_of(&update))).await.1, failed);
    let got = decide(&app, &token, &update, true).await;
    assert_error(&got, StatusCode::CONFLICT, "staged_change_already_decided");
    assert_eq!(got.1["error"]["details"]["status"], "failed");

    // The name was taken meanwhile: the failed create leaves no trace.
    let create = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Bot", "stage": true})),
    )
    .await;
    let bot = agent(&app, "Bot").await;
    let (status, failed) = decide(&app, &token, &create, true).await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["result"]["error"]["code"], "agent_already_exists");
    let (_, agents) = app.get("/api/v1/agents").await;
    assert_eq!(agents["agents"], json!([bot]));

    // The agent changed since the version the update was based on.
    let bot_id = id_of(&bot);
    let bot_path = format!("/api/v1/agents/{bot_id}");
    let stale = stage(
        &app,
        &token,
        Method::PATCH,
        &bot_path,
        Some(json!({"name": "Bot 2", "expected_version": 1, "stage": true})),
    )
    .await;
    let (status, _) = app.patch(&bot_path, json!({"active": false})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, failed) = decide(&app, &token, &stale, true).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["result"]["error"]["details"],
        json!({"expected_version": 1, "current_version": 2})
    );
    assert_eq!(failed["result"]["error"]["code"], "version_conflict");
    let (_, now) = app.get(&bot_path).await;
    assert_eq!((&now["name"], &now["version"]), (&json!("Bot"), &json!(2)));
    assert_eq!(agent_events(&app, &bot_id).await.len(), 2, "create, update");

    let (_, failed) = app.get("/api/v1/staged-changes?status=failed").await;
    assert_eq!(failed["total"], 3);
}

async fn concurrent_accepts_apply_once(app: TestApp) {
    let token = app.token.clone();
    for round in 0..3 {
        let create = stage(
            &app,
            &token,
            Method::POST,
            "/api/v1/agents",
            Some(json!({"name": format!("Agent {round}"), "stage": true})),
        )
        .await;
        let (a, b) = tokio::join!(
            decide(&app, &token, &create, true),
            decide(&app, &token, &create, true)
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{} / {}",
            a.1,
            b.1
        );
        let winner = if a.0 == StatusCode::OK { &a.1 } else { &b.1 };
        assert_eq!(winner["status"], "applied");
        let loser = if a.0 == StatusCode::OK { &b } else { &a };
        assert_eq!(loser.1["error"]["code"], "staged_change_already_decided");
        assert_eq!(agent_total(&app).await, round + 1);
        let id = id_of(&winner["result"]);
        assert_eq!(agent_events(&app, &id).await.len(), 1, "audited once");
    }

    // An accept racing a reject: exactly one decision wins.
    let create = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Raced", "stage": true})),
    )
    .await;
    let (a, b) = tokio::join!(
        decide(&app, &token, &create, true),
        decide(&app, &token, &create, false)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (_, now) = app.get(&path_of(&key_of(&create))).await;
    let expected_total = if now["status"] == "applied" { 4 } else { 3 };
    assert_eq!(agent_total(&app).await, expected_total, "{now}");
}

/// Sends a staged create with `Idempotency-Key: key`; returns status,
/// replayed flag and body.
async fn stage_with_key(
    app: &TestApp,
    token: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let resp = app
        .client
        .post(app.url("/api/v1/agents"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotency-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json = resp.json().await.expect("json body");
    (status, replayed, json)
}

async fn an_idempotency_key_names_the_change_and_a_repeat_stages_once(app: TestApp) {
    let token = app.token.clone();
    let body = json!({"name": "Triage", "stage": true});
    let first = stage_with_key(&app, &token, "triage-1", body.clone()).await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.2);
    assert_eq!(first.1.as_deref(), Some("false"));
    assert_eq!(first.2["idempotency_key"], "triage-1");
    assert_eq!(first.2["staged_change"]["idempotency_key"], "triage-1");

    let again = stage_with_key(&app, &token, "triage-1", body.clone()).await;
    assert_eq!(again.0, StatusCode::ACCEPTED);
    assert_eq!(again.1.as_deref(), Some("true"));
    assert_eq!(again.2, first.2);
    let (_, list) = app.get("/api/v1/staged-changes").await;
    assert_eq!(list["total"], 1, "one staged row: {list}");

    // The same key for a different write is refused, by the same credential
    // and by another one of the org (keys name changes org-wide).
    let other = json!({"name": "Other", "stage": true});
    let got = stage_with_key(&app, &token, "triage-1", other.clone()).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.2);
    assert_eq!(got.2["error"]["code"], "idempotency_key_reused");
    let (_, writer) = key(&app, &["registry:write"]).await;
    let got = stage_with_key(&app, &writer, "triage-1", other).await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.2);
    assert_eq!(got.2["error"]["code"], "idempotency_key_reused");

    // Once the middleware has forgotten the key (after a day), the same
    // request still finds its first change instead of staging a second.
    let mut db = app.database().await;
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&mut db)
        .await
        .expect("forget idempotency keys");
    let late = stage_with_key(&app, &token, "triage-1", body).await;
    assert_eq!(late.0, StatusCode::ACCEPTED, "{}", late.2);
    assert_eq!(late.2, first.2);
    let (_, list) = app.get("/api/v1/staged-changes").await;
    assert_eq!(list["total"], 1);

    // Accepting it, with a repeat of the decision, applies it once.
    let path = path_of("triage-1");
    let decide_with_key = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("Idempotency-Key", "accept-triage-1")
            .json(&json!({"accept": true}))
            .send()
    };
    let one = decide_with_key().await.expect("sent");
    assert_eq!(one.status(), StatusCode::OK);
    let one: Value = one.json().await.expect("json");
    let two = decide_with_key().await.expect("sent");
    assert_eq!(two.status(), StatusCode::OK, "the first answer replayed");
    assert_eq!(two.json::<Value>().await.expect("json"), one);
    assert_eq!(agent_total(&app).await, 1);

    // Without a header each staged write gets a key of its own.
    let a = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "A", "stage": true})),
    )
    .await;
    let b = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "A", "stage": true})),
    )
    .await;
    assert_ne!(key_of(&a), key_of(&b));
    assert!(uuid::Uuid::parse_str(&key_of(&a)).is_ok(), "{a}");
}

async fn staged_changes_are_org_scoped_and_need_their_scopes(app: TestApp) {
    let token = app.token.clone();
    let id = id_of(&agent(&app, "Helpdesk").await);
    let path = format!("/api/v1/agents/{id}");
    let create = stage(
        &app,
        &token,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "Triage", "stage": true})),
    )
    .await;
    let change_path = path_of(&key_of(&create));

    // Another org sees nothing of it.
    let (_, admin) = app.org_with_admin("other").await;
    let got = call_as(&app, &admin, Method::GET, &change_path, None).await;
    assert_error(&got, StatusCode::NOT_FOUND, "staged_change_not_found");
    let got = call_as(
        &app,
        &admin,
        Method::POST,
        &change_path,
        Some(json!({"accept": true})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "staged_change_not_found");
    let (_, theirs) = call_as(&app, &admin, Method::GET, "/api/v1/staged-changes", None).await;
    assert_eq!(theirs["total"], 0);
    // Nor can it stage a change of our agent.
    let got = call_as(
        &app,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"name": "Mine", "stage": true})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "agent_not_found");

    // A reader reads staged changes but neither stages nor decides.
    let (_, reader) = key(&app, &["registry:read"]).await;
    let (status, list) = call_as(&app, &reader, Method::GET, "/api/v1/staged-changes", None).await;
    assert_eq!((status, &list["total"]), (StatusCode::OK, &json!(1)));
    let (status, _) = call_as(&app, &reader, Method::GET, &change_path, None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/agents".to_owned(),
            Some(json!({"name": "Nope", "stage": true})),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "Nope", "stage": true})),
        ),
        (Method::DELETE, format!("{path}?stage=true"), None),
        (
            Method::POST,
            change_path.clone(),
            Some(json!({"accept": true})),
        ),
        (
            Method::POST,
            change_path.clone(),
            Some(json!({"accept": false})),
        ),
    ] {
        let got = call_as(&app, &reader, method, &path, body).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let (_, gateway) = key(&app, &["gateway"]).await;
    let got = call_as(&app, &gateway, Method::GET, "/api/v1/staged-changes", None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");

    let (_, list) = app.get("/api/v1/staged-changes").await;
    assert_eq!(list["total"], 1, "nothing staged by the refused calls");
    assert_eq!(app.get(&change_path).await.1, create, "still pending");
    assert_eq!(agent_total(&app).await, 1);
}
