//! Local model files: the downloads that fetch them from the Hugging Face
//! Hub, the LoRA adapters registered on them, and the rules for the paths
//! that name them. The file system itself is the service layer's; this
//! module holds the state machines and the checks that need no disk.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{optional_text, required_text};
use crate::ValidationError;

/// Where a download stands. It is `queued` until a worker of its node picks
/// it up, `running` while files arrive, and ends `completed`, `failed` or
/// `cancelled`. A running download whose server stopped goes back to
/// `queued` and resumes from the bytes already on disk; a failed or
/// cancelled one may be queued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DownloadStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl DownloadStatus {
    pub const ALL: [DownloadStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn allowed_targets(self) -> &'static [DownloadStatus] {
        match self {
            Self::Queued => &[Self::Running, Self::Cancelled],
            Self::Running => &[Self::Completed, Self::Failed, Self::Cancelled, Self::Queued],
            Self::Failed | Self::Cancelled => &[Self::Queued],
            Self::Completed => &[],
        }
    }

    pub fn can_become(self, to: DownloadStatus) -> bool {
        self.allowed_targets().contains(&to)
    }

    /// Whether the download may still change on its own.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// Where one file of a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Pending,
    Downloading,
    /// Written under its final name (verified when the Hub published a hash).
    Done,
    Failed,
}

impl FileStatus {
    pub const ALL: [FileStatus; 4] = [Self::Pending, Self::Downloading, Self::Done, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn allowed_targets(self) -> &'static [FileStatus] {
        match self {
            Self::Pending => &[Self::Downloading, Self::Done, Self::Failed],
            Self::Downloading => &[Self::Done, Self::Failed, Self::Pending],
            Self::Failed => &[Self::Pending],
            Self::Done => &[],
        }
    }

    pub fn can_become(self, to: FileStatus) -> bool {
        self.allowed_targets().contains(&to)
    }
}

/// One file of a download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DownloadFile {
    /// The path in the repo, and under the download's folder.
    pub path: String,
    /// As the Hub lists it.
    pub size_bytes: u64,
    /// The SHA-256 the Hub publishes for LFS files (checked on arrival).
    pub sha256: Option<String>,
    pub bytes_done: u64,
    pub status: FileStatus,
    /// Whether the SHA-256 was checked and matched.
    pub verified: bool,
    pub error: Option<String>,
}

/// A download: files of one repo revision fetched into a folder under the
/// models base directory.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Download {
    pub id: uuid::Uuid,
    /// Where the files come from; `huggingface` for now.
    pub source: String,
    pub repo_id: String,
    pub revision: String,
    /// The folder, relative to the models base directory.
    pub dest: String,
    pub status: DownloadStatus,
    pub error: Option<String>,
    pub files: Vec<DownloadFile>,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Recent transfer rate, while running.
    pub speed_bytes_per_sec: Option<u64>,
    /// Seconds left at the recent rate, while running.
    pub eta_secs: Option<u64>,
    /// The replica whose disk receives the files.
    pub node: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Download {
    /// Recomputes the totals from the files.
    pub fn tally(&mut self) {
        self.bytes_total = self.files.iter().map(|f| f.size_bytes).sum();
        self.bytes_done = self
            .files
            .iter()
            .map(|f| f.bytes_done.min(f.size_bytes.max(f.bytes_done)))
            .sum();
    }
}

/// Seconds to move `remaining` bytes at `speed` bytes per second (rounded
/// up); none without a rate.
pub fn eta_secs(remaining: u64, speed: u64) -> Option<u64> {
    if speed == 0 {
        return None;
    }
    Some(remaining.div_ceil(speed))
}

/// A LoRA adapter registered for a base model.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Adapter {
    pub id: String,
    pub name: String,
    pub base_model: String,
    pub rank: Option<u32>,
    pub alpha: Option<f64>,
    /// As registered: absolute, or relative to `<data_dir>/adapters/`.
    pub path: String,
    /// `safetensors`, `gguf` or `peft` (a folder with `adapter_config.json`).
    pub format: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The checked fields of an adapter to register.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInput {
    pub id: Option<String>,
    pub name: String,
    pub base_model: String,
    pub rank: Option<u32>,
    pub alpha: Option<f64>,
    pub path: String,
}

pub const MAX_ADAPTER_RANK: u32 = 65_536;

impl AdapterInput {
    pub fn validated(self) -> Result<AdapterInput, ValidationError> {
        let id = match self.id {
            Some(id) => Some(check_slug("id", &id)?),
            None => None,
        };
        let name = required_text("name", &self.name, 200)?;
        let base_model = required_text("base_model", &self.base_model, 300)?;
        if let Some(rank) = self.rank {
            if rank == 0 || rank > MAX_ADAPTER_RANK {
                return Err(ValidationError::new(
                    "rank",
                    format!("must be between 1 and {MAX_ADAPTER_RANK}"),
                ));
            }
        }
        if let Some(alpha) = self.alpha {
            if !alpha.is_finite() || alpha <= 0.0 {
                return Err(ValidationError::new(
                    "alpha",
                    "must be a positive finite number",
                ));
            }
        }
        let path = required_text("path", &self.path, 4096)?;
        if path.contains('\0') {
            return Err(ValidationError::new(
                "path",
                "must not contain NUL characters",
            ));
        }
        Ok(AdapterInput {
            id,
            name,
            base_model,
            rank: self.rank,
            alpha: self.alpha,
            path,
        })
    }
}

