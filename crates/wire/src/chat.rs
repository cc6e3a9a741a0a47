//! OpenAI chat completions as the translators see them: a request read once
//! into a provider-neutral form (so each translator only has to write its
//! own shape), and the `chat.completion` body and `chat.completion.chunk`
//! events written back.
//!
//! JSON Schemas and tool-call arguments stay raw JSON text from end to end:
//! decoding them into `serde_json::Value` would sort their keys, and the
//! order of a schema's properties is the order models write them in.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::{Usage, WireError};

/// An OpenAI chat request, read.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// The texts of the system and developer messages, in order.
    pub system: Vec<String>,
    /// User and assistant turns, alternating: consecutive messages of one
    /// role are merged, and tool results are user turns.
    pub turns: Vec<Turn>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub n: Option<u64>,
    pub response_format: ResponseFormat<'a>,
    pub user: Option<String>,
    pub stream: bool,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

#[derive(Debug)]
pub(crate) struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

#[derive(Debug)]
pub(crate) enum Part {
    Text {
        text: String,
        /// Anthropic's prompt-caching marker, which some OpenAI clients
        /// put on content parts; passed on where the upstream knows it.
        cache_control: Option<Value>,
    },
    Media {
        kind: MediaKind,
        source: Source,
    },
    ToolCall {
        id: String,
        name: String,
        /// Always a JSON object.
        arguments: Box<RawValue>,
    },
    ToolResult {
        id: String,
        /// The function's name: found from the assistant's call with the
        /// same id (Gemini answers by name, not by id).
        name: String,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Image,
    /// A `file` part (a PDF, usually).
    Document,
    Audio,
}

#[derive(Debug)]
pub(crate) enum Source {
    Base64 { media_type: String, data: String },
    Url(String),
}

#[derive(Debug)]
pub(crate) struct Tool<'a> {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<&'a RawValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

#[derive(Debug)]
pub(crate) enum ResponseFormat<'a> {
    Text,
    JsonObject,
    JsonSchema(Option<&'a RawValue>),
}

#[derive(Deserialize)]
struct RequestWire<'a> {
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(borrow, default)]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    temperature: Option<&'a RawValue>,
    #[serde(borrow, default)]
    top_p: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stop: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_format: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    seed: Option<&'a RawValue>,
    #[serde(borrow, default)]
    presence_penalty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    frequency_penalty: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageWire {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallWire>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ToolCallWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionCallWire>,
}

#[derive(Deserialize)]
struct FunctionCallWire {
    #[serde(default)]
    name: Option<String>,
    /// A string of JSON, as OpenAI sends it (an object is accepted too).
    #[serde(default)]
    arguments: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ToolWire<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(borrow, default)]
    function: Option<FunctionDefWire<'a>>,
}

#[derive(Deserialize)]
struct FunctionDefWire<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponseFormatWire<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(borrow, default)]
    json_schema: Option<JsonSchemaWire<'a>>,
}

