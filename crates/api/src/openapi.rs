//! The OpenAPI 3.1 document, assembled from the routes themselves.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "modelplane",
        description = "One self-hosted control plane for every AI model an organization uses: \
            catalog, governed inventory, local serving and an OpenAI-compatible gateway.",
        license(name = "Apache-2.0")
    ),
    modifiers(&Security),
    tags(
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "orgs", description = "Organizations (tenants)"),
        (name = "users", description = "Users of an org"),
        (name = "keys", description = "API keys"),
        (name = "models", description = "The governed model inventory"),
        (name = "drafts", description = "Pending edits of inventory models, with optimistic versions"),
        (name = "departments", description = "An org's departments, which its models and users belong to"),
        (name = "agents", description = "An org's agents and the inventory models they use"),
        (name = "staged-changes", description = "Writes sent with `stage: true`: recorded, then accepted or rejected"),
        (name = "audit", description = "The append-only audit trail"),
        (name = "catalog", description = "The global catalog of models, shared by every org"),
        (name = "ingestion", description = "Feeding the catalog from providers, aggregators and Hugging Face"),
        (name = "gateway", description = "Routes, upstreams and providers of the OpenAI-compatible gateway at /v1"),
        (name = "local", description = "Model files on this server's disk: the base directory, inspection, GGUF metadata, VRAM estimates, the Hugging Face Hub, downloads and LoRA adapters"),
        (name = "usage", description = "What the gateway metered: request records, totals, time series, latency and time-to-first-token percentiles, CSV export"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::orgs::router())
        .merge(routes::users::router())
        .merge(routes::keys::router())
        .merge(routes::models::router())
        .merge(routes::model_docs::router())
        .merge(routes::model_bulk::router())
        .merge(routes::drafts::router())
        .merge(routes::admin::router())
        .merge(routes::departments::router())
        .merge(routes::agents::router())
        .merge(routes::staged_changes::router())
        .merge(routes::audit::router())
        .merge(routes::catalog::router())
        .merge(routes::ingestion::router())
        .merge(routes::gateway_routes::router())
        .merge(routes::upstreams::router())
        .merge(routes::policies::router())
        .merge(routes::providers::router())
        .merge(routes::usage::router())
        .merge(routes::local::router())
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn render(doc: &OpenApiDoc) -> String {
    let mut json = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    json.push('\n');
    json
}

/// The routes and their document, with each model operation's required
/// scope written in as `x-required-scope`.
pub fn split() -> (axum::Router<AppState>, OpenApiDoc) {
    let (router, mut doc) = api_router().split_for_parts();
    crate::scopes::annotate(&mut doc);
    (router, doc)
}

/// The current document, for the CLI and the drift test.
pub fn document() -> String {
    let (_, doc) = split();
    render(&doc)
}
