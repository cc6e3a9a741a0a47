use std::collections::HashMap;

use futures::{Stream, StreamExt};
use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::catalog::CatalogModel;
use modelplane_domain::key::Scope;
use modelplane_domain::model::{
    apply_changes, department_refusal, new_model, Model, ModelChanges, ModelCreate, TagsMode,
};
use modelplane_domain::model::{LONG_TEXT_MAX, SHORT_TEXT_MAX};
use modelplane_domain::page::Page;
use modelplane_domain::reference::require_known;
use modelplane_domain::time::now;
use modelplane_domain::user::Role;
use modelplane_store::{
    AuditFilter, ModelFacets, ModelFilter, ModelGroup, Modified, Store, StoreError,
};

use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

/// The catalog model an explicit `catalog_id` names, or a validation error.
pub(crate) async fn linked(store: &Store, id: Uuid) -> Result<CatalogModel> {
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

pub(crate) fn event(
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

/// What the caller may edit: with `registry:write`, every model of the org,
/// or for a user whose role is below admin, only models whose departments
/// are all among the user's own.
#[derive(Debug, Clone)]
pub struct EditScope {
    can_write: bool,
    /// None: no department limit.
    departments: Option<Vec<Uuid>>,
}

impl EditScope {
    /// Why the caller may not edit `model`; None when they may.
    pub fn refusal(&self, model: &Model) -> Option<String> {
        if !self.can_write {
            return Some("this key lacks the registry:write scope".to_owned());
        }
        self.departments
            .as_deref()
            .and_then(|own| department_refusal(own, &model.department_ids))
    }

    pub fn check(&self, model: &Model) -> Result<()> {
        match self.refusal(model) {
            Some(reason) => Err(ServiceError::Forbidden(reason)),
            None => Ok(()),
        }
    }
}

pub async fn edit_scope(store: &Store, p: &Principal) -> Result<EditScope> {
    let departments = match p.user_id {
        None => None,
        Some(user) => match store.user_access(p.org_id, user).await? {
            Some((Role::Admin, _)) => None,
            Some((_, own)) => Some(own),
            None => Some(Vec::new()),
        },
    };
    Ok(EditScope {
        can_write: p.has(Scope::RegistryWrite),
        departments,
    })
}

/// Refuses department ids that name no department of the org.
pub(crate) async fn check_departments(store: &Store, p: &Principal, ids: &[Uuid]) -> Result<()> {
    crate::departments::check_membership(
        store,
        p.org_id,
        "department_ids",
        ids,
        modelplane_domain::model::DEPARTMENTS_MAX,
    )
    .await
}

/// A write that raced a department's deletion: its membership row found
/// the department gone.
pub(crate) fn department_gone() -> ServiceError {
    modelplane_domain::ValidationError::new(
        "department_ids",
        "a department of this model was deleted meanwhile",
    )
    .into()
}

/// The agents using each of `ids` (models of the caller's org).
pub async fn agents_of(
    store: &Store,
    p: &Principal,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Uuid>>> {
    Ok(store.agents_of_models(p.org_id, ids).await?)
}

/// A list request: the store's filter, plus searches by department and
/// agent name that are resolved to ids here.
#[derive(Debug, Clone, Default)]
pub struct ModelSearch {
    pub filter: ModelFilter,
    pub department_search: Option<String>,
    pub agent_search: Option<String>,
}

/// The store filter of a search: a name search narrows the ids of its
/// group (intersected with any ids given).
pub async fn resolve_search(
    store: &Store,
    p: &Principal,
    search: ModelSearch,
) -> Result<ModelFilter> {
    let mut filter = search.filter;
    for (group, needle) in [
        (ModelGroup::Department, search.department_search),
        (ModelGroup::Agent, search.agent_search),
    ] {
        let Some(needle) = needle else { continue };
        let named = store.group_ids_named(p.org_id, group, &needle).await?;
        let ids = match group {
            ModelGroup::Department => &mut filter.department_ids,
            ModelGroup::Agent => &mut filter.agent_ids,
        };
        let mut narrowed: Vec<Uuid> = if ids.is_empty() {
            named
        } else {
            ids.iter()
                .filter(|id| named.contains(id))
                .copied()
                .collect()
        };
        if narrowed.is_empty() {
            // No group matches, so no model may: the nil id names none.
            narrowed.push(Uuid::nil());
        }
        *ids = narrowed;
    }
    Ok(filter)
}

/// One page of the org's models and the facet counts under the same filters.
pub async fn list(
    store: &Store,
    p: &Principal,
    search: ModelSearch,
    page: Page,
) -> Result<(Listed<Model>, ModelFacets)> {
    p.require(Scope::RegistryRead)?;
    let filter = resolve_search(store, p, search).await?;
    let (listed, facets) = store
        .list_models_with_facets(p.org_id, &filter, page)
        .await?;
    Ok((listed.into(), facets))
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
    let scope = edit_scope(store, p).await?;
    let model = prepare(store, p, &scope, input).await?;
    insert(store, p, model, event_for_create).await
}

fn event_for_create(p: &Principal, model: &Model) -> AuditEvent {
    event(p, None, Some(model), AuditAction::Create)
}

/// Inserts a prepared model with the audit event `audit` makes for it.
pub(crate) async fn insert(
    store: &Store,
    p: &Principal,
    model: Model,
    audit: fn(&Principal, &Model) -> AuditEvent,
) -> Result<Model> {
    let audit = audit(p, &model);
    match store.insert_model(&model, &audit).await {
        Ok(()) => Ok(model),
        Err(StoreError::Conflict(_)) => Err(already_exists(&model)),
        Err(e) if crate::departments::is_department_gone(&e) => Err(department_gone()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn already_exists(model: &Model) -> ServiceError {
    ServiceError::AlreadyExists {
        entity: Entity::Model,
        message: format!(
            "a model with model_id {:?} already exists in this org",
            model.model_id
        ),
    }
}

/// A new model from a create request: validated, its departments checked,
/// linked to the catalog, and allowed for the caller. Nothing is written.
pub(crate) async fn prepare(
    store: &Store,
    p: &Principal,
    scope: &EditScope,
    input: ModelCreate,
) -> Result<Model> {
    prepare_many(store, p, scope, vec![input])
        .await?
        .pop()
        .unwrap_or_else(|| Err(ServiceError::Conflict("nothing to prepare".into())))
}

/// [`prepare`] for many requests, with one query each for their
/// departments, their explicit catalog links and their automatic ones.
/// Each request gets its own outcome, in order.
pub(crate) async fn prepare_many(
    store: &Store,
    p: &Principal,
    scope: &EditScope,
    inputs: Vec<ModelCreate>,
) -> Result<Vec<Result<Model>>> {
    struct Draft {
        model: Model,
        inherit_name: bool,
        inherit_description: bool,
        explicit: Option<Uuid>,
    }
    // Validate first: nothing unchecked reaches a lookup.
    let mut drafts: Vec<Result<Draft>> = inputs
        .into_iter()
        .map(|input| {
            let (inherit_name, inherit_description, explicit) = (
                input.display_name.is_none(),
                input.description.is_none(),
                input.catalog_id,
            );
            let model = new_model(input, new_id(), p.org_id, now())?;
            scope.check(&model)?;
            Ok(Draft {
                model,
                inherit_name,
                inherit_description,
                explicit,
            })
        })
        .collect();

    let mut wanted: Vec<Uuid> = drafts
        .iter()
        .flatten()
        .flat_map(|d| d.model.department_ids.iter().copied())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let known = if wanted.is_empty() {
        Vec::new()
    } else {
        store.existing_department_ids(p.org_id, &wanted).await?
    };
    for d in &mut drafts {
        if let Ok(draft) = d {
            if let Err(e) = require_known(
                "department_ids",
                "department",
                &draft.model.department_ids,
                &known,
            ) {
                *d = Err(e.into());
            }
        }
    }

    let explicit: Vec<Uuid> = drafts.iter().flatten().filter_map(|d| d.explicit).collect();
    let named: HashMap<Uuid, CatalogModel> = if explicit.is_empty() {
        HashMap::new()
    } else {
        store
            .catalog_by_ids(&explicit)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect()
    };
    let automatic: Vec<(&str, &str)> = drafts
        .iter()
        .flatten()
        .filter(|d| d.explicit.is_none())
        .map(|d| (d.model.provider.as_str(), d.model.model_id.as_str()))
        .collect();
    let mut found = crate::catalog::link_many(store, &automatic)
        .await?
        .into_iter();

    Ok(drafts
        .into_iter()
        .map(|d| {
            let mut d = d?;
            let link = match d.explicit {
                Some(id) => Some(named.get(&id).cloned().ok_or_else(|| {
                    modelplane_domain::ValidationError::new(
                        "catalog_id",
                        "no catalog model has this id",
                    )
                })?),
                None => found.next().flatten(),
            };
            if let Some(entry) = &link {
                // The entry inherits the catalog's names unless the org gives its own.
                d.model.catalog_id = Some(entry.id);
                if d.inherit_name {
                    if let Some(name) = entry.facts.display_name.as_deref() {
                        d.model.display_name = clip(name, SHORT_TEXT_MAX);
                    }
                }
                if d.inherit_description {
                    d.model.description = entry
                        .facts
                        .description
                        .as_deref()
                        .map(|text| clip(text, LONG_TEXT_MAX));
                }
            }
            Ok(d.model)
        })
        .collect())
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
    if let modelplane_domain::patch::Patch::Value(ids) = &changes.department_ids {
        check_departments(store, p, ids).await?;
    }
    let scope = edit_scope(store, p).await?;
    let outcome = store
        .modify_model(p.org_id, id, |current| {
            check_version(expected, &current)?;
            scope.check(&current)?;
            let Some(next) = apply_changes(&current, changes, tags_mode, now())? else {
                return Ok(None);
            };
            scope.check(&next)?;
            let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
            Ok(Some((next, audit)))
        })
        .await
        .map_err(|e| match e {
            e if crate::departments::is_department_gone(&e) => department_gone(),
            e => e.into(),
        })?;
    settle(outcome)
}

pub async fn delete(store: &Store, p: &Principal, id: Uuid, if_match: Option<i64>) -> Result<()> {
    remove(store, p, id, if_match).await.map(|_| ())
}

/// Deletes a model unless active agents use it; returns it as it was.
pub async fn remove(
    store: &Store,
    p: &Principal,
    id: Uuid,
    if_match: Option<i64>,
) -> Result<Model> {
    p.require(Scope::RegistryWrite)?;
    let scope = edit_scope(store, p).await?;
    let outcome = store
        .remove_model(p.org_id, id, |current, agents| {
            check_version(if_match, current)?;
            scope.check(current)?;
            if !agents.is_empty() {
                return Err(in_use(agents));
            }
            Ok(event(p, Some(current), None, AuditAction::Delete))
        })
        .await?;
    settle(outcome)
}

/// 409 `model_in_use`: active agents use the model.
fn in_use(agents: &[(Uuid, String)]) -> ServiceError {
    let names: Vec<&str> = agents.iter().map(|(_, n)| n.as_str()).collect();
    ServiceError::ConflictCode {
        code: "model_in_use",
        message: format!(
            "the model is used by active agents: {}; deactivate them or remove the model from them first",
            names.join(", ")
        ),
        details: serde_json::json!({
            "agents": agents.iter().map(|(id, name)| serde_json::json!({"id": id, "name": name})).collect::<Vec<_>>()
        }),
    }
}

pub(crate) fn check_version(expected: Option<i64>, current: &Model) -> Result<()> {
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

/// One model of a full export: the record with everything it links to.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub model: Model,
    pub catalog: Option<CatalogModel>,
    /// (id, name) of its departments.
    pub departments: Vec<(Uuid, String)>,
    /// (id, name) of the agents that use it.
    pub agents: Vec<(Uuid, String)>,
}

/// Every model matching the search with its catalog entry, departments and
/// agents, in batches, for the full (denormalized) export.
pub async fn export_full(
    store: &Store,
    p: &Principal,
    search: ModelSearch,
) -> Result<impl Stream<Item = Result<Vec<ExportRow>>> + Send + 'static> {
    p.require(Scope::RegistryRead)?;
    let filter = resolve_search(store, p, search).await?;
    let (departments, agents) = tokio::try_join!(
        store.group_names(p.org_id, ModelGroup::Department),
        store.group_names(p.org_id, ModelGroup::Agent)
    )?;
    let names = std::sync::Arc::new((departments, agents));
    let store = store.clone();
    let org_id = p.org_id;
    Ok(store.stream_models(org_id, filter).then(move |batch| {
        let store = store.clone();
        let names = names.clone();
        async move {
            let models = batch?;
            let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
            let (catalog, mut used_by) = tokio::try_join!(catalog_of(&store, &models), async {
                Ok(store.agents_of_models(org_id, &ids).await?)
            })?;
            let (department_names, agent_names) = &*names;
            let named = |ids: &[Uuid], names: &HashMap<Uuid, String>| -> Vec<(Uuid, String)> {
                ids.iter()
                    .map(|id| (*id, names.get(id).cloned().unwrap_or_default()))
                    .collect()
            };
            Ok(models
                .into_iter()
                .map(|model| ExportRow {
                    catalog: model.catalog_id.and_then(|id| catalog.get(&id).cloned()),
                    departments: named(&model.department_ids, department_names),
                    agents: named(&used_by.remove(&model.id).unwrap_or_default(), agent_names),
                    model,
                })
                .collect())
        }
    }))
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
