//! Ingestion runs: one fetch of one source folded into the catalog.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Source;
use crate::time::Timestamp;

/// Where a run stands. A run starts `running` and ends once, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 3] = [Self::Running, Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn allowed_targets(self) -> &'static [RunStatus] {
        match self {
            Self::Running => &[Self::Completed, Self::Failed],
            Self::Completed | Self::Failed => &[],
        }
    }

    pub fn can_become(self, to: RunStatus) -> bool {
        self.allowed_targets().contains(&to)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Api,
    Schedule,
    Cli,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
            Self::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Api, Self::Schedule, Self::Cli]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestionRun {
    pub id: i64,
    pub source: Source,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    /// The replica that runs it.
    pub node: String,
    pub models_added: i64,
    pub models_updated: i64,
    pub models_unchanged: i64,
    pub models_unlisted: i64,
    pub records_seen: i64,
    /// The non-secret name of the credential the listing was read with.
    pub credential: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// The counts a finished run reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub added: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub unlisted: i64,
    pub seen: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_status_transition_table_pair_by_pair() {
        use RunStatus::*;
        let allowed = [(Running, Completed), (Running, Failed)];
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn statuses_and_triggers_parse_back() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        for t in [RunTrigger::Api, RunTrigger::Schedule, RunTrigger::Cli] {
            assert_eq!(RunTrigger::parse(t.as_str()), Some(t));
        }
    }
}