/// An id made of letters, digits, `.`, `_` and `-`, 1–128 long, not starting
/// with a dot.
pub fn check_slug(field: &str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 128 {
        return Err(ValidationError::new(field, "must be 1 to 128 characters"));
    }
    if v.starts_with('.')
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ValidationError::new(
            field,
            "may hold only letters, digits, '.', '_' and '-', and must not start with '.'",
        ));
    }
    Ok(v.to_owned())
}

/// Checks a path meant to stay under some root: relative, `/`-separated, no
/// `..`, no empty or `.` segment, no NUL or backslash, at most 1024 bytes.
/// The empty path names the root itself. Symlinks are the file system's
/// business and are checked where the path is resolved.
pub fn check_relative_path(field: &str, value: &str) -> Result<String, ValidationError> {
    let v = value.trim_matches('/');
    if v.len() > 1024 {
        return Err(ValidationError::new(field, "must be at most 1024 bytes"));
    }
    if v.contains('\0') || v.contains('\\') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters or backslashes",
        ));
    }
    if value.starts_with('/') {
        return Err(ValidationError::new(
            field,
            "must be relative to the models base directory",
        ));
    }
    if v.is_empty() {
        return Ok(String::new());
    }
    if v.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ValidationError::new(
            field,
            "must not contain '..', '.' or empty segments",
        ));
    }
    Ok(v.to_owned())
}

/// A Hub repo id: `owner/name` or `name`, each segment of letters, digits,
/// `.`, `_`, `-`, at most 96 characters, not `.`/`..`.
pub fn check_repo_id(value: &str) -> Result<String, ValidationError> {
    let v = value.trim();
    let segments: Vec<&str> = v.split('/').collect();
    let ok = !v.is_empty()
        && segments.len() <= 2
        && segments.iter().all(|s| {
            !s.is_empty()
                && s.len() <= 96
                && *s != "."
                && *s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(ValidationError::new(
            "repo_id",
            "must be 'owner/name' (letters, digits, '.', '_', '-')",
        ))
    }
}

/// A git revision as the Hub takes it: a branch, tag or commit.
pub fn check_revision(value: Option<&str>) -> Result<String, ValidationError> {
    let v = optional_text("revision", value, 200)?.unwrap_or_else(|| "main".to_owned());
    if v.contains("..")
        || v.starts_with('/')
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    {
        return Err(ValidationError::new(
            "revision",
            "must be a branch, tag or commit",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_transition_table_is_exactly_this() {
        use DownloadStatus::*;
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Running, Completed),
            (Running, Failed),
            (Running, Cancelled),
            (Running, Queued),
            (Failed, Queued),
            (Cancelled, Queued),
        ];
        for from in DownloadStatus::ALL {
            for to in DownloadStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert!(Queued.is_active() && Running.is_active());
        assert!(!Completed.is_active() && !Failed.is_active() && !Cancelled.is_active());
    }

    #[test]
    fn file_transition_table_is_exactly_this() {
        use FileStatus::*;
        let allowed = [
            (Pending, Downloading),
            (Pending, Done),
            (Pending, Failed),
            (Downloading, Done),
            (Downloading, Failed),
            (Downloading, Pending),
            (Failed, Pending),
        ];
        for from in FileStatus::ALL {
            for to in FileStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in DownloadStatus::ALL {
            assert_eq!(DownloadStatus::parse(s.as_str()), Some(s));
        }
        for s in FileStatus::ALL {
            assert_eq!(FileStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DownloadStatus::parse("done"), None);
    }

    #[test]
    fn relative_paths_may_not_climb_out() {
        for bad in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\\..\\b",
            "a\0b",
        ] {
            assert!(check_relative_path("path", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_relative_path("path", "owner/repo/").expect("ok"),
            "owner/repo"
        );
        assert_eq!(check_relative_path("path", "").expect("root"), "");
        assert_eq!(
            check_relative_path("path", "a..b/c").expect("dots inside a name"),
            "a..b/c"
        );
    }

    #[test]
    fn repo_ids_and_revisions_are_checked() {
        assert!(check_repo_id("TheBloke/TinyLlama-1.1B-GGUF").is_ok());
        assert!(check_repo_id("gpt2").is_ok());
        for bad in ["", "a/b/c", "../x", "a/..", "a b/c", "a/"] {
            assert!(check_repo_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_revision(None).expect("default"), "main");
        assert!(check_revision(Some("refs/pr/1")).is_ok());
        assert!(check_revision(Some("../main")).is_err());
    }

    #[test]
    fn adapter_input_checks_rank_alpha_and_id() {
        let good = AdapterInput {
            id: Some("my-adapter".into()),
            name: "My Adapter".into(),
            base_model: "tinyllama".into(),
            rank: Some(16),
            alpha: Some(32.0),
            path: "my-adapter.safetensors".into(),
        };
        assert!(good.clone().validated().is_ok());
        let bad_rank = AdapterInput {
            rank: Some(0),
            ..good.clone()
        };
        assert_eq!(
            bad_rank.validated().expect_err("rank").field,
            "rank".to_owned()
        );
        let bad_alpha = AdapterInput {
            alpha: Some(f64::NAN),
            ..good.clone()
        };
        assert_eq!(bad_alpha.validated().expect_err("alpha").field, "alpha");
        let bad_id = AdapterInput {
            id: Some("../x".into()),
            ..good
        };
        assert_eq!(bad_id.validated().expect_err("id").field, "id");
    }

    #[test]
    fn eta_rounds_up_and_needs_a_rate() {
        assert_eq!(eta_secs(1000, 300), Some(4));
        assert_eq!(eta_secs(0, 300), Some(0));
        assert_eq!(eta_secs(1000, 0), None);
    }
}
