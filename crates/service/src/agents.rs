//! Agents of an org: read with `registry:read`, written with
//! `registry:write`, like the inventory models they use.
//!
//! Each write is one function that runs inside a [`WriteTx`] (`create_in`,
//! `update_in`, `delete_in`); the direct route commits it at once, a staged
//! change runs it as a dry run when staged and for real when accepted.

use uuid::Uuid;

use modelplane_domain::agent::{
    apply_update, check_update, new_agent, Agent, AgentCreate, AgentUpdate,
};
use modelplane_domain::audit::{diff, AuditAction, AuditEvent, EntityType};
use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::reference::require_known;
use modelplane_domain::time::now;
use modelplane_domain::ValidationError;
use modelplane_store::{AgentFilter, Modified, Store, StoreError, WriteTx, MODELS_TABLE};

use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

fn event(
    p: &Principal,
    before: Option<&Agent>,
    after: Option<&Agent>,
    action: AuditAction,
) -> AuditEvent {
    let (org_id, entity_id) = after
        .or(before)
        .map(|a| (a.org_id, a.id))
        .unwrap_or((p.org_id, p.org_id));
    AuditEvent {
        id: new_id(),
        org_id,
        entity_type: EntityType::Agent,
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
            entity: Entity::Agent,
            message: format!("an agent named {name:?} already exists in this org"),
        },
        StoreError::MissingReference(what) if what == MODELS_TABLE => {
            ValidationError::new("model_ids", "a model was deleted meanwhile").into()
        }
        other => other.into(),
    }
}

/// Every model id must be an inventory model of the caller's org.
async fn check_models(tx: &mut WriteTx, p: &Principal, model_ids: &[Uuid]) -> Result<()> {
    if model_ids.is_empty() {
        return Ok(());
    }
    let existing = tx.existing_model_pks(p.org_id, model_ids).await?;
    Ok(require_known("model_ids", "model", model_ids, &existing)?)
}

fn check_version(expected: Option<i64>, current: &Agent) -> Result<()> {
    match expected {
        Some(expected) if expected != current.version => Err(ServiceError::VersionConflict {
            expected,
            current: current.version,
        }),
        _ => Ok(()),
    }
}

fn settle(outcome: Modified<ServiceError, Agent>) -> Result<Agent> {
    match outcome {
        Modified::NotFound => Err(ServiceError::NotFound(Entity::Agent)),
        Modified::Rejected(e) => Err(e),
        Modified::Unchanged(a) | Modified::Written(a) => Ok(a),
    }
}

pub async fn list(
    store: &Store,
    p: &Principal,
    mut filter: AgentFilter,
    page: Page,
) -> Result<Listed<Agent>> {
    p.require(Scope::RegistryRead)?;
    filter.q = filter.q.filter(|q| !q.trim().is_empty());
    Ok(store.list_agents(p.org_id, &filter, page).await?.into())
}

pub async fn get(store: &Store, p: &Principal, id: Uuid) -> Result<Agent> {
    p.require(Scope::RegistryRead)?;
    store
        .get_agent(p.org_id, id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::Agent))
}

pub async fn create(store: &Store, p: &Principal, input: AgentCreate) -> Result<Agent> {
    // Checked before the write lock is taken; `create_in` checks it again.
    p.require(Scope::RegistryWrite)?;
    let mut tx = store.write_tx().await?;
    let agent = create_in(&mut tx, p, input).await?;
    tx.commit().await?;
    Ok(agent)
}

/// [`create`] inside the caller's transaction.
pub(crate) async fn create_in(
    tx: &mut WriteTx,
    p: &Principal,
    input: AgentCreate,
) -> Result<Agent> {
    p.require(Scope::RegistryWrite)?;
    let agent = new_agent(input, new_id(), p.org_id, now())?;
    check_models(tx, p, &agent.model_ids).await?;
    let audit = event(p, None, Some(&agent), AuditAction::Create);
    tx.insert_agent(&agent, &audit)
        .await
        .map_err(map_store(&agent.name))?;
    Ok(agent)
}

/// Applies an update under the agent's row lock. With `expected_version` a
/// stale base is refused with `VersionConflict`.
pub async fn update(store: &Store, p: &Principal, id: Uuid, input: AgentUpdate) -> Result<Agent> {
    p.require(Scope::RegistryWrite)?;
    let mut tx = store.write_tx().await?;
    let agent = update_in(&mut tx, p, id, input).await?;
    tx.commit().await?;
    Ok(agent)
}

/// [`update`] inside the caller's transaction.
pub(crate) async fn update_in(
    tx: &mut WriteTx,
    p: &Principal,
    id: Uuid,
    mut input: AgentUpdate,
) -> Result<Agent> {
    p.require(Scope::RegistryWrite)?;
    check_update(&input)?;
    if let Some(ids) = &input.model_ids {
        check_models(tx, p, ids).await?;
    }
    let expected = input.expected_version.take();
    let name = input.name.clone().unwrap_or_default();
    let outcome = tx
        .modify_agent(p.org_id, id, |current| {
            check_version(expected, &current)?;
            let Some(next) = apply_update(&current, input, now())? else {
                return Ok(None);
            };
            let audit = event(p, Some(&current), Some(&next), AuditAction::Update);
            Ok(Some((next, audit)))
        })
        .await
        .map_err(map_store(name.trim()))?;
    settle(outcome)
}

pub async fn delete(store: &Store, p: &Principal, id: Uuid) -> Result<()> {
    p.require(Scope::RegistryWrite)?;
    let mut tx = store.write_tx().await?;
    delete_in(&mut tx, p, id).await?;
    tx.commit().await?;
    Ok(())
}

/// [`delete`] inside the caller's transaction; returns the agent as it was.
pub(crate) async fn delete_in(tx: &mut WriteTx, p: &Principal, id: Uuid) -> Result<Agent> {
    p.require(Scope::RegistryWrite)?;
    let outcome = tx
        .remove_agent(p.org_id, id, |current| {
            Ok(event(p, Some(current), None, AuditAction::Delete))
        })
        .await?;
    settle(outcome)
}
