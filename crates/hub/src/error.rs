//! The one error type of this crate.

use std::path::PathBuf;

/// Everything a Hub call can fail with. The variants are stable: callers map
/// them to their own statuses with an exhaustive match.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum HubError {
    /// 404, or `X-Error-Code: RepoNotFound | EntryNotFound | RevisionNotFound`.
    #[error("not found on the Hub: {what}")]
    NotFound { what: String },
    /// 401/403: `X-Error-Code: GatedRepo`, or a missing or refused token.
    #[error("access to {repo} is gated or needs a valid token")]
    Gated { repo: String },
    /// 429 still answered after every retry.
    #[error("rate limited by the Hub{}", retry_after_text(*.retry_after_secs))]
    RateLimited { retry_after_secs: Option<u64> },
    /// Any other non-2xx answer, with the Hub's own message.
    #[error("the Hub answered {status}: {message}")]
    Upstream { status: u16, message: String },
    /// Connection refused or reset, a timeout, a stalled body.
    #[error("transport error: {0}")]
    Transport(String),
    /// A 2xx answer that does not have the documented shape (or a bad setting).
    #[error("malformed Hub response: {0}")]
    Malformed(String),
    /// A body larger than the caller's bound.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The downloaded bytes do not hash to the expected SHA-256; they were
    /// moved to `quarantined` (`<dest>.corrupt`).
    #[error("SHA-256 mismatch: expected {expected}, got {actual}; moved to {}", .quarantined.display())]
    ChecksumMismatch {
        expected: String,
        actual: String,
        quarantined: PathBuf,
    },
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    /// The caller's cancellation token fired; a download's `.part` is kept.
    #[error("cancelled")]
    Cancelled,
    /// A local filesystem error.
    #[error("I/O error: {0}")]
    Io(String),
    /// A repo id, revision or file path that is unsafe or not a Hub name.
    #[error("invalid name: {0}")]
    InvalidName(String),
}

fn retry_after_text(secs: Option<u64>) -> String {
    secs.map(|s| format!(" (retry after {s} s)"))
        .unwrap_or_default()
}

impl HubError {
    /// Whether trying the same call again later may succeed (a queue's
    /// decision to keep a job): transport errors, rate limits and 5xx/408.
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Transport(_) | HubError::RateLimited { .. } => true,
            HubError::Upstream { status, .. } => *status == 408 || *status >= 500,
            HubError::NotFound { .. }
            | HubError::Gated { .. }
            | HubError::Malformed(_)
            | HubError::TooLarge { .. }
            | HubError::ChecksumMismatch { .. }
            | HubError::SizeMismatch { .. }
            | HubError::Cancelled
            | HubError::Io(_)
            | HubError::InvalidName(_) => false,
        }
    }
}

impl From<std::io::Error> for HubError {
    fn from(e: std::io::Error) -> HubError {
        HubError::Io(e.to_string())
    }
}
