//! Google's Gemini API (`{base}/models/{model}:generateContent`, header
//! `x-goog-api-key`) spoken on behalf of OpenAI chat clients: requests
//! translated there, answers and streams translated back.
//!
//! Gemini differs from chat completions in ways that shape the code below:
//! the model is part of the path, the system prompt is `systemInstruction`,
//! the assistant is called `model`, tool results answer a function by name
//! (not by call id), and a stream is a series of whole
//! `GenerateContentResponse`s, each holding the next piece of every
//! candidate. Schemas go out as `parametersJsonSchema` and
//! `responseJsonSchema`, which take JSON Schema as OpenAI clients write it
//! (`responseSchema` would refuse `additionalProperties` and the like).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chat::{
    self, Chunks, Delta, FunctionDelta, MediaKind, Part, ResponseFormat, Role, Source, ToolChoice,
    ToolDelta,
};
use crate::{Usage, WireError};

/// Joins a tool call id and the `thoughtSignature` Gemini attached to the
/// call. Gemini 3 refuses a conversation whose earlier function calls come
/// back without their signatures, and an OpenAI client keeps nothing of a
/// call but its id, name and arguments, so the signature rides in the id.
const SIGNATURE_MARK: &str = "__thought__";

/// The path under the base URL: `/models/{model}:generateContent`, or for
/// streams `/models/{model}:streamGenerateContent?alt=sse`. A leading
/// `models/` is accepted, and `tunedModels/{id}` keeps its collection; the
/// id is percent-encoded where needed.
pub fn chat_path(upstream_model: &str, stream: bool) -> String {
    let (collection, id) = match upstream_model.strip_prefix("tunedModels/") {
        Some(id) => ("tunedModels", id),
        None => (
            "models",
            upstream_model
                .strip_prefix("models/")
                .unwrap_or(upstream_model),
        ),
    };
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    let mut path = String::with_capacity(id.len() + 48);
    path.push('/');
    path.push_str(collection);
    path.push('/');
    for &b in id.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    path.push(':');
    path.push_str(method);
    path
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PartOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<BlobOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileDataOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlobOut<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileDataOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'static str>,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
struct FunctionResponseOut<'a> {
    name: &'a str,
    response: ResponseOut<'a>,
}

/// A tool result: Gemini wants an object, so text that is not one is
/// wrapped as `{"output": text}`, the key Gemini reads as the function's output.
#[derive(Serialize)]
#[serde(untagged)]
enum ResponseOut<'a> {
    Object(Box<RawValue>),
    Output { output: &'a str },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolOut<'a> {
    function_declarations: Vec<FunctionDeclarationOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclarationOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'a str>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a RawValue>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.stop_sequences.is_empty()
            && self.candidate_count.is_none()
            && self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
    }
}

