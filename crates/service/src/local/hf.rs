//! The Hugging Face Hub as an operator sees it: GGUF repos grouped into
//! quantisation variants with a recommendation that fits the GPU, remote
//! GGUF headers read with range requests, and model configs.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use modelplane_domain::key::Scope;
use modelplane_domain::local::{check_relative_path, check_repo_id, check_revision};
use modelplane_formats::naming::{quant_from_filename, shard_name};
use modelplane_formats::{gguf, hfconfig, vram};
use modelplane_hub::{HubClient, ProbeError, ProbeStep, RepoFile};

use super::{hub_error, validation, LocalModels};
use crate::auth::Principal;
use crate::error::{Result, ServiceError};

/// The most a remote GGUF header may take (a 256k vocabulary is ~10 MB).
const PROBE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Repos whose files are listed per search.
const SEARCH_MAX_REPOS: u32 = 20;
/// Weights plus this share for the KV cache and buffers count as fitting.
const FIT_HEADROOM: f64 = 1.2;

/// One quantisation of a GGUF repo: a file, or the parts of a split file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HfVariant {
    /// The file to ask for (the first part of a split file).
    pub filename: String,
    pub size_bytes: u64,
    pub quant: Option<String>,
    pub is_multipart: bool,
    /// Every part, in order (one for a single file).
    pub files: Vec<String>,
    pub fits_vram: Option<bool>,
}

