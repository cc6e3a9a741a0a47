use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{optional_text, required_text};
use crate::ValidationError;

/// The model-risk framework an org's risk tiers refer to. The four tiers are
/// the same under every framework; only the label an examiner reads changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RiskFramework {
    /// Federal Reserve / OCC SR 26-2 (successor of SR 11-7, 2026).
    #[default]
    Sr26_2,
    /// Federal Reserve / OCC SR 11-7 (2011).
    Sr11_7,
    EuAiAct,
    NistAiRmf,
    Iso42001,
    Custom,
}

impl RiskFramework {
    pub const ALL: [RiskFramework; 6] = [
        Self::Sr26_2,
        Self::Sr11_7,
        Self::EuAiAct,
        Self::NistAiRmf,
        Self::Iso42001,
        Self::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sr26_2 => "sr26_2",
            Self::Sr11_7 => "sr11_7",
            Self::EuAiAct => "eu_ai_act",
            Self::NistAiRmf => "nist_ai_rmf",
            Self::Iso42001 => "iso42001",
            Self::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    /// The framework the org's risk tiers are defined under.
    pub risk_framework: RiskFramework,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const NAME_MAX: usize = 128;

pub fn validate_name(name: &str) -> Result<String, ValidationError> {
    required_text("name", name, NAME_MAX)
}

pub fn validate_optional_name(name: Option<&str>) -> Result<Option<String>, ValidationError> {
    optional_text("name", name, NAME_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_framework_round_trips_through_its_wire_name() {
        for f in RiskFramework::ALL {
            let json = serde_json::to_string(&f).expect("serialises");
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            assert_eq!(RiskFramework::parse(f.as_str()), Some(f));
        }
        assert_eq!(RiskFramework::default(), RiskFramework::Sr26_2);
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgCreate {
    pub name: String,
    /// Defaults to `sr26_2`.
    pub risk_framework: Option<RiskFramework>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgUpdate {
    pub name: Option<String>,
    pub risk_framework: Option<RiskFramework>,
}
