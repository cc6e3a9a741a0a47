//! Anthropic's Messages API (`POST {base}/messages`, headers `x-api-key` and
//! `anthropic-version`) spoken on behalf of OpenAI chat clients: requests
//! translated there, answers and streams translated back.
//!
//! The Messages API differs from chat completions in ways that shape the
//! code below: the system prompt is a top-level field, roles must alternate
//! (so consecutive messages of one role are merged, and tool results are
//! user turns), `max_tokens` is required, and tool calls are content blocks
//! whose arguments stream as pieces of JSON.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::chat::{self, Chunks, FunctionDelta, MediaKind, Part, Role, Source, ToolDelta};
use crate::{Usage, WireError};

/// The `anthropic-version` header the translation is written against.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` when the client gave none: Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataOut<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a Value>,
    },
    Image {
        source: SourceOut<'a>,
    },
    Document {
        source: SourceOut<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<&'a str>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SourceOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct ToolOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a RawValue,
}

#[derive(Serialize)]
struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct MetadataOut<'a> {
    user_id: &'a str,
}

/// OpenAI chat request body -> Anthropic Messages request body (JSON bytes).
/// `stream` is carried over.
///
/// What has no counterpart is refused rather than dropped when dropping
/// would change the answer (`n` > 1, audio input), and left out when it
/// would not (`response_format`, `seed`, penalties, `logprobs`).
/// `temperature` is clamped to Anthropic's 0..=1; `tool_choice: "none"` is
/// sent as Anthropic's `{"type":"none"}` with the tools kept, because a
/// conversation holding tool calls must still declare its tools.
pub fn chat_request(openai_body: &[u8], upstream_model: &str) -> Result<Vec<u8>, WireError> {
    let req = chat::parse_request(openai_body)?;
    if req.n.is_some_and(|n| n > 1) {
        return Err(WireError::Invalid {
            field: "n",
            reason: "Anthropic returns one choice per request".into(),
        });
    }

    let last = req.turns.len().saturating_sub(1);
    let mut messages = Vec::with_capacity(req.turns.len());
    for (t, turn) in req.turns.iter().enumerate() {
        // A final assistant turn is a prefill, which may not end in whitespace.
        let prefill = t == last && turn.role == Role::Assistant;
        let mut content = Vec::with_capacity(turn.parts.len());
        for (p, part) in turn.parts.iter().enumerate() {
            let trim = prefill && p + 1 == turn.parts.len();
            if let Some(block) = block(part, trim)? {
                content.push(block);
            }
        }
        if !content.is_empty() {
            messages.push(MessageOut {
                role: match turn.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content,
            });
        }
    }

    let default_schema = default_schema();
    let tools: Vec<ToolOut<'_>> = req
        .tools
        .iter()
        .map(|t| ToolOut {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: t.parameters.unwrap_or(&default_schema),
        })
        .collect();
    let tool_choice = if tools.is_empty() {
        None
    } else {
        let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
        match &req.tool_choice {
            Some(chat::ToolChoice::None) => Some(ToolChoiceOut {
                kind: "none",
                name: None,
                disable_parallel_tool_use: None,
            }),
            Some(chat::ToolChoice::Required) => Some(ToolChoiceOut {
                kind: "any",
                name: None,
                disable_parallel_tool_use: disable_parallel,
            }),
            Some(chat::ToolChoice::Function(name)) => Some(ToolChoiceOut {
                kind: "tool",
                name: Some(name),
                disable_parallel_tool_use: disable_parallel,
            }),
            Some(chat::ToolChoice::Auto) | None => {
                (req.tool_choice.is_some() || disable_parallel.is_some()).then_some(ToolChoiceOut {
                    kind: "auto",
                    name: None,
                    disable_parallel_tool_use: disable_parallel,
                })
            }
        }
    };

    let out = MessagesRequest {
        model: upstream_model,
        max_tokens: req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: (!req.system.is_empty()).then(|| req.system.join("\n\n")),
        messages,
        tools,
        tool_choice,
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        // Anthropic refuses stop sequences that are only whitespace.
        stop_sequences: req
            .stop
            .iter()
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect(),
        metadata: req.user.as_deref().map(|user_id| MetadataOut { user_id }),
        stream: req.stream,
    };
    serde_json::to_vec(&out).map_err(|e| WireError::Invalid {
        field: "messages",
        reason: e.to_string(),
    })
}

