//! Gateway routes of an org: read with `registry:read`, written with
//! `admin` (they carry provider keys). Keys are sealed before they reach
//! the store and are never returned.

use uuid::Uuid;

use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::key::Scope;
use modelplane_domain::patch::Patch;
use modelplane_domain::route::{
    kept_key, CheckedRoute, Route, RouteInput, StoredRoute, StoredUpstream,
};
use modelplane_domain::time::now;
use modelplane_store::{Store, StoreError};

use crate::error::{Entity, Result, ServiceError};
use crate::secrets::SecretBox;
use crate::{new_id, Principal};

fn event(
    p: &Principal,
    before: Option<&Route>,
    after: Option<&Route>,
    action: AuditAction,
) -> AuditEvent {
    let (org_id, entity_id) = after
        .or(before)
        .map(|r| (r.org_id, r.id))
        .unwrap_or((p.org_id, p.org_id));
    AuditEvent {
        id: new_id(),
        org_id,
        entity_type: EntityType::Route,
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
            entity: Entity::Route,
            message: format!("a route named {name:?} already exists in this org"),
        },
        other => other.into(),
    }
}

/// Seals the keys of a checked route; an absent key keeps the previous one.
fn sealed_upstreams(
    secrets: &SecretBox,
    checked: &CheckedRoute,
    previous: &[StoredUpstream],
) -> Vec<StoredUpstream> {
    checked
        .upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| StoredUpstream {
            provider: u.provider.clone(),
            model: u.model.clone(),
            base_url: u.base_url.clone(),
            sealed_key: match &u.api_key {
                Patch::Value(key) => Some(secrets.seal(key)),
                Patch::Null => None,
                Patch::Absent => kept_key(previous, i, u).map(str::to_owned),
            },
            weight: u.weight,
            priority: u.priority,
        })
        .collect()
}

pub async fn list(store: &Store, p: &Principal) -> Result<Vec<Route>> {
    p.require(Scope::RegistryRead)?;
    Ok(store
        .list_routes(p.org_id)
        .await?
        .iter()
        .map(StoredRoute::shown)
        .collect())
}

async fn stored(store: &Store, p: &Principal, id: Uuid) -> Result<StoredRoute> {
    store
        .get_route(p.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Route))
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Route> {
    p.require(Scope::RegistryRead)?;
    Ok(stored(store, p, id).await?.shown())
}

pub async fn create(
    store: &Store,
    secrets: &SecretBox,
    p: &Principal,
    input: RouteInput,
) -> Result<Route> {
    p.require(Scope::Admin)?;
    let checked = input.check()?;
    let at = now();
    let route = StoredRoute {
        id: new_id(),
        org_id: p.org_id,
        upstreams: sealed_upstreams(secrets, &checked, &[]),
        name: checked.name,
        retries: checked.retries,
        timeout_ms: checked.timeout_ms,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let shown = route.shown();
    let audit = event(p, None, Some(&shown), AuditAction::Create);
    store
        .insert_route(&route, &audit)
        .await
        .map_err(map_store(&route.name))?;
    Ok(shown)
}

/// Replaces a route (`PUT`): the whole body, with `expected_version`
/// refusing a stale edit; an upstream without `api_key` keeps its key.
pub async fn replace(
    store: &Store,
    secrets: &SecretBox,
    p: &Principal,
    id: Uuid,
    input: RouteInput,
) -> Result<Route> {
    p.require(Scope::Admin)?;
    let expected = input.expected_version;
    let checked = input.check()?;
    let current = stored(store, p, id).await?;
    if let Some(expected) = expected {
        if expected != current.version {
            return Err(ServiceError::VersionConflict {
                expected,
                current: current.version,
            });
        }
    }
    let next = StoredRoute {
        upstreams: sealed_upstreams(secrets, &checked, &current.upstreams),
        name: checked.name,
        retries: checked.retries,
        timeout_ms: checked.timeout_ms,
        version: current.version + 1,
        updated_at: now(),
        ..current.clone()
    };
    let shown = next.shown();
    let audit = event(p, Some(&current.shown()), Some(&shown), AuditAction::Update);
    if !store
        .update_route(&next, current.version, &audit)
        .await
        .map_err(map_store(&next.name))?
    {
        // Changed or deleted between the read and the write.
        let now_current = stored(store, p, id).await?;
        return Err(ServiceError::VersionConflict {
            expected: current.version,
            current: now_current.version,
        });
    }
    Ok(shown)
}

pub async fn delete(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::Admin)?;
    let current = stored(store, p, id).await?;
    let audit = event(p, Some(&current.shown()), None, AuditAction::Delete);
    if store.delete_route(p.org_id, id, &audit).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(Entity::Route))
    }
}
