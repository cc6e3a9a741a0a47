//! The global catalog: facts about models as their providers publish them,
//! shared by every org and fed by ingestion sources.
//!
//! A source turns one listing entry into a [`SourceRecord`]: the facts it
//! knows ([`ModelFacts`], every field optional) plus aliases and the raw
//! payload. [`merge`] folds a record into a catalog entry field by field,
//! following each field's source precedence and never overwriting a field an
//! admin set by hand; it reports exactly which fields changed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::time::Timestamp;

/// Where catalog facts come from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    OpenaiApi,
    AnthropicApi,
    GoogleApi,
    MistralApi,
    CohereApi,
    XaiApi,
    Huggingface,
    DeprecationsInfo,
    ModelsDev,
    Openrouter,
    LitellmPrices,
}

impl Source {
    pub const ALL: [Source; 11] = [
        Self::OpenaiApi,
        Self::AnthropicApi,
        Self::GoogleApi,
        Self::MistralApi,
        Self::CohereApi,
        Self::XaiApi,
        Self::Huggingface,
        Self::DeprecationsInfo,
        Self::ModelsDev,
        Self::Openrouter,
        Self::LitellmPrices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenaiApi => "openai-api",
            Self::AnthropicApi => "anthropic-api",
            Self::GoogleApi => "google-api",
            Self::MistralApi => "mistral-api",
            Self::CohereApi => "cohere-api",
            Self::XaiApi => "xai-api",
            Self::Huggingface => "huggingface",
            Self::DeprecationsInfo => "deprecations-info",
            Self::ModelsDev => "models-dev",
            Self::Openrouter => "openrouter",
            Self::LitellmPrices => "litellm-prices",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The provider whose own listing this source is; None for sources that
    /// span providers (aggregators, Hugging Face, deprecation data).
    pub fn provider(self) -> Option<Provider> {
        let slug = match self {
            Self::OpenaiApi => "openai",
            Self::AnthropicApi => "anthropic",
            Self::GoogleApi => "google",
            Self::MistralApi => "mistral",
            Self::CohereApi => "cohere",
            Self::XaiApi => "xai",
            _ => return None,
        };
        Provider::known(slug)
    }

    /// The configuration key of this source (`[sources.<key>]`, and the
    /// `MODELPLANE_SOURCES__<KEY>__…` environment variables upper-cased).
    pub fn config_key(self) -> String {
        self.as_str().replace('-', "_")
    }

    /// What this source is authoritative for, most important first. Used by
    /// [`Field::rank`]; a source absent from a field's list never sets it.
    fn kind(self) -> SourceKind {
        match self {
            Self::OpenaiApi
            | Self::AnthropicApi
            | Self::GoogleApi
            | Self::MistralApi
            | Self::CohereApi
            | Self::XaiApi => SourceKind::Official,
            Self::Huggingface => SourceKind::Hub,
            Self::DeprecationsInfo => SourceKind::Deprecations,
            Self::ModelsDev => SourceKind::ModelsDev,
            Self::Openrouter => SourceKind::Openrouter,
            Self::LitellmPrices => SourceKind::Litellm,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Official,
    Hub,
    Deprecations,
    ModelsDev,
    Openrouter,
    Litellm,
}

/// A catalog provider: a stable slug and a display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Provider {
    pub slug: String,
    pub name: String,
}

/// The providers modelplane knows by name: (slug, display name, names other
/// systems use for it, lower-case).
const PROVIDERS: &[(&str, &str, &[&str])] = &[
    ("openai", "OpenAI", &["openai", "open ai"]),
    ("anthropic", "Anthropic", &["anthropic", "claude"]),
    (
        "google",
        "Google",
        &[
            "google",
            "gemini",
            "google ai studio",
            "google-ai-studio",
            "googleai",
        ],
    ),
    (
        "google-vertex",
        "Google Vertex",
        &[
            "google vertex",
            "vertex",
            "vertex_ai",
            "vertex-ai",
            "vertexai",
            "google-vertex",
        ],
    ),
    (
        "mistral",
        "Mistral",
        &["mistral", "mistralai", "mistral ai"],
    ),
    ("cohere", "Cohere", &["cohere", "cohere_chat"]),
    ("xai", "xAI", &["xai", "x-ai", "x.ai", "grok"]),
    (
        "aws-bedrock",
        "AWS Bedrock",
        &[
            "aws bedrock",
            "bedrock",
            "amazon-bedrock",
            "amazon bedrock",
            "bedrock_converse",
        ],
    ),
    (
        "azure",
        "Azure",
        &["azure", "azure openai", "azure_ai", "azure-ai", "microsoft"],
    ),
    ("groq", "Groq", &["groq"]),
    ("deepseek", "DeepSeek", &["deepseek"]),
    ("meta", "Meta", &["meta", "meta-llama", "llama"]),
    (
        "huggingface",
        "Hugging Face",
        &["huggingface", "hugging face", "hf"],
    ),
];

impl Provider {
    /// A provider modelplane knows by its slug.
    pub fn known(slug: &str) -> Option<Provider> {
        PROVIDERS
            .iter()
            .find(|(s, _, _)| *s == slug)
            .map(|(s, n, _)| Provider {
                slug: (*s).to_owned(),
                name: (*n).to_owned(),
            })
    }

    /// Maps a provider name as another system spells it ("OpenAI", "AWS
    /// Bedrock", "mistralai", "x-ai") to a provider; unknown names become a
    /// slug of their own (lower-case, spaces and underscores as `-`).
    pub fn from_name(name: &str) -> Provider {
        let lower = name.trim().to_lowercase();
        if let Some((s, n, _)) = PROVIDERS
            .iter()
            .find(|(s, _, names)| *s == lower || names.contains(&lower.as_str()))
        {
            return Provider {
                slug: (*s).to_owned(),
                name: (*n).to_owned(),
            };
        }
        let slug: String = lower
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        Provider {
            slug: slug.trim_matches('-').to_owned(),
            name: name.trim().to_owned(),
        }
    }
}

/// Lifecycle of a catalog model: `deprecated` is still callable, `sunset`
/// calls fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Active,
    Deprecated,
    Sunset,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 3] = [Self::Active, Self::Deprecated, Self::Sunset];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Sunset => "sunset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The lifecycle a model may move to from this one. Providers do revive
    /// deprecated models (a postponed deprecation), and a sunset model that is
    /// listed as active again is active again; a sunset model is never merely
    /// deprecated.
    pub fn allowed_targets(self) -> &'static [Lifecycle] {
        match self {
            Self::Active => &[Self::Deprecated, Self::Sunset],
            Self::Deprecated => &[Self::Active, Self::Sunset],
            Self::Sunset => &[Self::Active],
        }
    }

    pub fn can_become(self, to: Lifecycle) -> bool {
        self == to || self.allowed_targets().contains(&to)
    }

    /// The lifecycle that follows from dates, on `today` (YYYY-MM-DD): a
    /// shutdown date reached means sunset, a deprecation date reached (or a
    /// shutdown date announced) means deprecated.
    pub fn from_dates(deprecation: Option<&str>, shutdown: Option<&str>, today: &str) -> Lifecycle {
        match (deprecation, shutdown) {
            (_, Some(s)) if s <= today => Self::Sunset,
            (_, Some(_)) => Self::Deprecated,
            (Some(d), None) if d <= today => Self::Deprecated,
            _ => Self::Active,
        }
    }
}