/// OpenAI chat request body -> Gemini `GenerateContentRequest` body (JSON
/// bytes). The model goes in the path ([`chat_path`]), and so does
/// streaming. `user` and `parallel_tool_calls` have no counterpart and are
/// left out.
pub fn chat_request(openai_body: &[u8]) -> Result<Vec<u8>, WireError> {
    let req = chat::parse_request(openai_body)?;

    let contents = req
        .turns
        .iter()
        .map(|turn| ContentOut {
            role: Some(match turn.role {
                Role::User => "user",
                Role::Assistant => "model",
            }),
            parts: turn.parts.iter().map(part).collect(),
        })
        .collect();
    let system = req.system.join("\n\n");
    let system_instruction = (!system.is_empty()).then(|| ContentOut {
        role: None,
        parts: vec![PartOut {
            text: Some(&system),
            ..PartOut::default()
        }],
    });

    let tools = if req.tools.is_empty() {
        Vec::new()
    } else {
        vec![ToolOut {
            function_declarations: req
                .tools
                .iter()
                .map(|t| FunctionDeclarationOut {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters_json_schema: t.parameters,
                })
                .collect(),
        }]
    };
    let tool_config = match (&req.tool_choice, tools.is_empty()) {
        (None, _) | (Some(_), true) => None,
        (Some(choice), false) => Some(ToolConfig {
            function_calling_config: match choice {
                ToolChoice::None => FunctionCallingConfig {
                    mode: "NONE",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::Auto => FunctionCallingConfig {
                    mode: "AUTO",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::Required => FunctionCallingConfig {
                    mode: "ANY",
                    allowed_function_names: Vec::new(),
                },
                ToolChoice::Function(name) => FunctionCallingConfig {
                    mode: "ANY",
                    allowed_function_names: vec![name],
                },
            },
        }),
    };

    let (response_mime_type, response_json_schema) = match req.response_format {
        ResponseFormat::Text => (None, None),
        ResponseFormat::JsonObject => (Some("application/json"), None),
        ResponseFormat::JsonSchema(schema) => (Some("application/json"), schema),
    };
    let generation_config = GenerationConfig {
        stop_sequences: req.stop.iter().map(String::as_str).collect(),
        candidate_count: req.n,
        max_output_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_mime_type,
        response_json_schema,
    };

    let out = GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
    };
    serde_json::to_vec(&out).map_err(|e| WireError::Invalid {
        field: "messages",
        reason: e.to_string(),
    })
}

fn part(part: &Part) -> PartOut<'_> {
    match part {
        Part::Text { text, .. } => PartOut {
            text: Some(text),
            ..PartOut::default()
        },
        Part::Media { kind, source } => match source {
            Source::Base64 { media_type, data } => PartOut {
                inline_data: Some(BlobOut {
                    mime_type: media_type,
                    data,
                }),
                ..PartOut::default()
            },
            Source::Url(url) => PartOut {
                file_data: Some(FileDataOut {
                    mime_type: guess_mime_type(url, *kind),
                    file_uri: url,
                }),
                ..PartOut::default()
            },
        },
        Part::ToolCall {
            id,
            name,
            arguments,
        } => PartOut {
            function_call: Some(FunctionCallOut {
                name,
                args: arguments,
            }),
            thought_signature: id
                .split_once(SIGNATURE_MARK)
                .map(|(_, signature)| signature)
                .filter(|s| !s.is_empty()),
            ..PartOut::default()
        },
        Part::ToolResult { name, text, .. } => {
            let object = text
                .trim_start()
                .starts_with('{')
                .then(|| serde_json::from_str::<Box<RawValue>>(text).ok())
                .flatten();
            PartOut {
                function_response: Some(FunctionResponseOut {
                    name,
                    response: match object {
                        Some(object) => ResponseOut::Object(object),
                        None => ResponseOut::Output { output: text },
                    },
                }),
                ..PartOut::default()
            }
        }
    }
}

/// A media type for a URL, from its extension, which `fileData` likes to have.
fn guess_mime_type(url: &str, kind: MediaKind) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let guessed = match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "heic" => Some("image/heic"),
        "heif" => Some("image/heif"),
        "pdf" => Some("application/pdf"),
        "wav" => Some("audio/wav"),
        "mp3" => Some("audio/mp3"),
        _ => None,
    };
    guessed.or(match kind {
        MediaKind::Document => Some("application/pdf"),
        MediaKind::Image | MediaKind::Audio => None,
    })
}

// ---------------------------------------------------------------------------
// Answers.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseIn {
    #[serde(default)]
    candidates: Option<Vec<CandidateIn>>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedbackIn>,
    #[serde(default)]
    usage_metadata: Option<UsageIn>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    error: Option<ErrorIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateIn {
    #[serde(default)]
    content: Option<ContentIn>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Deserialize)]
struct ContentIn {
    #[serde(default)]
    parts: Option<Vec<PartIn>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    function_call: Option<FunctionCallIn>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedbackIn {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageIn {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    total_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageIn {
    /// Into `report`. Thinking is output the client pays for, so it counts
    /// as completion; tool-use prompts (search results and the like) as prompt.
    fn merge_into(&self, report: &mut chat::UsageReport) {
        let prompt = chat::sum(&[self.prompt_token_count, self.tool_use_prompt_token_count]);
        let completion = chat::sum(&[self.candidates_token_count, self.thoughts_token_count])
            .or_else(|| self.total_token_count?.checked_sub(prompt?));
        report.usage.merge(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
        });
        if self.cached_content_token_count.is_some() {
            report.cached = self.cached_content_token_count;
        }
        if self.thoughts_token_count.is_some() {
            report.reasoning = self.thoughts_token_count;
        }
    }
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl ErrorIn {
    fn into_wire(self) -> WireError {
        WireError::UpstreamBody(
            self.message
                .or(self.status)
                .unwrap_or_else(|| "unknown error".into()),
        )
    }
}

fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        r if ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED", "SPII"]
            .iter()
            .any(|k| r.contains(k)) =>
        {
            "content_filter"
        }
        _ if called => "tool_calls",
        // STOP, and the rest (MALFORMED_FUNCTION_CALL, OTHER, ...) have no better match.
        _ => "stop",
    }
}

/// Names tool calls that Gemini left without an id: unique within one
/// response (`base` comes from it), so a client can answer each.
#[derive(Debug)]
struct CallIds {
    base: String,
    next: u64,
}

impl CallIds {
    fn new(seed: &[u8]) -> Self {
        CallIds {
            base: format!("{:012x}", chat::fnv1a(seed) >> 16),
            next: 0,
        }
    }

