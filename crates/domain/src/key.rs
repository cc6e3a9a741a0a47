use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::time::Timestamp;

/// What a key may do. Scopes imply narrower ones: `superadmin` ⊃ `admin` ⊃
/// `registry:write` ⊃ `registry:read`; `gateway` stands alone except under
/// `superadmin` and `admin`; `metrics:read` (platform-wide figures) only
/// under `superadmin`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Scope {
    #[serde(rename = "superadmin")]
    Superadmin,
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "registry:read")]
    RegistryRead,
    #[serde(rename = "registry:write")]
    RegistryWrite,
    #[serde(rename = "gateway")]
    Gateway,
    /// Read `/metrics`; for Prometheus scrapers, held by no one else by default.
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Superadmin,
        Scope::Admin,
        Scope::RegistryRead,
        Scope::RegistryWrite,
        Scope::Gateway,
        Scope::MetricsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Superadmin => "superadmin",
            Scope::Admin => "admin",
            Scope::RegistryRead => "registry:read",
            Scope::RegistryWrite => "registry:write",
            Scope::Gateway => "gateway",
            Scope::MetricsRead => "metrics:read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether holding `self` is enough for an operation that needs `needed`.
    pub fn implies(self, needed: Scope) -> bool {
        use Scope::*;
        match self {
            Superadmin => true,
            Admin => !matches!(needed, Superadmin | MetricsRead),
            RegistryWrite => matches!(needed, RegistryWrite | RegistryRead),
            RegistryRead => needed == RegistryRead,
            Gateway => needed == Gateway,
            MetricsRead => needed == MetricsRead,
        }
    }
}

/// Whether a set of granted scopes allows an operation needing `needed`.
pub fn allows(granted: &[Scope], needed: Scope) -> bool {
    granted.iter().any(|s| s.implies(needed))
}

/// An API key as listed; the token itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    /// The first characters of the token, to recognise a key without revealing it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiKey {
    pub fn is_usable_at(&self, now: &Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| exp > *now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scope::*;

    #[test]
    fn scope_implication_table() {
        // (held, needed, allowed)
        let table = [
            (Superadmin, Superadmin, true),
            (Superadmin, Admin, true),
            (Superadmin, Gateway, true),
            (Admin, Superadmin, false),
            (Admin, Admin, true),
            (Admin, RegistryWrite, true),
            (Admin, RegistryRead, true),
            (Admin, Gateway, true),
            (RegistryWrite, Admin, false),
            (RegistryWrite, RegistryWrite, true),
            (RegistryWrite, RegistryRead, true),
            (RegistryWrite, Gateway, false),
            (RegistryRead, RegistryWrite, false),
            (RegistryRead, RegistryRead, true),
            (RegistryRead, Gateway, false),
            (Gateway, RegistryRead, false),
            (Gateway, Gateway, true),
            (Superadmin, MetricsRead, true),
            (Admin, MetricsRead, false),
            (MetricsRead, MetricsRead, true),
            (MetricsRead, RegistryRead, false),
        ];
        for (held, needed, expect) in table {
            assert_eq!(held.implies(needed), expect, "{held:?} ⇒ {needed:?}");
        }
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).expect("serialises"),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyCreate {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Only a superadmin key may create keys in another org.
    pub org_id: Option<Uuid>,
    /// Binds the key to a user, whose role caps the scopes.
    pub user_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}
