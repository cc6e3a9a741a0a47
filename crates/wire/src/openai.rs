//! The OpenAI API as the gateway sees it: only the fields it must read, read
//! without decoding the rest, and the few edits it makes done in place so the
//! bytes the client sent are the bytes the upstream receives.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{Usage, WireError};

/// What the gateway reads of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub model: String,
    pub stream: bool,
    /// Whether the client asked for usage in the stream (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Byte span of the `model` value (quotes included) in the body.
    model_span: (usize, usize),
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl RequestHead {
    /// Reads `model`, `stream` and `stream_options` of a JSON object.
    pub fn parse(body: &[u8]) -> Result<RequestHead, WireError> {
        let trimmed = body.trim_ascii_start();
        if !trimmed.starts_with(b"{") {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Err(WireError::NotAnObject),
                Err(e) => Err(WireError::InvalidJson(e.to_string())),
            };
        }
        let head: Head<'_> =
            serde_json::from_slice(body).map_err(|e| WireError::InvalidJson(e.to_string()))?;
        let raw = head.model.ok_or(WireError::Missing("model"))?;
        let model: String = serde_json::from_str(raw.get()).map_err(|_| WireError::Invalid {
            field: "model",
            reason: "must be a string".into(),
        })?;
        if model.is_empty() {
            return Err(WireError::Invalid {
                field: "model",
                reason: "must not be empty".into(),
            });
        }
        let stream = match head.stream {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => {
                return Err(WireError::Invalid {
                    field: "stream",
                    reason: "must be a boolean".into(),
                })
            }
        };
        let include_usage = match head.stream_options {
            Some(raw) if raw.get() != "null" => serde_json::from_str::<StreamOptions>(raw.get())
                .map_err(|_| WireError::Invalid {
                    field: "stream_options",
                    reason: "must be an object".into(),
                })?
                .include_usage
                .unwrap_or(false),
            _ => false,
        };
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        Ok(RequestHead {
            model,
            stream,
            include_usage,
            model_span: (start, start + raw.get().len()),
        })
    }

    /// Whether the body already names `stream_options` (then it is left as the client wrote it).
    fn has_stream_options(body: &[u8]) -> bool {
        memchr::memmem::find(body, b"\"stream_options\"").is_some()
    }

    /// The body to send upstream: the same bytes with `model` replaced when
    /// the upstream calls the model otherwise, and, for a stream whose client
    /// did not ask for usage, `stream_options.include_usage` added so the
    /// gateway can meter it. Returns the body and whether usage was added
    /// (then the usage-only chunk is the gateway's, not the client's).
    pub fn upstream_body(&self, body: &bytes::Bytes, upstream_model: &str) -> (bytes::Bytes, bool) {
        let add_usage = self.stream && !self.include_usage && !Self::has_stream_options(body);
        if upstream_model == self.model && !add_usage {
            return (body.clone(), false);
        }
        let quoted = serde_json::to_string(upstream_model).unwrap_or_else(|_| "\"\"".into());
        let (start, end) = self.model_span;
        let mut out = Vec::with_capacity(body.len() + quoted.len() + 48);
        out.extend_from_slice(&body[..start]);
        out.extend_from_slice(quoted.as_bytes());
        if add_usage {
            // Directly after the model's value: always inside the top-level object.
            out.extend_from_slice(b",\"stream_options\":{\"include_usage\":true}");
        }
        out.extend_from_slice(&body[end..]);
        (bytes::Bytes::from(out), add_usage)
    }
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(u: UsageWire) -> Usage {
        let completion = u.completion_tokens.or_else(|| {
            // Embeddings report only prompt and total tokens.
            match (u.total_tokens, u.prompt_tokens) {
                (Some(t), Some(p)) if t >= p => Some(t - p),
                _ => None,
            }
        });
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: completion,
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<UsageWire>,
}

/// The `usage` of a whole (non-streamed) response body, if it has one.
pub fn response_usage(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<WithUsage>(body)
        .ok()?
        .usage
        .map(Usage::from)
}

#[derive(Deserialize)]
struct ChunkHead {
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// What one stream chunk (`data:` payload) says about usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkUsage {
    pub usage: Usage,
    /// The chunk carries nothing but usage (`choices` empty): the one a
    /// gateway that asked for usage itself should not pass on.
    pub usage_only: bool,
}

/// Reads usage from a stream chunk; `None` for chunks without usage (most),
/// found cheaply without decoding them.
pub fn chunk_usage(data: &[u8]) -> Option<ChunkUsage> {
    let at = memchr::memmem::find(data, b"\"usage\"")?;
    // `"usage":null` is what every chunk before the last says.
    let after = data[at + 7..].trim_ascii_start();
    let after = after.strip_prefix(b":")?.trim_ascii_start();
    if after.starts_with(b"null") {
        return None;
    }
    let chunk: ChunkHead = serde_json::from_slice(data).ok()?;
    let usage = chunk.usage.map(Usage::from)?;
    Some(ChunkUsage {
        usage,
        usage_only: chunk.choices.is_none_or(|c| c.is_empty()),
    })
}