#[derive(Deserialize)]
struct JsonSchemaWire<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Decodes one optional field, naming it when it has the wrong shape.
fn read<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    field: &'static str,
    expected: &str,
) -> Result<Option<T>, WireError> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| WireError::Invalid {
                field,
                reason: format!("must be {expected}"),
            }),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> WireError {
    WireError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Reads an OpenAI chat request body.
pub(crate) fn parse_request(body: &[u8]) -> Result<Request<'_>, WireError> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(WireError::NotAnObject),
            Err(e) => Err(WireError::InvalidJson(e.to_string())),
        };
    }
    let wire: RequestWire<'_> =
        serde_json::from_slice(body).map_err(|e| WireError::InvalidJson(e.to_string()))?;

    let messages: Vec<&RawValue> = read(wire.messages, "messages", "an array of messages")?
        .ok_or(WireError::Missing("messages"))?;
    let (system, turns) = read_messages(&messages)?;

    let tools = match read::<Vec<ToolWire<'_>>>(wire.tools, "tools", "an array of tools")? {
        None => Vec::new(),
        Some(tools) => tools
            .into_iter()
            .enumerate()
            .map(|(i, t)| read_tool(i, t))
            .collect::<Result<_, _>>()?,
    };
    let tool_choice = wire
        .tool_choice
        .as_ref()
        .map(read_tool_choice)
        .transpose()?;

    let max_tokens = match read(
        wire.max_completion_tokens,
        "max_completion_tokens",
        "a non-negative integer",
    )? {
        Some(n) => Some(n),
        None => read(wire.max_tokens, "max_tokens", "a non-negative integer")?,
    };
    let stop = match read::<OneOrMany>(wire.stop, "stop", "a string or an array of strings")? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    let n: Option<u64> = read(wire.n, "n", "a positive integer")?;
    if n == Some(0) {
        return Err(invalid("n", "must be a positive integer"));
    }

    let response_format = match read::<ResponseFormatWire<'_>>(
        wire.response_format,
        "response_format",
        "an object with a `type`",
    )? {
        None => ResponseFormat::Text,
        Some(f) => match f.kind.as_deref() {
            None | Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => ResponseFormat::JsonSchema(f.json_schema.and_then(|s| s.schema)),
            Some(other) => {
                return Err(invalid(
                    "response_format",
                    format!("unknown type `{other}`"),
                ))
            }
        },
    };

    Ok(Request {
        system,
        turns,
        tools,
        tool_choice,
        parallel_tool_calls: read(wire.parallel_tool_calls, "parallel_tool_calls", "a boolean")?,
        max_tokens,
        temperature: read(wire.temperature, "temperature", "a number")?,
        top_p: read(wire.top_p, "top_p", "a number")?,
        stop,
        n,
        response_format,
        user: read(wire.user, "user", "a string")?,
        stream: read(wire.stream, "stream", "a boolean")?.unwrap_or(false),
        seed: read(wire.seed, "seed", "an integer")?,
        presence_penalty: read(wire.presence_penalty, "presence_penalty", "a number")?,
        frequency_penalty: read(wire.frequency_penalty, "frequency_penalty", "a number")?,
    })
}

fn read_messages(messages: &[&RawValue]) -> Result<(Vec<String>, Vec<Turn>), WireError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    // Tool call id -> function name, the latest call winning (ids may repeat across turns).
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, raw) in messages.iter().enumerate() {
        let m: MessageWire = serde_json::from_str(raw.get())
            .map_err(|e| invalid("messages", format!("message {i}: {e}")))?;
        let role = m
            .role
            .as_deref()
            .ok_or_else(|| invalid("messages", format!("message {i}: `role` is required")))?;
        match role {
            "system" | "developer" => {
                let text = text_only(m.content.as_ref(), i)?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => {
                let parts = content_parts(m.content.as_ref(), i)?;
                push_turn(&mut turns, Role::User, parts);
            }
            "assistant" => {
                let mut parts = content_parts(m.content.as_ref(), i)?;
                for (j, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    let part = read_tool_call(i, j, call)?;
                    if let Part::ToolCall { id, name, .. } = &part {
                        call_names.insert(id.clone(), name.clone());
                    }
                    parts.push(part);
                }
                push_turn(&mut turns, Role::Assistant, parts);
            }
            "tool" => {
                let id = m.tool_call_id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    invalid(
                        "messages",
                        format!("message {i}: a `tool` message needs `tool_call_id`"),
                    )
                })?;
                let name = call_names
                    .get(&id)
                    .cloned()
                    .or(m.name)
                    .unwrap_or_else(|| id.clone());
                let text = text_only(m.content.as_ref(), i)?;
                push_turn(
                    &mut turns,
                    Role::User,
                    vec![Part::ToolResult { id, name, text }],
                );
            }
            "function" => {
                return Err(invalid(
                    "messages",
                    format!(
                        "message {i}: the deprecated `function` role is not supported; use `tool`"
                    ),
                ))
            }
            other => {
                return Err(invalid(
                    "messages",
                    format!("message {i}: unknown role `{other}`"),
                ))
            }
        }
    }
    for turn in &mut turns {
        if turn.role == Role::User {
            // Anthropic wants a user turn's tool results before anything else;
            // the sort is stable, so each group keeps its order.
            turn.parts
                .sort_by_key(|p| !matches!(p, Part::ToolResult { .. }));
        }
    }
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "needs at least one user, assistant or tool message with content",
        ));
    }
    Ok((system, turns))
}

