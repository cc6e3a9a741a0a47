use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::error::required_text;
use modelplane_domain::key::{ApiKey, KeyCreate, KeyUpdate, Scope};
use modelplane_domain::page::Page;
use modelplane_domain::time::now;
use modelplane_domain::ValidationError;
use modelplane_store::{KeyFilter, NewApiKey, Store};

use crate::auth::generate_token;
use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

/// A created key and its token, which is shown this once and never again.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: String,
}

fn event(
    p: &Principal,
    key: &ApiKey,
    before: Option<&ApiKey>,
    after: Option<&ApiKey>,
    action: AuditAction,
) -> AuditEvent {
    AuditEvent {
        id: new_id(),
        org_id: key.org_id,
        entity_type: EntityType::ApiKey,
        entity_id: key.id,
        action,
        actor: p.actor(),
        at: now(),
        changes: diff(before, after),
    }
}

pub async fn create(store: &Store, p: &Principal, input: KeyCreate) -> Result<CreatedKey> {
    p.require(Scope::Admin)?;
    let org_id = p.target_org(input.org_id)?;
    let name = required_text("name", &input.name, 128)?;
    let limits = input.limits().validated()?;
    let mut scopes = input.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ValidationError::new("scopes", "at least one scope is required").into());
    }
    // No key may grant more than its creator holds.
    if let Some(s) = scopes.iter().find(|s| !p.has(**s)) {
        return Err(ServiceError::Forbidden(format!(
            "cannot grant the {} scope, which this key does not hold",
            s.as_str()
        )));
    }
    if let Some(user_id) = input.user_id {
        let user = store
            .get_user(user_id)
            .await?
            .ok_or(ServiceError::NotFound(Entity::User))?;
        if user.org_id != org_id {
            return Err(ServiceError::NotFound(Entity::User));
        }
        if let Some(s) = scopes
            .iter()
            .find(|s| !user.role.grantable_scopes().contains(s))
        {
            return Err(ValidationError::new(
                "scopes",
                format!(
                    "a {} user cannot hold the {} scope",
                    user.role.as_str(),
                    s.as_str()
                ),
            )
            .into());
        }
    }
    let created_at = now();
    if input.expires_at.is_some_and(|t| t <= created_at) {
        return Err(ValidationError::new("expires_at", "must be in the future").into());
    }
    if store.get_org(org_id).await?.is_none() {
        return Err(ServiceError::NotFound(Entity::Org));
    }
    let generated = generate_token();
    let key = ApiKey {
        id: new_id(),
        org_id,
        user_id: input.user_id,
        name,
        prefix: generated.prefix,
        scopes,
        expires_at: input.expires_at,
        last_used_at: None,
        revoked_at: None,
        created_at,
        limits,
    };
    let audit = event(p, &key, None, Some(&key), AuditAction::Create);
    store
        .insert_api_key(
            &NewApiKey {
                key: key.clone(),
                token_hash: generated.hash,
            },
            &audit,
        )
        .await?;
    Ok(CreatedKey {
        key,
        token: generated.token,
    })
}

pub async fn list(
    store: &Store,
    p: &Principal,
    mut filter: KeyFilter,
    page: Page,
) -> Result<Listed<ApiKey>> {
    p.require(Scope::Admin)?;
    if !p.is_superadmin() {
        filter.org_id = Some(p.target_org(filter.org_id)?);
    }
    Ok(store.list_api_keys(&filter, page).await?.into())
}

pub async fn revoke(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::Admin)?;
    let key = store
        .get_api_key(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::ApiKey))?;
    if !p.can_see_org(key.org_id) || key.revoked_at.is_some() {
        return Err(ServiceError::NotFound(Entity::ApiKey));
    }
    if key.scopes.contains(&Scope::Superadmin) && !p.is_superadmin() {
        return Err(ServiceError::Forbidden(
            "only a superadmin key may revoke a superadmin key".into(),
        ));
    }
    let at = now();
    let mut revoked = key.clone();
    revoked.revoked_at = Some(at);
    let audit = event(p, &key, Some(&key), Some(&revoked), AuditAction::Revoke);
    if !store.revoke_api_key(key.org_id, id, at, &audit).await? {
        return Err(ServiceError::NotFound(Entity::ApiKey));
    }
    Ok(())
}

/// Renames a key or changes its gateway limits (admin; a superadmin key only
/// by a superadmin). Replicas see the change within their key cache's TTL.
pub async fn update(store: &Store, p: &Principal, id: Uuid, input: KeyUpdate) -> Result<ApiKey> {
    p.require(Scope::Admin)?;
    let key = store
        .get_api_key(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::ApiKey))?;
    if !p.can_see_org(key.org_id) || key.revoked_at.is_some() {
        return Err(ServiceError::NotFound(Entity::ApiKey));
    }
    if key.scopes.contains(&Scope::Superadmin) && !p.is_superadmin() {
        return Err(ServiceError::Forbidden(
            "only a superadmin key may change a superadmin key".into(),
        ));
    }
    let mut updated = key.clone();
    if let Some(name) = &input.name {
        updated.name = required_text("name", name, 128)?;
    }
    updated.limits = input.apply(&key.limits).validated()?;
    if updated == key {
        return Ok(key);
    }
    let audit = event(p, &key, Some(&key), Some(&updated), AuditAction::Update);
    if !store.update_api_key(&updated, &audit).await? {
        return Err(ServiceError::NotFound(Entity::ApiKey));
    }
    Ok(updated)
}
