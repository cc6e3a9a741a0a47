use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    health_and_readiness_need_no_key,
    metrics_need_the_metrics_scope_and_count_requests_by_route,
    docs_and_openapi_are_served_with_embedded_assets,
    unknown_routes_and_methods_get_the_error_envelope,
    responses_carry_a_request_id,
);

async fn health_and_readiness_need_no_key(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let backend = if app.database_url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(body["database"], backend);
}

async fn metrics_need_the_metrics_scope_and_count_requests_by_route(app: TestApp) {
    assert_error(
        &app.call(Method::GET, "/metrics", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let admin = app.key_with(&["admin"], None).await;
    assert_error(
        &app.call(Method::GET, "/metrics", Some(&admin), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let scraper = app.key_with(&["metrics:read"], None).await;
    let model = app
        .create_model(json!({"model_id": "m1", "provider": "p", "risk_tier": "tier_3"}))
        .await;
    let id = model["id"].as_str().expect("id");
    app.get(&format!("/api/v1/models/{id}")).await;
    app.get("/api/v1/models/00000000-0000-0000-0000-000000000000")
        .await;

    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&scraper)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    let text = resp.text().await.expect("text");
    // Route templates, not raw paths, label the series.
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/models/{id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/models/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="POST",route="/api/v1/models",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(!text.contains(id), "ids must not become labels");
}

async fn docs_and_openapi_are_served_with_embedded_assets(app: TestApp) {
    let (status, doc) = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    for path in [
        "/api/v1/models",
        "/api/v1/models/{id}",
        "/api/v1/keys",
        "/api/v1/orgs/lookup",
        "/api/v1/audit-events",
        "/api/v1/model-inventory-export",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    let page = app.client.get(app.url("/docs")).send().await.expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    for asset in [
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ] {
        assert!(html.contains(asset));
        let resp = app.client.get(app.url(asset)).send().await.expect("sent");
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert!(
            resp.bytes().await.expect("bytes").len() > 10_000,
            "{asset} is embedded"
        );
    }
}

async fn unknown_routes_and_methods_get_the_error_envelope(app: TestApp) {
    assert_error(
        &app.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    );
    assert_error(
        &app.call(
            Method::PATCH,
            "/api/v1/keys",
            Some(&app.token),
            Some(json!({})),
        )
        .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

async fn responses_carry_a_request_id(app: TestApp) {
    let resp = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    let id = resp
        .headers()
        .get("x-request-id")
        .expect("request id header")
        .to_str()
        .expect("ascii");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.headers()["x-request-id"],
        "abc-123",
        "a caller's request id is kept"
    );
}

/// The committed OpenAPI document must match the code. Regenerate with
/// `cargo run -p modelplane -- openapi > docs/openapi.json`.
#[test]
fn committed_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let current = modelplane_api::openapi::document();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, &current).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/openapi.json is out of date: run `cargo run -p modelplane -- openapi > docs/openapi.json` (or UPDATE_OPENAPI=1 cargo test)"
    );
}