/// Prices in USD per one million tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// ISO 4217; every source modelplane reads prices in USD.
    pub currency: String,
}

impl Pricing {
    /// What a request cost in USD: uncached prompt tokens at the input
    /// price, cached ones at the cached-input price (else the input price),
    /// completion tokens at the output price. `None` when the currency is
    /// not USD or a price that the counts need is missing.
    pub fn cost_usd(&self, prompt: u64, cached: u64, completion: u64) -> Option<f64> {
        if !self.currency.eq_ignore_ascii_case("USD") {
            return None;
        }
        let cached = cached.min(prompt);
        let uncached = prompt - cached;
        let part = |tokens: u64, price: Option<f64>| -> Option<f64> {
            match (tokens, price) {
                (0, _) => Some(0.0),
                (n, Some(p)) if p.is_finite() && p >= 0.0 => Some(n as f64 * p / 1e6),
                _ => None,
            }
        };
        let total = part(uncached, self.input)?
            + part(cached, self.cached_input.or(self.input))?
            + part(completion, self.output)?;
        Some(total)
    }
}

/// What a source knows about one model. Every field is optional: a source
/// sets what it publishes and leaves the rest `None` (serialized as absent).
///
/// Conventions every source follows:
/// - modalities: lower-case from `text`, `image`, `audio`, `video`, `pdf`,
///   `embedding`, `file`; sorted, without duplicates.
/// - capabilities: an open map; well-known keys `tools`, `vision`,
///   `structured_output`, `reasoning`, `batch`, `streaming`, `fine_tuning`,
///   `embeddings`, `citations`, `code_execution`, `pdf_input`, `json_mode`
///   hold booleans; `reasoning_efforts` a list of strings (`low`, `medium`,
///   `high`…), `temperature` `{"min":…, "max":…, "default":…}`; any other
///   key a source reports is kept under its own name.
/// - dates: `YYYY-MM-DD` (a date-time is cut to its date).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities_out: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub capabilities: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_weights: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knowledge_cutoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_models: Option<Vec<String>>,
    /// Where the lifecycle data was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_url: Option<String>,
    /// Hub downloads over the last 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloads: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likes: Option<i64>,
}

/// One listing entry of one source, normalized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Provider slug (see [`Provider::from_name`]).
    pub provider: String,
    /// The id the provider's API takes (Gemini's without `models/`; a Hub
    /// repo id `owner/name`).
    pub model_id: String,
    pub facts: ModelFacts,
    /// Other strings that name this model, with where they come from
    /// (`official`, `bedrock`, `vertex`, `azure`, `openrouter`, …).
    pub aliases: Vec<Alias>,
    /// The entry as the source sent it, kept for audit: JSON text, so a
    /// source that reads its pages as text (the Hub's million repos) hands
    /// it on without building and re-serializing a value tree.
    pub raw: Box<RawValue>,
}

impl SourceRecord {
    /// `raw` for an entry a source has parsed into a value.
    pub fn raw_of(entry: &Value) -> Box<RawValue> {
        // A `Value` always serializes (its map keys are strings).
        serde_json::value::to_raw_value(entry).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }

