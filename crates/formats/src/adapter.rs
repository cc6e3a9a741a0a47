//! LoRA adapters: PEFT's `adapter_config.json`, and rank and alpha read from
//! adapter files (PEFT safetensors or llama.cpp GGUF).

use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use crate::gguf::{self, GgufError};
pub use crate::hfconfig::ConfigError;
use crate::safetensors::{self, SafetensorsError};

/// The fields of a PEFT `adapter_config.json` that matter for serving.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterConfig {
    /// `r`.
    pub rank: Option<u32>,
    /// `lora_alpha`.
    pub alpha: Option<f64>,
    /// `base_model_name_or_path`.
    pub base_model: Option<String>,
    /// `peft_type` (`"LORA"`).
    pub peft_type: Option<String>,
    /// `target_modules`: a list, or a single regex string as one element.
    pub target_modules: Vec<String>,
}

/// Parses a PEFT `adapter_config.json`. Fields of the wrong type count as absent.
pub fn from_json(bytes: &[u8]) -> Result<AdapterConfig, ConfigError> {
    let raw: Json =
        serde_json::from_slice(bytes).map_err(|e| ConfigError::InvalidJson(e.to_string()))?;
    let Json::Object(map) = raw else {
        return Err(ConfigError::NotAnObject);
    };
    let string = |key: &str| map.get(key).and_then(Json::as_str).map(str::to_owned);
    let target_modules = match map.get("target_modules") {
        Some(Json::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Json::String(pattern)) => vec![pattern.clone()],
        _ => Vec::new(),
    };
    Ok(AdapterConfig {
        rank: map
            .get("r")
            .and_then(Json::as_u64)
            .and_then(|r| u32::try_from(r).ok()),
        alpha: map.get("lora_alpha").and_then(Json::as_f64),
        base_model: string("base_model_name_or_path"),
        peft_type: string("peft_type"),
        target_modules,
    })
}

/// What an adapter file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterFacts {
    pub rank: Option<u32>,
    pub alpha: Option<f64>,
    pub base_model: Option<String>,
    /// `"safetensors"` or `"gguf"`.
    pub format: String,
    /// Names of the adapted modules, from `adapter_config.json` when present.
    pub target_modules: Vec<String>,
    /// Whether an `adapter_config.json` beside the file was read.
    pub has_config: bool,
}

/// Why an adapter could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    #[error("reading the adapter failed: {0}")]
    Io(String),
    #[error("the adapter's GGUF header is invalid: {0}")]
    Gguf(#[from] GgufError),
    #[error("the adapter's safetensors header is invalid: {0}")]
    Safetensors(#[from] SafetensorsError),
    #[error("the adapter_config.json beside the adapter is invalid: {0}")]
    Config(#[from] ConfigError),
    #[error("{0} does not look like a LoRA adapter: {1}")]
    NotAnAdapter(String, &'static str),
}

impl AdapterError {
    /// A stable snake_case code for this kind of error, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            AdapterError::Io(_) => "adapter_io",
            AdapterError::Gguf(e) => e.code(),
            AdapterError::Safetensors(e) => e.code(),
            AdapterError::Config(e) => e.code(),
            AdapterError::NotAnAdapter(..) => "adapter_not_lora",
        }
    }
}

/// Reads rank, alpha and base model from a LoRA adapter file.
///
/// `path` is a `.safetensors` or `.gguf` file (told apart by their first
/// bytes, not the name), or a directory holding `adapter_model.safetensors`
/// (else one `.gguf`).
///
/// * safetensors (PEFT): rank is the smaller dim of the `lora_A` /
///   `lora_down` weights (the largest such rank when modules differ); alpha
///   comes from `__metadata__` (`lora_alpha`, `alpha` or kohya's
///   `ss_network_alpha`) when present, since alpha tensors' values live in
///   the data section this never reads.
/// * GGUF (llama.cpp `convert_lora_to_gguf.py`): alpha is
///   `adapter.lora.alpha`; rank the smaller dim of a `*.lora_a` tensor; base
///   model `general.base_model.0.repo_url` or `.name`. A GGUF whose
///   `general.type` is not `"adapter"` and that has no LoRA tensors is refused.
///
/// An `adapter_config.json` in the same directory fills in whatever the file
/// does not say (its `r` is used only when the weights give no rank).
pub fn read_adapter(path: &Path) -> Result<AdapterFacts, AdapterError> {
    let io = |e: std::io::Error| AdapterError::Io(format!("{}: {e}", path.display()));
    let file = if path.is_dir() {
        find_adapter_file(path).map_err(io)?
    } else {
        path.to_path_buf()
    };
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(&file).map_err(io)?;
        // A file shorter than four bytes is neither format; let the
        // safetensors reader say why.
        let _ = f.read(&mut magic).map_err(io)?;
    }
    let mut facts = if u32::from_le_bytes(magic) == gguf::MAGIC {
        from_gguf(&file)?
    } else {
        from_safetensors(&file)?
    };
    if let Some(config) = read_sibling_config(&file)? {
        facts.has_config = true;
        facts.rank = facts.rank.or(config.rank);
        facts.alpha = facts.alpha.or(config.alpha);
        facts.base_model = facts.base_model.or(config.base_model);
        facts.target_modules = config.target_modules;
    }
    if facts.rank.is_none() && !facts.has_config && facts.format == "safetensors" {
        return Err(AdapterError::NotAnAdapter(
            file.display().to_string(),
            "it has no lora_A/lora_down weights and no adapter_config.json",
        ));
    }
    Ok(facts)
}

