//! Summaries of a GGUF header for API responses.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{is_known_architecture, GgufHeader, Value};

/// Metadata keys whose values are a vocabulary, left out of
/// [`MetadataReport::raw`] whatever their length.
pub const VOCABULARY_KEYS: &[&str] = &[
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
];

/// Arrays longer than this are summarised in [`MetadataReport::raw`].
pub const RAW_ARRAY_MAX_LEN: usize = 1024;

/// The facts about a GGUF model a listing shows (the `metadata` of an
/// inspect-folder group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufSummary {
    pub architecture: Option<String>,
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
    pub block_count: Option<u64>,
    pub attention_head_count: Option<u64>,
    /// The largest value when the file gives one per layer.
    pub attention_head_count_kv: Option<u64>,
    /// Length of `tokenizer.ggml.tokens`, else `{arch}.vocab_size`.
    pub vocab_size: Option<u64>,
    /// The short llama.cpp file-type name (`"Q4_K_M"`), see
    /// [`GgufHeader::quantization`].
    pub file_type: Option<String>,
}

/// The metadata endpoint's body: five sections, each with fixed keys whose
/// value is `null` when the file does not say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataReport {
    pub general: GeneralReport,
    pub model: ModelReport,
    pub tokenizer: TokenizerReport,
    pub tensors: TensorsReport,
    /// Every metadata key (sorted by key), except [`VOCABULARY_KEYS`]; arrays
    /// longer than [`RAW_ARRAY_MAX_LEN`] (at any depth) are replaced by
    /// `{"type":"array","element_type":..,"len":N}`.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneralReport {
    pub name: Option<String>,
    pub architecture: Option<String>,
    /// Whether llama.cpp knows the architecture, see
    /// [`KNOWN_ARCHITECTURES`](super::KNOWN_ARCHITECTURES).
    pub architecture_supported: bool,
    /// `general.file_type`, the raw `llama_ftype` id.
    pub file_type: Option<u64>,
    /// See [`GgufHeader::quantization`].
    pub quantization: Option<String>,
}

/// `{arch}.*` hyperparameters. Integer keys that some architectures store
/// per layer (head counts, feed-forward length) give their largest value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    pub context_length: Option<u64>,
    pub block_count: Option<u64>,
    pub embedding_length: Option<u64>,
    pub feed_forward_length: Option<u64>,
    pub head_count: Option<u64>,
    pub head_count_kv: Option<u64>,
    pub rope_dimension_count: Option<u64>,
    pub rope_freq_base: Option<f64>,
    pub layer_norm_rms_epsilon: Option<f64>,
    pub vocab_size: Option<u64>,
    pub expert_count: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizerReport {
    /// `tokenizer.ggml.model` (`"llama"`, `"gpt2"`, ...).
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`, the pre-tokenizer.
    pub pre: Option<String>,
    pub eos_token_id: Option<u64>,
    pub bos_token_id: Option<u64>,
    pub padding_token_id: Option<u64>,
    /// Whether `tokenizer.chat_template` is present (its text is in `raw`).
    pub chat_template: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorsReport {
    pub count: u64,
    pub data_offset: u64,
    pub alignment: u64,
    /// Sum of tensor data sizes; `null` only if it overflows 64 bits.
    pub total_bytes: Option<u64>,
    /// Tensor count per ggml type name.
    pub types: BTreeMap<String, u64>,
}

impl GgufHeader {
    /// The facts an inspect-folder listing shows.
    pub fn summary(&self) -> GgufSummary {
        GgufSummary {
            architecture: self.architecture().map(str::to_owned),
            context_length: self.arch_u64("context_length"),
            embedding_length: self.arch_u64("embedding_length"),
            block_count: self.arch_u64("block_count"),
            attention_head_count: self.arch_u64_max("attention.head_count"),
            attention_head_count_kv: self.arch_u64_max("attention.head_count_kv"),
            vocab_size: self.vocab_size(),
            file_type: self.quantization(),
        }
    }

    /// The metadata endpoint's body.
    pub fn metadata_report(&self) -> MetadataReport {
        let string = |key: &str| self.get(key).and_then(Value::as_str).map(str::to_owned);
        let integer = |key: &str| self.get(key).and_then(Value::as_u64);
        let architecture = self.architecture().map(str::to_owned);

        let general = GeneralReport {
            name: string("general.name"),
            architecture_supported: architecture.as_deref().is_some_and(is_known_architecture),
            architecture,
            file_type: self.file_type(),
            quantization: self.quantization(),
        };
        let model = ModelReport {
            context_length: self.arch_u64("context_length"),
            block_count: self.arch_u64("block_count"),
            embedding_length: self.arch_u64("embedding_length"),
            feed_forward_length: self.arch_u64_max("feed_forward_length"),
            head_count: self.arch_u64_max("attention.head_count"),
            head_count_kv: self.arch_u64_max("attention.head_count_kv"),
            rope_dimension_count: self.arch_u64("rope.dimension_count"),
            rope_freq_base: self.arch_f64("rope.freq_base"),
            layer_norm_rms_epsilon: self.arch_f64("attention.layer_norm_rms_epsilon"),
            vocab_size: self.vocab_size(),
            expert_count: self.arch_u64("expert_count"),
        };
        let tokenizer = TokenizerReport {
            model: string("tokenizer.ggml.model"),
            pre: string("tokenizer.ggml.pre"),
            eos_token_id: integer("tokenizer.ggml.eos_token_id"),
            bos_token_id: integer("tokenizer.ggml.bos_token_id"),
            padding_token_id: integer("tokenizer.ggml.padding_token_id"),
            chat_template: self.get("tokenizer.chat_template").is_some(),
        };
        let mut types = BTreeMap::new();
        for tensor in &self.tensors {
            *types
                .entry(tensor.ggml_type.name().to_owned())
                .or_insert(0u64) += 1;
        }
        let tensors = TensorsReport {
            count: u64::try_from(self.tensors.len()).unwrap_or(u64::MAX),
            data_offset: self.data_offset,
            alignment: self.alignment,
            total_bytes: self.tensor_data_bytes().ok(),
            types,
        };
        MetadataReport {
            general,
            model,
            tokenizer,
            tensors,
            raw: self.raw_json(),
        }
    }

    /// The `raw` section of [`metadata_report`](Self::metadata_report).
    pub fn raw_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.metadata
            .iter()
            .filter(|(key, _)| !VOCABULARY_KEYS.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.to_json_capped(RAW_ARRAY_MAX_LEN)))
            .collect()
    }

    /// The same pairs as [`raw_json`](Self::raw_json), as a list of
    /// `{"key": .., "value": ..}` objects in file order: the shape of `raw`
    /// in the seed API document.
    pub fn raw_pairs(&self) -> Vec<serde_json::Value> {
        self.metadata
            .iter()
            .filter(|(key, _)| !VOCABULARY_KEYS.contains(&key.as_str()))
            .map(|(key, value)| {
                serde_json::json!({ "key": key, "value": value.to_json_capped(RAW_ARRAY_MAX_LEN) })
            })
            .collect()
    }
}
