//! The OpenAPI document and its rendering, with every asset embedded so the
//! page works with no internet access.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>modelplane API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
</script>
</body>
</html>
"##;

/// Public on purpose: the API description is no secret, and a browser
/// cannot attach a bearer token to the page's own requests.
pub fn router(openapi_json: String) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let body = openapi_json.clone();
                async move { ([(CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
        .route("/docs/", get(|| async { Html(PAGE) }))
        .route(
            "/docs/assets/swagger-ui-bundle.js",
            get(|| async { asset("application/javascript", SWAGGER_JS) }),
        )
        .route(
            "/docs/assets/swagger-ui.css",
            get(|| async { asset("text/css", SWAGGER_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