    fn id(&mut self, call: &FunctionCallIn, signature: Option<&str>) -> String {
        let mut id = match call.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => format!("call_{}_{}", self.base, self.next),
        };
        self.next = self.next.saturating_add(1);
        if let Some(signature) = signature.filter(|s| !s.is_empty()) {
            id.push_str(SIGNATURE_MARK);
            id.push_str(signature);
        }
        id
    }
}

/// Gemini `GenerateContentResponse` body -> OpenAI `chat.completion` body
/// (JSON bytes) and its usage: one choice per candidate.
pub fn chat_response(body: &[u8], requested_model: &str) -> Result<(Vec<u8>, Usage), WireError> {
    let resp: ResponseIn =
        serde_json::from_slice(body).map_err(|e| WireError::UpstreamBody(e.to_string()))?;
    if let Some(error) = resp.error {
        return Err(error.into_wire());
    }
    let id = match resp.response_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => chat::derived_id(body),
    };
    let mut ids = CallIds::new(id.as_bytes());
    let mut choices = Vec::new();
    for candidate in resp.candidates.unwrap_or_default() {
        let mut choice = chat::Choice {
            index: candidate
                .index
                // Proto3 JSON leaves out zeros: no index is index 0.
                .unwrap_or(0),
            ..chat::Choice::default()
        };
        let parts = candidate.content.and_then(|c| c.parts).unwrap_or_default();
        for p in parts {
            if p.thought == Some(true) {
                continue;
            }
            if let Some(text) = &p.text {
                choice.text.push_str(text);
            }
            if let Some(call) = &p.function_call {
                choice.tool_calls.push(chat::ToolCall {
                    id: ids.id(call, p.thought_signature.as_deref()),
                    name: call.name.clone().unwrap_or_default(),
                    arguments: call
                        .args
                        .as_deref()
                        .map_or_else(|| "{}".to_owned(), |a| a.get().to_owned()),
                });
            }
        }
        let called = !choice.tool_calls.is_empty();
        choice.finish_reason = Some(finish_reason(
            candidate.finish_reason.as_deref().unwrap_or("STOP"),
            called,
        ));
        choices.push(choice);
    }
    if choices.is_empty() {
        // The prompt itself was blocked (or nothing came back): one empty choice.
        let blocked = resp.prompt_feedback.and_then(|f| f.block_reason).is_some();
        choices.push(chat::Choice {
            finish_reason: Some(if blocked { "content_filter" } else { "stop" }),
            ..chat::Choice::default()
        });
    }
    choices.sort_by_key(|c| c.index);
    let mut report = chat::UsageReport::default();
    if let Some(u) = &resp.usage_metadata {
        u.merge_into(&mut report);
    }
    let out = chat::completion_body(&id, chat::unix_now(), requested_model, &choices, &report);
    Ok((out, report.usage))
}

/// The human message of a Gemini error body
/// (`{"error":{"code":..,"message":..,"status":..}}`, or a list of them).
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Outer {
        error: ErrorIn,
    }
    // The list first: a struct would also read a one-element array as its fields.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Outer>),
        One(Outer),
    }
    let error = match serde_json::from_slice::<Body>(body).ok()? {
        Body::One(o) => o.error,
        Body::Many(list) => list.into_iter().next()?.error,
    };
    error.message.or(error.status)
}

// ---------------------------------------------------------------------------
// Streams.

#[derive(Debug, Default)]
struct CandidateState {
    /// Tool calls sent so far: the next one's index.
    tools: u32,
    finished: bool,
}

