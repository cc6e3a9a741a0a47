//! Discovery of models in use but not in the inventory: the bounds of the
//! look-back window, and the provider a model name points to.

use crate::ValidationError;

pub const DEFAULT_LOOKBACK_DAYS: i64 = 30;
pub const MAX_LOOKBACK_DAYS: i64 = 365;

/// The provider of a name that matches no pattern.
pub const UNKNOWN_PROVIDER: &str = "unknown";

/// Checks `lookback_days`: 1 to 365, 30 when absent.
pub fn check_lookback(days: Option<i64>) -> Result<i64, ValidationError> {
    let days = days.unwrap_or(DEFAULT_LOOKBACK_DAYS);
    if !(1..=MAX_LOOKBACK_DAYS).contains(&days) {
        return Err(ValidationError::new(
            "lookback_days",
            format!("must be between 1 and {MAX_LOOKBACK_DAYS}"),
        ));
    }
    Ok(days)
}

/// `(start of a model name, provider)`. A start matches when the name
/// begins with it and the next character, if any, is not a letter (or the
/// start ends in `-`), so `gemma2` is Google's but `palmyra` is not `palm`.
/// First match wins.
const NAME_PATTERNS: &[(&str, &str)] = &[
    ("gpt", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-embedding", "openai"),
    ("text-moderation", "openai"),
    ("omni-moderation", "openai"),
    ("dall-e", "openai"),
    ("whisper", "openai"),
    ("tts", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("gemma", "google"),
    ("palm", "google"),
    ("text-bison", "google"),
    ("chat-bison", "google"),
    ("command", "cohere"),
    ("embed-", "cohere"),
    ("rerank-", "cohere"),
    ("meta-llama", "meta"),
    ("llama", "meta"),
    ("codellama", "meta"),
    ("mistral", "mistral"),
    ("open-mistral", "mistral"),
    ("mixtral", "mistral"),
    ("open-mixtral", "mistral"),
    ("codestral", "mistral"),
    ("ministral", "mistral"),
    ("pixtral", "mistral"),
    ("magistral", "mistral"),
    ("devstral", "mistral"),
    ("grok", "xai"),
    ("deepseek", "deepseek"),
    ("qwen", "alibaba"),
    ("qwq", "alibaba"),
];

/// Vendor names that prefix a model name (`mistralai/…`, `anthropic.…`).
const VENDORS: &[(&str, &str)] = &[
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("google", "google"),
    ("gemini", "google"),
    ("vertex_ai", "google"),
    ("vertex-ai", "google"),
    ("cohere", "cohere"),
    ("meta", "meta"),
    ("meta-llama", "meta"),
    ("mistral", "mistral"),
    ("mistralai", "mistral"),
    ("xai", "xai"),
    ("x-ai", "xai"),
    ("deepseek", "deepseek"),
    ("deepseek-ai", "deepseek"),
    ("qwen", "alibaba"),
    ("alibaba", "alibaba"),
];

/// Cloud regions that prefix a Bedrock inference profile (`us.anthropic.…`).
const REGIONS: &[&str] = &["us", "eu", "apac", "global"];

fn vendor(name: &str) -> Option<&'static str> {
    VENDORS.iter().find(|(v, _)| *v == name).map(|(_, p)| *p)
}

fn by_name(name: &str) -> Option<&'static str> {
    NAME_PATTERNS
        .iter()
        .find(|(start, _)| {
            name.strip_prefix(start).is_some_and(|rest| {
                start.ends_with('-') || !rest.starts_with(|c: char| c.is_ascii_alphabetic())
            })
        })
        .map(|(_, provider)| *provider)
}