/// Appends a message's parts, merging it into the previous turn when that
/// has the same role (Anthropic refuses two user turns in a row).
fn push_turn(turns: &mut Vec<Turn>, role: Role, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

fn read_tool_call(i: usize, j: usize, call: ToolCallWire) -> Result<Part, WireError> {
    let bad = |what: &str| invalid("messages", format!("message {i}, tool call {j}: {what}"));
    if let Some(kind) = call.kind.as_deref() {
        if kind != "function" {
            return Err(bad(&format!("unsupported type `{kind}`")));
        }
    }
    let id = call
        .id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("`id` is required"))?;
    let function = call.function.ok_or_else(|| bad("`function` is required"))?;
    let name = function
        .name
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("`function.name` is required"))?;
    let arguments = match function.arguments {
        None => empty_object(),
        Some(raw) => {
            let text = raw.get().trim_ascii_start();
            if text.starts_with('"') {
                let s: String = serde_json::from_str(raw.get())
                    .map_err(|e| bad(&format!("`arguments` is not a string: {e}")))?;
                if s.trim().is_empty() {
                    empty_object()
                } else {
                    serde_json::from_str::<Box<RawValue>>(&s)
                        .map_err(|e| bad(&format!("`arguments` is not valid JSON: {e}")))?
                }
            } else {
                raw
            }
        }
    };
    if !arguments.get().trim_ascii_start().starts_with('{') {
        return Err(bad("`arguments` must be a JSON object"));
    }
    Ok(Part::ToolCall {
        id,
        name,
        arguments,
    })
}

pub(crate) fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::default())
}

/// The text of a message whose content may only be text (system, tool).
fn text_only(content: Option<&Value>, i: usize) -> Result<String, WireError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let t = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                            invalid("messages", format!("message {i}: a text part needs `text`"))
                        })?;
                        if !text.is_empty() && !t.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(t);
                    }
                    other => {
                        return Err(invalid(
                            "messages",
                            format!(
                                "message {i}: only text parts are allowed here, not {}",
                                other.unwrap_or("a part without `type`")
                            ),
                        ))
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(
            "messages",
            format!("message {i}: `content` must be a string or an array of parts"),
        )),
    }
}