/// Gemini SSE events (each a whole `GenerateContentResponse`, usage in the
/// last ones) -> OpenAI `chat.completion.chunk` SSE events.
#[derive(Debug)]
pub struct ChatStream {
    chunks: Chunks,
    ids: Option<CallIds>,
    /// Candidates seen, by index; each got its role chunk when first seen.
    candidates: BTreeMap<u32, CandidateState>,
    blocked: bool,
    done: bool,
    usage: chat::UsageReport,
}

impl ChatStream {
    /// `include_usage`: the client asked for `stream_options.include_usage`
    /// (then a final chunk with empty choices and usage is sent before
    /// `[DONE]`, as OpenAI does). `created`: unix seconds.
    pub fn new(requested_model: &str, include_usage: bool, created: i64) -> Self {
        ChatStream {
            chunks: Chunks {
                id: String::new(),
                created,
                model: requested_model.to_owned(),
                include_usage,
            },
            ids: None,
            candidates: BTreeMap::new(),
            blocked: false,
            done: false,
            usage: chat::UsageReport::default(),
        }
    }

    /// One upstream event -> zero or more complete OpenAI SSE events. An
    /// event holding an error (or one that is not JSON) is an error.
    pub fn event(&mut self, event: &crate::sse::Event) -> Result<Vec<Bytes>, WireError> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let resp: ResponseIn = serde_json::from_str(data)
            .map_err(|e| WireError::UpstreamBody(format!("unreadable stream event: {e}")))?;
        if let Some(error) = resp.error {
            return Err(error.into_wire());
        }
        if let Some(u) = &resp.usage_metadata {
            u.merge_into(&mut self.usage);
        }
        let ids = self.ids.get_or_insert_with(|| {
            let id = match resp.response_id.as_deref() {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => chat::derived_id(data.as_bytes()),
            };
            let ids = CallIds::new(id.as_bytes());
            self.chunks.id = id;
            ids
        });

