//! The scope each operation of the model resource requires: one table,
//! written into the OpenAPI document as `x-required-scope` and read back by
//! `GET /api/v1/models/docs`, so the two cannot disagree. The services
//! enforce these scopes; the docs test checks that a key without the scope
//! is refused.

use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::OpenApi;

/// `(method, path, scope)` of every operation on models, their drafts,
/// exports and maintenance.
pub const MODEL_OPERATIONS: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/models", "registry:read"),
    ("post", "/api/v1/models", "registry:write"),
    ("get", "/api/v1/models/docs", "registry:read"),
    ("get", "/api/v1/models/{id}", "registry:read"),
    ("put", "/api/v1/models/{id}", "registry:write"),
    ("patch", "/api/v1/models/{id}", "registry:write"),
    ("delete", "/api/v1/models/{id}", "registry:write"),
    ("get", "/api/v1/models/{id}/history", "registry:read"),
    ("post", "/api/v1/models/{id}/duplicate", "registry:write"),
    ("post", "/api/v1/models/{id}/drafts", "registry:write"),
    ("post", "/api/v1/models/bulk-create", "registry:write"),
    ("post", "/api/v1/models/bulk-update", "registry:write"),
    ("post", "/api/v1/models/bulk-delete", "registry:write"),
    ("post", "/api/v1/models/discover", "registry:write"),
    ("get", "/api/v1/drafts", "registry:write"),
    ("post", "/api/v1/drafts", "registry:write"),
    ("get", "/api/v1/drafts/{id}", "registry:write"),
    ("patch", "/api/v1/drafts/{id}", "registry:write"),
    ("delete", "/api/v1/drafts/{id}", "registry:write"),
    ("post", "/api/v1/drafts/{id}/publish", "registry:write"),
    ("get", "/api/v1/model-inventory-export", "registry:read"),
    ("post", "/api/v1/admin/refresh", "admin"),
];

/// Whether `path` belongs to the model resource (and so must be in the table).
pub fn is_model_path(path: &str) -> bool {
    path.starts_with("/api/v1/models")
        || path.starts_with("/api/v1/drafts")
        || path == "/api/v1/model-inventory-export"
        || path == "/api/v1/admin/refresh"
}

pub fn required_scope(method: &str, path: &str) -> Option<&'static str> {
    MODEL_OPERATIONS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, s)| *s)
}

/// The operations of a path item with their lower-case method names.
pub fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> [(&'static str, Option<&mut Operation>); 5] {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
}

/// Writes `x-required-scope` into every operation the table names.
pub fn annotate(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations_mut(item) {
            let (Some(op), Some(scope)) = (op, required_scope(method, path)) else {
                continue;
            };
            let ext = ExtensionsBuilder::new()
                .add("x-required-scope", scope)
                .build();
            match op.extensions.as_mut() {
                Some(existing) => existing.merge(ext),
                None => op.extensions = Some(ext),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_operation_in_the_document_has_a_scope_and_no_entry_is_stale() {
        let (_, mut doc) = crate::openapi::api_router().split_for_parts();
        let mut seen = Vec::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations_mut(item) {
                if op.is_some() && is_model_path(path) {
                    assert!(
                        required_scope(method, path).is_some(),
                        "{method} {path} has no scope in MODEL_OPERATIONS"
                    );
                    seen.push((method, path.clone()));
                }
            }
        }
        for (method, path, _) in MODEL_OPERATIONS {
            assert!(
                seen.iter().any(|(m, p)| m == method && p == path),
                "{method} {path} is in MODEL_OPERATIONS but not a route"
            );
        }
    }
}
