//! Staged (two-phase) changes: a write that is checked and recorded but not
//! applied until someone with the right to make it accepts it. An agent (an
//! automated caller) proposes; a person decides.
//!
//! A change is known in its org by its idempotency key: the request's
//! `Idempotency-Key`, or one made for it. It starts `pending` and is decided
//! once: `applied` (the write ran), `failed` (it was accepted but the write
//! was refused by then) or `rejected` (dropped unapplied).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::agent::{AgentCreate, AgentUpdate};
use crate::audit::Actor;
use crate::time::Timestamp;
use crate::ValidationError;

/// The longest idempotency key, in bytes.
pub const KEY_MAX: usize = 255;

/// An idempotency key is 1 to [`KEY_MAX`] visible ASCII characters (no
/// spaces), so it can name a staged change in a URL path segment.
pub fn check_key(key: &str) -> Result<(), ValidationError> {
    if !key.is_empty() && key.len() <= KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            "Idempotency-Key",
            format!("must be 1 to {KEY_MAX} visible ASCII characters"),
        ))
    }
}

/// What kind of record a staged change writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StagedEntity {
    Agent,
}

impl StagedEntity {
    pub const ALL: [StagedEntity; 1] = [Self::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StagedOperation {
    Create,
    Update,
    Delete,
}

impl StagedOperation {
    pub const ALL: [StagedOperation; 3] = [Self::Create, Self::Update, Self::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Where a staged change stands. It is decided once: every state but
/// `pending` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StagedStatus {
    /// Recorded and checked, not applied; waiting for a decision.
    Pending,
    /// Accepted, and the write was applied.
    Applied,
    /// Dropped without being applied.
    Rejected,
    /// Accepted, but the write was refused when it was applied (the target
    /// was gone, the name taken, the version stale…); nothing was written.
    Failed,
}

impl StagedStatus {
    pub const ALL: [StagedStatus; 4] = [Self::Pending, Self::Applied, Self::Rejected, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The one transition table of a staged change.
    pub fn allowed_targets(self) -> &'static [StagedStatus] {
        use StagedStatus::*;
        match self {
            Pending => &[Applied, Rejected, Failed],
            Applied | Rejected | Failed => &[],
        }
    }

    pub fn transition(self, to: StagedStatus) -> Result<StagedStatus, AlreadyDecided> {
        if self.allowed_targets().contains(&to) {
            Ok(to)
        } else {
            Err(AlreadyDecided { from: self, to })
        }
    }
}

/// A decision on a change that is no longer pending (or a decision that
/// does not decide, such as back to `pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the staged change is {}; it cannot become {}", from.as_str(), to.as_str())]
pub struct AlreadyDecided {
    pub from: StagedStatus,
    pub to: StagedStatus,
}

/// The write a staged change holds, typed. It is stored as entity,
/// operation, target and a JSON payload (the request body as read).
#[derive(Debug, Clone, PartialEq)]
pub enum StagedWrite {
    CreateAgent(AgentCreate),
    UpdateAgent { id: Uuid, changes: AgentUpdate },
    DeleteAgent { id: Uuid },
}

impl StagedWrite {
    pub fn entity(&self) -> StagedEntity {
        match self {
            Self::CreateAgent(_) | Self::UpdateAgent { .. } | Self::DeleteAgent { .. } => {
                StagedEntity::Agent
            }
        }
    }

    pub fn operation(&self) -> StagedOperation {
        match self {
            Self::CreateAgent(_) => StagedOperation::Create,
            Self::UpdateAgent { .. } => StagedOperation::Update,
            Self::DeleteAgent { .. } => StagedOperation::Delete,
        }
    }

    /// The record an update or delete is about; none for a create.
    pub fn target_id(&self) -> Option<Uuid> {
        match self {
            Self::CreateAgent(_) => None,
            Self::UpdateAgent { id, .. } | Self::DeleteAgent { id } => Some(*id),
        }
    }

    /// The body of the write as JSON (`{}` for a delete).
    pub fn payload(&self) -> Value {
        let payload = match self {
            Self::CreateAgent(input) => serde_json::to_value(input),
            Self::UpdateAgent { changes, .. } => serde_json::to_value(changes),
            Self::DeleteAgent { .. } => Ok(Value::Object(serde_json::Map::new())),
        };
        // Both bodies are plain structs of strings, booleans, numbers and
        // ids, which always serialise.
        payload.unwrap_or(Value::Null)
    }

    /// The typed write back from its stored parts.
    pub fn decode(
        entity: StagedEntity,
        operation: StagedOperation,
        target_id: Option<Uuid>,
        payload: &Value,
    ) -> Result<StagedWrite, ValidationError> {
        let body = |e: serde_json::Error| ValidationError::new("payload", e.to_string());
        let target = || target_id.ok_or_else(|| ValidationError::new("target_id", "is missing"));
        match (entity, operation) {
            (StagedEntity::Agent, StagedOperation::Create) => Ok(Self::CreateAgent(
                serde_json::from_value(payload.clone()).map_err(body)?,
            )),
            (StagedEntity::Agent, StagedOperation::Update) => Ok(Self::UpdateAgent {
                id: target()?,
                changes: serde_json::from_value(payload.clone()).map_err(body)?,
            }),
            (StagedEntity::Agent, StagedOperation::Delete) => {
                Ok(Self::DeleteAgent { id: target()? })
            }
        }
    }
}

/// A staged change as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StagedChange {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Names the change in its org: `/api/v1/staged-changes/{idempotency_key}`.
    pub idempotency_key: String,
    pub entity: StagedEntity,
    pub operation: StagedOperation,
    /// The record an update or delete is about; null for a create (its
    /// `result` names the record it made).
    pub target_id: Option<Uuid>,
    /// The body of the write as it was sent (`{}` for a delete).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub status: StagedStatus,
    /// Once decided: for `applied`, the record as written (for a delete, as
    /// it was); for `failed`, the error envelope the write answered
    /// (`{"error": {"code", "message"}}`); null while pending or rejected.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Who staged the change.
    pub actor: Actor,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// Who accepted or rejected it.
    pub decided_by: Option<Actor>,
}

impl StagedChange {
    /// A new pending change; id, key and time come from the caller.
    pub fn new(
        id: Uuid,
        org_id: Uuid,
        idempotency_key: String,
        write: &StagedWrite,
        actor: Actor,
        now: Timestamp,
    ) -> StagedChange {
        StagedChange {
            id,
            org_id,
            idempotency_key,
            entity: write.entity(),
            operation: write.operation(),
            target_id: write.target_id(),
            payload: write.payload(),
            status: StagedStatus::Pending,
            result: None,
            actor,
            created_at: now,
            decided_at: None,
            decided_by: None,
        }
    }

    /// The typed write this change holds.
    pub fn write(&self) -> Result<StagedWrite, ValidationError> {
        StagedWrite::decode(self.entity, self.operation, self.target_id, &self.payload)
    }

    /// Whether `other` is this change sent again: the same write by the
    /// same credential. A repeat returns the first change; anything else
    /// under the same key is a reuse of the key.
    pub fn is_repeat_of(&self, other: &StagedChange) -> bool {
        self.org_id == other.org_id
            && self.idempotency_key == other.idempotency_key
            && self.entity == other.entity
            && self.operation == other.operation
            && self.target_id == other.target_id
            && self.payload == other.payload
            && self.actor.key_id == other.actor.key_id
    }

    /// The change once decided, if the table allows `to` from its status.
    pub fn decided(
        &self,
        to: StagedStatus,
        result: Option<Value>,
        by: Actor,
        at: Timestamp,
    ) -> Result<StagedChange, AlreadyDecided> {
        let status = self.status.transition(to)?;
        Ok(StagedChange {
            status,
            result,
            decided_at: Some(at),
            decided_by: Some(by),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::Patch;
    use crate::time::now;
    use serde_json::json;
    use StagedStatus::*;

    #[test]
    fn every_transition_pair_matches_the_table() {
        let allowed = [(Pending, Applied), (Pending, Rejected), (Pending, Failed)];
        for from in StagedStatus::ALL {
            for to in StagedStatus::ALL {
                let expect = allowed.contains(&(from, to));
                let got = from.transition(to);
                assert_eq!(got.is_ok(), expect, "{from:?} -> {to:?}");
                match got {
                    Ok(status) => assert_eq!(status, to),
                    Err(e) => assert_eq!(e, AlreadyDecided { from, to }),
                }
            }
        }
        for terminal in [Applied, Rejected, Failed] {
            assert!(terminal.allowed_targets().is_empty(), "{terminal:?}");
        }
    }

    #[test]
    fn statuses_entities_and_operations_parse_back_from_their_wire_names() {
        for s in StagedStatus::ALL {
            assert_eq!(StagedStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).expect("serialises");
            assert_eq!(json, json!(s.as_str()));
        }
        for e in StagedEntity::ALL {
            assert_eq!(StagedEntity::parse(e.as_str()), Some(e));
        }
        for o in StagedOperation::ALL {
            assert_eq!(StagedOperation::parse(o.as_str()), Some(o));
        }
        assert_eq!(StagedStatus::parse("accepted"), None);
    }

    /// Every kind of write survives being stored as parts and read back.
    #[test]
    fn writes_decode_from_their_stored_parts() {
        let id = Uuid::now_v7();
        let writes = [
            StagedWrite::CreateAgent(AgentCreate {
                name: "Helpdesk".into(),
                description: None,
                active: Some(false),
                model_ids: vec![Uuid::now_v7()],
            }),
            StagedWrite::UpdateAgent {
                id,
                changes: AgentUpdate {
                    description: Patch::Null,
                    expected_version: Some(3),
                    ..AgentUpdate::default()
                },
            },
            StagedWrite::UpdateAgent {
                id,
                changes: AgentUpdate {
                    description: Patch::Value("d".into()),
                    ..AgentUpdate::default()
                },
            },
            StagedWrite::DeleteAgent { id },
        ];
        for write in writes {
            let back = StagedWrite::decode(
                write.entity(),
                write.operation(),
                write.target_id(),
                &write.payload(),
            );
            assert_eq!(back.as_ref(), Ok(&write));
        }
        let update = StagedWrite::UpdateAgent {
            id,
            changes: AgentUpdate {
                description: Patch::Null,
                ..AgentUpdate::default()
            },
        };
        assert_eq!(update.payload(), json!({"description": null}));
        assert_eq!(StagedWrite::DeleteAgent { id }.payload(), json!({}));
    }

    #[test]
    fn an_update_or_delete_without_its_target_does_not_decode() {
        for operation in [StagedOperation::Update, StagedOperation::Delete] {
            let err = StagedWrite::decode(StagedEntity::Agent, operation, None, &json!({}))
                .expect_err("no target");
            assert_eq!(err.field, "target_id");
        }
        let err = StagedWrite::decode(
            StagedEntity::Agent,
            StagedOperation::Create,
            None,
            &json!({"name": "a", "colour": "red"}),
        )
        .expect_err("unknown field");
        assert_eq!(err.field, "payload");
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        for good in ["k", "create-agent-1", "a/b?c", &"k".repeat(KEY_MAX)] {
            assert_eq!(check_key(good), Ok(()), "{good:?}");
        }
        for bad in ["", "a b", "é", "tab\t", &"k".repeat(KEY_MAX + 1)] {
            assert_eq!(
                check_key(bad).map_err(|e| e.field),
                Err("Idempotency-Key".to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_change_is_decided_once_and_a_repeat_is_told_from_a_reuse() {
        let actor = Actor {
            key_id: Some(Uuid::now_v7()),
            user_id: None,
        };
        let write = StagedWrite::DeleteAgent { id: Uuid::now_v7() };
        let change = StagedChange::new(
            Uuid::now_v7(),
            Uuid::now_v7(),
            "k".into(),
            &write,
            actor,
            now(),
        );
        assert_eq!(change.status, Pending);
        assert_eq!(change.write(), Ok(write));

        let again = StagedChange {
            id: Uuid::now_v7(),
            ..change.clone()
        };
        assert!(again.is_repeat_of(&change));
        let other_target = StagedChange {
            target_id: Some(Uuid::now_v7()),
            ..change.clone()
        };
        assert!(!other_target.is_repeat_of(&change));
        let other_caller = StagedChange {
            actor: Actor::default(),
            ..change.clone()
        };
        assert!(!other_caller.is_repeat_of(&change));

        let decider = Actor::default();
        let at = now();
        let rejected = change
            .decided(Rejected, None, decider, at)
            .expect("pending may be rejected");
        assert_eq!(
            (rejected.status, rejected.decided_at, rejected.decided_by),
            (Rejected, Some(at), Some(decider))
        );
        assert_eq!(
            rejected.decided(Applied, None, decider, at),
            Err(AlreadyDecided {
                from: Rejected,
                to: Applied
            })
        );
    }
}