/// The message of an OpenAI-shaped error body, if it is one.
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object { message: String },
        Text(String),
    }
    match serde_json::from_slice::<Outer>(body).ok()?.error {
        Inner::Object { message } | Inner::Text(message) => Some(message),
    }
}

/// OpenAI's error `type`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RateLimit,
    Server,
    ServiceUnavailable,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Authentication => "authentication_error",
            ErrorType::Permission => "permission_error",
            ErrorType::NotFound => "not_found_error",
            ErrorType::RateLimit => "rate_limit_error",
            ErrorType::Server => "server_error",
            ErrorType::ServiceUnavailable => "service_unavailable",
        }
    }
}

/// An error body in OpenAI's shape: `{"error": {message, type, param, code}}`.
pub fn error_body(kind: ErrorType, code: &str, message: &str, param: Option<&str>) -> String {
    serde_json::json!({
        "error": {
            "message": message,
            "type": kind.as_str(),
            "param": param,
            "code": code,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn head_reads_model_and_stream_and_ignores_the_rest() {
        let body = br#"{"messages":[{"role":"user","content":"hi \"model\""}],"model":"gpt-4o","stream":true}"#;
        let head = RequestHead::parse(body).expect("parses");
        assert_eq!(head.model, "gpt-4o");
        assert!(head.stream);
        assert!(!head.include_usage);
    }

    #[test]
    fn head_refuses_what_is_not_a_request() {
        assert!(matches!(
            RequestHead::parse(b"[1]"),
            Err(WireError::NotAnObject)
        ));
        assert!(matches!(
            RequestHead::parse(b"{"),
            Err(WireError::InvalidJson(_))
        ));
        assert!(matches!(
            RequestHead::parse(b"{}"),
            Err(WireError::Missing("model"))
        ));
        assert!(matches!(
            RequestHead::parse(br#"{"model":1}"#),
            Err(WireError::Invalid { field: "model", .. })
        ));
        assert!(matches!(
            RequestHead::parse(br#"{"model":"m","stream":"yes"}"#),
            Err(WireError::Invalid {
                field: "stream",
                ..
            })
        ));
    }

    #[test]
    fn the_same_model_leaves_the_body_untouched() {
        let body = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
        let head = RequestHead::parse(&body).expect("parses");
        let (out, added) = head.upstream_body(&body, "m");
        assert_eq!(out, body);
        assert!(!added);
        assert_eq!(out.as_ptr(), body.as_ptr(), "not even copied");
    }

    #[test]
    fn another_upstream_model_is_written_in_place() {
        let body = Bytes::from(
            "{ \"model\" : \"chat-default\", \"messages\":[{\"content\":\"\u{e9}\"}]}".as_bytes(),
        );
        let head = RequestHead::parse(&body).expect("parses");
        let (out, _) = head.upstream_body(&body, "gpt-4o\"x");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "{ \"model\" : \"gpt-4o\\\"x\", \"messages\":[{\"content\":\"\u{e9}\"}]}"
        );
    }

    #[test]
    fn a_stream_gets_usage_asked_for_unless_the_client_chose() {
        let body = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        let head = RequestHead::parse(&body).expect("parses");
        let (out, added) = head.upstream_body(&body, "m");
        assert!(added);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["stream_options"]["include_usage"], true);

        let body = Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
        );
        let head = RequestHead::parse(&body).expect("parses");
        let (out, added) = head.upstream_body(&body, "m");
        assert!(!added);
        assert_eq!(out, body);
    }

    #[test]
    fn usage_is_read_from_bodies_and_chunks() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#;
        assert_eq!(
            response_usage(body),
            Some(Usage {
                prompt_tokens: Some(3),
                completion_tokens: Some(5)
            })
        );
        let embeddings = br#"{"data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(
            response_usage(embeddings),
            Some(Usage {
                prompt_tokens: Some(4),
                completion_tokens: Some(0)
            })
        );
        assert_eq!(
            chunk_usage(br#"{"choices":[{"delta":{}}],"usage":null}"#),
            None
        );
        assert_eq!(
            chunk_usage(br#"{"choices":[{"delta":{"content":"usage"}}]}"#),
            None
        );
        let last =
            chunk_usage(br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#)
                .expect("usage");
        assert!(last.usage_only);
        assert_eq!(last.usage.total(), Some(3));
    }

    #[test]
    fn error_bodies_have_openais_shape() {
        let body = error_body(
            ErrorType::NotFound,
            "model_not_found",
            "no such model",
            Some("model"),
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(
            error_message(body.as_bytes()).as_deref(),
            Some("no such model")
        );
    }
}
