//! Bulk create, update and delete of inventory models, and duplication.
//!
//! Each item succeeds or fails on its own: one bad item never fails the
//! others, and every good item is written with its own audit event.

use std::collections::HashSet;

use uuid::Uuid;

use modelplane_domain::audit::{AuditAction, AuditEvent, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::model::{
    Model, ModelChanges, ModelCreate, TagsMode, ValidationStatus, MODEL_ID_MAX, SHORT_TEXT_MAX,
};
use modelplane_domain::time::now;
use modelplane_domain::ValidationError;
use modelplane_store::{ModelFilter, Store, StoreError};

use crate::error::{Entity, Result, ServiceError};
use crate::models::{already_exists, edit_scope, event, insert, prepare_many, EditScope};
use crate::{new_id, Principal};

/// Items per bulk request.
pub const BULK_MAX: usize = 1000;
/// Models one `all: true` request may select.
pub const BULK_ALL_MAX: i64 = 10_000;

/// One item's outcome: the model (for a delete, as it was) or its error.
pub type ItemResult = Result<Model>;

fn check_size(field: &str, n: usize) -> Result<()> {
    if n > BULK_MAX {
        return Err(
            ValidationError::new(field, format!("at most {BULK_MAX} items per request")).into(),
        );
    }
    Ok(())
}

/// Creates each model. Items are validated and linked one by one; the good
/// ones are then written in one transaction, each with its audit event (if
/// that transaction loses a race for a `model_id`, they are written one by
/// one so only the loser fails).
pub async fn bulk_create(
    store: &Store,
    p: &Principal,
    inputs: Vec<ModelCreate>,
) -> Result<Vec<ItemResult>> {
    p.require(Scope::RegistryWrite)?;
    check_size("models", inputs.len())?;
    let scope = edit_scope(store, p).await?;
    let mut results = prepare_many(store, p, &scope, inputs).await?;
    // A model_id given twice: the first wins, like two single creates.
    let mut seen = HashSet::new();
    for r in &mut results {
        if let Ok(m) = r {
            if !seen.insert(m.model_id.clone()) {
                *r = Err(already_exists(m));
            }
        }
    }
    let ids: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|m| m.model_id.clone()))
        .collect();
    let taken = store.existing_model_ids(p.org_id, &ids).await?;
    for r in &mut results {
        if let Ok(m) = r {
            if taken.contains(&m.model_id) {
                *r = Err(already_exists(m));
            }
        }
    }
    let good: Vec<Model> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    if good.is_empty() {
        return Ok(results);
    }
    let audits: Vec<AuditEvent> = good
        .iter()
        .map(|m| event(p, None, Some(m), AuditAction::Create))
        .collect();
    match store.insert_models_bulk(&good, &audits).await {
        Ok(()) => Ok(results),
        Err(StoreError::Conflict(_)) => {
            // Someone else created one of these meanwhile: one by one.
            for r in &mut results {
                if let Ok(m) = r {
                    *r = insert(store, p, m.clone(), |p, m| {
                        event(p, None, Some(m), AuditAction::Create)
                    })
                    .await;
                }
            }
            Ok(results)
        }
        Err(e) => Err(e.into()),
    }
}

/// Applies each `(id, changes)` as a `PATCH` would, each in its own
/// transaction with its own audit event.
pub async fn bulk_update(
    store: &Store,
    p: &Principal,
    items: Vec<(Uuid, ModelChanges)>,
) -> Result<Vec<ItemResult>> {
    p.require(Scope::RegistryWrite)?;
    check_size("models", items.len())?;
    let mut results = Vec::with_capacity(items.len());
    for (id, changes) in items {
        results.push(crate::models::update(store, p, id, changes, TagsMode::Merge, None).await);
    }
    Ok(results)
}

/// Deletes each model as a `DELETE` would.
pub async fn bulk_delete(store: &Store, p: &Principal, ids: Vec<Uuid>) -> Result<Vec<ItemResult>> {
    p.require(Scope::RegistryWrite)?;
    check_size("model_ids", ids.len())?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push(crate::models::remove(store, p, id, None).await);
    }
    Ok(results)
}

/// The models an `all: true` request selects: those `filter` matches, less
/// `excluded`. Refused when more than [`BULK_ALL_MAX`] match.
pub async fn select_all(
    store: &Store,
    p: &Principal,
    filter: &ModelFilter,
    excluded: &[Uuid],
) -> Result<Vec<Uuid>> {
    p.require(Scope::RegistryWrite)?;
    let ids = store
        .model_ids_matching(p.org_id, filter, BULK_ALL_MAX + excluded.len() as i64 + 1)
        .await?;
    let ids: Vec<Uuid> = ids
        .into_iter()
        .filter(|id| !excluded.contains(id))
        .collect();
    if ids.len() as i64 > BULK_ALL_MAX {
        return Err(ValidationError::new(
            "filters",
            format!("more than {BULK_ALL_MAX} models match; narrow the filters or exclude some"),
        )
        .into());
    }
    Ok(ids)
}