/// The provider a model name points to, from the built-in pattern table:
/// `gpt-4o-mini` → `openai`, `claude-3-5-sonnet` → `anthropic`. A
/// `vendor/` prefix (`openrouter/anthropic/claude-3`, `meta-llama/…`), a
/// Bedrock `region.vendor.` prefix and OpenAI's `ft:` are looked through;
/// the model's own name wins over the vendor prefix, which answers when the
/// name matches nothing. Otherwise [`UNKNOWN_PROVIDER`].
pub fn infer_provider(model_id: &str) -> &'static str {
    let lower = model_id.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("ft:").unwrap_or(&lower);
    let mut segments: Vec<&str> = lower.split('/').collect();
    let mut name = segments.pop().unwrap_or_default();
    // Bedrock: `[region.]vendor.model`.
    if let Some((head, rest)) = name.split_once('.') {
        if REGIONS.contains(&head) {
            if let Some((v, model)) = rest.split_once('.') {
                if vendor(v).is_some() {
                    segments.push(v);
                    name = model;
                }
            }
        } else if vendor(head).is_some() {
            segments.push(head);
            name = rest;
        }
    }
    by_name(name)
        .or_else(|| segments.iter().rev().find_map(|s| vendor(s)))
        .unwrap_or(UNKNOWN_PROVIDER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_inferred_from_the_pattern_table() {
        let cases = [
            ("gpt-4o-mini", "openai"),
            ("GPT-4o", "openai"),
            ("gpt-3.5-turbo-0125", "openai"),
            ("chatgpt-4o-latest", "openai"),
            ("o1", "openai"),
            ("o1-preview", "openai"),
            ("o3-mini", "openai"),
            ("o4-mini-2025-04-16", "openai"),
            ("text-embedding-3-small", "openai"),
            ("dall-e-3", "openai"),
            ("whisper-1", "openai"),
            ("tts-1-hd", "openai"),
            ("ft:gpt-4o-mini:acme::abc123", "openai"),
            ("claude-3-5-sonnet-20241022", "anthropic"),
            ("claude-opus-4", "anthropic"),
            ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
            ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic"),
            ("gemini-1.5-pro", "google"),
            ("models/gemini-2.0-flash", "google"),
            ("gemma2:9b", "google"),
            ("google/gemma-2-9b-it", "google"),
            ("palm-2", "google"),
            ("chat-bison-001", "google"),
            ("command-r-plus", "cohere"),
            ("embed-english-v3.0", "cohere"),
            ("cohere.command-r-v1:0", "cohere"),
            ("llama-3.1-70b", "meta"),
            ("llama3:8b", "meta"),
            ("meta-llama/Llama-3.1-8B-Instruct", "meta"),
            ("meta.llama3-70b-instruct-v1:0", "meta"),
            ("codellama-34b", "meta"),
            ("groq/llama-3.1-8b-instant", "meta"),
            ("mistral-large-latest", "mistral"),
            ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"),
            ("open-mixtral-8x22b", "mistral"),
            ("mixtral-8x7b", "mistral"),
            ("codestral-latest", "mistral"),
            ("ministral-8b", "mistral"),
            ("pixtral-12b", "mistral"),
            ("grok-2-1212", "xai"),
            ("x-ai/grok-beta", "xai"),
            ("deepseek-chat", "deepseek"),
            ("deepseek-ai/DeepSeek-R1", "deepseek"),
            ("qwen2.5-72b-instruct", "alibaba"),
            ("Qwen/Qwen2.5-Coder-32B", "alibaba"),
            ("openrouter/anthropic/claude-3-opus", "anthropic"),
            ("azure/gpt-4o", "openai"),
            // The vendor answers when the name is its own.
            ("openai/my-custom-model", "openai"),
            ("google/flan-t5-xl", "google"),
            // Near misses and strangers.
            ("palmyra-x-004", "unknown"),
            ("commander", "unknown"),
            ("gptq-model", "unknown"),
            ("phi-3-mini", "unknown"),
            ("my-fine-tune", "unknown"),
            ("", "unknown"),
            ("  ", "unknown"),
            ("o", "unknown"),
            ("some.dotted.name", "unknown"),
        ];
        for (model, want) in cases {
            assert_eq!(infer_provider(model), want, "{model:?}");
        }
    }

    #[test]
    fn lookback_is_one_to_365_days_and_defaults_to_30() {
        let cases: [(Option<i64>, Result<i64, ()>); 7] = [
            (None, Ok(30)),
            (Some(1), Ok(1)),
            (Some(30), Ok(30)),
            (Some(365), Ok(365)),
            (Some(0), Err(())),
            (Some(-1), Err(())),
            (Some(366), Err(())),
        ];
        for (days, want) in cases {
            let got = check_lookback(days);
            assert_eq!(got.clone().map_err(|_| ()), want, "{days:?}");
            if let Err(e) = got {
                assert_eq!(e.field, "lookback_days");
            }
        }
    }
}
