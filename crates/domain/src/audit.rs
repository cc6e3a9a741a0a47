//! Append-only audit events: who changed what, when, field by field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    Org,
    User,
    ApiKey,
    Model,
    Department,
    Agent,
    Route,
    Policy,
    /// An org's gateway key for a provider (only whether it is set is recorded).
    ProviderKey,
    /// A server setting, such as the models base directory.
    Setting,
    /// A Hugging Face download.
    Download,
    /// A LoRA adapter.
    Adapter,
}

impl EntityType {
    pub const ALL: [EntityType; 12] = [
        Self::Org,
        Self::User,
        Self::ApiKey,
        Self::Model,
        Self::Department,
        Self::Agent,
        Self::Route,
        Self::Policy,
        Self::ProviderKey,
        Self::Setting,
        Self::Download,
        Self::Adapter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Model => "model",
            Self::Department => "department",
            Self::Agent => "agent",
            Self::Route => "route",
            Self::Policy => "policy",
            Self::ProviderKey => "provider_key",
            Self::Setting => "setting",
            Self::Download => "download",
            Self::Adapter => "adapter",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Revoke,
    /// A model created as a copy of another (`copied_from` names it).
    Duplicate,
}

impl AuditAction {
    pub const ALL: [AuditAction; 5] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Revoke,
        Self::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Revoke => "revoke",
            Self::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One field's value before and after a change (null when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// Who made a change: the key used and, where the key belongs to a user, that user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub struct Actor {
    pub key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub action: AuditAction,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub changes: Vec<FieldChange>,
}

/// Fields that change on every write and so say nothing in a diff.
const BOOKKEEPING: [&str; 2] = ["version", "updated_at"];

/// The field-level difference between two serialisable snapshots of an
/// entity. `None` stands for "did not exist" (a create or a delete).
pub fn diff<T: Serialize>(before: Option<&T>, after: Option<&T>) -> Vec<FieldChange> {
    let as_map = |v: Option<&T>| match v.map(serde_json::to_value) {
        Some(Ok(Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    let before = as_map(before);
    let after = as_map(after);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| !BOOKKEEPING.contains(&f.as_str()))
        .filter_map(|f| {
            let b = before.get(f).cloned().unwrap_or(Value::Null);
            let a = after.get(f).cloned().unwrap_or(Value::Null);
            (b != a).then(|| FieldChange {
                field: f.clone(),
                before: b,
                after: a,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Thing {
        name: &'static str,
        owner: Option<&'static str>,
        version: i64,
    }

    #[test]
    fn entity_types_round_trip_through_their_wire_names() {
        for t in EntityType::ALL {
            let json = serde_json::to_string(&t).expect("serialises");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(EntityType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn diff_lists_changed_fields_only_and_skips_bookkeeping() {
        let a = Thing {
            name: "a",
            owner: None,
            version: 1,
        };
        let b = Thing {
            name: "a",
            owner: Some("x"),
            version: 2,
        };
        assert_eq!(
            diff(Some(&a), Some(&b)),
            vec![FieldChange {
                field: "owner".into(),
                before: json!(null),
                after: json!("x")
            }]
        );
        let created = diff(None, Some(&a));
        assert_eq!(
            created,
            vec![FieldChange {
                field: "name".into(),
                before: json!(null),
                after: json!("a")
            }]
        );
        let deleted = diff(Some(&b), None);
        assert_eq!(deleted.len(), 2);
    }
}
