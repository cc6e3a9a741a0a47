//! GPU memory estimates: weights + KV cache + overhead.
//!
//! ```text
//! kv_cache = 2 (K and V) × layers × context_length × parallel × kv_heads × head_dim × bytes_per_element
//! overhead = max(512 MiB, weights / 20)          CUDA context, activations, compute buffers
//! total    = weights + kv_cache + overhead
//! per_gpu  = ceil(total / tensor_parallel_size)
//! fits     = per_gpu ≤ floor(gpu_vram_bytes × gpu_memory_utilization)
//! ```
//!
//! The KV cache is exact for a dense cache of the given element type (for
//! the block-quantized types, `bytes_per_element` is the block's bytes over
//! its 32 elements, and the total is rounded up to a whole byte). The
//! overhead is a heuristic: 512 MiB covers the CUDA context and llama.cpp's
//! compute buffer for small models, 5% of the weights covers vLLM's
//! activation and CUDA-graph memory as models grow. It is the same for every
//! engine, so estimates compare, and it is stated in every estimate's
//! `formula`.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::fsutil;
use crate::gguf::{self, GgufError, GgufHeader};
use crate::hfconfig::{ConfigError, ModelConfig};
use crate::naming;
use crate::safetensors::{self, SafetensorsError};

const MIB: u64 = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The fixed part of the overhead.
pub const MIN_OVERHEAD_BYTES: u64 = 512 * MIB;
/// The context length used when neither the caller nor the model gives one.
pub const DEFAULT_CONTEXT_LENGTH: u64 = 4096;
/// Above this `parallel`, estimates carry a warning.
const LARGE_PARALLEL: u64 = 64;

/// The element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvCacheType {
    F32,
    #[default]
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Iq4Nl,
    /// vLLM `fp8` (an alias of `fp8_e4m3` on CUDA).
    Fp8,
    Fp8E5M2,
    Fp8E4M3,
}

impl KvCacheType {
    /// Bytes per element as a fraction `(numerator, denominator)`: the
    /// block-quantized types store 32 elements in a block of
    /// 34 (q8_0), 18 (q4_0, iq4_nl), 20 (q4_1), 22 (q5_0) or 24 (q5_1) bytes.
    pub fn bytes_per_element_ratio(self) -> (u64, u64) {
        match self {
            KvCacheType::F32 => (4, 1),
            KvCacheType::F16 | KvCacheType::BF16 => (2, 1),
            KvCacheType::Q8_0 => (34, 32),
            KvCacheType::Q4_0 | KvCacheType::Iq4Nl => (18, 32),
            KvCacheType::Q4_1 => (20, 32),
            KvCacheType::Q5_0 => (22, 32),
            KvCacheType::Q5_1 => (24, 32),
            KvCacheType::Fp8 | KvCacheType::Fp8E5M2 | KvCacheType::Fp8E4M3 => (1, 1),
        }
    }

    pub fn bytes_per_element(self) -> f64 {
        let (num, den) = self.bytes_per_element_ratio();
        num as f64 / den as f64
    }

    /// The name as llama.cpp's `--cache-type-k` or vLLM's `--kv-cache-dtype` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KvCacheType::F32 => "f32",
            KvCacheType::F16 => "f16",
            KvCacheType::BF16 => "bf16",
            KvCacheType::Q8_0 => "q8_0",
            KvCacheType::Q4_0 => "q4_0",
            KvCacheType::Q4_1 => "q4_1",
            KvCacheType::Q5_0 => "q5_0",
            KvCacheType::Q5_1 => "q5_1",
            KvCacheType::Iq4Nl => "iq4_nl",
            KvCacheType::Fp8 => "fp8",
            KvCacheType::Fp8E5M2 => "fp8_e5m2",
            KvCacheType::Fp8E4M3 => "fp8_e4m3",
        }
    }
}

impl std::fmt::Display for KvCacheType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KvCacheType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The error for a KV cache type name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown KV cache type {0:?}; expected one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, fp8, fp8_e5m2, fp8_e4m3 (or auto)")]
pub struct UnknownKvCacheType(pub String);

impl FromStr for KvCacheType {
    type Err = UnknownKvCacheType;