fn default_schema() -> Box<RawValue> {
    RawValue::from_string(r#"{"type":"object","properties":{}}"#.to_owned())
        .unwrap_or_else(|_| chat::empty_object())
}

fn block(part: &Part, trim_end: bool) -> Result<Option<Block<'_>>, WireError> {
    Ok(Some(match part {
        Part::Text {
            text,
            cache_control,
        } => {
            let text = if trim_end { text.trim_end() } else { text };
            if text.is_empty() {
                return Ok(None);
            }
            Block::Text {
                text,
                cache_control: cache_control.as_ref(),
            }
        }
        Part::Media { kind, source } => {
            let source = match source {
                Source::Base64 { media_type, data } => SourceOut::Base64 { media_type, data },
                Source::Url(url) => SourceOut::Url { url },
            };
            match kind {
                MediaKind::Image => Block::Image { source },
                MediaKind::Document => Block::Document { source },
                MediaKind::Audio => {
                    return Err(WireError::Invalid {
                        field: "messages",
                        reason: "Anthropic does not accept audio input".into(),
                    })
                }
            }
        }
        Part::ToolCall {
            id,
            name,
            arguments,
        } => Block::ToolUse {
            id,
            name,
            input: arguments,
        },
        Part::ToolResult { id, text, .. } => Block::ToolResult {
            tool_use_id: id,
            content: (!text.is_empty()).then_some(text.as_str()),
        },
    }))
}

// ---------------------------------------------------------------------------
// Answers.

#[derive(Deserialize)]
struct MessageIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Option<Vec<BlockIn>>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<ErrorIn>,
}

#[derive(Deserialize)]
struct BlockIn {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
struct UsageIn {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl UsageIn {
    /// Into `report`: prompt tokens count the cached ones, which Anthropic reports apart.
    fn merge_into(&self, report: &mut chat::UsageReport) {
        let prompt = chat::sum(&[
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ]);
        report.usage.merge(Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens,
        });
        if self.cache_read_input_tokens.is_some() {
            report.cached = self.cache_read_input_tokens;
        }
    }
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl ErrorIn {
    fn into_wire(self) -> WireError {
        let message = match (self.kind, self.message) {
            (_, Some(m)) => m,
            (Some(k), None) => k,
            (None, None) => "unknown error".into(),
        };
        WireError::UpstreamBody(message)
    }
}

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and whatever comes next.
        _ => "stop",
    }
}

/// Anthropic Messages response body -> OpenAI `chat.completion` body (JSON
/// bytes) and its usage. `requested_model` is the model name the client used.
pub fn chat_response(body: &[u8], requested_model: &str) -> Result<(Vec<u8>, Usage), WireError> {
    let msg: MessageIn =
        serde_json::from_slice(body).map_err(|e| WireError::UpstreamBody(e.to_string()))?;
    if let Some(error) = msg.error {
        return Err(error.into_wire());
    }
    if msg.kind.as_deref() == Some("error") {
        return Err(WireError::UpstreamBody("unknown error".into()));
    }
    let mut choice = chat::Choice::default();
    for block in msg.content.unwrap_or_default() {
        match block.kind.as_deref() {
            Some("text") => choice.text.push_str(block.text.as_deref().unwrap_or("")),
            Some("tool_use") => choice.tool_calls.push(chat::ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                arguments: block
                    .input
                    .map_or_else(|| "{}".to_owned(), |raw| raw.get().to_owned()),
            }),
            // Thinking, server tool blocks and what is new: not OpenAI's to see.
            _ => {}
        }
    }
    choice.finish_reason = Some(finish_reason(
        msg.stop_reason.as_deref().unwrap_or("end_turn"),
    ));
    let mut report = chat::UsageReport::default();
    if let Some(u) = &msg.usage {
        u.merge_into(&mut report);
    }
    let id = match msg.id {
        Some(id) if !id.is_empty() => id,
        _ => chat::derived_id(body),
    };
    let out = chat::completion_body(
        &id,
        chat::unix_now(),
        requested_model,
        std::slice::from_ref(&choice),
        &report,
    );
    Ok((out, report.usage))
}

