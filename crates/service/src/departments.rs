//! Departments of an org: read with `registry:read` (models and users are
//! filed under them), written with `admin`, like users.

use serde_json::json;
use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::department::{
    apply_update, new_department, Department, DepartmentCreate, DepartmentUpdate,
};
use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::reference::{check_ids, require_known};
use modelplane_domain::time::now;
use modelplane_store::{Modified, Store, StoreError, DEPARTMENTS_TABLE};

use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

fn event(
    p: &Principal,
    before: Option<&Department>,
    after: Option<&Department>,
    action: AuditAction,
) -> AuditEvent {
    let (org_id, entity_id) = after
        .or(before)
        .map(|d| (d.org_id, d.id))
        .unwrap_or((p.org_id, p.org_id));
    AuditEvent {
        id: new_id(),
        org_id,
        entity_type: EntityType::Department,
        entity_id,
        action,
        actor: p.actor(),
        at: now(),
        changes: diff(before, after),
    }
}

fn map_store(name: &str) -> impl FnOnce(StoreError) -> ServiceError + '_ {
    move |err| match err {
        StoreError::Conflict(_) => ServiceError::AlreadyExists {
            entity: Entity::Department,
            message: format!("a department named {name:?} already exists in this org"),
        },
        other => other.into(),
    }
}

/// The org's departments by name; `q` matches a substring of the name.
pub async fn list(
    store: &Store,
    p: &Principal,
    q: Option<String>,
    page: Page,
) -> Result<Listed<Department>> {
    p.require(Scope::RegistryRead)?;
    let q = q.filter(|q| !q.trim().is_empty());
    Ok(store
        .list_departments(p.org_id, q.as_deref(), page)
        .await?
        .into())
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Department> {
    p.require(Scope::RegistryRead)?;
    store
        .get_department(p.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Department))
}

pub async fn create(store: &Store, p: &Principal, input: DepartmentCreate) -> Result<Department> {
    p.require(Scope::Admin)?;
    let department = new_department(input, new_id(), p.org_id, now())?;
    let audit = event(p, None, Some(&department), AuditAction::Create);
    store
        .insert_department(&department, &audit)
        .await
        .map_err(map_store(&department.name))?;
    Ok(department)
}

pub async fn update(
    store: &Store,
    p: &Principal,
    id: Uuid,
    input: DepartmentUpdate,
) -> Result<Department> {
    p.require(Scope::Admin)?;
    let current = get(store, p, id).await?;
    let Some(next) = apply_update(&current, input, now())? else {
        return Ok(current);
    };
    let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
    if !store
        .update_department(&next, &audit)
        .await
        .map_err(map_store(&next.name))?
    {
        return Err(ServiceError::NotFound(Entity::Department));
    }
    Ok(next)
}

/// Deletes a department no model and no user belongs to; otherwise 409
/// `department_in_use` with the counts.
pub async fn delete(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::Admin)?;
    let outcome = store
        .remove_department(p.org_id, id, |current, usage| {
            if !usage.is_unused() {
                return Err(ServiceError::ConflictCode {
                    code: "department_in_use",
                    message: format!(
                        "department {:?} still has {} model(s) and {} user(s)",
                        current.name, usage.models, usage.users
                    ),
                    details: json!({
                        "department_id": current.id,
                        "models": usage.models,
                        "users": usage.users,
                    }),
                });
            }
            Ok(event(p, Some(current), None, AuditAction::Delete))
        })
        .await?;
    match outcome {
        Modified::NotFound => Err(ServiceError::NotFound(Entity::Department)),
        Modified::Rejected(e) => Err(e),
        Modified::Unchanged(_) | Modified::Written(_) => Ok(()),
    }
}

/// Checks a list of department ids for a user (or anything else filed
/// under departments) of `org_id`: bounded, no repeats, each one of the
/// org's departments. Unknown ids are named under `field`.
pub async fn check_membership(
    store: &Store,
    org_id: Uuid,
    field: &str,
    ids: &[Uuid],
    max: usize,
) -> Result<()> {
    check_ids(field, ids, max)?;
    if ids.is_empty() {
        return Ok(());
    }
    let existing = store.existing_department_ids(org_id, ids).await?;
    Ok(require_known(field, "department", ids, &existing)?)
}

/// A write that lost a race with a department's deletion: its membership
/// row found the department gone.
pub fn is_department_gone(err: &StoreError) -> bool {
    matches!(err, StoreError::MissingReference(what) if what == DEPARTMENTS_TABLE)
}
