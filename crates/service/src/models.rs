use std::collections::HashMap;

use futures::Stream;
use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::catalog::CatalogModel;
use modelplane_domain::key::Scope;
use modelplane_domain::model::{
    apply_changes, new_model, Model, ModelChanges, ModelCreate, TagsMode,
};
use modelplane_domain::model::{LONG_TEXT_MAX, SHORT_TEXT_MAX};
use modelplane_domain::page::Page;
use modelplane_domain::time::now;
use modelplane_store::{AuditFilter, ModelFilter, Modified, Store, StoreError};

use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

/// The catalog model an explicit `catalog_id` names, or a validation error.
async fn linked(store: &Store, id: Uuid) -> Result<CatalogModel> {
    store.get_catalog(id).await?.ok_or_else(|| {
        modelplane_domain::ValidationError::new("catalog_id", "no catalog model has this id").into()
    })
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The catalog models the given inventory entries link to, by id.
pub async fn catalog_of(store: &Store, models: &[Model]) -> Result<HashMap<Uuid, CatalogModel>> {
    let ids: Vec<Uuid> = models.iter().filter_map(|m| m.catalog_id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(store
        .catalog_by_ids(&ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect())
}

fn event(
    p: &Principal,
    before: Option<&Model>,
    after: Option<&Model>,
    action: AuditAction,
) -> AuditEvent {
    let (org_id, entity_id) = after
        .or(before)
        .map(|m| (m.org_id, m.id))
        .unwrap_or((p.org_id, p.org_id));
    AuditEvent {
        id: new_id(),
        org_id,
        entity_type: EntityType::Model,
        entity_id,
        action,
        actor: p.actor(),
        at: now(),
        changes: diff(before, after),
    }
}

pub async fn list(
    store: &Store,
    p: &Principal,
    filter: &ModelFilter,
    page: Page,
) -> Result<Listed<Model>> {
    p.require(Scope::RegistryRead)?;
    Ok(store.list_models(p.org_id, filter, page).await?.into())
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Model> {
    p.require(Scope::RegistryRead)?;
    store
        .get_model(p.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Model))
}

pub async fn create(store: &Store, p: &Principal, input: ModelCreate) -> Result<Model> {
    p.require(Scope::RegistryWrite)?;
    let inherit_name = input.display_name.is_none();
    let inherit_description = input.description.is_none();
    let explicit = input.catalog_id;
    // Validate first: nothing unchecked reaches a catalog lookup.
    let mut model = new_model(input, new_id(), p.org_id, now())?;
    let link = match explicit {
        Some(id) => Some(linked(store, id).await?),
        None => crate::catalog::link_for(store, &model.provider, &model.model_id).await?,
    };
    if let Some(entry) = &link {
        // The entry inherits the catalog's names unless the org gives its own.
        model.catalog_id = Some(entry.id);
        if inherit_name {
            if let Some(name) = entry.facts.display_name.as_deref() {
                model.display_name = clip(name, SHORT_TEXT_MAX);
            }
        }
        if inherit_description {
            model.description = entry
                .facts
                .description
                .as_deref()
                .map(|d| clip(d, LONG_TEXT_MAX));
        }
    }
    let audit = event(p, None, Some(&model), AuditAction::Create);
    match store.insert_model(&model, &audit).await {
        Ok(()) => Ok(model),
        Err(StoreError::Conflict(_)) => Err(ServiceError::AlreadyExists {
            entity: Entity::Model,
            message: format!(
                "a model with model_id {:?} already exists in this org",
                model.model_id
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Applies an update. With an expected version (from `If-Match` or the
/// body) a stale base is refused; without one the change applies to whatever
/// is current. Either way the read, the rules and the write happen under one
/// lock, so concurrent edits are never lost.
pub async fn update(
    store: &Store,
    p: &Principal,
    id: Uuid,
    mut changes: ModelChanges,
    tags_mode: TagsMode,
    if_match: Option<i64>,
) -> Result<Model> {
    p.require(Scope::RegistryWrite)?;
    let expected = match (if_match, changes.expected_version.take()) {
        (Some(a), Some(b)) if a != b => {
            return Err(modelplane_domain::ValidationError::new(
                "expected_version",
                "differs from the If-Match header",
            )
            .into())
        }
        (a, b) => a.or(b),
    };
    if let modelplane_domain::patch::Patch::Value(catalog_id) = changes.catalog_id {
        linked(store, catalog_id).await?;
    }
    let outcome = store
        .modify_model(p.org_id, id, |current| {
            check_version(expected, &current)?;
            let Some(next) = apply_changes(&current, changes, tags_mode, now())? else {
                return Ok(None);
            };
            let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
            Ok(Some((next, audit)))
        })
        .await?;
    settle(outcome)
}

pub async fn delete(store: &Store, p: &Principal, id: Uuid, if_match: Option<i64>) -> Result<()> {
    p.require(Scope::RegistryWrite)?;
    let outcome = store
        .remove_model(p.org_id, id, |current| {
            check_version(if_match, current)?;
            Ok(event(p, Some(current), None, AuditAction::Delete))
        })
        .await?;
    settle(outcome).map(|_| ())
}

fn check_version(expected: Option<i64>, current: &Model) -> Result<()> {
    match expected {
        Some(expected) if expected != current.version => Err(ServiceError::VersionConflict {
            expected,
            current: current.version,
        }),
        _ => Ok(()),
    }
}

fn settle(outcome: Modified<ServiceError>) -> Result<Model> {
    match outcome {
        Modified::NotFound => Err(ServiceError::NotFound(Entity::Model)),
        Modified::Rejected(e) => Err(e),
        Modified::Unchanged(m) | Modified::Written(m) => Ok(m),
    }
}

/// The change history of a model, newest first; still there after the model
/// is deleted.
pub async fn history(
    store: &Store,
    p: &Principal,
    id: Uuid,
    page: Page,
) -> Result<Listed<AuditEvent>> {
    p.require(Scope::RegistryRead)?;
    let filter = AuditFilter {
        entity_type: Some(EntityType::Model),
        entity_id: Some(id),
        ..AuditFilter::default()
    };
    let listed: Listed<AuditEvent> = store
        .list_audit_events(p.org_id, &filter, page)
        .await?
        .into();
    if listed.total == 0 {
        return Err(ServiceError::NotFound(Entity::Model));
    }
    Ok(listed)
}

/// The org's audit trail. Registry readers see model events (and agent
/// events when they ask for them); the rest (users, keys, departments, the
/// org) needs `admin`.
pub async fn audit_events(
    store: &Store,
    p: &Principal,
    mut filter: AuditFilter,
    page: Page,
) -> Result<Listed<AuditEvent>> {
    p.require(Scope::RegistryRead)?;
    if !p.has(Scope::Admin) {
        match filter.entity_type {
            None => filter.entity_type = Some(EntityType::Model),
            Some(EntityType::Model | EntityType::Agent) => {}
            Some(_) => p.require(Scope::Admin)?,
        }
    }
    Ok(store
        .list_audit_events(p.org_id, &filter, page)
        .await?
        .into())
}

/// Every model matching `filter`, in batches, for streaming exports.
pub fn export(
    store: &Store,
    p: &Principal,
    filter: ModelFilter,
) -> Result<impl Stream<Item = Result<Vec<Model>, StoreError>> + Send + 'static> {
    p.require(Scope::RegistryRead)?;
    Ok(store.stream_models(p.org_id, filter))
}
