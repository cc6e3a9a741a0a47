//! Agents: the org's applications built on its inventory models.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{optional_text, required_text};
use crate::patch::Patch;
use crate::reference::check_ids;
use crate::ValidationError;

pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 2_000;
/// How many inventory models one agent may name.
pub const MODELS_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Unique within the org.
    pub name: String,
    pub description: Option<String>,
    /// A model used by an active agent cannot be deleted.
    pub active: bool,
    /// Inventory model ids (`id` of `/api/v1/models`) of the same org, in
    /// the order given.
    pub model_ids: Vec<Uuid>,
    /// Incremented on every change; send it back as `expected_version`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// Serialises back to the body it was read from (absent fields stay absent):
// that is how a staged create keeps its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Defaults to true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default)]
    pub model_ids: Vec<Uuid>,
}

/// Absent fields are left alone; `description: null` clears it and
/// `model_ids` replaces the whole list.
// Serialises back to the body it was read from (absent fields stay absent,
// `description: null` stays null): that is how a staged update keeps its
// payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_ids: Option<Vec<Uuid>>,
    /// The version the change was based on; a stale one is refused with 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// Builds a new agent (version 1); id and time come from the caller. Whether
/// the models exist in the org is for the caller to check.
pub fn new_agent(
    input: AgentCreate,
    id: Uuid,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Agent, ValidationError> {
    check_ids("model_ids", &input.model_ids, MODELS_MAX)?;
    Ok(Agent {
        id,
        org_id,
        name: required_text("name", &input.name, NAME_MAX)?,
        description: optional_text("description", input.description.as_deref(), DESCRIPTION_MAX)?,
        active: input.active.unwrap_or(true),
        model_ids: input.model_ids,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

/// Checks the shape of an update before anything is read; `apply_update`
/// checks it again, so this only lets a bad request fail early.
pub fn check_update(input: &AgentUpdate) -> Result<(), ValidationError> {
    match &input.model_ids {
        Some(ids) => check_ids("model_ids", ids, MODELS_MAX),
        None => Ok(()),
    }
}

/// Applies an update. `None` when nothing would change, so nothing is
/// written or audited; otherwise the version goes up by one.
pub fn apply_update(
    current: &Agent,
    input: AgentUpdate,
    now: DateTime<Utc>,
) -> Result<Option<Agent>, ValidationError> {
    check_update(&input)?;
    let mut next = current.clone();
    if let Some(name) = input.name {
        next.name = required_text("name", &name, NAME_MAX)?;
    }
    next.description = match input.description {
        Patch::Absent => next.description,
        Patch::Null => None,
        Patch::Value(d) => optional_text("description", Some(&d), DESCRIPTION_MAX)?,
    };
    if let Some(active) = input.active {
        next.active = active;
    }
    if let Some(ids) = input.model_ids {
        next.model_ids = ids;
    }
    if next == *current {
        return Ok(None);
    }
    next.version = current.version + 1;
    next.updated_at = now;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;

    fn agent(model_ids: Vec<Uuid>) -> Agent {
        let input = AgentCreate {
            name: " Helpdesk ".into(),
            description: None,
            active: None,
            model_ids,
        };
        new_agent(input, Uuid::now_v7(), Uuid::now_v7(), now()).expect("valid")
    }

    #[test]
    fn a_new_agent_is_active_at_version_one_with_its_models_in_order() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let made = agent(vec![b, a]);
        assert_eq!(
            (made.name.as_str(), made.active, made.version),
            ("Helpdesk", true, 1)
        );
        assert_eq!(made.model_ids, vec![b, a]);
    }

    #[test]
    fn model_ids_must_not_repeat() {
        let a = Uuid::now_v7();
        let input = AgentCreate {
            name: "x".into(),
            description: None,
            active: Some(false),
            model_ids: vec![a, a],
        };
        let err = new_agent(input, Uuid::now_v7(), Uuid::now_v7(), now()).expect_err("repeat");
        assert_eq!(err.field, "model_ids");
        let update = AgentUpdate {
            model_ids: Some(vec![a, a]),
            ..AgentUpdate::default()
        };
        assert_eq!(
            check_update(&update).expect_err("repeat").field,
            "model_ids"
        );
    }

    #[test]
    fn an_update_bumps_the_version_only_when_something_changes() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let current = agent(vec![a, b]);
        let same = AgentUpdate {
            name: Some("Helpdesk".into()),
            active: Some(true),
            model_ids: Some(vec![a, b]),
            ..AgentUpdate::default()
        };
        assert_eq!(apply_update(&current, same, now()), Ok(None));
        let reordered = AgentUpdate {
            model_ids: Some(vec![b, a]),
            active: Some(false),
            ..AgentUpdate::default()
        };
        let next = apply_update(&current, reordered, now())
            .expect("valid")
            .expect("changed");
        assert_eq!(
            (next.model_ids.clone(), next.active, next.version),
            (vec![b, a], false, 2)
        );
        let blank = AgentUpdate {
            name: Some("".into()),
            ..AgentUpdate::default()
        };
        assert_eq!(
            apply_update(&next, blank, now()).expect_err("blank").field,
            "name"
        );
    }
}