    /// `raw` as a value.
    pub fn raw_value(&self) -> Value {
        serde_json::from_str(self.raw.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for SourceRecord {
    /// Equal when every field is, `raw` compared as the text it is.
    fn eq(&self, other: &Self) -> bool {
        self.provider == other.provider
            && self.model_id == other.model_id
            && self.facts == other.facts
            && self.aliases == other.aliases
            && self.raw.get() == other.raw.get()
    }
}

/// One name of a catalog model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Alias {
    pub alias: String,
    pub source: String,
}

impl Alias {
    pub fn new(alias: impl Into<String>, source: impl Into<String>) -> Alias {
        Alias {
            alias: alias.into(),
            source: source.into(),
        }
    }
}

/// The fields of [`ModelFacts`] that merge one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    DisplayName,
    Description,
    Family,
    ModalitiesIn,
    ModalitiesOut,
    ContextWindow,
    MaxOutputTokens,
    Pricing,
    Capabilities,
    OpenWeights,
    ParameterCount,
    License,
    ReleaseDate,
    KnowledgeCutoff,
    Lifecycle,
    DeprecationDate,
    ShutdownDate,
    ReplacementModels,
    LifecycleUrl,
    Downloads,
    Likes,
}

impl Field {
    pub const ALL: [Field; 21] = [
        Self::DisplayName,
        Self::Description,
        Self::Family,
        Self::ModalitiesIn,
        Self::ModalitiesOut,
        Self::ContextWindow,
        Self::MaxOutputTokens,
        Self::Pricing,
        Self::Capabilities,
        Self::OpenWeights,
        Self::ParameterCount,
        Self::License,
        Self::ReleaseDate,
        Self::KnowledgeCutoff,
        Self::Lifecycle,
        Self::DeprecationDate,
        Self::ShutdownDate,
        Self::ReplacementModels,
        Self::LifecycleUrl,
        Self::Downloads,
        Self::Likes,
    ];

    /// The JSON name of the field in [`ModelFacts`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DisplayName => "display_name",
            Self::Description => "description",
            Self::Family => "family",
            Self::ModalitiesIn => "modalities_in",
            Self::ModalitiesOut => "modalities_out",
            Self::ContextWindow => "context_window",
            Self::MaxOutputTokens => "max_output_tokens",
            Self::Pricing => "pricing",
            Self::Capabilities => "capabilities",
            Self::OpenWeights => "open_weights",
            Self::ParameterCount => "parameter_count",
            Self::License => "license",
            Self::ReleaseDate => "release_date",
            Self::KnowledgeCutoff => "knowledge_cutoff",
            Self::Lifecycle => "lifecycle",
            Self::DeprecationDate => "deprecation_date",
            Self::ShutdownDate => "shutdown_date",
            Self::ReplacementModels => "replacement_models",
            Self::LifecycleUrl => "lifecycle_url",
            Self::Downloads => "downloads",
            Self::Likes => "likes",
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// How much a source's word on this field counts: higher wins, None means
    /// the source does not own the field and never sets it. The provider's
    /// own listing beats aggregators for names and limits; prices come from
    /// the pricing sources (and xAI, whose listing carries prices);
    /// lifecycle from deprecations.info (scraped from the providers' own
    /// deprecation pages, with dates and replacements) first, then the
    /// provider's listing, whose silence or `null` dates say less.
    pub fn rank(self, source: Source) -> Option<u8> {
        use SourceKind::*;
        let order: &[SourceKind] = match self {
            Self::DisplayName | Self::Description => &[Official, ModelsDev, Openrouter, Hub],
            Self::Family => &[ModelsDev, Official, Openrouter, Hub],
            Self::ModalitiesIn | Self::ModalitiesOut => {
                &[Official, ModelsDev, Openrouter, Litellm, Hub]
            }
            Self::ContextWindow | Self::MaxOutputTokens => {
                &[Official, ModelsDev, Litellm, Openrouter, Hub]
            }
            Self::Pricing => {
                // xAI is the one provider whose listing carries prices.
                if source == Source::XaiApi {
                    return Some(10);
                }
                &[ModelsDev, Litellm, Openrouter]
            }
            Self::Capabilities => &[Official, ModelsDev, Openrouter, Litellm, Hub],
            Self::OpenWeights | Self::ParameterCount | Self::License => {
                &[Hub, ModelsDev, Official, Openrouter]
            }
            Self::ReleaseDate | Self::KnowledgeCutoff => &[ModelsDev, Official, Openrouter, Hub],
            Self::Lifecycle
            | Self::DeprecationDate
            | Self::ShutdownDate
            | Self::ReplacementModels
            | Self::LifecycleUrl => &[Deprecations, Official, Litellm, Openrouter, ModelsDev],
            Self::Downloads | Self::Likes => &[Hub],
        };
        let kind = source.kind();
        order
            .iter()
            .position(|k| *k == kind)
            .map(|i| (order.len() - i) as u8)
    }
}

/// Who set a field of a catalog model, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldOrigin {
    /// A source slug, or `manual` for an admin's edit.
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

pub const MANUAL: &str = "manual";

/// Field name → who set it.
pub type Provenance = BTreeMap<String, FieldOrigin>;

/// One field whose value changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub field: String,
    #[schema(value_type = Object)]
    pub before: Value,
    #[schema(value_type = Object)]
    pub after: Value,
}

/// The result of folding a record into a catalog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub facts: ModelFacts,
    pub provenance: Provenance,
    pub changes: Vec<FieldChange>,
}

