use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::key::Scope;
use modelplane_domain::org::{validate_name, validate_optional_name, Org, OrgCreate, OrgUpdate};
use modelplane_domain::page::Page;
use modelplane_domain::time::now;
use modelplane_store::{Store, StoreError};

use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

fn event(
    p: &Principal,
    before: Option<&Org>,
    after: Option<&Org>,
    action: AuditAction,
) -> AuditEvent {
    let org = after.or(before);
    AuditEvent {
        id: new_id(),
        org_id: org.map(|o| o.id).unwrap_or(p.org_id),
        entity_type: EntityType::Org,
        entity_id: org.map(|o| o.id).unwrap_or(p.org_id),
        action,
        actor: p.actor(),
        at: now(),
        changes: diff(before, after),
    }
}

fn name_taken(err: StoreError) -> ServiceError {
    match err {
        StoreError::Conflict(_) => ServiceError::AlreadyExists {
            entity: Entity::Org,
            message: "an org with this name already exists".into(),
        },
        other => other.into(),
    }
}

/// Any key but a gateway-only one may list orgs; only a superadmin sees
/// more than its own.
pub async fn list(
    store: &Store,
    p: &Principal,
    q: Option<&str>,
    page: Page,
) -> Result<Listed<Org>> {
    p.require(Scope::RegistryRead)?;
    let only = (!p.is_superadmin()).then_some(p.org_id);
    Ok(store.list_orgs(q, only, page).await?.into())
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Org> {
    p.require(Scope::RegistryRead)?;
    if !p.can_see_org(id) {
        return Err(ServiceError::NotFound(Entity::Org));
    }
    store
        .get_org(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Org))
}

pub async fn create(store: &Store, p: &Principal, input: OrgCreate) -> Result<Org> {
    p.require(Scope::Superadmin)?;
    let t = now();
    let org = Org {
        id: new_id(),
        name: validate_name(&input.name)?,
        risk_framework: input.risk_framework.unwrap_or_default(),
        created_at: t,
        updated_at: t,
    };
    let audit = event(p, None, Some(&org), AuditAction::Create);
    store.insert_org(&org, &audit).await.map_err(name_taken)?;
    Ok(org)
}

/// A superadmin may update any org; an org admin its own (name, framework).
pub async fn update(store: &Store, p: &Principal, id: Uuid, input: OrgUpdate) -> Result<Org> {
    let current = get(store, p, id).await?;
    p.require(Scope::Admin)?;
    let mut next = current.clone();
    if let Some(name) = validate_optional_name(input.name.as_deref())? {
        next.name = name;
    }
    if let Some(framework) = input.risk_framework {
        next.risk_framework = framework;
    }
    if next == current {
        return Ok(current);
    }
    next.updated_at = now();
    let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
    if !store.update_org(&next, &audit).await.map_err(name_taken)? {
        return Err(ServiceError::NotFound(Entity::Org));
    }
    Ok(next)
}

/// Deletes an org with everything in it except its audit trail. A key cannot
/// delete the org it belongs to, which would lock its holder out.
pub async fn delete(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::Superadmin)?;
    let current = store
        .get_org(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Org))?;
    if id == p.org_id {
        return Err(ServiceError::Conflict(
            "a key cannot delete its own org; use a superadmin key of another org".into(),
        ));
    }
    let audit = event(p, Some(&current), None, AuditAction::Delete);
    if !store.delete_org(id, &audit).await? {
        return Err(ServiceError::NotFound(Entity::Org));
    }
    Ok(())
}