    /// Case-insensitive. `"auto"` (vLLM's default: the model's dtype) is read
    /// as `f16`, the size of the 16-bit dtypes models ship in; `"fp16"`,
    /// `"half"`, `"float16"`, `"bfloat16"` and `"float32"` are accepted too.
    fn from_str(s: &str) -> Result<KvCacheType, UnknownKvCacheType> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" | "float" => KvCacheType::F32,
            "f16" | "fp16" | "float16" | "half" | "auto" => KvCacheType::F16,
            "bf16" | "bfloat16" => KvCacheType::BF16,
            "q8_0" => KvCacheType::Q8_0,
            "q4_0" => KvCacheType::Q4_0,
            "q4_1" => KvCacheType::Q4_1,
            "q5_0" => KvCacheType::Q5_0,
            "q5_1" => KvCacheType::Q5_1,
            "iq4_nl" => KvCacheType::Iq4Nl,
            "fp8" => KvCacheType::Fp8,
            "fp8_e5m2" => KvCacheType::Fp8E5M2,
            "fp8_e4m3" => KvCacheType::Fp8E4M3,
            _ => return Err(UnknownKvCacheType(s.to_owned())),
        })
    }
}

/// The numbers of a model that size its memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelShape {
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub weights_bytes: u64,
    /// The trained context length, when known.
    pub max_context: Option<u64>,
    /// `"gguf"` or `"safetensors"`.
    pub source: String,
}

/// How the model will be served.
#[derive(Debug, Clone, PartialEq)]
pub struct VramParams {
    /// Default: the model's `max_context`, else [`DEFAULT_CONTEXT_LENGTH`].
    pub context_length: Option<u64>,
    /// Sequences served at once (llama.cpp `--parallel`, vLLM `max_num_seqs`), each with a full context.
    pub parallel: u64,
    pub kv_cache_type: KvCacheType,
    pub tensor_parallel_size: u64,
    /// The share of each GPU the engine may use, in (0, 1].
    pub gpu_memory_utilization: f64,
    /// Memory of one GPU; `None` skips the fit check.
    pub gpu_vram_bytes: Option<u64>,
}

impl Default for VramParams {
    fn default() -> VramParams {
        VramParams {
            context_length: None,
            parallel: 1,
            kv_cache_type: KvCacheType::F16,
            tensor_parallel_size: 1,
            gpu_memory_utilization: 0.9,
            gpu_vram_bytes: None,
        }
    }
}

/// An estimate, with the numbers it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VramEstimate {
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub overhead_bytes: u64,
    pub total_bytes: u64,
    pub per_gpu_bytes: u64,
    /// `None` when `gpu_vram_bytes` was not given.
    pub fits: Option<bool>,
    pub context_length: u64,
    pub parallel: u64,
    pub kv_cache_type: String,
    pub tensor_parallel_size: u64,
    /// `floor(gpu_vram_bytes × gpu_memory_utilization)`.
    pub usable_vram_bytes: Option<u64>,
    /// The formula with this estimate's numbers in it.
    pub formula: String,
    pub warnings: Vec<String>,
}

