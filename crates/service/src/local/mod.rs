//! Local model files: the models base directory and what is in it, GGUF
//! metadata, VRAM estimates, the Hugging Face Hub (search, remote probing,
//! configs), the download queue and LoRA adapters.
//!
//! Everything here touches this replica's disk, so every operation but the
//! Hub's read-only ones needs a superadmin key: a server's file system is
//! shared by every org on it. Paths from requests are relative to the base
//! directory (adapters: to `<data_dir>/adapters/`) and are refused when they
//! climb out of it, lexically (`..`) or through a symlink (the resolved path
//! must still be under the resolved root).

mod adapters;
mod downloads;
mod hf;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::local::check_relative_path;
use modelplane_domain::time::now;
use modelplane_formats::{gguf, inspect, vram};
use modelplane_hub::{HubClient, HubError, HubSettings};
use modelplane_store::Store;

use crate::auth::Principal;
use crate::error::{Entity, Result, ServiceError};
use crate::new_id;

pub use downloads::{choose_files, glob_match, DownloadRequest, RescanReport};
pub use hf::{HfConfig, HfProbe, HfSearchResult, HfVariant};

/// The setting that holds the models base directory.
pub const BASE_DIR_SETTING: &str = "models.base_dir";

/// How this replica keeps local model files.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Where `adapters/` lives (beside the SQLite data by default).
    pub data_dir: PathBuf,
    /// The base directory until one is set through the API.
    pub default_base_dir: PathBuf,
    /// This replica's name: downloads are written to its disk.
    pub node: String,
    pub hub: HubSettings,
    /// The memory of one GPU; `None`: detect with `nvidia-smi`.
    pub gpu_vram_bytes: Option<u64>,
    /// Downloads run at once on this replica.
    pub parallel_downloads: usize,
}

/// Local model files of this replica. Cheap to clone.
#[derive(Clone)]
pub struct LocalModels {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: LocalSettings,
    hub: HubClient,
    gpus: OnceCell<Option<u64>>,
    downloads: downloads::Queue,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

/// The models base directory.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BaseDir {
    pub path: String,
    /// Whether it was set through the API (else the configured default).
    pub configured: bool,
    pub exists: bool,
}

/// Where a VRAM estimate reads the model's shape from, and its knobs.
#[derive(Debug, Clone, Default)]
pub struct VramRequest {
    pub path: Option<String>,
    pub repo_id: Option<String>,
    pub filename: Option<String>,
    pub revision: Option<String>,
    pub params: vram::VramParams,
}

/// A VRAM estimate with what it was computed from.
#[derive(Debug, Clone, Serialize)]
pub struct VramAnswer {
    #[serde(flatten)]
    pub estimate: vram::VramEstimate,
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    /// `gguf`, `safetensors` or `hub` (what the shape came from).
    pub source: String,
    /// Where the GPU memory figure came from: `request`, `config`, `detected`, or none.
    pub gpu_vram_source: Option<String>,
}

