//! Departments: an org's own grouping of its models and users.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{optional_text, required_text};
use crate::patch::Patch;
use crate::ValidationError;

pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Department {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Unique within the org.
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentCreate {
    pub name: String,
    pub description: Option<String>,
}

/// Absent fields are left alone; `description: null` clears it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentUpdate {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
}

/// What still belongs to a department, which keeps it from being deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DepartmentUsage {
    pub models: i64,
    pub users: i64,
}

impl DepartmentUsage {
    pub fn is_unused(self) -> bool {
        self.models == 0 && self.users == 0
    }
}

/// Builds a new department; id and time come from the caller.
pub fn new_department(
    input: DepartmentCreate,
    id: Uuid,
    org_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Department, ValidationError> {
    Ok(Department {
        id,
        org_id,
        name: required_text("name", &input.name, NAME_MAX)?,
        description: optional_text("description", input.description.as_deref(), DESCRIPTION_MAX)?,
        created_at: now,
        updated_at: now,
    })
}

/// Applies an update; `None` when nothing would change.
pub fn apply_update(
    current: &Department,
    input: DepartmentUpdate,
    now: DateTime<Utc>,
) -> Result<Option<Department>, ValidationError> {
    let mut next = current.clone();
    if let Some(name) = input.name {
        next.name = required_text("name", &name, NAME_MAX)?;
    }
    next.description = match input.description {
        Patch::Absent => next.description,
        Patch::Null => None,
        Patch::Value(d) => optional_text("description", Some(&d), DESCRIPTION_MAX)?,
    };
    if next == *current {
        return Ok(None);
    }
    next.updated_at = now;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;

    fn sales() -> Department {
        let input = DepartmentCreate {
            name: "  Sales ".into(),
            description: Some("".into()),
        };
        new_department(input, Uuid::now_v7(), Uuid::now_v7(), now()).expect("valid")
    }

    #[test]
    fn names_are_trimmed_and_required_and_empty_descriptions_are_absent() {
        let d = sales();
        assert_eq!((d.name.as_str(), d.description), ("Sales", None));
        let blank = DepartmentCreate {
            name: " ".into(),
            description: None,
        };
        let err = new_department(blank, Uuid::now_v7(), Uuid::now_v7(), now());
        assert_eq!(err.expect_err("refused").field, "name");
    }

    #[test]
    fn updates_change_only_what_they_name_and_report_no_change() {
        let d = sales();
        let same = DepartmentUpdate {
            name: Some("Sales".into()),
            description: Patch::Absent,
        };
        assert_eq!(apply_update(&d, same, now()), Ok(None));
        let described = DepartmentUpdate {
            name: None,
            description: Patch::Value("EMEA".into()),
        };
        let next = apply_update(&d, described, now())
            .expect("valid")
            .expect("changed");
        assert_eq!(
            (next.name.as_str(), next.description.as_deref()),
            ("Sales", Some("EMEA"))
        );
        let cleared = DepartmentUpdate {
            name: None,
            description: Patch::Null,
        };
        let next = apply_update(&next, cleared, now())
            .expect("valid")
            .expect("changed");
        assert_eq!(next.description, None);
    }

    #[test]
    fn only_an_empty_department_is_unused() {
        assert!(DepartmentUsage::default().is_unused());
        assert!(!DepartmentUsage {
            models: 1,
            users: 0
        }
        .is_unused());
        assert!(!DepartmentUsage {
            models: 0,
            users: 2
        }
        .is_unused());
    }
}
