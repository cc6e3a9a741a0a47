use modelplane_domain::model::{InvalidTransition, ModelRuleError};
use modelplane_domain::ValidationError;
use modelplane_store::StoreError;

/// What kind of thing was not found or already exists; gives error codes
/// such as `model_not_found`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Org,
    User,
    ApiKey,
    Model,
    CatalogModel,
    IngestionRun,
    Draft,
    Department,
    Agent,
    StagedChange,
    Route,
    /// A file or folder under the models base directory.
    Path,
    Download,
    Adapter,
    /// A repo (or revision) on the Hugging Face Hub.
    HubRepo,
    /// A file of a Hub repo.
    HubFile,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Org => "org",
            Entity::User => "user",
            Entity::ApiKey => "api_key",
            Entity::Model => "model",
            Entity::CatalogModel => "catalog_model",
            Entity::IngestionRun => "ingestion_run",
            Entity::Draft => "draft",
            Entity::Department => "department",
            Entity::Agent => "agent",
            Entity::StagedChange => "staged_change",
            Entity::Route => "route",
            Entity::Path => "path",
            Entity::Download => "download",
            Entity::Adapter => "adapter",
            Entity::HubRepo => "hub_repo",
            Entity::HubFile => "hub_file",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{} not found", .0.as_str())]
    NotFound(Entity),
    /// Not found, with a message naming what was looked for (e.g. the Hub's
    /// repository and revision).
    #[error("{message}")]
    NotFoundDetail { entity: Entity, message: String },
    #[error("{message}")]
    AlreadyExists { entity: Entity, message: String },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A request the seed answers with `bad_request` (e.g. an unknown source).
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with its own stable code (e.g. `not_gguf`, `path_outside_base_dir`).
    #[error("{message}")]
    BadRequestCode { code: &'static str, message: String },
    /// An outside service (e.g. the Hugging Face Hub) failed or refused:
    /// answered 502, or 503 with `retry_after_secs` when it rate-limited us.
    #[error("{message}")]
    Upstream {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u64>,
        unavailable: bool,
    },
    /// A secret could not be sealed or opened (no or wrong encryption key).
    #[error("{0}")]
    Secrets(String),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error("version {expected} is stale; the current version is {current}")]
    VersionConflict { expected: i64, current: i64 },
    /// A write refused because of the state of other data.
    #[error("{0}")]
    Conflict(String),
    /// A conflict with its own stable code (e.g. `ingestion_run_in_progress`).
    #[error("{message}")]
    ConflictCode {
        code: &'static str,
        message: String,
        details: serde_json::Value,
    },
    /// A well-formed request refused with its own stable code (e.g. an
    /// idempotency key already used for a different request).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl From<ModelRuleError> for ServiceError {
    fn from(e: ModelRuleError) -> Self {
        match e {
            ModelRuleError::Validation(v) => v.into(),
            ModelRuleError::InvalidTransition(t) => t.into(),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
