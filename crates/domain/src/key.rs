use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::limits::{BudgetPeriod, KeyLimits};
use crate::patch::Patch;
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
    /// What the key may use through the gateway (absent fields: no limit).
    #[serde(flatten)]
    pub limits: KeyLimits,
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
    /// Model names the key may call through the gateway (route names or
    /// `provider/model`; a trailing `*` matches any suffix). Absent: any.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm_limit: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    #[serde(default)]
    pub tpm_limit: Option<u64>,
    /// Spend in USD per `budget_period`, priced from the catalog.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// `daily`, `weekly`, `monthly` (default) or `total`.
    #[serde(default)]
    pub budget_period: Option<BudgetPeriod>,
}

impl KeyCreate {
    pub fn limits(&self) -> KeyLimits {
        KeyLimits {
            allowed_models: self.allowed_models.clone(),
            rpm_limit: self.rpm_limit,
            tpm_limit: self.tpm_limit,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
        }
    }
}

/// `PATCH /api/v1/keys/{id}`: a field given replaces the key's value, `null`
/// removes that limit, an absent one keeps it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_models: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub rpm_limit: Patch<u64>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub tpm_limit: Patch<u64>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub budget_usd: Patch<f64>,
    #[serde(default)]
    #[schema(value_type = Option<BudgetPeriod>)]
    pub budget_period: Patch<BudgetPeriod>,
}

impl KeyUpdate {
    /// The key's limits after this update (not yet validated).
    pub fn apply(self, current: &KeyLimits) -> KeyLimits {
        let budget_usd = self.budget_usd.apply_to(current.budget_usd);
        KeyLimits {
            allowed_models: self.allowed_models.apply_to(current.allowed_models.clone()),
            rpm_limit: self.rpm_limit.apply_to(current.rpm_limit),
            tpm_limit: self.tpm_limit.apply_to(current.tpm_limit),
            // Removing the budget removes its period with it.
            budget_period: if budget_usd.is_none() {
                None
            } else {
                self.budget_period.apply_to(current.budget_period)
            },
            budget_usd,
        }
    }
}
