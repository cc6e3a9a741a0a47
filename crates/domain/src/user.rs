use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::required_text;
use crate::key::Scope;
use crate::ValidationError;

/// How many departments one user may belong to.
pub const DEPARTMENTS_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The scopes a key bound to a user of this role may carry at most.
    pub fn grantable_scopes(self) -> &'static [Scope] {
        match self {
            Role::Viewer => &[Scope::RegistryRead, Scope::Gateway],
            Role::Editor => &[Scope::RegistryRead, Scope::RegistryWrite, Scope::Gateway],
            Role::Admin => &[
                Scope::Admin,
                Scope::RegistryRead,
                Scope::RegistryWrite,
                Scope::Gateway,
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The org's departments the user belongs to, in the order given.
    pub department_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn validate_email(email: &str) -> Result<String, ValidationError> {
    let email = required_text("email", email, 254)?;
    let valid = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.contains(char::is_whitespace);
    if !valid {
        return Err(ValidationError::new("email", "must be an email address"));
    }
    Ok(email.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            validate_email(" Ann@Example.COM ").as_deref(),
            Ok("ann@example.com")
        );
        for bad in ["", "ann", "@x", "ann@", "a b@x"] {
            assert!(validate_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_cap_the_scopes_of_their_keys() {
        assert!(!Role::Viewer
            .grantable_scopes()
            .contains(&Scope::RegistryWrite));
        assert!(Role::Editor
            .grantable_scopes()
            .contains(&Scope::RegistryWrite));
        assert!(!Role::Editor.grantable_scopes().contains(&Scope::Admin));
        assert!(Role::Admin.grantable_scopes().contains(&Scope::Admin));
        for role in Role::ALL {
            assert!(!role.grantable_scopes().contains(&Scope::Superadmin));
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Only a superadmin key may place a user in another org than its own.
    pub org_id: Option<Uuid>,
    /// Departments of the user's org.
    #[serde(default)]
    pub department_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
    /// Replaces the user's departments.
    pub department_ids: Option<Vec<Uuid>>,
}
