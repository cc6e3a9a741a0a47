//! Hugging Face `config.json`: the numbers that size a model.

use serde::Serialize;
use serde_json::Value as Json;

/// Why a JSON config could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("the config is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the config is JSON but not an object")]
    NotAnObject,
    #[error("reading the config failed: {0}")]
    Io(String),
}

impl ConfigError {
    /// A stable snake_case code for this kind of error, for API bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::InvalidJson(_) => "config_invalid_json",
            ConfigError::NotAnObject => "config_not_an_object",
            ConfigError::Io(_) => "config_io",
        }
    }
}

/// Keys under which multimodal configs nest their language model, tried in
/// order when a number is not at the top level.
pub const NESTED_LM_KEYS: &[&str] = &["text_config", "llm_config", "language_config"];

/// The parts of a `config.json` that describe the language model. Each
/// number is read from its usual key or the first of its older aliases
/// (`n_layer`, `n_embd`, ... for GPT-2 style configs), at the top level,
/// else from the nested language model ([`NESTED_LM_KEYS`]). Values of the
/// wrong type (a string, `null`, a negative or fractional number) count as
/// absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub num_hidden_layers: Option<u64>,
    pub num_attention_heads: Option<u64>,
    pub num_key_value_heads: Option<u64>,
    pub hidden_size: Option<u64>,
    pub head_dim: Option<u64>,
    pub intermediate_size: Option<u64>,
    pub max_position_embeddings: Option<u64>,
    pub vocab_size: Option<u64>,
    /// `torch_dtype`, or `dtype` as transformers ≥ 4.56 writes it.
    pub torch_dtype: Option<String>,
    /// The whole document.
    pub raw: Json,
}

const LAYERS: &[&str] = &["num_hidden_layers", "n_layer", "num_layers", "n_layers"];
const HEADS: &[&str] = &["num_attention_heads", "n_head", "num_heads", "n_heads"];
const KV_HEADS: &[&str] = &[
    "num_key_value_heads",
    "num_kv_heads",
    "n_head_kv",
    "multi_query_group_num",
];
const HIDDEN: &[&str] = &["hidden_size", "n_embd", "d_model", "dim"];
const HEAD_DIM: &[&str] = &["head_dim", "kv_channels"];
const INTERMEDIATE: &[&str] = &["intermediate_size", "n_inner", "ffn_hidden_size", "d_ff"];
const POSITIONS: &[&str] = &[
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "max_seq_len",
    "n_ctx",
];
const VOCAB: &[&str] = &["vocab_size", "padded_vocab_size", "n_vocab"];
const DTYPE: &[&str] = &["torch_dtype", "dtype"];

impl ModelConfig {
    pub fn from_json(bytes: &[u8]) -> Result<ModelConfig, ConfigError> {
        let raw: Json =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::InvalidJson(e.to_string()))?;
        let Json::Object(top) = &raw else {
            return Err(ConfigError::NotAnObject);
        };
        let nested: Vec<&serde_json::Map<String, Json>> = NESTED_LM_KEYS
            .iter()
            .filter_map(|key| top.get(*key)?.as_object())
            .collect();
        let scopes: Vec<&serde_json::Map<String, Json>> =
            std::iter::once(top).chain(nested).collect();
        let number = |keys: &[&str]| {
            scopes
                .iter()
                .find_map(|scope| keys.iter().find_map(|key| scope.get(*key)?.as_u64()))
        };
        let string = |keys: &[&str]| {
            scopes.iter().find_map(|scope| {
                keys.iter()
                    .find_map(|key| scope.get(*key)?.as_str().map(str::to_owned))
            })
        };
        let architectures = top
            .get("architectures")
            .and_then(Json::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ModelConfig {
            architectures,
            model_type: top
                .get("model_type")
                .and_then(Json::as_str)
                .map(str::to_owned),
            num_hidden_layers: number(LAYERS),
            num_attention_heads: number(HEADS),
            num_key_value_heads: number(KV_HEADS),
            hidden_size: number(HIDDEN),
            head_dim: number(HEAD_DIM),
            intermediate_size: number(INTERMEDIATE),
            max_position_embeddings: number(POSITIONS),
            vocab_size: number(VOCAB),
            torch_dtype: string(DTYPE),
            raw,
        })
    }

    /// Reads and parses the `config.json` at `path`.
    pub fn read_path(path: &std::path::Path) -> Result<ModelConfig, ConfigError> {
        // Configs are a few KiB; refuse to slurp anything huge named config.json.
        const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
        let bytes = read_capped(path, MAX_CONFIG_BYTES)?;
        ModelConfig::from_json(&bytes)
    }

    /// KV heads: `num_key_value_heads`, else `num_attention_heads` (no GQA).
    pub fn kv_heads(&self) -> Option<u64> {
        self.num_key_value_heads.or(self.num_attention_heads)
    }

    /// Per-head dimension: `head_dim`, else `hidden_size / num_attention_heads`.
    pub fn head_dimension(&self) -> Option<u64> {
        self.head_dim.filter(|&d| d > 0).or_else(|| {
            self.hidden_size?
                .checked_div(self.num_attention_heads.filter(|&h| h > 0)?)
        })
    }

    /// The first of `architectures` (`"LlamaForCausalLM"`).
    pub fn architecture(&self) -> Option<&str> {
        self.architectures.first().map(String::as_str)
    }
}

/// Reads a whole small file, refusing one over `cap` bytes.
pub(crate) fn read_capped(path: &std::path::Path, cap: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ConfigError::Io(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ConfigError::Io(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > cap {
        return Err(ConfigError::Io(format!(
            "{} is larger than {cap} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}
