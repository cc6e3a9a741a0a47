use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(malformed_requests_get_clear_errors_and_write_nothing);

async fn malformed_requests_get_clear_errors_and_write_nothing(app: TestApp) {
    let raw = |body: Vec<u8>, content_type: &'static str| {
        let req = app
            .client
            .post(app.url("/api/v1/models"))
            .bearer_auth(&app.token)
            .header("content-type", content_type)
            .body(body);
        async move {
            let resp = req.send().await.expect("sent");
            (
                resp.status(),
                resp.json::<serde_json::Value>()
                    .await
                    .expect("json error body"),
            )
        }
    };
    let got = raw(b"{\"model_id\": ".to_vec(), "application/json").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "body");
    let got = raw(b"not json".to_vec(), "application/json").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = raw(b"[1,2]".to_vec(), "application/json").await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = raw(
        b"{\"model_id\":\"m\",\"provider\":\"p\",\"risk_tier\":\"tier_1\"}".to_vec(),
        "text/plain",
    )
    .await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = format!(
        "{{\"model_id\":\"m\",\"provider\":\"p\",\"risk_tier\":\"tier_1\",\"description\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let got = raw(huge.into_bytes(), "application/json").await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let long = "x".repeat(10_001);
    let got = raw(
        serde_json::to_vec(
            &json!({"model_id": "m", "provider": "p", "risk_tier": "tier_1", "description": long}),
        )
        .expect("json"),
        "application/json",
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "description");
    let got = raw(
        serde_json::to_vec(
            &json!({"model_id": "m\u{0000}x", "provider": "p", "risk_tier": "tier_1"}),
        )
        .expect("json"),
        "application/json",
    )
    .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");

    let m = app
        .create_model(
            json!({"model_id": "keep", "provider": "p", "risk_tier": "tier_1", "owner": "a@x"}),
        )
        .await;
    let path = format!("/api/v1/models/{}", m["id"].as_str().expect("id"));
    // One bad field fails the whole update: nothing of it is written.
    let got = app
        .patch(&path, json!({"owner": "b@x", "risk_tier": "tier_0"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = app
        .patch(&path, json!({"owner": "b@x", "validator": "b@x"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = app
        .patch(
            &path,
            json!({"owner": "b@x", "validation_status": "validated"}),
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_status_transition",
    );
    let (_, after) = app.get(&path).await;
    assert_eq!(after, m, "no partial write");
    let (_, history) = app.get(&format!("{path}/history")).await;
    assert_eq!(history["total"], 1, "only the create was audited");
    let (_, list) = app.get("/api/v1/models").await;
    assert_eq!(list["total"], 1);
}