/// A search hit: a repo with its GGUF variants.
#[derive(Debug, Clone, Serialize)]
pub struct HfSearchResult {
    pub repo_id: String,
    pub downloads: u64,
    pub likes: u64,
    pub gated: bool,
    pub variants: Vec<HfVariant>,
    pub recommended_variant: Option<String>,
    /// Whether the recommended variant fits one GPU (none: GPU memory unknown).
    pub fits_vram: Option<bool>,
    /// Why this repo's files could not be listed, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a remote GGUF file holds, read without downloading it.
#[derive(Debug, Clone, Serialize)]
pub struct HfProbe {
    pub repo_id: String,
    pub revision: String,
    pub filename: String,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    pub is_multipart: bool,
    /// Every part of a split file with its size (one entry otherwise).
    pub shards: Vec<ProbeShard>,
    pub total_size_bytes: u64,
    pub quant: Option<String>,
    /// Bytes of the file read to parse its header, and in how many range requests.
    pub header_bytes_read: u64,
    pub range_requests: u32,
    pub version: u32,
    pub tensor_count: usize,
    pub data_offset: u64,
    pub metadata: gguf::GgufSummary,
    pub header: gguf::MetadataReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeShard {
    pub filename: String,
    pub size_bytes: Option<u64>,
}

/// A repo's `config.json` and the facts read from it.
#[derive(Debug, Clone, Serialize)]
pub struct HfConfig {
    pub repo_id: String,
    pub revision: String,
    pub architecture: Option<String>,
    pub model_type: Option<String>,
    pub num_layers: Option<u64>,
    pub hidden_size: Option<u64>,
    pub num_attention_heads: Option<u64>,
    pub num_key_value_heads: Option<u64>,
    pub head_dim: Option<u64>,
    pub context_length: Option<u64>,
    pub vocab_size: Option<u64>,
    pub torch_dtype: Option<String>,
    pub config: serde_json::Value,
}

impl LocalModels {
    /// GGUF repos matching `query`, each with its variants.
    pub async fn hf_search(
        &self,
        p: &Principal,
        query: &str,
        limit: Option<u32>,
        vram_override: Option<u64>,
    ) -> Result<Vec<HfSearchResult>> {
        p.require(Scope::Admin)?;
        let query = query.trim();
        if query.is_empty() || query.len() > 200 {
            return Err(validation("query", "must be 1 to 200 characters"));
        }
        let limit = limit.unwrap_or(10).clamp(1, SEARCH_MAX_REPOS);
        let vram = match vram_override {
            Some(v) => Some(v),
            None => self.gpu_vram().await.map(|(v, _)| v),
        };
        let hub = self.hub().clone();
        let repos = hub
            .search_models(query, Some("gguf"), limit)
            .await
            .map_err(hub_error)?;
        let listed: Vec<_> = stream::iter(repos)
            .map(|repo| {
                let hub = hub.clone();
                async move {
                    let files = hub.list_files(&repo.id, "main").await;
                    (repo, files)
                }
            })
            .buffered(4)
            .collect()
            .await;
        let mut out = Vec::with_capacity(listed.len());
        for (repo, files) in listed {
            let (variants, error) = match files {
                Ok(files) => (gguf_variants(&files, vram), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            let recommended = recommend(&variants, vram);
            out.push(HfSearchResult {
                repo_id: repo.id,
                downloads: repo.downloads,
                likes: repo.likes,
                gated: repo.gated,
                fits_vram: recommended.and_then(|v| v.fits_vram),
                recommended_variant: recommended.and_then(|v| v.quant.clone()),
                variants,
                error,
            });
        }
        Ok(out)
    }

    /// Size, shard layout and parsed header of a remote GGUF, read with
    /// range requests.
    pub async fn hf_probe(
        &self,
        p: &Principal,
        repo_id: &str,
        filename: &str,
        revision: Option<&str>,
    ) -> Result<HfProbe> {
        p.require(Scope::Admin)?;
        let repo = check_repo_id(repo_id)?;
        let file = check_relative_path("filename", filename)?;
        if file.is_empty() {
            return Err(validation("filename", "must name a file"));
        }
        let revision = check_revision(revision)?;
        let hub = self.hub();
        let meta = hub
            .file_meta(&repo, &revision, &file)
            .await
            .map_err(hub_error)?;
        let (header, read) = probe_header(hub, &repo, &revision, &file).await?;
        let split = shard_name(&file);
        let shards = match &split {
            Some(s) => {
                let listing = hub.list_files(&repo, &revision).await.map_err(hub_error)?;
                shard_files(&listing, &file, s)
            }
            None => vec![ProbeShard {
                filename: file.clone(),
                size_bytes: meta.size,
            }],
        };
        let total = shards.iter().filter_map(|s| s.size_bytes).sum();
        let summary = header.summary();
        Ok(HfProbe {
            repo_id: repo,
            revision,
            quant: summary
                .file_type
                .clone()
                .or_else(|| quant_from_filename(&file)),
            filename: file,
            size_bytes: meta.size,
            sha256: meta.sha256,
            is_multipart: split.is_some(),
            shards,
            total_size_bytes: total,
            header_bytes_read: read.0,
            range_requests: read.1,
            version: header.version,
            tensor_count: header.tensors.len(),
            data_offset: header.data_offset,
            metadata: summary,
            header: header.metadata_report(),
        })
    }

    /// A repo's `config.json`.
    pub async fn hf_config(
        &self,
        p: &Principal,
        repo_id: &str,
        revision: Option<&str>,
    ) -> Result<HfConfig> {
        p.require(Scope::Admin)?;
        let repo = check_repo_id(repo_id)?;
        let revision = check_revision(revision)?;
        let (config, raw) = fetch_config(self.hub(), &repo, &revision).await?;
        Ok(HfConfig {
            repo_id: repo,
            revision,
            architecture: config.architectures.first().cloned(),
            model_type: config.model_type.clone(),
            num_layers: config.num_hidden_layers,
            hidden_size: config.hidden_size,
            num_attention_heads: config.num_attention_heads,
            num_key_value_heads: config.kv_heads(),
            head_dim: config.head_dimension(),
            context_length: config.max_position_embeddings,
            vocab_size: config.vocab_size,
            torch_dtype: config.torch_dtype.clone(),
            config: raw,
        })
    }
}

async fn fetch_config(
    hub: &HubClient,
    repo: &str,
    revision: &str,
) -> Result<(hfconfig::ModelConfig, serde_json::Value)> {
    let bytes = hub
        .fetch_small(repo, revision, "config.json", 4 * 1024 * 1024)
        .await
        .map_err(hub_error)?;
    let config = hfconfig::ModelConfig::from_json(&bytes).map_err(|e| ServiceError::Upstream {
        code: "upstream_malformed",
        message: format!("{repo}/config.json does not parse: {e}"),
        retry_after_secs: None,
        unavailable: false,
    })?;
    let raw = config.raw.clone();
    Ok((config, raw))
}

/// Reads a remote GGUF header, fetching more of the file while the parser
/// says it needs more. Returns the header and (bytes read, requests).
async fn probe_header(
    hub: &HubClient,
    repo: &str,
    revision: &str,
    file: &str,
) -> Result<(gguf::GgufHeader, (u64, u32))> {
    let mut prefix = gguf::PrefixParser::new();
    let probed = hub
        .probe_prefix(repo, revision, file, PROBE_MAX_BYTES, |buf| {
            prefix.parse(buf).map_err(|e| match e {
                gguf::GgufError::Truncated { needed } => ProbeStep::NeedMore(needed),
                other => ProbeStep::Fail(other),
            })
        })
        .await
        .map_err(|e| match e {
            ProbeError::Hub(h) => hub_error(h),
            ProbeError::Parse(g) => ServiceError::BadRequestCode {
                code: "not_gguf",
                message: format!("{repo}/{file} is not a readable GGUF file: {g}"),
            },
        })?;
    Ok((probed.value, (probed.bytes_read, probed.requests)))
}

/// The model's shape from the Hub: a GGUF file's header (read by ranges),
/// or `config.json` with the repo's safetensors parameter counts.
pub(super) async fn remote_shape(
    hub: &HubClient,
    repo_id: &str,
    filename: Option<&str>,
    revision: Option<&str>,
) -> Result<(vram::ModelShape, String, Vec<String>)> {
    let repo = check_repo_id(repo_id)?;
    let revision = check_revision(revision)?;
    match filename {
        Some(name) => {
            let file = check_relative_path("filename", name)?;
            let (header, _) = probe_header(hub, &repo, &revision, &file).await?;
            let mut shape =
                vram::shape_from_gguf(&header).map_err(|e| ServiceError::BadRequestCode {
                    code: "model_shape_unknown",
                    message: format!("{repo}/{file}: {e}"),
                })?;
            let mut warnings = Vec::new();
            if let Some(split) = shard_name(&file) {
                // The other parts' weights: their sizes less about one header each.
                let listing = hub.list_files(&repo, &revision).await.map_err(hub_error)?;
                let others: u64 = shard_files(&listing, &file, &split)
                    .iter()
                    .filter(|s| s.filename != file)
                    .filter_map(|s| s.size_bytes)
                    .sum();
                shape.weights_bytes = shape.weights_bytes.saturating_add(others);
                warnings.push(format!(
                    "split GGUF of {} parts: the other parts' weights are counted by file size",
                    split.count
                ));
            }
            Ok((shape, "gguf".to_owned(), warnings))
        }
        None => {
            let (config, _) = fetch_config(hub, &repo, &revision).await?;
            let info = hub.model_info(&repo, &revision).await.map_err(hub_error)?;
            let weights = safetensors_weight_bytes(info.safetensors.as_ref()).ok_or_else(|| {
                ServiceError::BadRequestCode {
                    code: "model_shape_unknown",
                    message: format!(
                        "{repo} publishes no safetensors parameter counts; name a GGUF filename instead"
                    ),
                }
            })?;
            let shape = vram::ModelShape {
                layers: config.num_hidden_layers.unwrap_or(0),
                kv_heads: config.kv_heads().unwrap_or(0),
                head_dim: config.head_dimension().unwrap_or(0),
                weights_bytes: weights,
                max_context: config.max_position_embeddings,
                source: "safetensors".into(),
            };
            if shape.layers == 0 || shape.kv_heads == 0 || shape.head_dim == 0 {
                return Err(ServiceError::BadRequestCode {
                    code: "model_shape_unknown",
                    message: format!(
                        "{repo}/config.json lacks the layer count, KV heads or head dimension"
                    ),
                });
            }
            Ok((shape, "hub".to_owned(), Vec::new()))
        }
    }
}

/// Bytes of weights from the Hub's `safetensors.parameters` (params per dtype).
fn safetensors_weight_bytes(v: Option<&serde_json::Value>) -> Option<u64> {
    let params = v?.get("parameters")?.as_object()?;
    let mut total = 0u64;
    for (dtype, n) in params {
        let n = n.as_u64()?;
        let bytes = match dtype.to_ascii_uppercase().as_str() {
            "F64" | "I64" | "U64" => 8.0,
            "F32" | "I32" | "U32" => 4.0,
            "F16" | "BF16" | "I16" | "U16" => 2.0,
            "F8_E4M3" | "F8_E5M2" | "I8" | "U8" | "BOOL" => 1.0,
            _ => 2.0,
        };
        total = total.saturating_add((n as f64 * bytes) as u64);
    }
    Some(total)
}

fn shard_files(
    listing: &[RepoFile],
    file: &str,
    split: &modelplane_formats::naming::ShardName,
) -> Vec<ProbeShard> {
    let dir = file.rsplit_once('/').map(|(d, _)| d);
    let mut parts: BTreeMap<u32, ProbeShard> = BTreeMap::new();
    for f in listing {
        let (fdir, name) = match f.path.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, f.path.as_str()),
        };
        if fdir != dir {
            continue;
        }
        if let Some(s) = shard_name(name) {
            if s.base == split.base && s.count == split.count {
                parts.insert(
                    s.index,
                    ProbeShard {
                        filename: f.path.clone(),
                        size_bytes: Some(f.size),
                    },
                );
            }
        }
    }
    parts.into_values().collect()
}

/// A quantisation's rank: higher keeps more of the model.
pub fn quant_quality(quant: &str) -> u32 {
    const ORDER: &[&str] = &[
        "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "Q2_K", "Q2_K_S", "IQ3_XXS",
        "IQ3_XS", "IQ3_S", "Q3_K_S", "IQ3_M", "Q3_K_M", "Q3_K_L", "IQ4_XS", "IQ4_NL", "Q4_0",
        "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16",
        "BF16", "F32",
    ];
    ORDER
        .iter()
        .position(|q| q.eq_ignore_ascii_case(quant))
        .map(|i| i as u32 + 1)
        .unwrap_or(0)
}

/// The GGUF files of a listing as variants, split files grouped, largest
/// quantisation last.
pub fn gguf_variants(files: &[RepoFile], vram: Option<u64>) -> Vec<HfVariant> {
    let mut singles = Vec::new();
    let mut splits: BTreeMap<(String, u32), Vec<(u32, &RepoFile)>> = BTreeMap::new();
    for f in files {
        if !f.path.to_ascii_lowercase().ends_with(".gguf") {
            continue;
        }
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        // Vision projectors are not models of their own.
        if name.to_ascii_lowercase().starts_with("mmproj") {
            continue;
        }
        match shard_name(name) {
            Some(s) => splits
                .entry((
                    format!(
                        "{}{}",
                        f.path.strip_suffix(name).unwrap_or_default(),
                        s.base
                    ),
                    s.count,
                ))
                .or_default()
                .push((s.index, f)),
            None => singles.push(f),
        }
    }
    let fits = |size: u64| vram.map(|v| (size as f64) * FIT_HEADROOM <= v as f64);
    let mut out: Vec<HfVariant> = singles
        .into_iter()
        .map(|f| HfVariant {
            filename: f.path.clone(),
            size_bytes: f.size,
            quant: quant_from_filename(&f.path),
            is_multipart: false,
            files: vec![f.path.clone()],
            fits_vram: fits(f.size),
        })
        .collect();
    for (_, mut parts) in splits {
        parts.sort_by_key(|(i, _)| *i);
        let size = parts.iter().map(|(_, f)| f.size).sum();
        let first = parts[0].1;
        out.push(HfVariant {
            filename: first.path.clone(),
            size_bytes: size,
            quant: quant_from_filename(&first.path),
            is_multipart: true,
            files: parts.iter().map(|(_, f)| f.path.clone()).collect(),
            fits_vram: fits(size),
        });
    }
    out.sort_by(|a, b| {
        let qa = a.quant.as_deref().map(quant_quality).unwrap_or(0);
        let qb = b.quant.as_deref().map(quant_quality).unwrap_or(0);
        qa.cmp(&qb)
            .then(a.size_bytes.cmp(&b.size_bytes))
            .then(a.filename.cmp(&b.filename))
    });
    out
}

/// The variant to suggest: the best quantisation that fits the GPU; with
/// no GPU memory known, Q4_K_M (the usual balance) or the nearest to it.
pub fn recommend(variants: &[HfVariant], vram: Option<u64>) -> Option<&HfVariant> {
    if variants.is_empty() {
        return None;
    }
    if vram.is_some() {
        if let Some(best) = variants
            .iter()
            .filter(|v| v.fits_vram == Some(true))
            .max_by_key(|v| {
                (
                    v.quant.as_deref().map(quant_quality).unwrap_or(0),
                    v.size_bytes,
                )
            })
        {
            return Some(best);
        }
        // Nothing fits: the smallest comes closest.
        return variants.iter().min_by_key(|v| v.size_bytes);
    }
    let target = quant_quality("Q4_K_M") as i64;
    variants.iter().min_by_key(|v| {
        let q = v.quant.as_deref().map(quant_quality).unwrap_or(0) as i64;
        ((q - target).abs(), v.size_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> RepoFile {
        RepoFile {
            path: path.into(),
            size,
            sha256: None,
            blob_id: None,
            is_lfs: true,
        }
    }

    #[test]
    fn variants_group_split_files_and_skip_projectors() {
        let files = vec![
            file("README.md", 10),
            file("model.Q4_K_M.gguf", 4_000),
            file("model.Q8_0.gguf", 8_000),
            file("big-Q6_K-00001-of-00002.gguf", 3_000),
            file("big-Q6_K-00002-of-00002.gguf", 3_500),
            file("mmproj-model-f16.gguf", 600),
        ];
        let v = gguf_variants(&files, None);
        let names: Vec<_> = v.iter().map(|v| v.filename.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "model.Q4_K_M.gguf",
                "big-Q6_K-00001-of-00002.gguf",
                "model.Q8_0.gguf"
            ]
        );
        let split = &v[1];
        assert!(split.is_multipart);
        assert_eq!(split.size_bytes, 6_500);
        assert_eq!(split.files.len(), 2);
        assert_eq!(split.quant.as_deref(), Some("Q6_K"));
        assert!(v.iter().all(|v| v.fits_vram.is_none()));
    }

    #[test]
    fn recommendation_takes_the_best_that_fits_else_q4_k_m() {
        let files = vec![
            file("m.Q2_K.gguf", 2_000),
            file("m.Q4_K_M.gguf", 4_000),
            file("m.Q8_0.gguf", 8_000),
        ];
        // 6000 bytes of VRAM: Q4_K_M (4000 × 1.2 = 4800) fits, Q8_0 does not.
        let v = gguf_variants(&files, Some(6_000));
        let r = recommend(&v, Some(6_000)).expect("one");
        assert_eq!(r.quant.as_deref(), Some("Q4_K_M"));
        assert_eq!(r.fits_vram, Some(true));
        // Plenty of VRAM: the best quantisation.
        let v = gguf_variants(&files, Some(100_000));
        assert_eq!(
            recommend(&v, Some(100_000)).and_then(|r| r.quant.as_deref()),
            Some("Q8_0")
        );
        // Too little for any: the smallest, marked as not fitting.
        let v = gguf_variants(&files, Some(1_000));
        let r = recommend(&v, Some(1_000)).expect("one");
        assert_eq!(r.quant.as_deref(), Some("Q2_K"));
        assert_eq!(r.fits_vram, Some(false));
        // Unknown VRAM: Q4_K_M.
        let v = gguf_variants(&files, None);
        assert_eq!(
            recommend(&v, None).and_then(|r| r.quant.as_deref()),
            Some("Q4_K_M")
        );
        assert!(recommend(&[], None).is_none());
    }

    #[test]
    fn safetensors_parameter_counts_become_bytes() {
        let v = serde_json::json!({"parameters": {"BF16": 1000, "F32": 10}, "total": 1010});
        assert_eq!(safetensors_weight_bytes(Some(&v)), Some(2_040));
        assert_eq!(safetensors_weight_bytes(None), None);
    }
}