/// The human message of an Anthropic error body
/// (`{"type":"error","error":{"type":..,"message":..}}`).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Inner {
        Object {
            #[serde(default)]
            message: Option<String>,
            #[serde(default, rename = "type")]
            kind: Option<String>,
        },
        Text(String),
    }
    match serde_json::from_slice::<Outer>(body).ok()?.error {
        Inner::Object { message, kind } => message.or(kind),
        Inner::Text(message) => Some(message),
    }
}

// ---------------------------------------------------------------------------
// Streams.

#[derive(Deserialize)]
struct StreamEventIn {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<MessageIn>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content_block: Option<BlockIn>,
    #[serde(default)]
    delta: Option<DeltaIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<ErrorIn>,
}

#[derive(Deserialize)]
struct DeltaIn {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// A tool-use content block being streamed.
#[derive(Debug)]
struct ToolBlock {
    /// Its index among the message's tool calls (OpenAI's `tool_calls[].index`).
    index: u32,
    /// Whether any argument text went out: a call without arguments still
    /// owes the client `{}`, which is what OpenAI would have sent.
    sent_arguments: bool,
}

/// Anthropic SSE events -> OpenAI `chat.completion.chunk` SSE events.
#[derive(Debug)]
pub struct ChatStream {
    chunks: Chunks,
    started: bool,
    complete: bool,
    done: bool,
    usage: chat::UsageReport,
    /// Content block index -> the tool call it streams.
    tools: BTreeMap<u64, ToolBlock>,
    next_tool: u32,
}

impl ChatStream {
    /// `include_usage`: the client asked for `stream_options.include_usage`
    /// (then a final chunk with empty choices and usage is sent before
    /// `[DONE]`, as OpenAI does). `created`: unix seconds.
    pub fn new(requested_model: &str, include_usage: bool, created: i64) -> Self {
        let seed = format!("{requested_model}\n{created}");
        ChatStream {
            chunks: Chunks {
                id: chat::derived_id(seed.as_bytes()),
                created,
                model: requested_model.to_owned(),
                include_usage,
            },
            started: false,
            complete: false,
            done: false,
            usage: chat::UsageReport::default(),
            tools: BTreeMap::new(),
            next_tool: 0,
        }
    }

