//! The sections an org configures on one of its models: the names it uses,
//! descriptions, free values, serving providers, flags, modalities,
//! temperature and reasoning levels, qualities, voices and pricing.
//!
//! A section the org has not set (`None`) inherits from the linked catalog
//! model where the catalog knows it: [`ModelSections::effective`] composes
//! the two, the org's values winning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::catalog::{CatalogModel, Pricing};
use crate::ValidationError;

const LIST_MAX: usize = 64;
const NAME_MAX: usize = 256;
const WORD_MAX: usize = 64;
const TEXT_MAX: usize = 10_000;
const VALUE_BYTES_MAX: usize = 4096;

/// A provider that serves the model, with the id that provider uses for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServingProvider {
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// Input and output modalities (`text`, `image`, `audio`, `video`, `embedding`…).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Modalities {
    #[serde(default)]
    pub input: Vec<String>,
    #[serde(default)]
    pub output: Vec<String>,
}

/// A named temperature setting the org offers (e.g. `precise` = 0.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemperatureLevel {
    pub name: String,
    pub value: f64,
}

/// The org's own sections of a model; an absent section inherits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSections {
    /// Other names the org uses for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Descriptions by kind or locale (`short`, `long`, `fr`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptions: Option<BTreeMap<String, String>>,
    /// Free key/value settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub values: Option<BTreeMap<String, Value>>,
    /// Providers that serve the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<ServingProvider>>,
    /// Switches such as `active`, `pricing_enabled`, `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Modalities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_levels: Option<Vec<TemperatureLevel>>,
    /// Reasoning effort levels offered (`low`, `medium`, `high`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_levels: Option<Vec<String>>,
    /// Quality tiers offered (e.g. `standard`, `hd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voices: Option<Vec<String>>,
    /// Price per 1M tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// The section names, in the order they are documented and exported.
pub const SECTION_NAMES: [&str; 11] = [
    "aliases",
    "descriptions",
    "values",
    "providers",
    "flags",
    "modalities",
    "temperature_levels",
    "reasoning_levels",
    "qualities",
    "voices",
    "pricing",
];

fn invalid(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(format!("sections.{field}"), message)
}