fn content_parts(content: Option<&Value>, i: usize) -> Result<Vec<Part>, WireError> {
    let bad = |what: String| invalid("messages", format!("message {i}: {what}"));
    let text_part = |text: &str, cache_control: Option<&Value>| Part::Text {
        text: text.to_owned(),
        cache_control: cache_control.filter(|c| c.is_object()).cloned(),
    };
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![text_part(s, None)]),
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                let cache_control = item.get("cache_control");
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = item
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("a text part needs `text`".into()))?;
                        if !text.is_empty() {
                            parts.push(text_part(text, cache_control));
                        }
                    }
                    Some("refusal") => {
                        if let Some(text) = item.get("refusal").and_then(Value::as_str) {
                            if !text.is_empty() {
                                parts.push(text_part(text, None));
                            }
                        }
                    }
                    Some("image_url") => {
                        let url = match item.get("image_url") {
                            Some(Value::String(u)) => Some(u.as_str()),
                            Some(obj) => obj.get("url").and_then(Value::as_str),
                            None => None,
                        }
                        .ok_or_else(|| bad("an image_url part needs `image_url.url`".into()))?;
                        parts.push(Part::Media {
                            kind: MediaKind::Image,
                            source: media_source(url).map_err(bad)?,
                        });
                    }
                    Some("input_audio") => {
                        let audio = item.get("input_audio");
                        let data = audio
                            .and_then(|a| a.get("data"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| bad("an input_audio part needs `data`".into()))?;
                        let format = audio
                            .and_then(|a| a.get("format"))
                            .and_then(Value::as_str)
                            .unwrap_or("wav");
                        parts.push(Part::Media {
                            kind: MediaKind::Audio,
                            source: Source::Base64 {
                                media_type: format!("audio/{format}"),
                                data: data.to_owned(),
                            },
                        });
                    }
                    Some("file") => {
                        let file = item.get("file");
                        let Some(data) = file
                            .and_then(|f| f.get("file_data"))
                            .and_then(Value::as_str)
                        else {
                            return Err(bad(
                                "a file part needs `file.file_data` (uploaded file ids cannot be sent to this provider)"
                                    .into(),
                            ));
                        };
                        let source = match data_url(data) {
                            Some(s) => s,
                            // Some clients send the bare base64 of a PDF.
                            None if !data.starts_with("data:") => Source::Base64 {
                                media_type: "application/pdf".into(),
                                data: data.to_owned(),
                            },
                            None => {
                                return Err(bad("`file.file_data` is not a base64 data URL".into()))
                            }
                        };
                        parts.push(Part::Media {
                            kind: MediaKind::Document,
                            source,
                        });
                    }
                    Some(other) => {
                        return Err(bad(format!("unsupported content part type `{other}`")))
                    }
                    None => return Err(bad("a content part needs `type`".into())),
                }
            }
            Ok(parts)
        }
        Some(_) => Err(bad("`content` must be a string or an array of parts".into())),
    }
}

/// An image's URL as a source: a base64 `data:` URL or an http(s) URL.
fn media_source(url: &str) -> Result<Source, String> {
    if url.starts_with("data:") {
        return data_url(url).ok_or_else(|| "an image data URL must be base64".into());
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(Source::Url(url.to_owned()));
    }
    Err("an image URL must be an http(s) or a base64 data URL".into())
}

/// Splits `data:<media type>[;params];base64,<data>`.
fn data_url(url: &str) -> Option<Source> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let meta = meta.strip_suffix(";base64")?;
    let media_type = meta.split(';').next().unwrap_or("").trim();
    if media_type.is_empty() {
        return None;
    }
    Some(Source::Base64 {
        media_type: media_type.to_ascii_lowercase(),
        data: data.to_owned(),
    })
}

fn read_tool(i: usize, t: ToolWire<'_>) -> Result<Tool<'_>, WireError> {
    if let Some(kind) = t.kind.as_deref() {
        if kind != "function" {
            return Err(invalid(
                "tools",
                format!("tool {i}: only `function` tools can be translated, not `{kind}`"),
            ));
        }
    }
    let f = t
        .function
        .ok_or_else(|| invalid("tools", format!("tool {i}: `function` is required")))?;
    let name = f
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("tools", format!("tool {i}: `function.name` is required")))?;
    Ok(Tool {
        name,
        description: f.description.filter(|d| !d.is_empty()),
        parameters: f.parameters,
    })
}

fn read_tool_choice(v: &Value) -> Result<ToolChoice, WireError> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(invalid(
                "tool_choice",
                format!("must be none, auto, required or a function, not `{other}`"),
            )),
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| invalid("tool_choice", "a named choice needs `function.name`"))?;
            Ok(ToolChoice::Function(name.to_owned()))
        }
        _ => Err(invalid(
            "tool_choice",
            "must be a string or an object naming a function",
        )),
    }
}

// ---------------------------------------------------------------------------
// Writing OpenAI's shapes back.

/// One choice of a whole response.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    pub index: u32,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Usage as OpenAI reports it, with the details some upstreams give.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UsageReport {
    pub usage: Usage,
    /// Prompt tokens read from a cache.
    pub cached: Option<u64>,
    /// Completion tokens spent thinking.
    pub reasoning: Option<u64>,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<CachedOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<ReasoningOut>,
}

#[derive(Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningOut {
    reasoning_tokens: u64,
}

