//! Local model files: the models base directory, folder inspection, GGUF
//! metadata, VRAM estimates, the Hugging Face Hub, downloads and LoRA
//! adapters. The handlers only translate; `modelplane_service::local` does
//! the work and the checks (superadmin for anything on this server's disk,
//! admin for the Hub's read-only calls).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelplane_domain::local::{Adapter, Download};
use modelplane_domain::page::Page;
use modelplane_formats::inspect::{FolderInspection, LocalFolder};
use modelplane_formats::vram::{KvCacheType, VramParams};
use modelplane_service::local::{
    BaseDir, DownloadRequest, GgufMetadata, HfConfig, HfProbe, HfSearchResult, RescanReport,
    VramAnswer, VramRequest,
};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Auth, IdPath, KeyPath};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_base_dir, put_base_dir))
        .routes(routes!(local_folders))
        .routes(routes!(inspect_folder))
        .routes(routes!(gguf_metadata))
        .routes(routes!(rescan))
        .routes(routes!(hf_config))
        .routes(routes!(vram_estimate))
        .routes(routes!(hf_search))
        .routes(routes!(hf_probe))
        .routes(routes!(list_downloads, create_download))
        .routes(routes!(get_download))
        .routes(routes!(cancel_download))
        .routes(routes!(list_adapters, register_adapter))
        .routes(routes!(delete_adapter))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaseDirInput {
    /// An absolute path; created when missing.
    pub path: String,
}

/// The models base directory (superadmin).
#[utoipa::path(get, path = "/api/v1/admin/models/base-dir", tag = "local",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BaseDir), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_base_dir(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<BaseDir>> {
    Ok(Json(s.local.get_base_dir(&p).await?))
}

/// Sets the models base directory (superadmin, audited).
#[utoipa::path(put, path = "/api/v1/admin/models/base-dir", tag = "local", request_body = BaseDirInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = BaseDir), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_base_dir(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<BaseDirInput>,
) -> ApiResult<Json<BaseDir>> {
    Ok(Json(s.local.set_base_dir(&p, &body.path).await?))
}

#[derive(Debug, Serialize)]
pub struct FolderList {
    pub base_dir: String,
    pub folders: Vec<LocalFolder>,
}