fn find_adapter_file(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let preferred = dir.join("adapter_model.safetensors");
    if preferred.is_file() {
        return Ok(preferred);
    }
    let files = crate::fsutil::list_files(dir, dir)?;
    files
        .into_iter()
        .find(|f| crate::fsutil::has_extension(&f.name, "gguf"))
        .map(|f| f.path)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no adapter_model.safetensors or .gguf file in the directory",
            )
        })
}

fn read_sibling_config(file: &Path) -> Result<Option<AdapterConfig>, AdapterError> {
    const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
    let Some(dir) = file.parent() else {
        return Ok(None);
    };
    let config_path = dir.join("adapter_config.json");
    if !config_path.is_file() {
        return Ok(None);
    }
    let bytes = crate::hfconfig::read_capped(&config_path, MAX_CONFIG_BYTES)?;
    Ok(Some(from_json(&bytes)?))
}

/// Whether a tensor name is a LoRA down-projection (the `[r, in]` half).
fn is_lora_down(name: &str) -> bool {
    name.contains("lora_A") || name.contains("lora_down") || name.ends_with(".lora_a")
}

fn from_safetensors(path: &Path) -> Result<AdapterFacts, AdapterError> {
    let header = safetensors::read_path(path)?;
    let rank = header
        .tensors
        .iter()
        .filter(|t| is_lora_down(&t.name) && t.shape.len() >= 2)
        .filter_map(|t| t.shape.iter().copied().min())
        .max()
        .and_then(|r| u32::try_from(r).ok());
    let alpha = ["lora_alpha", "alpha", "ss_network_alpha"]
        .iter()
        .find_map(|key| header.metadata.get(*key)?.trim().parse::<f64>().ok());
    let base_model = ["base_model_name_or_path", "base_model", "ss_sd_model_name"]
        .iter()
        .find_map(|key| header.metadata.get(*key).cloned());
    Ok(AdapterFacts {
        rank,
        alpha,
        base_model,
        format: "safetensors".to_owned(),
        target_modules: Vec::new(),
        has_config: false,
    })
}

fn from_gguf(path: &Path) -> Result<AdapterFacts, AdapterError> {
    let header = gguf::read_path(path)?;
    let is_adapter = header.get("general.type").and_then(gguf::Value::as_str) == Some("adapter");
    let rank = header
        .tensors
        .iter()
        .filter(|t| is_lora_down(&t.name) && t.dims.len() >= 2)
        .filter_map(|t| t.dims.iter().copied().min())
        .max()
        .and_then(|r| u32::try_from(r).ok());
    if !is_adapter && rank.is_none() {
        return Err(AdapterError::NotAnAdapter(
            path.display().to_string(),
            "its general.type is not \"adapter\" and it has no lora_a tensors",
        ));
    }
    let alpha = header
        .get("adapter.lora.alpha")
        .and_then(gguf::Value::as_f64);
    let base_model = ["general.base_model.0.repo_url", "general.base_model.0.name"]
        .iter()
        .find_map(|key| header.get(key)?.as_str().map(str::to_owned));
    Ok(AdapterFacts {
        rank,
        alpha,
        base_model,
        format: "gguf".to_owned(),
        target_modules: Vec::new(),
        has_config: false,
    })
}
