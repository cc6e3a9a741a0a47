//! `GET /api/v1/models/docs`: the composed documentation of the model
//! resource (its fields and sections, every operation with the scope it
//! requires, and the permissions grouped by scope), generated from the
//! OpenAPI document itself, so it cannot drift from the API.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::key::Scope;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Auth;
use crate::scopes::is_model_path;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(model_docs))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldDoc {
    pub name: String,
    /// The JSON type (`string`, `integer`, `array<string>`, a schema name…).
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
    pub nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The allowed values of an enumeration.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationDoc {
    pub method: String,
    pub path: String,
    pub operation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub required_scope: String,
    /// The request body's schema name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Response status codes.
    pub responses: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PermissionDoc {
    pub scope: String,
    /// `METHOD path` of every operation this scope opens.
    pub operations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelDocs {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    /// The fields of a model record.
    pub fields: Vec<FieldDoc>,
    /// The org's sections of a model (see `sections` and `effective_sections`).
    pub sections: Vec<FieldDoc>,
    /// Every operation on models, their drafts, exports and maintenance.
    pub operations: Vec<OperationDoc>,
    pub permissions: Vec<PermissionDoc>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The name a `$ref` points at.
fn ref_name(v: &Value) -> Option<String> {
    v.get("$ref")?
        .as_str()?
        .rsplit('/')
        .next()
        .map(str::to_owned)
}

/// A property's type as a reader wants it, and whether it may be null.
fn type_of(prop: &Value) -> (String, bool) {
    if let Some(name) = ref_name(prop) {
        return (name, false);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = prop.get(key).and_then(Value::as_array) {
            let nullable = alts
                .iter()
                .any(|a| a.get("type") == Some(&Value::from("null")));
            let named: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type") != Some(&Value::from("null")))
                .map(|a| type_of(a).0)
                .collect();
            return (named.join(" | "), nullable);
        }
    }
    let (base, nullable) = match prop.get("type") {
        Some(Value::Array(types)) => {
            let nullable = types.iter().any(|t| t == "null");
            let base = types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_owned();
            (base, nullable)
        }
        Some(Value::String(t)) => (t.clone(), false),
        _ => ("any".to_owned(), false),
    };
    if base == "array" {
        let item = prop
            .get("items")
            .map(|i| type_of(i).0)
            .unwrap_or_else(|| "any".into());
        return (format!("array<{item}>"), nullable);
    }
    (base, nullable)
}

fn fields_of(doc: &Value, schema: &str) -> Vec<FieldDoc> {
    let schemas = &doc["components"]["schemas"];
    let s = &schemas[schema];
    let required: Vec<&str> = s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = s["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let (kind, nullable) = type_of(prop);
            let target = ref_name(prop).map(|r| &schemas[r.as_str()]);
            let values = target
                .unwrap_or(prop)
                .get("enum")
                .and_then(Value::as_array)
                .map(|e| e.iter().filter_map(text).collect())
                .unwrap_or_default();
            FieldDoc {
                name: name.clone(),
                kind,
                required: required.contains(&name.as_str()),
                nullable,
                format: text(&prop["format"]),
                description: text(&prop["description"])
                    .or_else(|| target.and_then(|t| text(&t["description"]))),
                values,
            }
        })
        .collect()
}

/// Composes the documentation from the OpenAPI document (as JSON).
pub fn compose(doc: &Value) -> ModelDocs {
    let mut operations = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths.iter().filter(|(p, _)| is_model_path(p)) {
            for method in ["get", "post", "put", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let body = &op["requestBody"]["content"]["application/json"]["schema"];
                operations.push(OperationDoc {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    operation_id: text(&op["operationId"]).unwrap_or_default(),
                    summary: text(&op["summary"]),
                    description: text(&op["description"]),
                    required_scope: text(&op["x-required-scope"]).unwrap_or_default(),
                    request_body: ref_name(body)
                        .or_else(|| body.get("type").and(Some(type_of(body).0))),
                    responses: op["responses"]
                        .as_object()
                        .map(|r| r.keys().cloned().collect())
                        .unwrap_or_default(),
                });
            }
        }
    }
    let mut by_scope: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for op in &operations {
        by_scope
            .entry(op.required_scope.clone())
            .or_default()
            .push(format!("{} {}", op.method, op.path));
    }
    ModelDocs {
        name: "model".to_owned(),
        kind: "resource".to_owned(),
        description: text(&doc["components"]["schemas"]["Model"]["description"])
            .unwrap_or_default(),
        fields: fields_of(doc, "Model"),
        sections: fields_of(doc, "ModelSections"),
        operations,
        permissions: by_scope
            .into_iter()
            .map(|(scope, operations)| PermissionDoc { scope, operations })
            .collect(),
    }
}

fn docs() -> &'static ModelDocs {
    static DOCS: OnceLock<ModelDocs> = OnceLock::new();
    DOCS.get_or_init(|| {
        let (_, doc) = crate::openapi::split();
        compose(&serde_json::to_value(&doc).unwrap_or(Value::Null))
    })
}

/// The composed documentation of the model resource: fields, sections,
/// operations with their required scopes, and permissions by scope.
#[utoipa::path(get, path = "/api/v1/models/docs", tag = "models",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelDocs), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn model_docs(State(_): State<AppState>, Auth(p): Auth) -> ApiResult<Json<ModelDocs>> {
    p.require(Scope::RegistryRead)?;
    Ok(Json(docs().clone()))
}