impl LocalModels {
    pub fn new(store: Store, settings: LocalSettings) -> Result<LocalModels> {
        let hub = HubClient::new(settings.hub.clone()).map_err(hub_error)?;
        Ok(LocalModels {
            inner: Arc::new(Inner {
                store,
                settings,
                hub,
                gpus: OnceCell::new(),
                downloads: downloads::Queue::default(),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        })
    }

    pub fn settings(&self) -> &LocalSettings {
        &self.inner.settings
    }

    pub fn hub(&self) -> &HubClient {
        &self.inner.hub
    }

    /// Stops the download workers; a download in flight keeps its partial
    /// file and goes back to the queue, to resume at the next start.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// The base directory in force.
    pub async fn base_dir(&self) -> Result<PathBuf> {
        Ok(self.base_dir_setting().await?.0)
    }

    async fn base_dir_setting(&self) -> Result<(PathBuf, bool)> {
        let stored = self.inner.store.get_setting(BASE_DIR_SETTING).await?;
        Ok(match stored.as_ref().and_then(|v| v.as_str()) {
            Some(p) => (PathBuf::from(p), true),
            None => (self.inner.settings.default_base_dir.clone(), false),
        })
    }

    pub async fn get_base_dir(&self, p: &Principal) -> Result<BaseDir> {
        p.require(Scope::Superadmin)?;
        let (path, configured) = self.base_dir_setting().await?;
        let exists = tokio::fs::metadata(&path)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false);
        Ok(BaseDir {
            path: path.display().to_string(),
            configured,
            exists,
        })
    }

    /// Sets the base directory: an absolute path, created when missing.
    pub async fn set_base_dir(&self, p: &Principal, path: &str) -> Result<BaseDir> {
        p.require(Scope::Superadmin)?;
        let trimmed = path.trim();
        if trimmed.is_empty() || trimmed.contains('\0') || trimmed.len() > 4096 {
            return Err(validation("path", "must be a non-empty absolute path"));
        }
        let dir = PathBuf::from(trimmed);
        if !dir.is_absolute() {
            return Err(validation("path", "must be an absolute path"));
        }
        if dir
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(validation("path", "must not contain '..'"));
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ServiceError::BadRequestCode {
                code: "base_dir_unusable",
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        let canonical =
            tokio::fs::canonicalize(&dir)
                .await
                .map_err(|e| ServiceError::BadRequestCode {
                    code: "base_dir_unusable",
                    message: format!("cannot resolve {}: {e}", dir.display()),
                })?;
        if !tokio::fs::metadata(&canonical)
            .await
            .is_ok_and(|m| m.is_dir())
        {
            return Err(ServiceError::BadRequestCode {
                code: "base_dir_unusable",
                message: format!("{} is not a directory", canonical.display()),
            });
        }
        let (old, _) = self.base_dir_setting().await?;
        let value = canonical.display().to_string();
        let audit = AuditEvent {
            id: new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Setting,
            entity_id: p.org_id,
            action: AuditAction::Update,
            actor: p.actor(),
            at: now(),
            changes: vec![FieldChange {
                field: BASE_DIR_SETTING.to_owned(),
                before: serde_json::Value::String(old.display().to_string()),
                after: serde_json::Value::String(value.clone()),
            }],
        };
        self.inner
            .store
            .put_setting(
                BASE_DIR_SETTING,
                &serde_json::Value::String(value.clone()),
                &audit,
            )
            .await?;
        Ok(BaseDir {
            path: value,
            configured: true,
            exists: true,
        })
    }

    /// Resolves `rel` under the base directory; it must exist and stay
    /// inside once symlinks are followed.
    pub async fn resolve(&self, field: &str, rel: &str) -> Result<PathBuf> {
        let base = self.base_dir().await?;
        confine(&base, field, rel).await
    }

    pub async fn local_folders(&self, p: &Principal) -> Result<Vec<inspect::LocalFolder>> {
        p.require(Scope::Superadmin)?;
        let base = self.base_dir().await?;
        blocking(move || match std::fs::metadata(&base) {
            Ok(m) if m.is_dir() => inspect::list_model_folders(&base).map_err(io_error),
            _ => Ok(Vec::new()),
        })
        .await
    }

    pub async fn inspect_folder(
        &self,
        p: &Principal,
        rel: &str,
    ) -> Result<inspect::FolderInspection> {
        p.require(Scope::Superadmin)?;
        let dir = self.resolve("path", rel).await?;
        if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) {
            return Err(ServiceError::BadRequestCode {
                code: "not_a_folder",
                message: format!("{rel:?} is not a folder"),
            });
        }
        blocking(move || inspect::inspect_folder(&dir).map_err(io_error)).await
    }

    /// The parsed header of a GGUF file (vocabulary arrays left out).
    pub async fn gguf_metadata(&self, p: &Principal, rel: &str) -> Result<GgufMetadata> {
        p.require(Scope::Superadmin)?;
        let file = self.resolve("path", rel).await?;
        if !tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file()) {
            return Err(not_gguf(rel, "not a file"));
        }
        let rel = rel.to_owned();
        blocking(move || {
            let header = gguf::read_path(&file).map_err(|e| match e {
                gguf::GgufError::Io(m) => ServiceError::BadRequestCode {
                    code: "unreadable_file",
                    message: m,
                },
                other => not_gguf(&rel, &other.to_string()),
            })?;
            Ok(GgufMetadata {
                path: rel,
                version: header.version,
                report: header.metadata_report(),
            })
        })
        .await
    }

    /// The memory of one GPU: configured, else what `nvidia-smi` reports
    /// (the smallest GPU), else unknown.
    pub async fn gpu_vram(&self) -> Option<(u64, &'static str)> {
        if let Some(v) = self.inner.settings.gpu_vram_bytes {
            return Some((v, "config"));
        }
        let detected = self
            .inner
            .gpus
            .get_or_init(|| async {
                tokio::task::spawn_blocking(detect_gpu_vram)
                    .await
                    .ok()
                    .flatten()
            })
            .await;
        detected.map(|v| (v, "detected"))
    }

    pub async fn vram_estimate(&self, p: &Principal, mut req: VramRequest) -> Result<VramAnswer> {
        let gpu_source = match req.params.gpu_vram_bytes {
            Some(_) => Some("request".to_owned()),
            None => match self.gpu_vram().await {
                Some((v, src)) => {
                    req.params.gpu_vram_bytes = Some(v);
                    Some(src.to_owned())
                }
                None => None,
            },
        };
        let (shape, source, mut extra_warnings) = match (&req.path, &req.repo_id) {
            (Some(_), Some(_)) => {
                return Err(validation(
                    "path",
                    "give either path or repo_id (with filename), not both",
                ))
            }
            (None, None) => {
                return Err(validation(
                    "path",
                    "give a path under the models base directory, or repo_id (and filename)",
                ))
            }
            (Some(rel), None) => {
                p.require(Scope::Superadmin)?;
                let base = self.base_dir().await?;
                let target = confine(&base, "path", rel).await?;
                let rel = rel.clone();
                blocking(move || local_shape(&target, &base, &rel)).await?
            }
            (None, Some(repo)) => {
                p.require(Scope::Admin)?;
                hf::remote_shape(
                    &self.inner.hub,
                    repo,
                    req.filename.as_deref(),
                    req.revision.as_deref(),
                )
                .await?
            }
        };
        let mut estimate = vram::estimate(&shape, &req.params)
            .map_err(|e| validation("params", &e.to_string()))?;
        estimate.warnings.append(&mut extra_warnings);
        Ok(VramAnswer {
            estimate,
            layers: shape.layers,
            kv_heads: shape.kv_heads,
            head_dim: shape.head_dim,
            source,
            gpu_vram_source: gpu_source,
        })
    }
}