impl UsageReport {
    fn out(&self) -> Option<UsageOut> {
        if self.usage.prompt_tokens.is_none() && self.usage.completion_tokens.is_none() {
            return None;
        }
        let prompt = self.usage.prompt_tokens.unwrap_or(0);
        let completion = self.usage.completion_tokens.unwrap_or(0);
        Some(UsageOut {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: self.cached.map(|cached_tokens| CachedOut { cached_tokens }),
            completion_tokens_details: self
                .reasoning
                .map(|reasoning_tokens| ReasoningOut { reasoning_tokens }),
        })
    }
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// A whole `chat.completion` body.
pub(crate) fn completion_body(
    id: &str,
    created: i64,
    model: &str,
    choices: &[Choice],
    usage: &UsageReport,
) -> Vec<u8> {
    let out = CompletionOut {
        id,
        object: "chat.completion",
        created,
        model,
        choices: choices
            .iter()
            .map(|c| ChoiceOut {
                index: c.index,
                message: MessageOut {
                    role: "assistant",
                    // OpenAI says null, not "", when the answer is only tool calls.
                    content: if c.text.is_empty() && !c.tool_calls.is_empty() {
                        None
                    } else {
                        Some(&c.text)
                    },
                    refusal: None,
                    tool_calls: c
                        .tool_calls
                        .iter()
                        .map(|t| ToolCallOut {
                            id: &t.id,
                            kind: "function",
                            function: FunctionOut {
                                name: &t.name,
                                arguments: &t.arguments,
                            },
                        })
                        .collect(),
                },
                logprobs: None,
                finish_reason: c.finish_reason,
            })
            .collect(),
        usage: usage.out(),
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// What one chunk's delta says.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolDelta<'a>; 1]>,
}

/// One tool call's piece: the first carries id, type and name.
#[derive(Debug, Serialize)]
pub(crate) struct ToolDelta<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: FunctionDelta<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    /// `Some(None)` writes `"usage":null`, as OpenAI does on every chunk
    /// but the last when usage was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// Writes `chat.completion.chunk` events for one stream.
#[derive(Debug)]
pub(crate) struct Chunks {
    pub id: String,
    pub created: i64,
    pub model: String,
    pub include_usage: bool,
}

impl Chunks {
    pub fn chunk(
        &self,
        index: u32,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) -> Bytes {
        let out = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: self.include_usage.then_some(None),
        };
        event(&out)
    }

    /// The first chunk of a choice: the role, and empty content.
    pub fn role(&self, index: u32) -> Bytes {
        let delta = Delta {
            role: Some("assistant"),
            content: Some(""),
            tool_calls: None,
        };
        self.chunk(index, delta, None)
    }

    pub fn text(&self, index: u32, text: &str) -> Bytes {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.chunk(index, delta, None)
    }

    pub fn tool(&self, index: u32, tool: ToolDelta<'_>) -> Bytes {
        let delta = Delta {
            tool_calls: Some([tool]),
            ..Delta::default()
        };
        self.chunk(index, delta, None)
    }

    pub fn finish(&self, index: u32, reason: &'static str) -> Bytes {
        self.chunk(index, Delta::default(), Some(reason))
    }

    /// The last chunk when usage was asked for: no choices, only usage.
    pub fn usage(&self, usage: &UsageReport) -> Bytes {
        let out = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(Some(usage.out().unwrap_or(UsageOut {
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                prompt_tokens_details: None,
                completion_tokens_details: None,
            }))),
        };
        event(&out)
    }
}

fn event<T: Serialize>(value: &T) -> Bytes {
    match serde_json::to_string(value) {
        Ok(json) => crate::sse::data_event(&json),
        Err(_) => Bytes::new(),
    }
}

/// Seconds since the Unix epoch, for `created` (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// A stable id for a response that brought none, derived from its bytes.
pub(crate) fn derived_id(seed: &[u8]) -> String {
    format!("chatcmpl-{:016x}", fnv1a(seed))
}

