use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::error::required_text;
use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::time::now;
use modelplane_domain::user::{validate_email, User, UserCreate, UserUpdate, DEPARTMENTS_MAX};
use modelplane_domain::ValidationError;
use modelplane_store::{Store, StoreError, UserFilter};

use crate::departments::{check_membership, is_department_gone};
use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

fn event(
    p: &Principal,
    before: Option<&User>,
    after: Option<&User>,
    action: AuditAction,
) -> AuditEvent {
    let (org_id, entity_id) = after
        .or(before)
        .map(|u| (u.org_id, u.id))
        .unwrap_or((p.org_id, p.org_id));
    AuditEvent {
        id: new_id(),
        org_id,
        entity_type: EntityType::User,
        entity_id,
        action,
        actor: p.actor(),
        at: now(),
        changes: diff(before, after),
    }
}

fn map_store(err: StoreError) -> ServiceError {
    match err {
        err if is_department_gone(&err) => {
            ValidationError::new("department_ids", "a department was deleted meanwhile").into()
        }
        StoreError::Conflict(_) => ServiceError::AlreadyExists {
            entity: Entity::User,
            message: "a user with this email already exists in the org".into(),
        },
        StoreError::MissingReference(_) => ServiceError::NotFound(Entity::Org),
        other => other.into(),
    }
}

/// A user's departments must be departments of the user's org.
async fn check_departments(store: &Store, user: &User) -> Result<()> {
    check_membership(
        store,
        user.org_id,
        "department_ids",
        &user.department_ids,
        DEPARTMENTS_MAX,
    )
    .await
}

pub async fn list(
    store: &Store,
    p: &Principal,
    mut filter: UserFilter,
    page: Page,
) -> Result<Listed<User>> {
    p.require(Scope::Admin)?;
    if !p.is_superadmin() {
        filter.org_id = Some(p.target_org(filter.org_id)?);
    }
    Ok(store.list_users(&filter, page).await?.into())
}

/// Users of the caller's org (any org for a superadmin naming one) for
/// select inputs; needs only read access.
pub async fn lookup(
    store: &Store,
    p: &Principal,
    org_id: Option<Uuid>,
    q: Option<String>,
    page: Page,
) -> Result<Listed<User>> {
    p.require(Scope::RegistryRead)?;
    let filter = UserFilter {
        org_id: Some(p.target_org(org_id)?),
        role: None,
        q,
    };
    Ok(store.list_users(&filter, page).await?.into())
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<User> {
    p.require(Scope::Admin)?;
    let user = store
        .get_user(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::User))?;
    if !p.can_see_org(user.org_id) {
        return Err(ServiceError::NotFound(Entity::User));
    }
    Ok(user)
}

pub async fn create(store: &Store, p: &Principal, input: UserCreate) -> Result<User> {
    p.require(Scope::Admin)?;
    let org_id = p.target_org(input.org_id)?;
    let t = now();
    let user = User {
        id: new_id(),
        org_id,
        email: validate_email(&input.email)?,
        name: required_text("name", &input.name, 128)?,
        role: input.role,
        department_ids: input.department_ids,
        created_at: t,
        updated_at: t,
    };
    check_departments(store, &user).await?;
    let audit = event(p, None, Some(&user), AuditAction::Create);
    store.insert_user(&user, &audit).await.map_err(map_store)?;
    Ok(user)
}

pub async fn update(store: &Store, p: &Principal, id: Uuid, input: UserUpdate) -> Result<User> {
    let current = get(store, p, id).await?;
    let mut next = current.clone();
    if let Some(email) = input.email {
        next.email = validate_email(&email)?;
    }
    if let Some(name) = input.name {
        next.name = required_text("name", &name, 128)?;
    }
    if let Some(role) = input.role {
        next.role = role;
    }
    if let Some(department_ids) = input.department_ids {
        next.department_ids = department_ids;
    }
    if next == current {
        return Ok(current);
    }
    if next.department_ids != current.department_ids {
        check_departments(store, &next).await?;
    }
    next.updated_at = now();
    let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
    if !store.update_user(&next, &audit).await.map_err(map_store)? {
        return Err(ServiceError::NotFound(Entity::User));
    }
    Ok(next)
}

pub async fn delete(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    let current = get(store, p, id).await?;
    if p.user_id == Some(id) {
        return Err(ServiceError::Conflict(
            "a user cannot delete themself".into(),
        ));
    }
    let audit = event(p, Some(&current), None, AuditAction::Delete);
    if !store.delete_user(current.org_id, id, &audit).await? {
        return Err(ServiceError::NotFound(Entity::User));
    }
    Ok(())
}