    /// One upstream event -> zero or more complete OpenAI SSE events. An
    /// upstream `error` event (or one that is not JSON) is an error.
    pub fn event(&mut self, event: &crate::sse::Event) -> Result<Vec<Bytes>, WireError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let ev: StreamEventIn = serde_json::from_str(data)
            .map_err(|e| WireError::UpstreamBody(format!("unreadable stream event: {e}")))?;
        let kind = ev.kind.as_deref().or(event.name.as_deref()).unwrap_or("");
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if let Some(msg) = ev.message {
                    if let Some(id) = msg.id.filter(|id| !id.is_empty()) {
                        if !self.started {
                            self.chunks.id = id;
                        }
                    }
                    if let Some(u) = &msg.usage {
                        u.merge_into(&mut self.usage);
                    }
                }
                self.start(&mut out);
            }
            "content_block_start" => {
                let Some(block) = ev.content_block else {
                    return Ok(out);
                };
                match block.kind.as_deref() {
                    Some("text") => {
                        self.start(&mut out);
                        if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                            out.push(self.chunks.text(0, &text));
                        }
                    }
                    Some("tool_use") => {
                        self.start(&mut out);
                        let index = self.next_tool;
                        self.next_tool = self.next_tool.saturating_add(1);
                        // Streams start tool input as `{}` and send it in pieces;
                        // anything else came whole and goes out whole.
                        let arguments = block
                            .input
                            .as_deref()
                            .map(RawValue::get)
                            .filter(|a| !matches!(a.trim(), "{}" | "null"));
                        out.push(self.chunks.tool(
                            0,
                            ToolDelta {
                                index,
                                id: Some(block.id.as_deref().unwrap_or("")),
                                kind: Some("function"),
                                function: FunctionDelta {
                                    name: Some(block.name.as_deref().unwrap_or("")),
                                    arguments: arguments.unwrap_or(""),
                                },
                            },
                        ));
                        self.tools.insert(
                            ev.index.unwrap_or(u64::MAX),
                            ToolBlock {
                                index,
                                sent_arguments: arguments.is_some(),
                            },
                        );
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = ev.delta else {
                    return Ok(out);
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                            self.start(&mut out);
                            out.push(self.chunks.text(0, &text));
                        }
                    }
                    Some("input_json_delta") => {
                        let piece = delta.partial_json.unwrap_or_default();
                        let tool = ev.index.and_then(|i| self.tools.get_mut(&i));
                        if let (Some(tool), false) = (tool, piece.is_empty()) {
                            tool.sent_arguments = true;
                            let index = tool.index;
                            out.push(self.chunks.tool(
                                0,
                                ToolDelta {
                                    index,
                                    id: None,
                                    kind: None,
                                    function: FunctionDelta {
                                        name: None,
                                        arguments: &piece,
                                    },
                                },
                            ));
                        }
                    }
                    // thinking_delta, signature_delta, citations_delta: not OpenAI's.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(tool) = ev.index.and_then(|i| self.tools.get_mut(&i)) {
                    if !tool.sent_arguments {
                        tool.sent_arguments = true;
                        let index = tool.index;
                        out.push(self.chunks.tool(
                            0,
                            ToolDelta {
                                index,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: "{}",
                                },
                            },
                        ));
                    }
                }
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    u.merge_into(&mut self.usage);
                }
                if let Some(reason) = ev.delta.and_then(|d| d.stop_reason) {
                    self.start(&mut out);
                    out.push(self.chunks.finish(0, finish_reason(&reason)));
                }
            }
            "message_stop" => self.complete = true,
            "error" => {
                return Err(ev.error.map_or_else(
                    || WireError::UpstreamBody("unknown error".into()),
                    ErrorIn::into_wire,
                ))
            }
            // ping, and events added after this was written.
            _ => {}
        }
        Ok(out)
    }

    /// The role chunk, once, before anything else of the choice.
    fn start(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            out.push(self.chunks.role(0));
        }
    }

    /// After the upstream stream ended: the final usage chunk (if
    /// `include_usage`) and `data: [DONE]`. A second call returns nothing.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let mut out = Vec::with_capacity(2);
        if self.chunks.include_usage {
            out.push(self.chunks.usage(&self.usage));
        }
        out.push(Bytes::from_static(crate::sse::DONE));
        out
    }

    /// The usage seen so far (input tokens from `message_start`, output
    /// tokens from `message_delta`).
    pub fn usage(&self) -> Usage {
        self.usage.usage
    }

    /// Whether the upstream said the message is complete (`message_stop`).
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{blocks, Event, Splitter};
    use crate::testing::{chunk_json, fuzz_bytes, Lcg};
    use serde_json::json;

    fn request(body: &Value) -> Value {
        let out =
            chat_request(body.to_string().as_bytes(), "claude-sonnet-4-5").expect("translates");
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn a_plain_request_gets_a_system_prompt_and_a_default_max_tokens() {
        let got = request(&json!({
            "model": "chat-default",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "Hello"}
            ],
            "temperature": 1.4,
            "top_p": 0.9,
            "stop": "END",
            "user": "user-42",
            "stream": true,
            "frequency_penalty": 0.5
        }));
        assert_eq!(
            got,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "You are terse.\n\nAnswer in French.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
                "temperature": 1.0,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "metadata": {"user_id": "user-42"},
                "stream": true
            })
        );
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let got = request(&json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", " "]
        }));
        assert_eq!(got["max_tokens"], 20);
        assert_eq!(got["stop_sequences"], json!(["a"]));
        assert!(got.get("stream").is_none());
    }

    #[test]
    fn a_tool_conversation_becomes_alternating_blocks() {
        let got = request(&json!({
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/sky.png"}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\",\"unit\":\"c\"}"}},
                    {"id": "toolu_2", "type": "function",
                     "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather by place",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}},
                {"type": "function", "function": {"name": "get_time"}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }));
        assert_eq!(
            got["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather here?", "cache_control": {"type": "ephemeral"}},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/sky.png"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris", "unit": "c"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                    {"type": "text", "text": "Thanks"}
                ]}
            ])
        );
        assert_eq!(
            got["tools"],
            json!([
                {"name": "get_weather", "description": "Weather by place",
                 "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}},
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert_eq!(
            got["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
    }

    #[test]
    fn tool_choice_maps_to_anthropics_kinds() {
        let choice = |c: Value| {
            request(&json!({
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": c
            }))["tool_choice"]
                .clone()
        };
        assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
        assert_eq!(choice(json!("none")), json!({"type": "none"}));
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(choice(Value::Null), Value::Null);
    }

    #[test]
    fn a_schema_keeps_its_property_order() {
        let body = br#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}}}]}"#;
        let out = String::from_utf8(chat_request(body, "m").expect("translates")).expect("utf8");
        let z = out.find("zeta").expect("zeta");
        let a = out.find("alpha").expect("alpha");
        assert!(z < a, "{out}");
    }

    #[test]
    fn a_final_assistant_prefill_loses_trailing_whitespace() {
        let got = request(&json!({"messages": [
            {"role": "user", "content": "Start a list"},
            {"role": "assistant", "content": "1. "}
        ]}));
        assert_eq!(got["messages"][1]["content"][0]["text"], "1.");
    }

    #[test]
    fn what_anthropic_cannot_do_is_refused_by_name() {
        let err =
            |body: Value| chat_request(body.to_string().as_bytes(), "m").expect_err("refused");
        assert!(matches!(
            err(json!({"messages": [{"role": "user", "content": "x"}], "n": 2})),
            WireError::Invalid { field: "n", .. }
        ));
        assert!(matches!(
            err(json!({"messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})),
            WireError::Invalid {
                field: "messages",
                ..
            }
        ));
        assert!(matches!(
            err(json!({"messages": [{"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]})),
            WireError::Invalid {
                field: "messages",
                ..
            }
        ));
        assert!(matches!(
            err(json!({"model": "m"})),
            WireError::Missing("messages")
        ));
        assert!(matches!(err(json!("text")), WireError::NotAnObject));
    }

    const RESPONSE: &str = r#"{
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
            {"type": "text", "text": "Let me check "},
            {"type": "text", "text": "the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 10,
                  "cache_read_input_tokens": 100, "output_tokens": 91,
                  "service_tier": "standard"}
    }"#;

    #[test]
    fn a_response_becomes_a_chat_completion() {
        let (body, usage) = chat_response(RESPONSE.as_bytes(), "claude").expect("translates");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: Some(582),
                completion_tokens: Some(91)
            }
        );
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude");
        assert!(v["created"].as_i64().expect("created") > 1_600_000_000);
        let choice = &v["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Let me check the weather.");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
                .expect("arguments are JSON");
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 582, "completion_tokens": 91, "total_tokens": 673,
                   "prompt_tokens_details": {"cached_tokens": 100}})
        );
        assert_eq!(crate::openai::response_usage(&body), Some(usage));
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let body = json!({"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "x"}],
                              "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}});
            let (out, _) = chat_response(body.to_string().as_bytes(), "m").expect("translates");
            let v: Value = serde_json::from_slice(&out).expect("json");
            assert_eq!(v["choices"][0]["finish_reason"], finish, "{stop}");
        }
    }

    #[test]
    fn error_bodies_give_their_message() {
        // As in the provider's documentation (and the 429 captured for the catalog).
        let body = br#"{
  "type": "error",
  "error": {
    "type": "rate_limit_error",
    "message": "Number of requests has exceeded your per-minute rate limit"
  },
  "request_id": "req_011CTestRequestId"
}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("Number of requests has exceeded your per-minute rate limit")
        );
        assert!(matches!(
            chat_response(body, "m"),
            Err(WireError::UpstreamBody(m)) if m.contains("rate limit")
        ));
        assert_eq!(
            error_message(b"{\"error\":\"boom\"}").as_deref(),
            Some("boom")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_read_input_tokens\":8,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\
\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\", let's check the weather for San Francisco, CA \u{1F324}:\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisc\"}}\n\
\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"o, CA\\\", \\\"unit\\\": \\\"fahrenheit\\\"}\"}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\
\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\",\"input\":{}}}\n\
\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\n\
\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\
\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\
\n";

    /// Feeds `sse` to a fresh stream in pieces of `size` bytes, as a proxy would.
    fn run(sse: &str, size: usize, include_usage: bool) -> (ChatStream, Vec<Bytes>) {
        let mut stream = ChatStream::new("claude", include_usage, 1_700_000_000);
        let mut splitter = Splitter::new();
        let mut out = Vec::new();
        for piece in sse.as_bytes().chunks(size) {
            let (bytes, ends) = splitter.push(piece).expect("fits");
            for block in blocks(&bytes, &ends) {
                out.extend(stream.event(&Event::parse(block)).expect("translates"));
            }
        }
        assert!(splitter.finish().is_empty());
        out.extend(stream.finish());
        (stream, out)
    }

    #[test]
    fn a_stream_becomes_openai_chunks_whatever_the_read_sizes() {
        let (stream, whole) = run(STREAM, STREAM.len(), true);
        for size in [1, 2, 3, 7, 64, 333] {
            assert_eq!(run(STREAM, size, true).1, whole, "read size {size}");
        }
        assert!(stream.is_complete());
        assert_eq!(
            stream.usage(),
            Usage {
                prompt_tokens: Some(480),
                completion_tokens: Some(89)
            }
        );

        assert_eq!(whole.last().map(|b| &b[..]), Some(crate::sse::DONE));
        let chunks: Vec<Value> = whole[..whole.len() - 1]
            .iter()
            .map(|b| chunk_json(b))
            .collect();
        for c in &chunks {
            assert_eq!(c["id"], "msg_014p7gG3wDgGV9EUtLvnow3U");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["created"], 1_700_000_000);
            assert_eq!(c["model"], "claude");
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(chunks[0]["usage"], Value::Null);

        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            text,
            "Okay, let's check the weather for San Francisco, CA \u{1F324}:"
        );

        let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
        for c in &chunks {
            for t in c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let entry = calls
                    .entry(t["index"].as_u64().expect("index"))
                    .or_default();
                if let Some(id) = t["id"].as_str() {
                    assert!(entry.0.is_empty(), "id only in the first delta");
                    entry.0 = id.to_owned();
                    assert_eq!(t["type"], "function");
                    entry.1 = t["function"]["name"].as_str().expect("name").to_owned();
                }
                entry
                    .2
                    .push_str(t["function"]["arguments"].as_str().expect("arguments"));
            }
        }
        assert_eq!(calls.len(), 2);
        let (id, name, args) = &calls[&0];
        assert_eq!(
            (id.as_str(), name.as_str()),
            ("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")
        );
        let args: Value = serde_json::from_str(args).expect("arguments reassemble to JSON");
        assert_eq!(
            args,
            json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        assert_eq!(calls[&1].1, "get_time");
        assert_eq!(
            calls[&1].2, "{}",
            "a call without arguments still gets an object"
        );

        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 480, "completion_tokens": 89, "total_tokens": 569,
                   "prompt_tokens_details": {"cached_tokens": 8}})
        );
        let seen = crate::openai::chunk_usage(&whole[whole.len() - 2][6..]).expect("usage chunk");
        assert!(seen.usage_only);
        assert_eq!(seen.usage, stream.usage());
    }

    #[test]
    fn without_include_usage_the_stream_ends_with_done_only() {
        let (mut stream, out) = run(STREAM, 50, false);
        let last_chunk = chunk_json(&out[out.len() - 2]);
        assert_eq!(last_chunk["choices"][0]["finish_reason"], "tool_calls");
        assert!(last_chunk.get("usage").is_none());
        assert_eq!(&out[out.len() - 1][..], crate::sse::DONE);
        assert!(stream.finish().is_empty(), "finish twice sends nothing");
    }

    #[test]
    fn an_error_event_is_an_error_and_the_stream_is_not_complete() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let mut stream = ChatStream::new("claude", false, 0);
        let mut splitter = Splitter::new();
        let (bytes, ends) = splitter.push(sse.as_bytes()).expect("fits");
        let events: Vec<Event> = blocks(&bytes, &ends).map(Event::parse).collect();
        assert_eq!(stream.event(&events[0]).expect("start").len(), 1);
        assert_eq!(
            stream.event(&events[1]),
            Err(WireError::UpstreamBody("Overloaded".into()))
        );
        assert!(!stream.is_complete());
        assert_eq!(stream.usage().prompt_tokens, Some(5));
    }

    #[test]
    fn a_truncated_stream_is_not_complete() {
        let cut = STREAM.find("event: message_delta").expect("fixture");
        let (stream, out) = run(&STREAM[..cut], 10, false);
        assert!(!stream.is_complete());
        assert_eq!(&out[out.len() - 1][..], crate::sse::DONE);
        assert_eq!(stream.usage().completion_tokens, Some(2));
    }

    #[test]
    fn no_input_makes_it_panic() {
        let valid_request = br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"max_tokens":5,"stop":["x"],"n":1,"user":"u","stream":true}"#;
        let mut rng = Lcg::new(7);
        let seeds: [&[u8]; 3] = [valid_request, RESPONSE.as_bytes(), STREAM.as_bytes()];
        for input in fuzz_bytes(&mut rng, &seeds, 3000) {
            let _ = chat_request(&input, "m");
            let _ = chat_response(&input, "m");
            let _ = error_message(&input);
        }
        // Stream events: each fixture event's data, cut and bent.
        let datas: Vec<Vec<u8>> = STREAM
            .split("\n\n")
            .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| d.as_bytes().to_vec())
            .collect();
        let seeds: Vec<&[u8]> = datas.iter().map(Vec::as_slice).collect();
        let mut stream = ChatStream::new("m", true, 0);
        for input in fuzz_bytes(&mut rng, &seeds, 5000) {
            let name = ["message_start", "content_block_delta", "error", "x"][input.len() % 4];
            let event = Event {
                name: Some(name.into()),
                data: String::from_utf8_lossy(&input).into_owned(),
            };
            let _ = stream.event(&event);
        }
        let _ = stream.finish();
        let _ = stream.usage();
    }
}