/// The metadata endpoint's answer.
#[derive(Debug, Clone, Serialize)]
pub struct GgufMetadata {
    pub path: String,
    pub version: u32,
    #[serde(flatten)]
    pub report: gguf::MetadataReport,
}

/// A model's shape from a GGUF file or a folder on disk under `base`.
fn local_shape(
    target: &Path,
    base: &Path,
    rel: &str,
) -> Result<(vram::ModelShape, String, Vec<String>)> {
    let unknown = |e: vram::VramError| ServiceError::BadRequestCode {
        code: "model_shape_unknown",
        message: format!("{rel:?}: {e}"),
    };
    let meta = std::fs::metadata(target).map_err(io_error)?;
    if meta.is_dir() {
        let shape = vram::shape_from_folder(target).map_err(unknown)?;
        let source = shape.source.to_string();
        return Ok((shape, source, Vec::new()));
    }
    let (shape, missing) = vram::shape_from_gguf_path(target, base).map_err(|e| match e {
        vram::VramError::Gguf(g) => not_gguf(rel, &g.to_string()),
        other => unknown(other),
    })?;
    let mut warnings = Vec::new();
    if missing > 0 {
        warnings.push(format!(
            "{missing} part(s) of this split GGUF are missing; their weights are not counted"
        ));
    }
    Ok((shape, "gguf".to_owned(), warnings))
}

/// The memory of the smallest GPU `nvidia-smi` lists, if it runs.
fn detect_gpu_vram() -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .map(|mib| mib.saturating_mul(1024 * 1024))
        .min()
}

/// Resolves `rel` (checked lexically) under `base` and makes sure the real
/// path, symlinks followed, is still under the real `base`.
pub async fn confine(base: &Path, field: &str, rel: &str) -> Result<PathBuf> {
    let rel = check_relative_path(field, rel)?;
    let base_real = tokio::fs::canonicalize(base)
        .await
        .map_err(|_| ServiceError::NotFound(Entity::Path))?;
    let joined = base_real.join(&rel);
    let real = tokio::fs::canonicalize(&joined)
        .await
        .map_err(|_| ServiceError::NotFound(Entity::Path))?;
    if !real.starts_with(&base_real) {
        return Err(ServiceError::BadRequestCode {
            code: "path_outside_base_dir",
            message: format!("{field} {rel:?} leads outside the models base directory"),
        });
    }
    Ok(real)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Conflict(format!("file work stopped: {e}")))?
}

fn validation(field: &str, message: &str) -> ServiceError {
    ServiceError::Validation(modelplane_domain::ValidationError::new(field, message))
}

fn not_gguf(rel: &str, why: &str) -> ServiceError {
    ServiceError::BadRequestCode {
        code: "not_gguf",
        message: format!("{rel:?} is not a readable GGUF file: {why}"),
    }
}

fn io_error(e: std::io::Error) -> ServiceError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ServiceError::NotFound(Entity::Path),
        _ => ServiceError::BadRequestCode {
            code: "unreadable_file",
            message: e.to_string(),
        },
    }
}

/// How a Hub failure reads to our client.
pub(crate) fn hub_error(e: HubError) -> ServiceError {
    match e {
        HubError::NotFound { what } => {
            let entity = if what.contains("file") || what.contains("entry") {
                Entity::HubFile
            } else {
                Entity::HubRepo
            };
            ServiceError::NotFoundDetail {
                entity,
                message: format!("{what} was not found on the Hugging Face Hub"),
            }
        }
        HubError::Gated { repo } => ServiceError::Forbidden(format!(
            "the Hub refused access to {repo}: it is gated or private; set HF_TOKEN to a token that may read it"
        )),
        HubError::RateLimited { retry_after_secs } => ServiceError::Upstream {
            code: "upstream_rate_limited",
            message: "the Hugging Face Hub is rate-limiting this server; try again later".into(),
            retry_after_secs,
            unavailable: true,
        },
        HubError::InvalidName(m) => validation("repo_id", &m),
        HubError::Cancelled => ServiceError::Conflict("cancelled".into()),
        other => ServiceError::Upstream {
            code: "upstream_error",
            message: format!("Hugging Face Hub: {other}"),
            retry_after_secs: None,
            unavailable: false,
        },
    }
}