/// FNV-1a: a small, stable hash; ids need no more.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Sums token counts that may be absent; `None` only when all are.
pub(crate) fn sum(counts: &[Option<u64>]) -> Option<u64> {
    counts.iter().flatten().copied().reduce(u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Request<'_>, WireError> {
        parse_request(body.as_bytes())
    }

    #[test]
    fn consecutive_messages_of_one_role_are_merged_and_tool_results_lead() {
        let req = parse(
            r#"{"messages":[
                {"role":"system","content":"be brief"},
                {"role":"user","content":"a"},
                {"role":"user","content":[{"type":"text","text":"b"}]},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},
                    {"id":"c2","type":"function","function":{"name":"g","arguments":""}}]},
                {"role":"tool","tool_call_id":"c1","content":"one"},
                {"role":"user","content":"then"},
                {"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"two"}]}
            ]}"#,
        )
        .expect("parses");
        assert_eq!(req.system, ["be brief"]);
        let roles: Vec<_> = req.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(req.turns[0].parts.len(), 2);
        let last = &req.turns[2].parts;
        assert!(
            matches!(&last[0], Part::ToolResult { name, text, .. } if name == "f" && text == "one")
        );
        assert!(
            matches!(&last[1], Part::ToolResult { name, text, .. } if name == "g" && text == "two")
        );
        assert!(matches!(&last[2], Part::Text { text, .. } if text == "then"));
        assert!(
            matches!(&req.turns[1].parts[1], Part::ToolCall { arguments, .. } if arguments.get() == "{}")
        );
    }

    #[test]
    fn arguments_keep_their_key_order() {
        let req = parse(
            r#"{"messages":[{"role":"assistant","tool_calls":[
                {"id":"c","type":"function","function":{"name":"f","arguments":"{\"b\":1,\"a\":2}"}}]}]}"#,
        )
        .expect("parses");
        assert!(
            matches!(&req.turns[0].parts[0], Part::ToolCall { arguments, .. } if arguments.get() == r#"{"b":1,"a":2}"#)
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |body: &str| match parse(body) {
            Err(WireError::Invalid { field, .. }) => field,
            Err(WireError::Missing(field)) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(r#"{}"#), "messages");
        assert_eq!(field(r#"{"messages":{}}"#), "messages");
        assert_eq!(
            field(r#"{"messages":[{"role":"robot","content":"x"}]}"#),
            "messages"
        );
        assert_eq!(field(r#"{"messages":[{"content":"x"}]}"#), "messages");
        assert_eq!(
            field(
                r#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{nope"}}]}]}"#
            ),
            "messages"
        );
        assert_eq!(
            field(r#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#),
            "temperature"
        );
        assert_eq!(
            field(r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#),
            "tool_choice"
        );
        assert_eq!(
            field(
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#
            ),
            "tools"
        );
        assert_eq!(
            field(r#"{"messages":[{"role":"system","content":"x"}]}"#),
            "messages"
        );
        assert!(matches!(parse("[]"), Err(WireError::NotAnObject)));
        assert!(matches!(parse("{"), Err(WireError::InvalidJson(_))));
    }

    #[test]
    fn images_are_read_from_data_and_http_urls() {
        let req = parse(
            r#"{"messages":[{"role":"user","content":[
                {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
                {"type":"image_url","image_url":{"url":"https://example.com/a.jpg","detail":"low"}}]}]}"#,
        )
        .expect("parses");
        let parts = &req.turns[0].parts;
        assert!(
            matches!(&parts[0], Part::Media { source: Source::Base64 { media_type, data }, .. }
            if media_type == "image/png" && data == "AAAA")
        );
        assert!(
            matches!(&parts[1], Part::Media { source: Source::Url(u), .. } if u == "https://example.com/a.jpg")
        );
        assert!(parse(r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#).is_err());
    }

    #[test]
    fn sums_saturate_instead_of_overflowing() {
        assert_eq!(sum(&[Some(u64::MAX), Some(2)]), Some(u64::MAX));
        assert_eq!(sum(&[None, None]), None);
        assert_eq!(sum(&[None, Some(3)]), Some(3));
    }
}
