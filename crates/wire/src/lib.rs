//! The gateway's wire formats, as pure functions over bytes.
//!
//! [`openai`] reads what the gateway needs from an OpenAI request (the
//! `model`, whether it streams) without decoding the rest, rewrites the model
//! in place, and finds token usage in responses and stream chunks. [`sse`]
//! splits a byte stream into server-sent events without copying. The
//! translators turn an OpenAI chat request into another provider's request
//! and its answers (whole or streamed) back into OpenAI's shapes:
//! [`anthropic`] speaks Anthropic's Messages API and [`google`] the Gemini
//! API, both reading the request through one shared reader so that the two
//! agree on what a chat request means.
//!
//! Nothing here does IO: the gateway feeds bytes in and sends bytes out.

pub mod anthropic;
mod chat;
pub mod google;
pub mod openai;
pub mod sse;
#[cfg(test)]
mod testing;

/// Token counts of one request, as far as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

impl Usage {
    pub fn total(&self) -> Option<u64> {
        match (self.prompt_tokens, self.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
        }
    }

    /// Keeps every count `other` knows, so a later report completes an earlier one.
    pub fn merge(&mut self, other: Usage) {
        if other.prompt_tokens.is_some() {
            self.prompt_tokens = other.prompt_tokens;
        }
        if other.completion_tokens.is_some() {
            self.completion_tokens = other.completion_tokens;
        }
    }
}

/// Why a body could not be read or translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the upstream answered with a body that could not be read: {0}")]
    UpstreamBody(String),
}
