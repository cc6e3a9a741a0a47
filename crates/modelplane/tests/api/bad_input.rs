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
    let got = oversize_post(&app).await;
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

/// Posts a body announced as 2 MiB but sends only a little past the 1 MiB
/// limit, then reads the answer. (A client that keeps writing after the
/// server has answered 413 and closed would race the close.)
async fn oversize_post(app: &TestApp) -> (StatusCode, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/models HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.token,
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut body =
        br#"{"model_id":"m","provider":"p","risk_tier":"tier_1","description":""#.to_vec();
    body.resize(1024 * 1024 + 16 * 1024, b'x');
    stream.write_all(&body).await.expect("write body");
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server answers without waiting for the rest of the body"
    );
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        StatusCode::from_u16(status).expect("status"),
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}