/// The model folders under the base directory (superadmin): each
/// subfolder, or `owner/repo` two levels down, that holds model files.
#[utoipa::path(get, path = "/api/v1/admin/models/local-folders", tag = "local",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{base_dir, folders: [{name, path, has_gguf, has_safetensors, file_count, total_size_bytes, modified}]}`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn local_folders(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<FolderList>> {
    let folders = s.local.local_folders(&p).await?;
    Ok(Json(FolderList {
        base_dir: s.local.base_dir().await?.display().to_string(),
        folders,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PathQuery {
    /// Relative to the base directory; `..` and symlinks out of it are refused.
    path: String,
}

/// What a model folder holds (superadmin): GGUF files grouped by
/// quantisation (split files detected, parts missing reported) with their
/// header facts, the safetensors model, the engine to serve it with, and
/// which GGUF files failed to parse.
#[utoipa::path(get, path = "/api/v1/admin/models/inspect-folder", tag = "local", params(PathQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{has_gguf, has_safetensors, gguf_groups, safetensor_info, engine_recommendation, gguf_validation}`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn inspect_folder(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> ApiResult<Json<FolderInspection>> {
    Ok(Json(s.local.inspect_folder(&p, &q.path).await?))
}

/// The parsed header of a GGUF file (superadmin): `general`, `model`,
/// `tokenizer`, `tensors`, and `raw` (every key; vocabulary arrays left
/// out). 400 `not_gguf` when the file is not GGUF.
#[utoipa::path(get, path = "/api/v1/admin/models/gguf-metadata", tag = "local", params(PathQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{path, version, general, model, tokenizer, tensors, raw}`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn gguf_metadata(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PathQuery>,
) -> ApiResult<Json<GgufMetadata>> {
    Ok(Json(s.local.gguf_metadata(&p, &q.path).await?))
}

/// Walks the base directory and records what each model folder holds,
/// picking up files placed by hand (superadmin).
#[utoipa::path(post, path = "/api/v1/admin/models/rescan", tag = "local",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RescanReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn rescan(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<RescanReport>> {
    Ok(Json(s.local.rescan(&p).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RepoQuery {
    /// `owner/name`.
    repo_id: String,
    /// Branch, tag or commit (default `main`).
    revision: Option<String>,
}

/// A Hub repo's `config.json` with the facts read from it (admin).
#[utoipa::path(get, path = "/api/v1/admin/models/hf-config", tag = "local", params(RepoQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn hf_config(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<RepoQuery>,
) -> ApiResult<Json<HfConfig>> {
    Ok(Json(
        s.local
            .hf_config(&p, &q.repo_id, q.revision.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VramInput {
    /// A GGUF file or a model folder under the base directory (superadmin).
    pub path: Option<String>,
    /// A Hub repo (admin): with `filename`, that GGUF's header is read by
    /// range requests; without, `config.json` and the repo's safetensors
    /// parameter counts are used.
    pub repo_id: Option<String>,
    pub filename: Option<String>,
    pub revision: Option<String>,
    /// Tokens of context per sequence (default: the model's, else 4096).
    pub context_length: Option<u64>,
    /// Sequences served at once (default 1).
    pub parallel: Option<u64>,
    /// `f16` (default), `bf16`, `f32`, `q8_0`, `q4_0`, `fp8`, ….
    pub kv_cache_type: Option<String>,
    /// GPUs the model is split over (default 1).
    pub tensor_parallel_size: Option<u64>,
    /// Share of each GPU's memory that may be used (default 0.9).
    pub gpu_memory_utilization: Option<f64>,
    /// Memory of one GPU (default: the GPUs present, or the configured figure).
    pub gpu_vram_bytes: Option<u64>,
}

/// How much GPU memory a model needs: weights (the tensor data present),
/// KV cache = 2 × layers × context_length × parallel × KV heads × head
/// dimension × bytes per element of the cache type, and overhead; whether
/// it fits, and warnings.
#[utoipa::path(post, path = "/api/v1/vram-estimate", tag = "local", request_body = VramInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`{weights_bytes, kv_cache_bytes, overhead_bytes, total_bytes, per_gpu_bytes, fits, warnings, …}`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
async fn vram_estimate(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<VramInput>,
) -> ApiResult<Json<VramAnswer>> {
    let kv_cache_type = match body.kv_cache_type.as_deref() {
        None => KvCacheType::F16,
        Some(t) => t.parse::<KvCacheType>().map_err(|_| {
            ApiError::validation(
                "kv_cache_type",
                "must be one of f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl, fp8",
            )
        })?,
    };
    let defaults = VramParams::default();
    let req = VramRequest {
        path: body.path,
        repo_id: body.repo_id,
        filename: body.filename,
        revision: body.revision,
        params: VramParams {
            context_length: body.context_length,
            parallel: body.parallel.unwrap_or(defaults.parallel),
            kv_cache_type,
            tensor_parallel_size: body
                .tensor_parallel_size
                .unwrap_or(defaults.tensor_parallel_size),
            gpu_memory_utilization: body
                .gpu_memory_utilization
                .unwrap_or(defaults.gpu_memory_utilization),
            gpu_vram_bytes: body.gpu_vram_bytes,
        },
    };
    Ok(Json(s.local.vram_estimate(&p, req).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words of the repo id.
    query: String,
    /// Repos to return (default 10, at most 20).
    limit: Option<u32>,
    /// Memory of one GPU to judge `fits_vram` by (default: the GPUs present).
    gpu_vram_bytes: Option<u64>,
}

/// GGUF repos on the Hub matching `query` (admin), each with its
/// quantisation variants (split files grouped, sizes summed), the
/// recommended variant and whether it fits the GPU.
#[utoipa::path(get, path = "/api/v1/admin/hf/search", tag = "local", params(SearchQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object, description = "`[{repo_id, downloads, likes, variants: [{filename, size_bytes, quant, …}], recommended_variant, fits_vram}]`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn hf_search(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Vec<HfSearchResult>>> {
    Ok(Json(
        s.local
            .hf_search(&p, &q.query, q.limit, q.gpu_vram_bytes)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProbeQuery {
    repo_id: String,
    filename: String,
    revision: Option<String>,
}

/// A remote GGUF file without downloading it (admin): size, SHA-256, the
/// parts of a split file, and the header parsed from range requests.
#[utoipa::path(get, path = "/api/v1/admin/hf/probe", tag = "local", params(ProbeQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn hf_probe(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ProbeQuery>,
) -> ApiResult<Json<HfProbe>> {
    Ok(Json(
        s.local
            .hf_probe(&p, &q.repo_id, &q.filename, q.revision.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadInput {
    pub repo_id: String,
    /// Branch, tag or commit (default `main`).
    pub revision: Option<String>,
    /// Files of the repo; one part of a split GGUF brings every part.
    /// Default: every file (narrowed by `include`).
    #[serde(default)]
    pub files: Vec<String>,
    /// Patterns the files must match; `*` matches anything (e.g. `*Q4_K_M*`).
    #[serde(default)]
    pub include: Vec<String>,
    /// The folder under the base directory (default: the repo id).
    pub dest: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub downloads: Vec<Download>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Queues a download of Hub files into the base directory (superadmin).
/// Files arrive as `.part` and get their final name only when whole and
/// verified against the SHA-256 the Hub publishes; an interrupted download
/// resumes with range requests, also after a restart.
#[utoipa::path(post, path = "/api/v1/admin/downloads", tag = "local", request_body = DownloadInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = Download), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_download(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<DownloadInput>,
) -> ApiResult<(StatusCode, Json<Download>)> {
    let d = s
        .local
        .create_download(
            &p,
            DownloadRequest {
                repo_id: body.repo_id,
                revision: body.revision,
                files: body.files,
                include: body.include,
                dest: body.dest,
            },
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

/// The download queue, newest first (superadmin), with per-file progress,
/// speed and ETA of running downloads.
#[utoipa::path(get, path = "/api/v1/admin/downloads", tag = "local", params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DownloadList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_downloads(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<DownloadList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let (total, downloads) = s.local.list_downloads(&p, page).await?;
    Ok(Json(DownloadList {
        total,
        limit: page.limit,
        offset: page.offset,
        downloads,
    }))
}

/// One download (superadmin).
#[utoipa::path(get, path = "/api/v1/admin/downloads/{id}", tag = "local",
    params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Download), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_download(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Download>> {
    Ok(Json(s.local.get_download(&p, id).await?))
}

/// Cancels a queued or running download (superadmin); its partial files
/// stay, so the same download queued again resumes them.
#[utoipa::path(post, path = "/api/v1/admin/downloads/{id}/cancel", tag = "local",
    params(("id" = uuid::Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Download), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn cancel_download(
    State(s): State<AppState>,
    Auth(p): Auth,
    IdPath(id): IdPath,
) -> ApiResult<Json<Download>> {
    Ok(Json(s.local.cancel_download(&p, id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub adapters: Vec<Adapter>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterInput {
    /// Letters, digits, `.`, `_`, `-` (default: a new UUIDv7).
    pub id: Option<String>,
    pub name: String,
    pub base_model: String,
    /// Read from the file when not given.
    pub rank: Option<u32>,
    /// Read from the file (or its `adapter_config.json`) when not given.
    pub alpha: Option<f64>,
    /// Absolute, or relative to `<data_dir>/adapters/`; it must stay inside
    /// that directory or the models base directory.
    pub path: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterCreated {
    pub status: &'static str,
    pub adapter: Adapter,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterDeleted {
    pub status: &'static str,
    pub message: String,
}

/// Registered LoRA adapters (superadmin).
#[utoipa::path(get, path = "/api/v1/admin/adapters", tag = "local", params(ListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AdapterList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_adapters(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<AdapterList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let all = s.local.list_adapters(&p).await?;
    let total = all.len() as i64;
    let adapters = all
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    Ok(Json(AdapterList {
        total,
        limit: page.limit,
        offset: page.offset,
        adapters,
    }))
}

/// Registers a LoRA adapter file for a base model (superadmin, audited).
#[utoipa::path(post, path = "/api/v1/admin/adapters", tag = "local", request_body = AdapterInput,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = AdapterCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn register_adapter(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<AdapterInput>,
) -> ApiResult<(StatusCode, Json<AdapterCreated>)> {
    let adapter = s
        .local
        .register_adapter(
            &p,
            modelplane_domain::local::AdapterInput {
                id: body.id,
                name: body.name,
                base_model: body.base_model,
                rank: body.rank,
                alpha: body.alpha,
                path: body.path,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AdapterCreated {
            status: "ok",
            adapter,
        }),
    ))
}

/// Unregisters an adapter (superadmin, audited); the file stays on disk.
#[utoipa::path(delete, path = "/api/v1/admin/adapters/{id}", tag = "local",
    params(("id" = String, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = AdapterDeleted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_adapter(
    State(s): State<AppState>,
    Auth(p): Auth,
    KeyPath(id): KeyPath,
) -> ApiResult<Json<AdapterDeleted>> {
    let a = s.local.delete_adapter(&p, &id).await?;
    Ok(Json(AdapterDeleted {
        status: "ok",
        message: format!("Adapter '{}' removed", a.id),
    }))
}