fn check_words(field: &str, words: &[String], max_len: usize) -> Result<(), ValidationError> {
    if words.len() > LIST_MAX {
        return Err(invalid(field, format!("at most {LIST_MAX} entries")));
    }
    for w in words {
        if w.trim().is_empty() || w.chars().count() > max_len || w.chars().any(char::is_control) {
            return Err(invalid(
                field,
                format!("entries must be 1 to {max_len} characters, without control characters"),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = words.iter().find(|w| !seen.insert(w.as_str())) {
        return Err(invalid(field, format!("{dup:?} is listed twice")));
    }
    Ok(())
}

fn check_keys<V>(field: &str, map: &BTreeMap<String, V>) -> Result<(), ValidationError> {
    if map.len() > LIST_MAX {
        return Err(invalid(field, format!("at most {LIST_MAX} keys")));
    }
    if map
        .keys()
        .any(|k| k.is_empty() || k.chars().count() > WORD_MAX || k.chars().any(char::is_control))
    {
        return Err(invalid(
            field,
            format!("keys must be 1 to {WORD_MAX} characters, without control characters"),
        ));
    }
    Ok(())
}

fn price_ok(p: Option<f64>) -> bool {
    p.is_none_or(|v| v.is_finite() && v >= 0.0)
}

impl ModelSections {
    /// Checks every bound; the error names the offending section.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(aliases) = &self.aliases {
            check_words("aliases", aliases, NAME_MAX)?;
        }
        if let Some(d) = &self.descriptions {
            check_keys("descriptions", d)?;
            if d.values().any(|t| t.chars().count() > TEXT_MAX) {
                return Err(invalid(
                    "descriptions",
                    format!("at most {TEXT_MAX} characters each"),
                ));
            }
        }
        if let Some(values) = &self.values {
            check_keys("values", values)?;
            for (k, v) in values {
                if v.to_string().len() > VALUE_BYTES_MAX {
                    return Err(invalid(
                        &format!("values.{k}"),
                        format!("at most {VALUE_BYTES_MAX} bytes of JSON"),
                    ));
                }
            }
        }
        if let Some(providers) = &self.providers {
            if providers.len() > LIST_MAX {
                return Err(invalid("providers", format!("at most {LIST_MAX} entries")));
            }
            let names: Vec<String> = providers.iter().map(|p| p.provider.clone()).collect();
            check_words("providers", &names, 128)?;
            if providers
                .iter()
                .filter_map(|p| p.model_id.as_deref())
                .any(|m| m.trim().is_empty() || m.chars().count() > NAME_MAX)
            {
                return Err(invalid(
                    "providers",
                    format!("model_id must be 1 to {NAME_MAX} characters"),
                ));
            }
        }
        if let Some(flags) = &self.flags {
            check_keys("flags", flags)?;
        }
        if let Some(m) = &self.modalities {
            check_words("modalities.input", &m.input, WORD_MAX)?;
            check_words("modalities.output", &m.output, WORD_MAX)?;
        }
        if let Some(levels) = &self.temperature_levels {
            let names: Vec<String> = levels.iter().map(|l| l.name.clone()).collect();
            check_words("temperature_levels", &names, WORD_MAX)?;
            if levels
                .iter()
                .any(|l| !l.value.is_finite() || !(0.0..=10.0).contains(&l.value))
            {
                return Err(invalid(
                    "temperature_levels",
                    "values must be between 0 and 10",
                ));
            }
        }
        for (field, words) in [
            ("reasoning_levels", &self.reasoning_levels),
            ("qualities", &self.qualities),
            ("voices", &self.voices),
        ] {
            if let Some(words) = words {
                check_words(field, words, WORD_MAX)?;
            }
        }
        if let Some(p) = &self.pricing {
            if ![p.input, p.output, p.cached_input]
                .into_iter()
                .all(price_ok)
            {
                return Err(invalid("pricing", "prices must be non-negative numbers"));
            }
            if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    "pricing.currency",
                    "must be an ISO 4217 code such as USD",
                ));
            }
        }
        Ok(())
    }

    /// Applies a partial update: each key given replaces that section, a
    /// null clears it (the section inherits again), absent keys are kept.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<ModelSections, ValidationError> {
        let mut merged = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for (key, value) in patch {
            if !SECTION_NAMES.contains(&key.as_str()) {
                return Err(invalid(
                    key,
                    format!("unknown section; known: {}", SECTION_NAMES.join(", ")),
                ));
            }
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        let next: ModelSections = serde_json::from_value(Value::Object(merged))
            .map_err(|e| ValidationError::new("sections", e.to_string()))?;
        next.validate()?;
        Ok(next)
    }

    /// The sections as users of the model see them: the org's own, and for
    /// each section the org left unset, what the catalog model says.
    pub fn effective(&self, catalog: Option<&CatalogModel>) -> ModelSections {
        let mut out = self.clone();
        let Some(entry) = catalog else {
            return out;
        };
        let facts = &entry.facts;
        let caps = facts.capabilities.as_ref();
        if out.descriptions.is_none() {
            out.descriptions = facts
                .description
                .clone()
                .map(|d| BTreeMap::from([("default".to_owned(), d)]));
        }
        if out.providers.is_none() {
            out.providers = Some(vec![ServingProvider {
                provider: entry.provider.clone(),
                model_id: Some(entry.model_id.clone()),
            }]);
        }
        if out.modalities.is_none()
            && (facts.modalities_in.is_some() || facts.modalities_out.is_some())
        {
            out.modalities = Some(Modalities {
                input: facts.modalities_in.clone().unwrap_or_default(),
                output: facts.modalities_out.clone().unwrap_or_default(),
            });
        }
        if out.pricing.is_none() {
            out.pricing = facts.pricing.clone();
        }
        let strings = |key: &str| -> Option<Vec<String>> {
            caps?.get(key)?.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        if out.reasoning_levels.is_none() {
            out.reasoning_levels = strings("reasoning_efforts");
        }
        if out.voices.is_none() {
            out.voices = strings("voices");
        }
        if out.temperature_levels.is_none() {
            out.temperature_levels = caps
                .and_then(|c| c.get("temperature"))
                .and_then(Value::as_object)
                .map(|t| {
                    ["min", "default", "max"]
                        .into_iter()
                        .filter_map(|name| {
                            Some(TemperatureLevel {
                                name: name.to_owned(),
                                value: t.get(name)?.as_f64()?,
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|levels| !levels.is_empty());
        }
        out
    }

    /// The names of the sections the org has set.
    pub fn set_names(&self) -> Vec<&'static str> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        SECTION_NAMES
            .into_iter()
            .filter(|name| value.get(name).is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelFacts;
    use serde_json::json;

    fn sections(v: Value) -> ModelSections {
        serde_json::from_value(v).expect("valid sections")
    }

    fn catalog(facts: Value) -> CatalogModel {
        let facts: ModelFacts = serde_json::from_value(facts).expect("valid facts");
        let mut m = CatalogModel::new(uuid::Uuid::nil(), "openai", "gpt-4o", crate::time::now());
        m.facts = facts;
        m
    }

    #[test]
    fn unset_sections_inherit_the_catalog_and_set_ones_win() {
        let entry = catalog(json!({
            "description": "Flagship", "modalities_in": ["image", "text"], "modalities_out": ["text"],
            "pricing": {"input": 2.5, "output": 10.0, "currency": "USD"},
            "capabilities": {"reasoning_efforts": ["low", "high"], "temperature": {"min": 0.0, "max": 2.0}}
        }));
        let own =
            sections(json!({"pricing": {"input": 1.0, "currency": "EUR"}, "voices": ["alloy"]}));
        let eff = own.effective(Some(&entry));
        assert_eq!(
            eff.pricing.as_ref().map(|p| p.currency.as_str()),
            Some("EUR")
        );
        assert_eq!(eff.voices, Some(vec!["alloy".to_owned()]));
        assert_eq!(
            eff.reasoning_levels,
            Some(vec!["low".to_owned(), "high".to_owned()])
        );
        assert_eq!(
            eff.modalities,
            Some(Modalities {
                input: vec!["image".into(), "text".into()],
                output: vec!["text".into()]
            })
        );
        let temps: Vec<(String, f64)> = eff
            .temperature_levels
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        assert_eq!(temps, [("min".to_owned(), 0.0), ("max".to_owned(), 2.0)]);
        assert_eq!(
            eff.providers.unwrap_or_default()[0].model_id.as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(own.effective(None), own);
    }

    #[test]
    fn a_patch_replaces_given_sections_and_null_clears_them() {
        let own = sections(json!({"voices": ["alloy"], "qualities": ["hd"]}));
        let patch = json!({"voices": null, "flags": {"active": true}});
        let next = own
            .patched(patch.as_object().expect("object"))
            .expect("valid patch");
        assert_eq!(next.voices, None);
        assert_eq!(next.qualities, Some(vec!["hd".to_owned()]));
        assert_eq!(
            next.flags,
            Some(BTreeMap::from([("active".to_owned(), true)]))
        );
        assert_eq!(next.set_names(), ["flags", "qualities"]);
    }

    #[test]
    fn bad_sections_are_refused_with_the_section_named() {
        let cases = [
            (json!({"nope": 1}), "sections.nope"),
            (json!({"voices": ["a", "a"]}), "sections.voices"),
            (json!({"voices": [""]}), "sections.voices"),
            (
                json!({"temperature_levels": [{"name": "hot", "value": 99.0}]}),
                "sections.temperature_levels",
            ),
            (
                json!({"pricing": {"input": -1.0, "currency": "USD"}}),
                "sections.pricing",
            ),
            (
                json!({"pricing": {"input": 1.0, "currency": "dollars"}}),
                "sections.pricing.currency",
            ),
            (
                json!({"values": {"big": "x".repeat(5000)}}),
                "sections.values.big",
            ),
            (json!({"flags": {"active": "yes"}}), "sections"),
        ];
        for (patch, field) in cases {
            let err = ModelSections::default()
                .patched(patch.as_object().expect("object"))
                .expect_err("must be refused");
            assert_eq!(err.field, field, "{patch}");
        }
    }
}