fn to_map(facts: &ModelFacts) -> Map<String, Value> {
    match serde_json::to_value(facts) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// What one field of an incoming record says next to the current facts.
enum Incoming {
    /// The record does not carry the field.
    Silent,
    /// The record carries the value the facts already hold.
    Same,
    /// The record carries another value.
    Differs,
}

/// Typed access to the fields of [`ModelFacts`] by [`Field`], so a merge
/// compares and copies values without a round trip through JSON maps (the
/// fold of a million-record listing spent most of its time there). Values
/// meet JSON only where a change is reported.
macro_rules! fact_fields {
    ($($variant:ident => $name:ident),* $(,)?) => {
        /// How `incoming`'s value of `field` compares with `facts`'.
        fn compare(field: Field, incoming: &ModelFacts, facts: &ModelFacts) -> Incoming {
            match field {
                $(Field::$variant => match &incoming.$name {
                    None => Incoming::Silent,
                    Some(value) if facts.$name.as_ref() == Some(value) => Incoming::Same,
                    Some(_) => Incoming::Differs,
                },)*
            }
        }

        /// Copies `incoming`'s value of `field` into `facts`; returns the
        /// value before and after, as JSON.
        fn copy(field: Field, incoming: &ModelFacts, facts: &mut ModelFacts) -> (Value, Value) {
            match field {
                $(Field::$variant => {
                    let before = json_of(&facts.$name);
                    facts.$name = incoming.$name.clone();
                    (before, json_of(&facts.$name))
                })*
            }
        }

        /// Copies `incoming`'s value of `field` into `facts`, unreported.
        fn take(field: Field, incoming: &ModelFacts, facts: &mut ModelFacts) {
            match field {
                $(Field::$variant => facts.$name.clone_from(&incoming.$name),)*
            }
        }

        /// Every field, by JSON name: the order in which a merge reports
        /// changes (the order of a JSON map of [`ModelFacts`]).
        const FIELDS_BY_NAME: [Field; Field::ALL.len()] = [$(Field::$variant),*];
    };
}

// By JSON name (a test checks the order and the names).
fact_fields! {
    Capabilities => capabilities,
    ContextWindow => context_window,
    DeprecationDate => deprecation_date,
    Description => description,
    DisplayName => display_name,
    Downloads => downloads,
    Family => family,
    KnowledgeCutoff => knowledge_cutoff,
    License => license,
    Lifecycle => lifecycle,
    LifecycleUrl => lifecycle_url,
    Likes => likes,
    MaxOutputTokens => max_output_tokens,
    ModalitiesIn => modalities_in,
    ModalitiesOut => modalities_out,
    OpenWeights => open_weights,
    ParameterCount => parameter_count,
    Pricing => pricing,
    ReleaseDate => release_date,
    ReplacementModels => replacement_models,
    ShutdownDate => shutdown_date,
}

/// A field's value as JSON (`null` when unset).
fn json_of<T: Serialize>(value: &Option<T>) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Folds what `source` says (`incoming`) into the current facts of a catalog
/// model. A field changes only when the source owns it ([`Field::rank`]), the
/// field was not set by hand, and the source ranks at least as high as the
/// one that set it last; a value equal to the current one changes nothing
/// (provenance included), so an unchanged re-run writes nothing. Changes are
/// reported in the order of the fields' names.
pub fn merge(
    current: &ModelFacts,
    provenance: &Provenance,
    incoming: &ModelFacts,
    source: Source,
    at: Timestamp,
) -> Merged {
    let mut facts = current.clone();
    let mut provenance = provenance.clone();
    let mut changes = Vec::new();
    for field in FIELDS_BY_NAME {
        let said = compare(field, incoming, &facts);
        if matches!(said, Incoming::Silent) {
            continue;
        }
        let Some(rank) = field.rank(source) else {
            continue;
        };
        let name = field.as_str();
        let holder = provenance.get(name);
        if let Some(origin) = holder {
            if origin.source == MANUAL {
                continue;
            }
            let held = Source::parse(&origin.source).and_then(|s| field.rank(s));
            if origin.source != source.as_str() && held.is_some_and(|h| h > rank) {
                continue;
            }
        }
        if matches!(said, Incoming::Same) {
            // The same value from a source that ranks higher: it now answers
            // for the field (provenance only, no change to report).
            let holds = holder.is_some_and(|o| {
                o.source == source.as_str()
                    || Source::parse(&o.source)
                        .and_then(|s| field.rank(s))
                        .is_some_and(|h| h >= rank)
            });
            if !holds {
                provenance.insert(
                    name.to_owned(),
                    FieldOrigin {
                        source: source.as_str().to_owned(),
                        at,
                    },
                );
            }
            continue;
        }
        let (before, after) = copy(field, incoming, &mut facts);
        provenance.insert(
            name.to_owned(),
            FieldOrigin {
                source: source.as_str().to_owned(),
                at,
            },
        );
        changes.push(FieldChange {
            field: name.to_owned(),
            before,
            after,
        });
    }
    Merged {
        facts,
        provenance,
        changes,
    }
}

/// The facts of a model `source` adds to the catalog: every field the record
/// sets and the source owns, each with its provenance. It is what [`merge`]
/// gives for empty facts, without the change list an added model does not
/// report (the fold of a first import spent a third of its time making it).
pub fn adopt(incoming: &ModelFacts, source: Source, at: Timestamp) -> Merged {
    let mut facts = ModelFacts::default();
    let mut provenance = Provenance::new();
    for field in FIELDS_BY_NAME {
        if matches!(compare(field, incoming, &facts), Incoming::Silent)
            || field.rank(source).is_none()
        {
            continue;
        }
        take(field, incoming, &mut facts);
        provenance.insert(
            field.as_str().to_owned(),
            FieldOrigin {
                source: source.as_str().to_owned(),
                at,
            },
        );
    }
    Merged {
        facts,
        provenance,
        changes: Vec::new(),
    }
}

/// An admin's hand edit: the given fields take the given values (null clears
/// one) and are marked `manual`, so no ingestion overwrites them.
pub fn apply_manual(
    current: &ModelFacts,
    provenance: &Provenance,
    edits: &Map<String, Value>,
    at: Timestamp,
) -> Result<Merged, crate::ValidationError> {
    let mut facts = to_map(current);
    let mut provenance = provenance.clone();
    let mut changes = Vec::new();
    for (name, value) in edits {
        if Field::parse(name).is_none() {
            return Err(crate::ValidationError::new(name, "is not a catalog field"));
        }
        let before = facts.get(name).cloned().unwrap_or(Value::Null);
        if value.is_null() {
            facts.remove(name);
        } else {
            facts.insert(name.clone(), value.clone());
        }
        provenance.insert(
            name.clone(),
            FieldOrigin {
                source: MANUAL.to_owned(),
                at,
            },
        );
        if before != *value {
            changes.push(FieldChange {
                field: name.clone(),
                before,
                after: value.clone(),
            });
        }
    }
    let merged: ModelFacts = serde_json::from_value(Value::Object(facts))
        .map_err(|e| crate::ValidationError::new("facts", e.to_string()))?;
    Ok(Merged {
        facts: merged,
        provenance,
        changes,
    })
}

/// The normalized form of a model name, for matching strings from other
/// systems: lower-case; a provider or platform prefix (`openai/`,
/// `anthropic.`, `models/`, `us.`) dropped; a trailing date or version stamp
/// (`-20240806`, `-2024-08-06`, `@20240620`, `-v1:0`, `-001`, `-latest`)
/// dropped; `_`, `.` and spaces as `-` (so `claude-sonnet-4.5` and
/// `claude-sonnet-4-5` are one name).
pub fn normalize(name: &str) -> String {
    let mut s = name.trim().to_lowercase();
    // Provider prefixes: `openai/gpt-4o`, `models/gemini-…`, `bedrock/…`.
    if let Some((_, rest)) = s.rsplit_once('/') {
        s = rest.to_owned();
    }
    // Bedrock style: `us.anthropic.claude-…-v1:0`, `anthropic.claude-…`.
    for region in ["us.", "eu.", "apac.", "global."] {
        if let Some(rest) = s.strip_prefix(region) {
            s = rest.to_owned();
        }
    }
    for vendor in [
        "anthropic.",
        "meta.",
        "mistral.",
        "cohere.",
        "amazon.",
        "ai21.",
        "openai.",
        "google.",
        "xai.",
        "deepseek.",
    ] {
        if let Some(rest) = s.strip_prefix(vendor) {
            s = rest.to_owned();
        }
    }
    if let Some((head, _)) = s.split_once('@') {
        s = head.to_owned();
    }
    if let Some((head, tail)) = s.rsplit_once(':') {
        if tail.chars().all(|c| c.is_ascii_digit()) {
            s = head.to_owned();
        }
    }
    let mut s: String = s
        .chars()
        .map(|c| {
            if c == '_' || c == ' ' || c == '.' {
                '-'
            } else {
                c
            }
        })
        .collect();
    loop {
        let before = s.len();
        for suffix in ["-latest", "-preview"] {
            if let Some(rest) = s.strip_suffix(suffix) {
                s = rest.to_owned();
            }
        }
        if let Some(rest) = strip_version_suffix(&s) {
            s = rest;
        }
        if s.len() == before {
            break;
        }
    }
    s
}

/// Drops one trailing date or version stamp: `-20240806`, `-2024-08-06`,
/// `-0613`, `-v1`, `-v1-0`, `-001`.
fn strip_version_suffix(s: &str) -> Option<String> {
    // -YYYY-MM-DD
    if s.len() > 11 {
        let (head, tail) = s.split_at(s.len() - 11);
        let b = tail.as_bytes();
        if b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && tail[1..5].chars().all(|c| c.is_ascii_digit())
            && tail[6..8].chars().all(|c| c.is_ascii_digit())
            && tail[9..].chars().all(|c| c.is_ascii_digit())
        {
            return Some(head.to_owned());
        }
    }
    let (head, tail) = s.rsplit_once('-')?;
    if head.is_empty() {
        return None;
    }
    let digits = tail.chars().all(|c| c.is_ascii_digit());
    // -20240806 (8 digits), -0613 (4 digits, MMDD), -001 (3 digits).
    if digits && matches!(tail.len(), 3 | 4 | 6 | 8) {
        return Some(head.to_owned());
    }
    // -v1, -v2 (Bedrock's `-v1:0` has lost its `:0` already).
    if tail.len() >= 2 && tail.starts_with('v') && tail[1..].chars().all(|c| c.is_ascii_digit()) {
        return Some(head.to_owned());
    }
    None
}

/// A model of the global catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogModel {
    pub id: uuid::Uuid,
    pub provider: String,
    pub model_id: String,
    pub facts: ModelFacts,
    pub provenance: Provenance,
    /// False once the model has been missing from its provider's listing for
    /// the configured number of complete runs in a row.
    pub listed: bool,
    pub first_seen_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CatalogModel {
    /// A model first seen now, with no facts yet.
    pub fn new(id: uuid::Uuid, provider: &str, model_id: &str, now: Timestamp) -> CatalogModel {
        CatalogModel {
            id,
            provider: provider.to_owned(),
            model_id: model_id.to_owned(),
            facts: ModelFacts::default(),
            provenance: Provenance::new(),
            listed: true,
            first_seen_at: now,
            last_seen_at: now,
            updated_at: now,
        }
    }

    pub fn key(&self) -> String {
        model_key(&self.provider, &self.model_id)
    }

    pub fn display_name(&self) -> &str {
        self.facts.display_name.as_deref().unwrap_or(&self.model_id)
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.facts.lifecycle.unwrap_or(Lifecycle::Active)
    }

    /// The categorical filters as index words (see [`filter_token`]).
    pub fn tokens(&self) -> String {
        let f = &self.facts;
        let mut out = vec![filter_token(FilterKind::Provider, &self.provider)];
        if let Some(family) = &f.family {
            out.push(filter_token(FilterKind::Family, family));
        }
        for m in f.modalities_in.iter().flatten() {
            out.push(filter_token(FilterKind::ModalityIn, m));
        }
        for m in f.modalities_out.iter().flatten() {
            out.push(filter_token(FilterKind::ModalityOut, m));
        }
        for (name, value) in f.capabilities.iter().flatten() {
            let on = match value {
                Value::Bool(b) => *b,
                Value::Null => false,
                Value::Array(a) => !a.is_empty(),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if on {
                out.push(filter_token(FilterKind::Capability, name));
            }
        }
        out.push(filter_token(
            FilterKind::Lifecycle,
            self.lifecycle().as_str(),
        ));
        if let Some(open) = f.open_weights {
            out.push(filter_token(
                FilterKind::OpenWeights,
                if open { "yes" } else { "no" },
            ));
        }
        out.sort();
        out.dedup();
        out.join(" ")
    }
}

/// One entry of a catalog model's history: the fields one run (or one hand
/// edit) changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CatalogChange {
    pub id: i64,
    #[schema(value_type = String, format = Uuid)]
    pub catalog_id: uuid::Uuid,
    pub run_id: Option<i64>,
    /// A source slug or `manual`.
    pub source: String,
    pub action: ChangeAction,
    pub changes: Vec<FieldChange>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Added,
    Updated,
    Unlisted,
    Relisted,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Updated => "updated",
            Self::Unlisted => "unlisted",
            Self::Relisted => "relisted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Added, Self::Updated, Self::Unlisted, Self::Relisted]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// `provider/model_id`: unique, since provider slugs hold no `/`.
pub fn model_key(provider: &str, model_id: &str) -> String {
    format!("{provider}/{model_id}")
}

/// The categorical filters of the catalog list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Provider,
    Family,
    ModalityIn,
    ModalityOut,
    Capability,
    Lifecycle,
    OpenWeights,
}

/// One filter value as a single index word both full-text engines keep
/// whole: a `z` + kind letter prefix and the value's lower-case letters and
/// digits (`zpopenai`, `zctools`, `zlactive`). Punctuation is dropped, so
/// callers recheck exact values where a column holds them.
pub fn filter_token(kind: FilterKind, value: &str) -> String {
    let prefix = match kind {
        FilterKind::Provider => "zp",
        FilterKind::Family => "zf",
        FilterKind::ModalityIn => "zi",
        FilterKind::ModalityOut => "zo",
        FilterKind::Capability => "zc",
        FilterKind::Lifecycle => "zl",
        FilterKind::OpenWeights => "zw",
    };
    let mut token = prefix.to_owned();
    token.extend(
        value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase()),
    );
    token
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_cost_prices_cached_prompt_tokens_apart() {
        let p = super::Pricing {
            input: Some(2.5),
            output: Some(10.0),
            cached_input: Some(1.25),
            currency: "USD".into(),
        };
        // 1,000 prompt (400 cached) and 200 completion tokens:
        // 600 × 2.5 + 400 × 1.25 + 200 × 10 = 1500 + 500 + 2000 = 4000 per 1M.
        let cost = p.cost_usd(1000, 400, 200).expect("priced");
        assert!((cost - 0.004).abs() < 1e-12, "{cost}");
        let no_cache_price = super::Pricing {
            cached_input: None,
            ..p.clone()
        };
        let cost = no_cache_price.cost_usd(1000, 400, 0).expect("priced");
        assert!((cost - 0.0025).abs() < 1e-12, "{cost}");
        let embeddings = super::Pricing {
            output: None,
            ..p.clone()
        };
        assert!(
            embeddings.cost_usd(10, 0, 0).is_some(),
            "no completion tokens need no output price"
        );
        assert_eq!(embeddings.cost_usd(10, 0, 1), None);
        let euro = super::Pricing {
            currency: "EUR".into(),
            ..p
        };
        assert_eq!(euro.cost_usd(10, 0, 1), None);
    }

    use super::*;
    use crate::time::from_micros;

    fn at(n: i64) -> Timestamp {
        from_micros(n * 1_000_000)
    }

    #[test]
    fn tokens_name_every_categorical_filter() {
        let mut m = CatalogModel::new(uuid::Uuid::nil(), "google-vertex", "x", at(1));
        m.facts.family = Some("Gemini 2.5".into());
        m.facts.modalities_in = Some(vec!["image".into(), "text".into()]);
        m.facts.capabilities = Some(BTreeMap::from([
            ("tools".to_owned(), Value::Bool(true)),
            ("vision".to_owned(), Value::Bool(false)),
            ("reasoning_efforts".to_owned(), serde_json::json!(["low"])),
        ]));
        m.facts.open_weights = Some(false);
        assert_eq!(
            m.tokens(),
            "zcreasoningefforts zctools zfgemini25 ziimage zitext zlactive zpgooglevertex zwno"
        );
    }

    #[test]
    fn lifecycle_transition_table_pair_by_pair() {
        use Lifecycle::*;
        let allowed = [
            (Active, Deprecated),
            (Active, Sunset),
            (Deprecated, Active),
            (Deprecated, Sunset),
            (Sunset, Active),
        ];
        for from in Lifecycle::ALL {
            for to in Lifecycle::ALL {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn lifecycle_follows_dates() {
        let today = "2026-06-01";
        assert_eq!(Lifecycle::from_dates(None, None, today), Lifecycle::Active);
        assert_eq!(
            Lifecycle::from_dates(Some("2026-07-01"), None, today),
            Lifecycle::Active
        );
        assert_eq!(
            Lifecycle::from_dates(Some("2026-05-01"), None, today),
            Lifecycle::Deprecated
        );
        assert_eq!(
            Lifecycle::from_dates(Some("2026-05-01"), Some("2026-09-01"), today),
            Lifecycle::Deprecated
        );
        assert_eq!(
            Lifecycle::from_dates(None, Some("2026-06-01"), today),
            Lifecycle::Sunset
        );
    }

    #[test]
    fn every_source_parses_back_from_its_slug() {
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(s));
        }
        assert_eq!(Source::parse("nope"), None);
        assert_eq!(Source::ModelsDev.config_key(), "models_dev");
    }

    #[test]
    fn provider_names_from_other_systems_map_to_slugs() {
        assert_eq!(Provider::from_name("OpenAI").slug, "openai");
        assert_eq!(Provider::from_name("AWS Bedrock").slug, "aws-bedrock");
        assert_eq!(Provider::from_name("mistralai").slug, "mistral");
        assert_eq!(Provider::from_name("x-ai").slug, "xai");
        assert_eq!(Provider::from_name("Google Vertex").slug, "google-vertex");
        let other = Provider::from_name("Some Lab_AI");
        assert_eq!(other.slug, "some-lab-ai");
        assert_eq!(other.name, "Some Lab_AI");
    }

    /// Facts with every field set.
    fn every_fact() -> ModelFacts {
        serde_json::from_value(serde_json::json!({
            "display_name": "d", "description": "d", "family": "f",
            "modalities_in": ["text"], "modalities_out": ["text"],
            "context_window": 1, "max_output_tokens": 1,
            "pricing": {"input": 1.0, "currency": "USD"},
            "capabilities": {"tools": true}, "open_weights": true,
            "parameter_count": 1, "license": "l", "release_date": "2025-01-01",
            "knowledge_cutoff": "2025-01-01", "lifecycle": "deprecated",
            "deprecation_date": "2025-01-01", "shutdown_date": "2025-01-01",
            "replacement_models": ["x"], "lifecycle_url": "u",
            "downloads": 1, "likes": 1
        }))
        .expect("every field")
    }

    #[test]
    fn fields_by_name_cover_every_field_in_name_order_under_its_json_name() {
        let names: Vec<&str> = FIELDS_BY_NAME.iter().map(|f| f.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "sorted by name, no repeats");
        assert_eq!(names.len(), Field::ALL.len());
        // Every field copies exactly the ModelFacts member of its JSON name.
        let full = every_fact();
        assert_eq!(to_map(&full).len(), Field::ALL.len());
        for field in Field::ALL {
            let mut facts = ModelFacts::default();
            let (before, after) = copy(field, &full, &mut facts);
            assert_eq!(before, Value::Null);
            let map = to_map(&facts);
            assert_eq!(map.len(), 1, "{field:?}");
            assert_eq!(map.get(field.as_str()), Some(&after), "{field:?}");
            assert!(matches!(compare(field, &full, &facts), Incoming::Same));
            let mut taken = ModelFacts::default();
            take(field, &full, &mut taken);
            assert_eq!(taken, facts, "{field:?}");
            assert!(matches!(
                compare(field, &ModelFacts::default(), &facts),
                Incoming::Silent
            ));
        }
    }

    #[test]
    fn adopting_a_record_gives_what_merging_it_into_empty_facts_gives_without_changes() {
        let full = every_fact();
        for source in Source::ALL {
            for incoming in [&full, &ModelFacts::default()] {
                let merged = merge(
                    &ModelFacts::default(),
                    &Provenance::new(),
                    incoming,
                    source,
                    at(7),
                );
                let adopted = adopt(incoming, source, at(7));
                assert_eq!(adopted.facts, merged.facts, "{source:?}");
                assert_eq!(adopted.provenance, merged.provenance, "{source:?}");
                assert!(adopted.changes.is_empty());
            }
        }
    }

    #[test]
    fn merge_reports_changes_in_field_name_order() {
        let incoming = ModelFacts {
            release_date: Some("2025-01-01".into()),
            display_name: Some("A".into()),
            context_window: Some(10),
            ..Default::default()
        };
        let m = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &incoming,
            Source::OpenaiApi,
            at(1),
        );
        let fields: Vec<&str> = m.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["context_window", "display_name", "release_date"]);
    }

    #[test]
    fn merge_sets_owned_fields_and_reports_changes() {
        let incoming = ModelFacts {
            display_name: Some("GPT-4o".into()),
            context_window: Some(128_000),
            downloads: Some(5), // not owned by an official listing
            ..Default::default()
        };
        let m = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &incoming,
            Source::OpenaiApi,
            at(1),
        );
        assert_eq!(m.facts.display_name.as_deref(), Some("GPT-4o"));
        assert_eq!(m.facts.context_window, Some(128_000));
        assert_eq!(m.facts.downloads, None);
        assert_eq!(m.changes.len(), 2);
        assert_eq!(m.provenance["context_window"].source, "openai-api");
    }

    #[test]
    fn merge_of_the_same_facts_changes_nothing() {
        let incoming = ModelFacts {
            context_window: Some(128_000),
            ..Default::default()
        };
        let first = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &incoming,
            Source::OpenaiApi,
            at(1),
        );
        let again = merge(
            &first.facts,
            &first.provenance,
            &incoming,
            Source::OpenaiApi,
            at(2),
        );
        assert!(again.changes.is_empty());
        assert_eq!(again.provenance, first.provenance);
    }

    #[test]
    fn provider_listing_beats_aggregator_for_limits_in_either_order() {
        let official = ModelFacts {
            context_window: Some(200_000),
            ..Default::default()
        };
        let aggregator = ModelFacts {
            context_window: Some(100_000),
            ..Default::default()
        };
        let a = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &official,
            Source::AnthropicApi,
            at(1),
        );
        let b = merge(
            &a.facts,
            &a.provenance,
            &aggregator,
            Source::Openrouter,
            at(2),
        );
        assert_eq!(b.facts.context_window, Some(200_000));
        assert!(b.changes.is_empty());

        let c = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &aggregator,
            Source::Openrouter,
            at(1),
        );
        let d = merge(
            &c.facts,
            &c.provenance,
            &official,
            Source::AnthropicApi,
            at(2),
        );
        assert_eq!(d.facts.context_window, Some(200_000));
        assert_eq!(d.provenance["context_window"].source, "anthropic-api");
    }

    #[test]
    fn an_equal_value_from_a_higher_source_takes_over_the_field() {
        let same = ModelFacts {
            release_date: Some("2025-09-29".into()),
            ..Default::default()
        };
        let low = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &same,
            Source::Openrouter,
            at(1),
        );
        let high = merge(&low.facts, &low.provenance, &same, Source::ModelsDev, at(2));
        assert!(high.changes.is_empty());
        assert_eq!(high.provenance["release_date"].source, "models-dev");
        let official = ModelFacts {
            release_date: Some("2026-02-04".into()),
            ..Default::default()
        };
        let after = merge(
            &high.facts,
            &high.provenance,
            &official,
            Source::AnthropicApi,
            at(3),
        );
        assert_eq!(
            after.facts.release_date.as_deref(),
            Some("2025-09-29"),
            "models.dev outranks the listing for dates"
        );
    }

    #[test]
    fn pricing_comes_only_from_pricing_sources() {
        let priced = ModelFacts {
            pricing: Some(Pricing {
                input: Some(2.5),
                output: Some(10.0),
                cached_input: None,
                currency: "USD".into(),
            }),
            ..Default::default()
        };
        let from_openai = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &priced,
            Source::OpenaiApi,
            at(1),
        );
        assert_eq!(from_openai.facts.pricing, None);
        let from_litellm = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &priced,
            Source::LitellmPrices,
            at(1),
        );
        assert_eq!(from_litellm.facts.pricing, priced.pricing);
        let from_xai = merge(
            &ModelFacts::default(),
            &Provenance::new(),
            &priced,
            Source::XaiApi,
            at(1),
        );
        assert_eq!(from_xai.facts.pricing, priced.pricing);
    }

    #[test]
    fn a_manual_field_is_never_overwritten_by_ingestion() {
        let mut edits = Map::new();
        edits.insert("context_window".into(), Value::from(64_000));
        let manual = apply_manual(&ModelFacts::default(), &Provenance::new(), &edits, at(1))
            .expect("valid edit");
        assert_eq!(manual.provenance["context_window"].source, MANUAL);
        let official = ModelFacts {
            context_window: Some(200_000),
            ..Default::default()
        };
        let after = merge(
            &manual.facts,
            &manual.provenance,
            &official,
            Source::AnthropicApi,
            at(2),
        );
        assert_eq!(after.facts.context_window, Some(64_000));
        assert!(after.changes.is_empty());
    }

    #[test]
    fn manual_edits_refuse_unknown_fields_and_bad_types() {
        let mut edits = Map::new();
        edits.insert("nope".into(), Value::from(1));
        assert!(apply_manual(&ModelFacts::default(), &Provenance::new(), &edits, at(1)).is_err());
        let mut edits = Map::new();
        edits.insert("context_window".into(), Value::from("big"));
        assert!(apply_manual(&ModelFacts::default(), &Provenance::new(), &edits, at(1)).is_err());
    }

    #[test]
    fn normalize_drops_case_prefixes_and_version_stamps() {
        let cases = [
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("GPT-4o", "gpt-4o"),
            ("openai/gpt-4o", "gpt-4o"),
            ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
            (
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "claude-3-5-sonnet",
            ),
            (
                "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
                "claude-3-5-sonnet",
            ),
            ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
            ("models/gemini-1.5-pro-001", "gemini-1-5-pro"),
            ("claude-sonnet-4.5", "claude-sonnet-4-5"),
            ("gpt-4-0613", "gpt-4"),
            ("mistral-large-latest", "mistral-large"),
            ("mistral-medium-2508", "mistral-medium"),
            ("claude_3_haiku", "claude-3-haiku"),
            ("gpt-4o", "gpt-4o"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }
}
