//! Drafts of inventory models: private to their author, patched with
//! optimistic versions, published atomically.

use serde_json::{Map, Value};
use uuid::Uuid;

use modelplane_domain::audit::AuditAction;
use modelplane_domain::draft::{Draft, DraftError, DraftForm};
use modelplane_domain::key::Scope;
use modelplane_domain::model::{apply_changes, Model, TagsMode};
use modelplane_domain::time::now;
use modelplane_store::{Modified, Store, StoreError};

use crate::error::{Entity, Result, ServiceError};
use crate::models::{already_exists, check_departments, edit_scope, event, linked, prepare};
use crate::{new_id, Principal};

/// The owner of the caller's drafts: their user, or the key itself.
fn author(p: &Principal) -> String {
    match p.user_id {
        Some(user) => format!("user:{user}"),
        None => format!("key:{}", p.key_id),
    }
}

impl From<DraftError> for ServiceError {
    fn from(e: DraftError) -> Self {
        match e {
            DraftError::Stale { expected, current } => {
                ServiceError::VersionConflict { expected, current }
            }
            DraftError::ModelChanged { base, current } => ServiceError::ConflictCode {
                code: "version_conflict",
                message: e.to_string(),
                details: serde_json::json!({"draft_base_version": base, "model_version": current}),
            },
            DraftError::Validation(v) => v.into(),
        }
    }
}

/// A draft of an existing model, its form filled from the model now.
pub async fn from_model(store: &Store, p: &Principal, model_id: Uuid) -> Result<Draft> {
    p.require(Scope::RegistryWrite)?;
    let model = store
        .get_model(p.org_id, model_id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Model))?;
    edit_scope(store, p).await?.check(&model)?;
    let draft = Draft::new(
        new_id(),
        p.org_id,
        author(p),
        Some(&model),
        DraftForm::of(&model),
        now(),
    );
    store.insert_draft(&draft).await?;
    Ok(draft)
}

/// A draft of a new model, its form starting from `initial`.
pub async fn blank(store: &Store, p: &Principal, initial: &Map<String, Value>) -> Result<Draft> {
    p.require(Scope::RegistryWrite)?;
    let form = DraftForm::default().patched(initial)?;
    let draft = Draft::new(new_id(), p.org_id, author(p), None, form, now());
    store.insert_draft(&draft).await?;
    Ok(draft)
}

pub async fn list(store: &Store, p: &Principal) -> Result<Vec<Draft>> {
    p.require(Scope::RegistryWrite)?;
    Ok(store.list_drafts(p.org_id, &author(p)).await?)
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Draft> {
    p.require(Scope::RegistryWrite)?;
    store
        .get_draft(p.org_id, id, &author(p))
        .await?
        .ok_or(ServiceError::NotFound(Entity::Draft))
}

/// Applies a patch based on `expected_version`; 409 when stale.
pub async fn patch(
    store: &Store,
    p: &Principal,
    id: Uuid,
    expected_version: i64,
    changes: &Map<String, Value>,
) -> Result<Draft> {
    p.require(Scope::RegistryWrite)?;
    let outcome = store
        .modify_draft(p.org_id, id, &author(p), |current| {
            current.patch(expected_version, changes, now())
        })
        .await?;
    match outcome {
        Modified::NotFound => Err(ServiceError::NotFound(Entity::Draft)),
        Modified::Rejected(e) => Err(e.into()),
        Modified::Unchanged(d) | Modified::Written(d) => Ok(d),
    }
}

pub async fn discard(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::RegistryWrite)?;
    if store.delete_draft(p.org_id, id, &author(p)).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(Entity::Draft))
    }
}

/// Publishes a draft: a new model is created, an existing one replaced by
/// the form, in one transaction with its audit event; the draft is then
/// gone. Refused with 409 when the model changed since the draft was taken
/// (or the draft changed while this request checked it).
/// What publishing a draft did to its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A blank draft became a new model.
    Created,
    /// A draft of a model was applied to it (or changed nothing).
    Updated,
}

pub async fn publish(store: &Store, p: &Principal, id: Uuid) -> Result<(Model, Published)> {
    p.require(Scope::RegistryWrite)?;
    let author = author(p);
    let draft = store
        .get_draft(p.org_id, id, &author)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Draft))?;
    let scope = edit_scope(store, p).await?;
    // What needs the database (catalog links, departments) is checked
    // first; the locked decision below only compares and applies.
    let new_model = match draft.model {
        None => Some(prepare(store, p, &scope, draft.form_state.to_create()?).await?),
        Some(_) => {
            if let Some(ids) = &draft.form_state.department_ids {
                check_departments(store, p, ids).await?;
            }
            if let Some(catalog_id) = draft.form_state.catalog_id {
                linked(store, catalog_id).await?;
            }
            None
        }
    };
    let checked_version = draft.version;
    let outcome = store
        .publish_draft(p.org_id, id, &author, |locked, current| {
            if locked.version != checked_version {
                return Err(ServiceError::from(DraftError::Stale {
                    expected: checked_version,
                    current: locked.version,
                }));
            }
            match (current, &new_model) {
                (None, Some(model)) => {
                    let audit = event(p, None, Some(model), AuditAction::Create);
                    Ok(Some((model.clone(), audit)))
                }
                (Some(current), _) => {
                    locked.check_base(current)?;
                    scope.check(current)?;
                    let changes = locked.form_state.to_changes(current)?;
                    let Some(next) = apply_changes(current, changes, TagsMode::Replace, now())?
                    else {
                        return Ok(None);
                    };
                    scope.check(&next)?;
                    let audit = event(p, Some(current), Some(&next), AuditAction::Update);
                    Ok(Some((next, audit)))
                }
                (None, None) => Err(ServiceError::NotFound(Entity::Model)),
            }
        })
        .await;
    match outcome {
        Ok(Modified::NotFound) => Err(ServiceError::NotFound(Entity::Draft)),
        Ok(Modified::Rejected(e)) => Err(e),
        Ok(Modified::Unchanged(m) | Modified::Written(m)) => Ok((
            m,
            match new_model {
                Some(_) => Published::Created,
                None => Published::Updated,
            },
        )),
        Err(StoreError::Conflict(_)) => {
            Err(new_model
                .as_ref()
                .map(already_exists)
                .unwrap_or(ServiceError::Conflict(
                    "the draft could not be published".into(),
                )))
        }
        Err(e) => Err(e.into()),
    }
}
