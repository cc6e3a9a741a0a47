//! An org's gateway policy: ordered rules the gateway checks on every
//! request (read with `registry:read`, written with `admin`, audited).

use chrono::{DateTime, Utc};
use serde_json::json;

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::policy::{self, PolicyRule};
use modelplane_domain::time::now;
use modelplane_store::{Store, StoredPolicy};

use crate::error::{Result, ServiceError};
use crate::{new_id, Principal};

/// An org's policy as read; an org that never set one has no rules at version 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<PolicyRule>,
    pub version: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<Option<StoredPolicy>> for Policy {
    fn from(stored: Option<StoredPolicy>) -> Self {
        match stored {
            Some(s) => Policy {
                rules: s.rules,
                version: s.version,
                updated_at: Some(s.updated_at),
            },
            None => Policy {
                rules: Vec::new(),
                version: 0,
                updated_at: None,
            },
        }
    }
}

pub async fn get(store: &Store, p: &Principal) -> Result<Policy> {
    p.require(Scope::RegistryRead)?;
    Ok(store.get_policy(p.org_id).await?.into())
}

/// Replaces the org's rules. With `expected_version`, a policy that moved
/// on meanwhile is refused (409 `version_conflict`); without, the write
/// applies over whatever is current.
pub async fn put(
    store: &Store,
    p: &Principal,
    rules: Vec<PolicyRule>,
    expected_version: Option<i64>,
) -> Result<Policy> {
    p.require(Scope::Admin)?;
    let rules = policy::validate(rules)?;
    // Two tries: a concurrent writer without an expected version may win
    // the first; the second reads its result and applies over it.
    for _ in 0..2 {
        let current: Policy = store.get_policy(p.org_id).await?.into();
        if let Some(expected) = expected_version {
            if expected != current.version {
                return Err(ServiceError::VersionConflict {
                    expected,
                    current: current.version,
                });
            }
        }
        let at = now();
        let stored = StoredPolicy {
            rules: rules.clone(),
            version: current.version + 1,
            updated_at: at,
        };
        let audit = AuditEvent {
            id: new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Policy,
            entity_id: p.org_id,
            action: if current.version == 0 {
                AuditAction::Create
            } else {
                AuditAction::Update
            },
            actor: p.actor(),
            at,
            changes: vec![FieldChange {
                field: "rules".to_owned(),
                before: json!(current.rules),
                after: json!(rules),
            }],
        };
        if store
            .put_policy(p.org_id, &stored, current.version, &audit)
            .await?
        {
            return Ok(Some(stored).into());
        }
        if expected_version.is_some() {
            let now_current: Policy = store.get_policy(p.org_id).await?.into();
            return Err(ServiceError::VersionConflict {
                expected: current.version,
                current: now_current.version,
            });
        }
    }
    Err(ServiceError::Conflict(
        "the policy was changed concurrently; try again".into(),
    ))
}
