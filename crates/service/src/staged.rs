//! Staged (two-phase) changes: an agent proposes a write, a person decides.
//!
//! Staging runs the write exactly as its direct route would (same function,
//! same checks: scope, payload, referenced models, target, version, unique
//! name) inside a transaction, undoes it, and records only the staged row.
//! Accepting runs the same function again, for real, in the transaction
//! that records the decision, so the write and its outcome commit together
//! and two concurrent decisions cannot both apply it. Both need
//! `registry:write`, the scope of the writes themselves; reading staged
//! changes needs `registry:read`.

use serde_json::{json, Value};

use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::staged::{
    check_key, AlreadyDecided, StagedChange, StagedStatus, StagedWrite,
};
use modelplane_domain::time::now;
use modelplane_store::{StagedFilter, Store, StoreError, WriteTx};

use crate::agents;
use crate::error::{Entity, Result, ServiceError};
use crate::{new_id, Listed, Principal};

/// What a decision does with a pending change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Apply the write; the change becomes `applied`, or `failed` when the
    /// write is refused by now.
    Accept,
    /// Drop it unapplied; the change becomes `rejected`.
    Reject,
}

/// Turns the error a write was refused with into the envelope recorded as a
/// failed change's `result`. The HTTP layer owns the stable codes, so it
/// passes its own mapping (`modelplane_api::error::envelope`).
pub type DescribeError = fn(ServiceError) -> Value;

/// Runs `write` in `tx` through the function its direct route uses, audited
/// as the caller; returns the record written (for a delete, as it was).
async fn apply(tx: &mut WriteTx, p: &Principal, write: StagedWrite) -> Result<Value> {
    let agent = match write {
        StagedWrite::CreateAgent(input) => agents::create_in(tx, p, input).await?,
        StagedWrite::UpdateAgent { id, changes } => agents::update_in(tx, p, id, changes).await?,
        StagedWrite::DeleteAgent { id } => agents::delete_in(tx, p, id).await?,
    };
    serde_json::to_value(&agent)
        .map_err(|e| StoreError::Corrupt(format!("agent {}: {e}", agent.id)).into())
}

/// Errors of ours (storage, secrets) are not the write's fault: they fail
/// the request and leave the change pending, so a retry can decide it.
fn is_ours(err: &ServiceError) -> bool {
    matches!(err, ServiceError::Storage(_) | ServiceError::Secrets(_))
}

fn already_decided(e: AlreadyDecided) -> ServiceError {
    ServiceError::ConflictCode {
        code: "staged_change_already_decided",
        message: format!(
            "the staged change was already decided: it is {}",
            e.from.as_str()
        ),
        details: json!({ "status": e.from.as_str() }),
    }
}

/// The first change under a key, when `again` is the same request sent
/// again; otherwise the key is being reused for something else.
fn first_if_repeat(first: StagedChange, again: &StagedChange) -> Result<StagedChange> {
    if again.is_repeat_of(&first) {
        Ok(first)
    } else {
        Err(ServiceError::Unprocessable {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key already names a different staged change of this org"
                .to_owned(),
        })
    }
}

/// Records `write` as a pending change named `key` (the request's
/// `Idempotency-Key`; a new UUIDv7 when none). The write is checked as its
/// direct route would check it, and any refusal is answered now; nothing is
/// written but the staged row. The same request staged again under the same
/// key returns the first change; a different one is refused with 422
/// `idempotency_key_reused`.
pub async fn stage(
    store: &Store,
    p: &Principal,
    write: StagedWrite,
    key: Option<String>,
) -> Result<StagedChange> {
    p.require(Scope::RegistryWrite)?;
    let key = match key {
        Some(key) => {
            check_key(&key)?;
            key
        }
        None => new_id().to_string(),
    };
    let change = StagedChange::new(new_id(), p.org_id, key, &write, p.actor(), now());
    let mut tx = store.write_tx().await?;
    if let Some(first) = tx.staged_change(p.org_id, &change.idempotency_key).await? {
        return first_if_repeat(first, &change);
    }
    // The dry run: the direct write's own checks, then undone.
    tx.mark().await?;
    apply(&mut tx, p, write).await?;
    tx.rollback_to_mark().await?;
    if !tx.insert_staged_change(&change).await? {
        // A concurrent request staged under this key first (PostgreSQL; on
        // SQLite the write lock orders them and the read above sees it).
        let first = tx
            .staged_change(p.org_id, &change.idempotency_key)
            .await?
            .ok_or(ServiceError::NotFound(Entity::StagedChange))?;
        return first_if_repeat(first, &change);
    }
    tx.commit().await?;
    Ok(change)
}

/// The org's staged changes, newest first.
pub async fn list(
    store: &Store,
    p: &Principal,
    filter: StagedFilter,
    page: Page,
) -> Result<Listed<StagedChange>> {
    p.require(Scope::RegistryRead)?;
    Ok(store
        .list_staged_changes(p.org_id, &filter, page)
        .await?
        .into())
}

pub async fn get(store: &Store, p: &Principal, key: &str) -> Result<StagedChange> {
    p.require(Scope::RegistryRead)?;
    store
        .get_staged_change(p.org_id, key)
        .await?
        .ok_or(ServiceError::NotFound(Entity::StagedChange))
}

/// Decides the pending change named `key`, under its row lock. Accepting
/// applies the write through its direct route's function, audited as the
/// decider, and records `applied` with the record written, or `failed` with
/// the refusal as `describe` renders it (the write undone). Rejecting
/// records `rejected`. A change already decided is refused with 409
/// `staged_change_already_decided`; an unknown key (or another org's) is
/// `NotFound`. A storage failure leaves the change pending.
pub async fn decide(
    store: &Store,
    p: &Principal,
    key: &str,
    decision: Decision,
    describe: DescribeError,
) -> Result<StagedChange> {
    p.require(Scope::RegistryWrite)?;
    let mut tx = store.write_tx().await?;
    let change = tx
        .locked_staged_change(p.org_id, key)
        .await?
        .ok_or(ServiceError::NotFound(Entity::StagedChange))?;
    let (status, result) = match decision {
        Decision::Reject => (StagedStatus::Rejected, None),
        Decision::Accept => {
            change
                .status
                .transition(StagedStatus::Applied)
                .map_err(already_decided)?;
            let write = change
                .write()
                .map_err(|e| StoreError::Corrupt(format!("staged change {}: {e}", change.id)))?;
            tx.mark().await?;
            match apply(&mut tx, p, write).await {
                Ok(record) => (StagedStatus::Applied, Some(record)),
                Err(e) if is_ours(&e) => return Err(e),
                Err(refused) => {
                    tx.rollback_to_mark().await?;
                    (StagedStatus::Failed, Some(describe(refused)))
                }
            }
        }
    };
    let decided = change
        .decided(status, result, p.actor(), now())
        .map_err(already_decided)?;
    if !tx.record_staged_decision(&decided, change.status).await? {
        // The row lock makes this unreachable; the condition makes sure.
        return Err(ServiceError::ConflictCode {
            code: "staged_change_already_decided",
            message: "the staged change was decided concurrently".to_owned(),
            details: Value::Null,
        });
    }
    tx.commit().await?;
    Ok(decided)
}