/// A `model_id` for a copy of `source` that the org does not use yet:
/// `<id>-copy`, then `<id>-copy-2`, … (the source id cut to fit).
async fn free_copy_id(store: &Store, p: &Principal, source: &str) -> Result<String> {
    let room = MODEL_ID_MAX - "-copy-99".len();
    let stem: String = source.chars().take(room).collect();
    let candidates: Vec<String> = std::iter::once(format!("{stem}-copy"))
        .chain((2..100).map(|n| format!("{stem}-copy-{n}")))
        .collect();
    let taken = store.existing_model_ids(p.org_id, &candidates).await?;
    Ok(candidates
        .into_iter()
        .find(|c| !taken.contains(c))
        .unwrap_or_else(|| format!("{stem}-{}", &new_id().simple().to_string()[..8])))
}

/// The copy of `source` with a new id and `model_id`: every section, tag,
/// department and governance field kept, validation back to `draft`.
pub fn copy_of(source: &Model, id: Uuid, model_id: String) -> Model {
    let at = now();
    let display_name: String = format!("{} (copy)", source.display_name)
        .chars()
        .take(SHORT_TEXT_MAX)
        .collect();
    Model {
        id,
        model_id,
        display_name,
        validation_status: ValidationStatus::Draft,
        last_validated_at: None,
        last_seen_at: None,
        version: 1,
        created_at: at,
        updated_at: at,
        ..source.clone()
    }
}

/// Duplicates a model, audited as a copy of its source.
pub async fn duplicate(store: &Store, p: &Principal, id: Uuid) -> Result<Model> {
    p.require(Scope::RegistryWrite)?;
    let scope: EditScope = edit_scope(store, p).await?;
    let source = store
        .get_model(p.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Model))?;
    scope.check(&source)?;
    // Two duplicates racing for the same free id: the loser picks again.
    let mut last = None;
    for _ in 0..3 {
        let model_id = free_copy_id(store, p, &source.model_id).await?;
        let copy = copy_of(&source, new_id(), model_id);
        let mut audit = event(p, None, Some(&copy), AuditAction::Duplicate);
        audit.changes.push(FieldChange {
            field: "copied_from".to_owned(),
            before: serde_json::Value::Null,
            after: serde_json::json!({"id": source.id, "model_id": source.model_id, "version": source.version}),
        });
        match store.insert_model(&copy, &audit).await {
            Ok(()) => return Ok(copy),
            Err(StoreError::Conflict(_)) => last = Some(already_exists(&copy)),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.unwrap_or_else(|| already_exists(&source)))
}

/// A change set as each item of an `all: true` update applies it.
pub fn set_for_each(set: &ModelChanges) -> ModelChanges {
    ModelChanges {
        expected_version: None,
        ..set.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelplane_domain::audit::diff;
    use modelplane_domain::model::{new_model, RiskTier};

    #[test]
    fn a_copy_keeps_every_section_and_starts_over_as_a_draft() {
        let input: ModelCreate = serde_json::from_value(serde_json::json!({
            "model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "validation_status": "pending_validation", "tags": {"team": "a"},
            "sections": {"voices": ["alloy"], "flags": {"active": true}}
        }))
        .expect("valid body");
        let mut source =
            new_model(input, Uuid::from_u128(1), Uuid::from_u128(9), now()).expect("valid model");
        source.version = 7;
        let copy = copy_of(&source, Uuid::from_u128(2), "gpt-4o-copy".to_owned());
        assert_eq!(copy.id, Uuid::from_u128(2));
        assert_eq!(copy.model_id, "gpt-4o-copy");
        assert_eq!(copy.display_name, "gpt-4o (copy)");
        assert_eq!(copy.validation_status, ValidationStatus::Draft);
        assert_eq!(copy.version, 1);
        assert_eq!(copy.sections, source.sections);
        assert_eq!(copy.tags, source.tags);
        assert_eq!(copy.risk_tier, RiskTier::Tier2);
        assert_eq!(copy.org_id, source.org_id);
        assert!(diff(Some(&source), Some(&copy))
            .iter()
            .all(|c| c.field != "sections" && c.field != "tags"));
    }
}
