//! `Idempotency-Key` on writes: a repeat answers the first result and
//! applies nothing twice.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    a_repeated_create_returns_the_first_result_and_creates_once,
    a_key_reused_for_another_request_is_refused,
    keys_belong_to_their_credential_and_errors_replay_too,
    a_repeated_bulk_create_and_delete_apply_once,
);

/// Sends `body` with `Idempotency-Key: key`; returns status, replayed flag and body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let replayed = resp
        .headers()
        .get("idempotency-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    (status, replayed, json)
}

async fn a_repeated_create_returns_the_first_result_and_creates_once(app: TestApp) {
    let body = json!({"model_id": "m", "provider": "p", "risk_tier": "tier_2"});
    let token = app.token.clone();
    let first = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &token,
        "create-m-1",
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{:?}", first.2);
    assert_eq!(first.1.as_deref(), Some("false"));
    let again = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &token,
        "create-m-1",
        Some(body),
    )
    .await;
    assert_eq!(again.0, StatusCode::CREATED, "the first answer, not a 409");
    assert_eq!(again.1.as_deref(), Some("true"));
    assert_eq!(again.2, first.2);
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 1);
    let (_, history) = app
        .get(&format!(
            "/api/v1/models/{}/history",
            first.2["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(history["total"], 1, "audited once");

    let too_long = "k".repeat(300);
    let bad = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &token,
        &too_long,
        Some(json!({})),
    )
    .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert_eq!(bad.2["error"]["code"], "validation_error");
}

async fn a_key_reused_for_another_request_is_refused(app: TestApp) {
    let token = app.token.clone();
    let one = json!({"model_id": "one", "provider": "p", "risk_tier": "tier_2"});
    let two = json!({"model_id": "two", "provider": "p", "risk_tier": "tier_2"});
    let first = send(&app, Method::POST, "/api/v1/models", &token, "k", Some(one)).await;
    assert_eq!(first.0, StatusCode::CREATED);
    let other = send(&app, Method::POST, "/api/v1/models", &token, "k", Some(two)).await;
    assert_eq!(other.0, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", other.2);
    assert_eq!(other.2["error"]["code"], "idempotency_key_reused");
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 1, "the second body was not applied");
    // Reads ignore the header.
    let (status, _, _) = send(&app, Method::GET, "/api/v1/models", &token, "k", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn keys_belong_to_their_credential_and_errors_replay_too(app: TestApp) {
    let token = app.token.clone();
    let other = app
        .key_with(&["registry:write", "registry:read"], None)
        .await;
    let body = json!({"model_id": "m", "provider": "p", "risk_tier": "tier_2"});
    let mine = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &token,
        "same",
        Some(body.clone()),
    )
    .await;
    assert_eq!(mine.0, StatusCode::CREATED);
    let theirs = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &other,
        "same",
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        theirs.0,
        StatusCode::CONFLICT,
        "another credential runs its own request"
    );
    assert_eq!(theirs.1.as_deref(), Some("false"));
    assert_eq!(theirs.2["error"]["code"], "model_already_exists");
    let id = mine.2["id"].as_str().expect("id").to_owned();
    let (status, _) = app.delete(&format!("/api/v1/models/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let replay = send(
        &app,
        Method::POST,
        "/api/v1/models",
        &other,
        "same",
        Some(body),
    )
    .await;
    assert_eq!(
        replay.0,
        StatusCode::CONFLICT,
        "the first answer, though it would now succeed"
    );
    assert_eq!(replay.1.as_deref(), Some("true"));
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 0);
}

async fn a_repeated_bulk_create_and_delete_apply_once(app: TestApp) {
    let token = app.token.clone();
    let body = json!({"models": [
        {"model_id": "a", "provider": "p", "risk_tier": "tier_1"},
        {"model_id": "b", "provider": "p", "risk_tier": "tier_1"}
    ]});
    let first = send(
        &app,
        Method::POST,
        "/api/v1/models/bulk-create",
        &token,
        "bulk",
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.0, StatusCode::OK);
    let again = send(
        &app,
        Method::POST,
        "/api/v1/models/bulk-create",
        &token,
        "bulk",
        Some(body),
    )
    .await;
    assert_eq!(again.2, first.2);
    assert_eq!(again.1.as_deref(), Some("true"));
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 2);

    let id = first.2["results"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/models/{id}");
    let gone = send(&app, Method::DELETE, &path, &token, "del", None).await;
    assert_eq!(gone.0, StatusCode::NO_CONTENT);
    let repeat = send(&app, Method::DELETE, &path, &token, "del", None).await;
    assert_eq!(
        repeat.0,
        StatusCode::NO_CONTENT,
        "not a 404 the second time"
    );
    assert_eq!(repeat.1.as_deref(), Some("true"));
}