/// Why an estimate could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VramError {
    #[error("invalid {name}: {reason}")]
    InvalidParam { name: &'static str, reason: String },
    #[error("the model does not say its {0}, which the estimate needs")]
    MissingField(&'static str),
    #[error("the estimate overflows 64 bits; check the parameters")]
    Overflow,
    #[error("no model files found in {0}")]
    NoModelFiles(String),
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the model folder failed: {0}")]
    Io(String),
}

impl VramError {
    /// A stable snake_case code for this kind of error, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            VramError::InvalidParam { .. } => "vram_invalid_param",
            VramError::MissingField(_) => "vram_missing_field",
            VramError::Overflow => "vram_overflow",
            VramError::NoModelFiles(_) => "vram_no_model_files",
            VramError::Gguf(e) => e.code(),
            VramError::Safetensors(e) => e.code(),
            VramError::Config(e) => e.code(),
            VramError::Io(_) => "vram_io",
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> VramError {
    VramError::InvalidParam {
        name,
        reason: reason.into(),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB)
}

/// Estimates the memory to serve `shape` as `params` say; see the module docs.
pub fn estimate(shape: &ModelShape, params: &VramParams) -> Result<VramEstimate, VramError> {
    let context_length = params
        .context_length
        .or(shape.max_context)
        .unwrap_or(DEFAULT_CONTEXT_LENGTH);
    if context_length == 0 {
        return Err(invalid("context_length", "must be at least 1"));
    }
    if params.parallel == 0 {
        return Err(invalid("parallel", "must be at least 1"));
    }
    if params.tensor_parallel_size == 0 {
        return Err(invalid("tensor_parallel_size", "must be at least 1"));
    }
    let utilization = params.gpu_memory_utilization;
    if !(utilization > 0.0 && utilization <= 1.0) {
        return Err(invalid(
            "gpu_memory_utilization",
            format!("must be in (0, 1], got {utilization}"),
        ));
    }
    if params.gpu_vram_bytes == Some(0) {
        return Err(invalid("gpu_vram_bytes", "must be at least 1 when given"));
    }
    for (name, value) in [
        ("layers", shape.layers),
        ("kv_heads", shape.kv_heads),
        ("head_dim", shape.head_dim),
    ] {
        if value == 0 {
            return Err(invalid(name, "the model shape gives 0"));
        }
    }

    let kv_type = params.kv_cache_type;
    let (num, den) = kv_type.bytes_per_element_ratio();
    let elements = [
        2,
        shape.layers,
        context_length,
        params.parallel,
        shape.kv_heads,
        shape.head_dim,
    ]
    .iter()
    .try_fold(1u128, |acc, &n| acc.checked_mul(u128::from(n)))
    .ok_or(VramError::Overflow)?;
    let kv_bytes = elements
        .checked_mul(u128::from(num))
        .map(|scaled| scaled.div_ceil(u128::from(den)))
        .ok_or(VramError::Overflow)?;
    let kv_cache_bytes = u64::try_from(kv_bytes).map_err(|_| VramError::Overflow)?;
    let weights_bytes = shape.weights_bytes;
    let overhead_bytes = MIN_OVERHEAD_BYTES.max(weights_bytes.div_ceil(20));
    let total_bytes = weights_bytes
        .checked_add(kv_cache_bytes)
        .and_then(|sum| sum.checked_add(overhead_bytes))
        .ok_or(VramError::Overflow)?;
    let tp = params.tensor_parallel_size;
    let per_gpu_bytes = total_bytes.div_ceil(tp);
    // f64 holds any VRAM size exactly enough; the product is floored.
    let usable_vram_bytes = params
        .gpu_vram_bytes
        .map(|vram| (vram as f64 * utilization).floor() as u64);
    let fits = usable_vram_bytes.map(|usable| per_gpu_bytes <= usable);

    let mut warnings = Vec::new();
    if let Some(max) = shape.max_context {
        if context_length > max {
            warnings.push(format!(
                "context_length {context_length} exceeds the model's trained maximum of {max}; output quality may degrade unless RoPE scaling is configured"
            ));
        }
    }
    if tp > 1 && !shape.kv_heads.is_multiple_of(tp) {
        warnings.push(format!(
            "tensor_parallel_size {tp} does not divide the model's {} KV heads; vLLM will refuse or replicate KV heads, and the per-GPU split is uneven",
            shape.kv_heads
        ));
    }
    if params.parallel > LARGE_PARALLEL {
        warnings.push(format!(
            "parallel {} is large: the KV cache above reserves a full context for every one of them",
            params.parallel
        ));
    }
    if weights_bytes == 0 {
        warnings
            .push("the model's weights size is unknown (0 bytes); the total is too low".to_owned());
    }
    if let (Some(usable), Some(false)) = (usable_vram_bytes, fits) {
        warnings.push(format!(
            "does not fit: needs {} per GPU but {} is usable ({} short); lower context_length or parallel, quantize the KV cache, or add GPUs",
            gib(per_gpu_bytes),
            gib(usable),
            gib(per_gpu_bytes - usable)
        ));
    }

    let bpe = if den == 1 {
        format!("{num} B")
    } else {
        format!("{num}/{den} B")
    };
    let formula = format!(
        "kv_cache = 2 × {layers} layers × {context_length} context × {parallel} parallel × {kv_heads} kv_heads × {head_dim} head_dim × {bpe} ({kv_type}) = {kv_cache_bytes} B; \
         overhead = max(512 MiB, weights / 20) = {overhead_bytes} B; \
         total = {weights_bytes} weights + {kv_cache_bytes} kv_cache + {overhead_bytes} overhead = {total_bytes} B ({total_gib}); \
         per_gpu = ceil({total_bytes} / {tp}) = {per_gpu_bytes} B",
        layers = shape.layers,
        parallel = params.parallel,
        kv_heads = shape.kv_heads,
        head_dim = shape.head_dim,
        total_gib = gib(total_bytes),
    );

    Ok(VramEstimate {
        weights_bytes,
        kv_cache_bytes,
        overhead_bytes,
        total_bytes,
        per_gpu_bytes,
        fits,
        context_length,
        parallel: params.parallel,
        kv_cache_type: kv_type.as_str().to_owned(),
        tensor_parallel_size: tp,
        usable_vram_bytes,
        formula,
        warnings,
    })
}

/// The shape of a GGUF model: `block_count` layers; `attention.head_count_kv`
/// KV heads (else `attention.head_count`; the largest when given per layer);
/// head dim `attention.key_length` (the larger of it and `value_length`
/// when both are given, so the estimate errs high) else
/// `embedding_length / head_count`; weights the tensor data size.
pub fn shape_from_gguf(h: &GgufHeader) -> Result<ModelShape, VramError> {
    shape_from_gguf_with_weights(h, h.tensor_data_bytes()?)
}

/// The shape of the model the GGUF file at `path` belongs to, and how many
/// parts of it are missing. For one part of a split GGUF
/// (`-00002-of-00003`), the weights are the tensor data of every part found
/// beside it (listed confined to `root`, so a sibling symlink that leaves it
/// is not read) and the numbers come from the first part when it is there.
pub fn shape_from_gguf_path(path: &Path, root: &Path) -> Result<(ModelShape, u32), VramError> {
    let header = gguf::read_path(path)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(split) = naming::shard_name(name) else {
        return Ok((shape_from_gguf(&header)?, 0));
    };
    let dir = path
        .parent()
        .ok_or_else(|| VramError::NoModelFiles(path.display().to_string()))?;
    let files = fsutil::list_files(dir, root).map_err(|e| VramError::Io(e.to_string()))?;
    let mut weights_bytes = header.tensor_data_bytes()?;
    let mut found = std::collections::BTreeSet::from([split.index]);
    let mut first = None;
    for file in files.iter().filter(|f| f.name != name) {
        let Some(other) = naming::shard_name(&file.name) else {
            continue;
        };
        if other.base != split.base || other.count != split.count || found.contains(&other.index) {
            continue;
        }
        // A part that does not parse counts as missing.
        let Ok(part) = gguf::read_path(&file.path) else {
            continue;
        };
        weights_bytes = weights_bytes.saturating_add(part.tensor_data_bytes().unwrap_or(0));
        found.insert(other.index);
        if other.index == 1 {
            first = Some(part);
        }
    }
    let missing = split
        .count
        .saturating_sub(u32::try_from(found.len()).unwrap_or(u32::MAX));
    let numbers = first.as_ref().unwrap_or(&header);
    Ok((
        shape_from_gguf_with_weights(numbers, weights_bytes)?,
        missing,
    ))
}

fn shape_from_gguf_with_weights(
    h: &GgufHeader,
    weights_bytes: u64,
) -> Result<ModelShape, VramError> {
    if h.architecture().is_none() {
        return Err(VramError::MissingField("general.architecture"));
    }
    let layers = h
        .arch_u64("block_count")
        .ok_or(VramError::MissingField("block_count"))?;
    let head_count = h.arch_u64_max("attention.head_count");
    let kv_heads = h
        .arch_u64_max("attention.head_count_kv")
        .or(head_count)
        .ok_or(VramError::MissingField("attention.head_count_kv"))?;
    let key_length = h.arch_u64("attention.key_length");
    let value_length = h.arch_u64("attention.value_length");
    let head_dim = match (key_length, value_length) {
        (Some(k), Some(v)) => Some(k.max(v)),
        (Some(k), None) => Some(k),
        _ => h
            .arch_u64("embedding_length")
            .zip(head_count.filter(|&n| n > 0))
            .map(|(embedding, heads)| embedding / heads),
    }
    .ok_or(VramError::MissingField("attention.key_length"))?;
    Ok(ModelShape {
        layers,
        kv_heads,
        head_dim,
        weights_bytes,
        max_context: h.arch_u64("context_length"),
        source: "gguf".to_owned(),
    })
}

/// The shape of the model in `dir` (not recursive; symlinks followed only
/// within `dir`):
///
/// * `config.json` and `*.safetensors`: numbers from the config (see
///   [`ModelConfig`]), weights the sum of the safetensors files' data bytes
///   (the shards present, each header read and checked).
/// * otherwise GGUF files: they are grouped into models (the shards of one
///   split model form one group; `mmproj` projector files are left out), the
///   group with the most bytes is chosen, its first shard gives the numbers
///   and the weights are the tensor data of all its shards present.
pub fn shape_from_folder(dir: &Path) -> Result<ModelShape, VramError> {
    let files = fsutil::list_files(dir, dir).map_err(|e| VramError::Io(e.to_string()))?;
    let config = files.iter().find(|f| f.name == "config.json");
    let safetensors: Vec<_> = files
        .iter()
        .filter(|f| fsutil::has_extension(&f.name, "safetensors"))
        .collect();
    if let (Some(config), false) = (config, safetensors.is_empty()) {
        let config = ModelConfig::read_path(&config.path)?;
        let mut weights_bytes = 0u64;
        for file in &safetensors {
            let header = safetensors::read_path(&file.path)?;
            weights_bytes = weights_bytes
                .checked_add(header.data_bytes())
                .ok_or(VramError::Overflow)?;
        }
        return Ok(ModelShape {
            layers: config
                .num_hidden_layers
                .ok_or(VramError::MissingField("num_hidden_layers"))?,
            kv_heads: config
                .kv_heads()
                .ok_or(VramError::MissingField("num_key_value_heads"))?,
            head_dim: config
                .head_dimension()
                .ok_or(VramError::MissingField("head_dim"))?,
            weights_bytes,
            max_context: config.max_position_embeddings,
            source: "safetensors".to_owned(),
        });
    }

    // Group GGUF files: shards by their base name, other files alone.
    let mut groups: Vec<(String, Vec<(u32, &fsutil::DirFile)>)> = Vec::new();
    for file in files
        .iter()
        .filter(|f| fsutil::has_extension(&f.name, "gguf"))
    {
        if file.name.to_ascii_lowercase().starts_with("mmproj") {
            continue;
        }
        let (key, index) = match naming::shard_name(&file.name) {
            Some(shard) => (format!("{}\0{}", shard.base, shard.count), shard.index),
            None => (file.name.clone(), 1),
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((index, file)),
            None => groups.push((key, vec![(index, file)])),
        }
    }
    let group_bytes = |members: &[(u32, &fsutil::DirFile)]| {
        members
            .iter()
            .fold(0u64, |sum, (_, f)| sum.saturating_add(f.len))
    };
    let Some((_, mut members)) = groups
        .into_iter()
        .max_by_key(|(key, members)| (group_bytes(members), std::cmp::Reverse(key.clone())))
    else {
        return Err(VramError::NoModelFiles(dir.display().to_string()));
    };
    members.sort_by_key(|(index, _)| *index);
    let mut first = None;
    let mut weights_bytes = 0u64;
    for (_, file) in &members {
        let header = gguf::read_path(&file.path)?;
        weights_bytes = weights_bytes
            .checked_add(header.tensor_data_bytes()?)
            .ok_or(VramError::Overflow)?;
        first.get_or_insert(header);
    }
    let first = first.ok_or_else(|| VramError::NoModelFiles(dir.display().to_string()))?;
    shape_from_gguf_with_weights(&first, weights_bytes)
}