        let mut out = Vec::new();
        let candidates = resp.candidates.unwrap_or_default();
        if candidates.is_empty() {
            if resp.prompt_feedback.and_then(|f| f.block_reason).is_some() {
                self.blocked = true;
                let state = self.candidates.entry(0).or_insert_with(|| {
                    out.push(self.chunks.role(0));
                    CandidateState::default()
                });
                if !state.finished {
                    state.finished = true;
                    out.push(self.chunks.finish(0, "content_filter"));
                }
            }
            return Ok(out);
        }
        for candidate in candidates {
            let index = candidate.index.unwrap_or(0);
            let state = self.candidates.entry(index).or_insert_with(|| {
                out.push(self.chunks.role(index));
                CandidateState::default()
            });
            if state.finished {
                continue;
            }
            for p in candidate.content.and_then(|c| c.parts).unwrap_or_default() {
                if p.thought == Some(true) {
                    continue;
                }
                if let Some(text) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    out.push(self.chunks.text(index, text));
                }
                if let Some(call) = &p.function_call {
                    let id = ids.id(call, p.thought_signature.as_deref());
                    let arguments = call.args.as_deref().map_or("{}", RawValue::get);
                    out.push(self.chunks.tool(
                        index,
                        ToolDelta {
                            index: state.tools,
                            id: Some(&id),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(call.name.as_deref().unwrap_or("")),
                                arguments,
                            },
                        },
                    ));
                    state.tools = state.tools.saturating_add(1);
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                // Gemini sends FINISH_REASON_UNSPECIFIED on pieces that are not the end.
                if reason != "FINISH_REASON_UNSPECIFIED" {
                    state.finished = true;
                    out.push(self.chunks.chunk(
                        index,
                        Delta::default(),
                        Some(finish_reason(reason, state.tools > 0)),
                    ));
                }
            }
        }
        Ok(out)
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
            if self.chunks.id.is_empty() {
                self.chunks.id = chat::derived_id(self.chunks.model.as_bytes());
            }
            out.push(self.chunks.usage(&self.usage));
        }
        out.push(Bytes::from_static(crate::sse::DONE));
        out
    }

    /// The usage seen so far (from the latest `usageMetadata`).
    pub fn usage(&self) -> Usage {
        self.usage.usage
    }

    /// Whether the upstream finished: every candidate seen has its
    /// `finishReason`, or the prompt was blocked.
    pub fn is_complete(&self) -> bool {
        self.blocked
            || (!self.candidates.is_empty() && self.candidates.values().all(|c| c.finished))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::{blocks, Event, Splitter};
    use crate::testing::{chunk_json, fuzz_bytes, Lcg};
    use serde_json::{json, Value};

    fn request(body: &Value) -> Value {
        let out = chat_request(body.to_string().as_bytes()).expect("translates");
        serde_json::from_slice(&out).expect("json")
    }

    #[test]
    fn paths_name_the_model_and_the_method() {
        assert_eq!(
            chat_path("gemini-2.5-flash", false),
            "/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            chat_path("models/gemini-2.5-pro", true),
            "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            chat_path("my model/x:y?", false),
            "/models/my%20model%2Fx%3Ay%3F:generateContent"
        );
        assert_eq!(
            chat_path("tunedModels/abc-123", false),
            "/tunedModels/abc-123:generateContent"
        );
    }

    #[test]
    fn a_plain_request_gets_a_system_instruction_and_a_generation_config() {
        let got = request(&json!({
            "model": "chat-default",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Bye"}
            ],
            "temperature": 1.4,
            "top_p": 0.9,
            "max_tokens": 100,
            "stop": ["END", "STOP"],
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.1,
            "user": "ignored"
        }));
        assert_eq!(
            got,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Hello"}]},
                    {"role": "model", "parts": [{"text": "Hi."}]},
                    {"role": "user", "parts": [{"text": "Bye"}]}
                ],
                "systemInstruction": {"parts": [{"text": "You are terse."}]},
                "generationConfig": {
                    "stopSequences": ["END", "STOP"],
                    "candidateCount": 2,
                    "maxOutputTokens": 100,
                    "temperature": 1.4,
                    "topP": 0.9,
                    "seed": 7,
                    "presencePenalty": 0.1
                }
            })
        );
    }

    #[test]
    fn a_tool_conversation_becomes_function_parts() {
        let got = request(&json!({
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/photo.JPG?x=1"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1__thought__c2lnbmF0dXJl", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1__thought__c2lnbmF0dXJl", "content": "{\"temp\": 18, \"sky\": \"clear\"}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather by place",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                                   "required": ["location"], "additionalProperties": false}}},
                {"type": "function", "function": {"name": "get_time"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }));
        assert_eq!(
            got["contents"],
            json!([
                {"role": "user", "parts": [
                    {"text": "What is in these, and the weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/photo.JPG?x=1"}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                     "thoughtSignature": "c2lnbmF0dXJl"},
                    {"functionCall": {"name": "get_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 18, "sky": "clear"}}},
                    {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}}
                ]}
            ])
        );
        assert_eq!(
            got["tools"],
            json!([{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather by place",
                 "parametersJsonSchema": {"type": "object", "properties": {"location": {"type": "string"}},
                                          "required": ["location"], "additionalProperties": false}},
                {"name": "get_time"}
            ]}])
        );
        assert_eq!(
            got["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
        );
        assert!(got.get("generationConfig").is_none());
    }

    #[test]
    fn tool_choice_and_response_format_map_to_gemini_configs() {
        let mode = |c: &str| {
            request(&json!({
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": c
            }))["toolConfig"]["functionCallingConfig"]["mode"]
                .clone()
        };
        assert_eq!(mode("none"), "NONE");
        assert_eq!(mode("auto"), "AUTO");
        assert_eq!(mode("required"), "ANY");

        let got = request(&json!({
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"}
        }));
        assert_eq!(
            got["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        let got = request(&json!({
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}
        }));
        assert_eq!(
            got["generationConfig"],
            json!({"responseMimeType": "application/json",
                   "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}})
        );
    }

    const RESPONSE: &str = r#"{
      "candidates": [
        {
          "content": {
            "parts": [
              {"text": "I should look this up.", "thought": true},
              {"text": "Let me look "},
              {"text": "that up."},
              {"functionCall": {"name": "get_weather", "args": {"location": "Boston, MA", "unit": "celsius"}},
               "thoughtSignature": "CiQBVKhc7A=="}
            ],
            "role": "model"
          },
          "finishReason": "STOP",
          "index": 0,
          "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }
      ],
      "usageMetadata": {
        "promptTokenCount": 72,
        "candidatesTokenCount": 18,
        "totalTokenCount": 135,
        "thoughtsTokenCount": 45,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 72}]
      },
      "modelVersion": "gemini-2.5-flash",
      "responseId": "mK3CaN2hLc2Q1MkP1qe_uAw"
    }"#;

    #[test]
    fn a_response_becomes_a_chat_completion() {
        let (body, usage) = chat_response(RESPONSE.as_bytes(), "gemini").expect("translates");
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: Some(72),
                completion_tokens: Some(63)
            }
        );
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["id"], "mK3CaN2hLc2Q1MkP1qe_uAw");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "gemini");
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me look that up.");
        let call = &choice["message"]["tool_calls"][0];
        let id = call["id"].as_str().expect("id");
        assert!(
            id.starts_with("call_") && id.ends_with("__thought__CiQBVKhc7A=="),
            "{id}"
        );
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().expect("string"))
                .expect("arguments are JSON");
        assert_eq!(args, json!({"location": "Boston, MA", "unit": "celsius"}));
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 72, "completion_tokens": 63, "total_tokens": 135,
                   "completion_tokens_details": {"reasoning_tokens": 45}})
        );

        // The call id goes back to Gemini with its signature on the call.
        let next = json!({"messages": [
            {"role": "user", "content": "weather?"},
            choice["message"].clone(),
            {"role": "tool", "tool_call_id": id, "content": "cold"}
        ]});
        let got = request(&next);
        assert_eq!(
            got["contents"][1]["parts"][0]["text"],
            "Let me look that up."
        );
        assert_eq!(
            got["contents"][1]["parts"][1]["thoughtSignature"],
            "CiQBVKhc7A=="
        );
        assert_eq!(
            got["contents"][2]["parts"][0]["functionResponse"]["name"],
            "get_weather"
        );
    }

    #[test]
    fn several_candidates_become_several_choices() {
        let body = json!({"candidates": [
            {"content": {"parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            {"content": {"parts": [{"text": "A"}]}, "finishReason": "SAFETY"}
        ], "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}});
        let (out, usage) = chat_response(body.to_string().as_bytes(), "m").expect("translates");
        assert_eq!(usage.completion_tokens, Some(0));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["choices"][0]["message"]["content"], "A");
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(v["choices"][1]["index"], 1);
        assert_eq!(v["choices"][1]["finish_reason"], "length");
        assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
    }

    #[test]
    fn a_blocked_prompt_is_a_content_filter_stop() {
        let body = br#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}"#;
        let (out, _) = chat_response(body, "m").expect("translates");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(v["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn error_bodies_give_their_message() {
        // As in the provider's documentation (and the 400 captured for the catalog).
        let body = br#"{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
  }
}"#;
        let message = "API key not valid. Please pass a valid API key.";
        assert_eq!(error_message(body).as_deref(), Some(message));
        assert_eq!(
            chat_response(body, "m"),
            Err(WireError::UpstreamBody(message.into()))
        );
        let list = br#"[{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(error_message(list).as_deref(), Some("quota"));
        assert_eq!(error_message(b"{}"), None);
    }

    /// As `streamGenerateContent?alt=sse` sends it: CRLF-separated events.
    const STREAM: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Sx3DaOHmA8yV1MkPkY3d2QU\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" quick brown fox \u{1F98A}\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 4,\"totalTokenCount\": 13},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Sx3DaOHmA8yV1MkPkY3d2QU\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" checks the weather.\"},{\"functionCall\": {\"name\": \"get_weather\",\"args\": {\"location\": \"Oslo\", \"days\": [1, 2]}}}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 12,\"totalTokenCount\": 21},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Sx3DaOHmA8yV1MkPkY3d2QU\"}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 12,\"totalTokenCount\": 45,\"thoughtsTokenCount\": 24},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"Sx3DaOHmA8yV1MkPkY3d2QU\"}\r\n\r\n";

    fn run(sse: &str, size: usize, include_usage: bool) -> (ChatStream, Vec<Bytes>) {
        let mut stream = ChatStream::new("gemini", include_usage, 1_700_000_000);
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
        for size in [1, 2, 5, 13, 100] {
            assert_eq!(run(STREAM, size, true).1, whole, "read size {size}");
        }
        assert!(stream.is_complete());
        assert_eq!(
            stream.usage(),
            Usage {
                prompt_tokens: Some(9),
                completion_tokens: Some(36)
            }
        );
        assert_eq!(whole.last().map(|b| &b[..]), Some(crate::sse::DONE));
        let chunks: Vec<Value> = whole[..whole.len() - 1]
            .iter()
            .map(|b| chunk_json(b))
            .collect();
        for c in &chunks {
            assert_eq!(c["id"], "Sx3DaOHmA8yV1MkPkY3d2QU");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["created"], 1_700_000_000);
            assert_eq!(c["model"], "gemini");
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "The quick brown fox \u{1F98A} checks the weather.");
        let calls: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0]["index"], 0);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert!(calls[0]["id"].as_str().expect("id").starts_with("call_"));
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().expect("args"))
                .expect("arguments are JSON");
        assert_eq!(args, json!({"location": "Oslo", "days": [1, 2]}));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 36, "total_tokens": 45,
                   "completion_tokens_details": {"reasoning_tokens": 24}})
        );
    }

    #[test]
    fn a_stream_cut_before_its_finish_reason_is_not_complete() {
        let cut = STREAM.rfind("data: ").expect("fixture");
        let (mut stream, out) = run(&STREAM[..cut], 9, false);
        assert!(!stream.is_complete());
        assert_eq!(stream.usage().completion_tokens, Some(12));
        assert_eq!(&out[out.len() - 1][..], crate::sse::DONE);
        assert!(stream.finish().is_empty());
    }

    #[test]
    fn candidates_stream_side_by_side() {
        let sse = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"index\":1}]}\n\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}]},\"finishReason\":\"STOP\",\"index\":0}]}\n\n";
        let (stream, out) = run(sse, 7, false);
        assert!(!stream.is_complete(), "candidate 1 has not finished");
        let chunks: Vec<Value> = out[..out.len() - 1].iter().map(|b| chunk_json(b)).collect();
        let text = |i: u64| -> String {
            chunks
                .iter()
                .filter(|c| c["choices"][0]["index"] == i)
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect()
        };
        assert_eq!((text(0), text(1)), ("ac".to_owned(), "b".to_owned()));
        let roles = chunks
            .iter()
            .filter(|c| c["choices"][0]["delta"]["role"] == "assistant")
            .count();
        assert_eq!(roles, 2);
    }

    #[test]
    fn an_error_event_is_an_error() {
        let mut stream = ChatStream::new("m", true, 0);
        let event = Event {
            name: None,
            data: r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#.into(),
        };
        assert_eq!(
            stream.event(&event),
            Err(WireError::UpstreamBody("The model is overloaded.".into()))
        );
        let out = stream.finish();
        assert_eq!(out.len(), 2);
        assert!(chunk_json(&out[0])["id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()));
    }

    #[test]
    fn no_input_makes_it_panic() {
        let valid_request = br#"{"model":"m","messages":[{"role":"developer","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"file","file":{"file_data":"data:application/pdf;base64,AA"}}]},{"role":"assistant","content":"ok","tool_calls":[{"id":"c__thought__s","type":"function","function":{"name":"f","arguments":"{\"a\":{}}"}}]},{"role":"tool","tool_call_id":"c","content":"{\"r\":1}"}],"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object"}}}],"tool_choice":"required","response_format":{"type":"json_schema","json_schema":{"schema":{}}},"n":2,"seed":1}"#;
        let mut rng = Lcg::new(11);
        let seeds: [&[u8]; 3] = [valid_request, RESPONSE.as_bytes(), STREAM.as_bytes()];
        for input in fuzz_bytes(&mut rng, &seeds, 3000) {
            let _ = chat_request(&input);
            let _ = chat_response(&input, "m");
            let _ = error_message(&input);
            let _ = chat_path(&String::from_utf8_lossy(&input), input.len() % 2 == 0);
        }
        let datas: Vec<&[u8]> = STREAM
            .split("\r\n\r\n")
            .filter_map(|b| b.strip_prefix("data: "))
            .map(str::as_bytes)
            .chain([RESPONSE.as_bytes()])
            .collect();
        let mut stream = ChatStream::new("m", true, 0);
        for input in fuzz_bytes(&mut rng, &datas, 5000) {
            let event = Event {
                name: None,
                data: String::from_utf8_lossy(&input).into_owned(),
            };
            let _ = stream.event(&event);
        }
        let _ = stream.finish();
        let _ = (stream.usage(), stream.is_complete());
    }
}
