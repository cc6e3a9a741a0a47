//! One `/v1` request: resolve the model to a route, try its upstreams in
//! order until one answers, pass the answer back (bodies and stream chunks
//! unchanged for OpenAI-compatible upstreams, translated for Anthropic and
//! Gemini), and meter it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use hyper::body::Body as _;
use modelplane_domain::catalog::Pricing;
use modelplane_domain::limits::{usd_to_micros, KeyLimits};
use modelplane_domain::policy::{blocking_rule, PolicyRule};
use modelplane_domain::route::{attempt_order, WireFormat};
use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};
use modelplane_service::auth::Principal;
use modelplane_service::ServiceError;
use modelplane_wire::openai::{self, ErrorType, RequestHead};
use modelplane_wire::{anthropic, google, sse, Usage, WireError};

use crate::client::{read_bounded, UpstreamRequest, UpstreamResponse};
use crate::governance::UpstreamFacts;
use crate::health::Outcome;
use crate::routing::{LiveRoute, LiveUpstream};
use crate::Gateway;

/// The largest upstream answer read whole (non-streamed).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub type GatewayResponse = http::Response<Body>;

/// An OpenAI-shaped error answer.
pub fn error_response(
    status: StatusCode,
    kind: ErrorType,
    code: &str,
    message: &str,
) -> GatewayResponse {
    let mut resp = http::Response::new(Body::from(openai::error_body(kind, code, message, None)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The OpenAI-shaped answer for a refusal made before any upstream was asked.
pub fn service_error_response(err: &ServiceError) -> GatewayResponse {
    match err {
        ServiceError::Unauthorized => error_response(
            StatusCode::UNAUTHORIZED,
            ErrorType::Authentication,
            "invalid_api_key",
            "missing or invalid API key",
        ),
        ServiceError::Forbidden(m) => error_response(
            StatusCode::FORBIDDEN,
            ErrorType::Permission,
            "permission_denied",
            m,
        ),
        other => {
            tracing::error!(error = %other, "gateway could not serve a request");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::ServiceUnavailable,
                "internal_error",
                "the gateway could not serve this request; try again",
            )
        }
    }
}

/// The usage record of a request in flight. Dropped before it is finished
/// (the client went away), it records the request as cancelled.
pub(crate) struct Meter {
    gw: Gateway,
    started: Instant,
    record: Option<UsageRecord>,
    upstream_state: Option<Arc<crate::health::UpstreamState>>,
    /// The upstream was asked but has not answered yet.
    awaiting_upstream: bool,
    /// The price of the upstream's model, per 1M tokens.
    price: Option<Pricing>,
    /// The key's limits, when its use must be counted.
    limits: Option<KeyLimits>,
}

impl Meter {
    fn new(gw: &Gateway, p: &Principal, endpoint: Endpoint, model: &str, stream: bool) -> Meter {
        Meter {
            gw: gw.clone(),
            started: Instant::now(),
            upstream_state: None,
            awaiting_upstream: false,
            price: None,
            limits: p.limits.counts().then(|| p.limits.clone()),
            record: Some(UsageRecord {
                id: modelplane_service::new_id(),
                org_id: p.org_id,
                key_id: p.key_id,
                user_id: p.user_id,
                endpoint,
                requested_model: model.to_owned(),
                route: None,
                upstream: None,
                upstream_model: None,
                status: UsageStatus::Ok,
                http_status: 200,
                stream,
                prompt_tokens: None,
                completion_tokens: None,
                total_tokens: None,
                cost_usd: None,
                latency_ms: 0.0,
                ttft_ms: None,
                attempts: 0,
                error: None,
                created_at: modelplane_domain::time::now(),
            }),
        }
    }

    fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    fn with(&mut self, f: impl FnOnce(&mut UsageRecord)) {
        if let Some(r) = self.record.as_mut() {
            f(r);
        }
    }

    fn set_usage(&mut self, usage: Usage) {
        self.with(|r| {
            r.prompt_tokens = usage.prompt_tokens.and_then(|v| i64::try_from(v).ok());
            r.completion_tokens = usage.completion_tokens.and_then(|v| i64::try_from(v).ok());
            r.total_tokens = usage.total().and_then(|v| i64::try_from(v).ok());
        });
    }

    fn finish(&mut self, status: UsageStatus, http_status: u16, error: Option<String>) {
        let latency = self.elapsed_ms();
        if let Some(mut r) = self.record.take() {
            r.status = status;
            r.http_status = http_status;
            r.error = error.map(|e| e.chars().take(1000).collect());
            r.latency_ms = latency;
            if let Some(price) = &self.price {
                if r.prompt_tokens.is_some() || r.completion_tokens.is_some() {
                    let tokens =
                        |t: Option<i64>| t.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
                    r.cost_usd =
                        price.cost_usd(tokens(r.prompt_tokens), 0, tokens(r.completion_tokens));
                }
            }
            if let Some(limits) = &self.limits {
                self.gw.inner.limiter.consume(
                    r.key_id,
                    limits,
                    r.total_tokens.unwrap_or(0),
                    r.cost_usd.map(usd_to_micros).unwrap_or(0),
                );
            }
            self.gw.inner.usage.record(r);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        if self.record.is_some() {
            if self.awaiting_upstream {
                if let Some(s) = &self.upstream_state {
                    s.report(Outcome::Abandoned, 0, None, None, None);
                }
            }
            self.finish(
                UsageStatus::Cancelled,
                499,
                Some("the client closed the connection before the answer was complete".into()),
            );
        }
    }
}

/// Why an attempt failed, for the next attempt and the final answer.
enum Failure {
    /// The upstream answered with an error status worth retrying (429, 5xx).
    Status {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        wire: WireFormat,
    },
    Timeout,
    Connect(String),
}

impl Gateway {
    /// Serves one `/v1` request.
    pub async fn handle(
        &self,
        headers: &HeaderMap,
        endpoint: Endpoint,
        body: Bytes,
    ) -> GatewayResponse {
        let principal = match self.authenticate(headers).await {
            Ok(p) => p,
            Err(e) => return service_error_response(&e),
        };
        let head = match RequestHead::parse(&body) {
            Ok(h) => h,
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorType::InvalidRequest,
                    "invalid_request",
                    &e.to_string(),
                )
            }
        };
        let stream = head.stream && endpoint != Endpoint::Embeddings;
        let mut meter = Meter::new(self, &principal, endpoint, &head.model, stream);
        if !principal.limits.allows_model(&head.model) {
            let msg = format!("this key may not use the model {:?}", head.model);
            meter.finish(UsageStatus::Invalid, 403, Some(msg.clone()));
            return error_response(
                StatusCode::FORBIDDEN,
                ErrorType::Permission,
                "model_not_allowed",
                &msg,
            );
        }
        let table = match self.inner.routes.table(self, principal.org_id).await {
            Ok(t) => t,
            Err(e) => {
                meter.finish(UsageStatus::UpstreamError, 503, Some(e.to_string()));
                return service_error_response(&e);
            }
        };
        let Some(route) = table.resolve(self, principal.org_id, &head.model).await else {
            let msg = format!(
                "the model {:?} does not exist or this key may not use it",
                head.model
            );
            meter.finish(UsageStatus::Invalid, 404, Some(msg.clone()));
            return error_response(
                StatusCode::NOT_FOUND,
                ErrorType::NotFound,
                "model_not_found",
                &msg,
            );
        };
        meter.with(|r| r.route = route.stored.then(|| route.name.clone()));
        let mut facts = Vec::with_capacity(route.upstreams.len());
        for u in &route.upstreams {
            facts.push(self.facts(principal.org_id, &route.name, u).await);
        }
        // The policy governs each upstream's model; blocked ones are never tried.
        let blocked: Vec<Option<&PolicyRule>> = route
            .upstreams
            .iter()
            .zip(&facts)
            .map(|(u, f)| blocking_rule(&table.policy, &f.policy_view(&head.model, u)))
            .collect();
        if !blocked.is_empty() && blocked.iter().all(Option::is_some) {
            let (rule, u, f) = (blocked[0], &route.upstreams[0], &facts[0]);
            let name = rule.map(|r| r.name.as_str()).unwrap_or_default();
            let msg = format!(
                "the org's policy rule {name:?} blocks the model {:?} ({})",
                u.model,
                modelplane_domain::policy::PolicyCondition::describe(
                    &f.policy_view(&head.model, u)
                )
            );
            meter.with(|r| {
                r.upstream = Some(u.label.clone());
                r.upstream_model = Some(u.model.clone());
            });
            meter.finish(UsageStatus::Blocked, 403, Some(msg.clone()));
            return error_response(
                StatusCode::FORBIDDEN,
                ErrorType::Permission,
                "blocked_by_policy",
                &msg,
            );
        }
        if let Err(refusal) = self
            .inner
            .limiter
            .admit(principal.key_id, &principal.limits)
            .await
        {
            meter.finish(UsageStatus::RateLimited, 429, Some(refusal.message.clone()));
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorType::RateLimit,
                refusal.code,
                &refusal.message,
            );
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(refusal.retry_after_secs),
            );
            return resp;
        }
        let tried: Vec<bool> = blocked.iter().map(Option::is_none).collect();
        self.forward(&route, endpoint, &head, &body, meter, &facts, &tried)
            .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one request's whole state, passed once"
    )]
    async fn forward(
        &self,
        route: &LiveRoute,
        endpoint: Endpoint,
        head: &RequestHead,
        body: &Bytes,
        mut meter: Meter,
        facts: &[Arc<UpstreamFacts>],
        allowed: &[bool],
    ) -> GatewayResponse {
        let weights: Vec<(i32, u32)> = route
            .upstreams
            .iter()
            .map(|u| (u.priority, u.weight))
            .collect();
        let mut order = attempt_order(&weights, rand::random::<f64>);
        order.retain(|&i| allowed.get(i).copied().unwrap_or(false));
        let attempts = route.retries as usize + 1;
        let mut last: Option<(Failure, &LiveUpstream)> = None;
        let mut tried = 0usize;
        let mut cursor = 0usize;
        let mut skipped = 0usize;
        while tried < attempts && skipped < order.len() && !order.is_empty() {
            let index = order[cursor % order.len()];
            let u = &route.upstreams[index];
            cursor += 1;
            let now_ms = self.inner.health.now_ms();
            if !u.state.allow(now_ms) {
                skipped += 1;
                continue;
            }
            skipped = 0;
            tried += 1;
            meter.with(|r| {
                r.attempts = tried as u32;
                r.upstream = Some(u.label.clone());
                r.upstream_model = Some(u.model.clone());
            });
            let request = match self.build_request(u, endpoint, head, body) {
                Ok(r) => r,
                Err(Unsendable::BadUrl(msg)) => {
                    last = Some((self.unreachable(u, msg), u));
                    continue;
                }
                Err(Unsendable::Refused(refusal)) => {
                    meter.finish(UsageStatus::Invalid, 400, Some(refusal.message.clone()));
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        ErrorType::InvalidRequest,
                        refusal.code,
                        &refusal.message,
                    );
                }
            };
            let sent = Instant::now();
            meter.upstream_state = Some(u.state.clone());
            meter.price = facts.get(index).and_then(|f| f.pricing.clone());
            meter.awaiting_upstream = true;
            let client = self.upstream_client();
            let spin = u.state.answer_time.spin_window();
            let result =
                tokio::time::timeout(route.timeout, client.send_spinning(request, spin)).await;
            meter.awaiting_upstream = false;
            let took = sent.elapsed();
            if matches!(result, Ok(Ok(_))) {
                u.state.answer_time.observe(took);
            }
            let latency = took.as_secs_f64() * 1000.0;
            match result {
                Err(_) => {
                    u.state.report(
                        Outcome::Failed,
                        self.inner.health.now_ms(),
                        None,
                        None,
                        Some("timeout"),
                    );
                    last = Some((Failure::Timeout, u));
                }
                Ok(Err(e)) => last = Some((self.unreachable(u, e.to_string()), u)),
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                        let headers = resp.headers().clone();
                        let body = read_bounded(resp, MAX_RESPONSE_BYTES)
                            .await
                            .unwrap_or_default();
                        let msg =
                            format!("{} {}", status.as_u16(), error_text(u.provider.wire, &body));
                        u.state.report(
                            Outcome::Failed,
                            self.inner.health.now_ms(),
                            Some(latency),
                            Some(status.as_u16()),
                            Some(&msg),
                        );
                        last = Some((
                            Failure::Status {
                                status,
                                headers,
                                body,
                                wire: u.provider.wire,
                            },
                            u,
                        ));
                        continue;
                    }
                    u.state.report(
                        Outcome::Answered,
                        self.inner.health.now_ms(),
                        Some(latency),
                        Some(status.as_u16()),
                        None,
                    );
                    return self.answer(u, head, resp, meter).await;
                }
            }
        }
        self.all_failed(last, meter)
    }

    /// An attempt that reached no upstream: the breaker hears of it.
    fn unreachable(&self, u: &LiveUpstream, msg: String) -> Failure {
        u.state.report(
            Outcome::Failed,
            self.inner.health.now_ms(),
            None,
            None,
            Some(&msg),
        );
        Failure::Connect(msg)
    }

    /// The request for upstream `u` in its wire format.
    pub(crate) fn build_request(
        &self,
        u: &LiveUpstream,
        endpoint: Endpoint,
        head: &RequestHead,
        body: &Bytes,
    ) -> Result<UpstreamRequest, Unsendable> {
        // hyper sets `content-length` from the whole body.
        let post = || -> Result<http::request::Builder, Unsendable> {
            // The URL was parsed when the route was loaded.
            let uri = u.targets.url(endpoint, head.stream).ok_or_else(|| {
                Unsendable::BadUrl(format!(
                    "the base URL {:?} is not an absolute http(s) URL",
                    u.base_url
                ))
            })?;
            let mut req =
                http::Request::post(uri).header(http::header::CONTENT_TYPE, "application/json");
            if let Some((name, value)) = &u.targets.auth {
                req = req.header(name, value);
            }
            Ok(req)
        };
        let (builder, upstream_body) = match u.provider.wire {
            WireFormat::Openai => {
                let (upstream_body, _) = head.upstream_body(body, &u.model);
                (post()?, upstream_body)
            }
            WireFormat::Anthropic | WireFormat::Google if endpoint != Endpoint::ChatCompletions => {
                return Err(Unsendable::Refused(Refusal {
                    code: "unsupported_endpoint",
                    message: format!(
                        "provider {} serves only /v1/chat/completions through this gateway",
                        u.provider.slug
                    ),
                }))
            }
            WireFormat::Anthropic => {
                let translated = Bytes::from(
                    anthropic::chat_request(body, &u.model)
                        .map_err(|e| Unsendable::Refused(invalid(e)))?,
                );
                let req = post()?.header("anthropic-version", anthropic::API_VERSION);
                (req, translated)
            }
            WireFormat::Google => {
                let translated = Bytes::from(
                    google::chat_request(body).map_err(|e| Unsendable::Refused(invalid(e)))?,
                );
                (post()?, translated)
            }
        };
        builder.body(Full::new(upstream_body)).map_err(|e| {
            Unsendable::BadUrl(format!("the request to {} cannot be made: {e}", u.label))
        })
    }

    /// Passes a successful (or client-error) upstream answer back.
    async fn answer(
        &self,
        u: &LiveUpstream,
        head: &RequestHead,
        resp: UpstreamResponse,
        mut meter: Meter,
    ) -> GatewayResponse {
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if status.is_success() && is_sse {
            let injected = head.stream && !head.include_usage;
            let created = chrono::Utc::now().timestamp();
            let translator = match u.provider.wire {
                WireFormat::Openai => Translator::None,
                WireFormat::Anthropic => Translator::Anthropic(anthropic::ChatStream::new(
                    &head.model,
                    head.include_usage,
                    created,
                )),
                WireFormat::Google => Translator::Google(google::ChatStream::new(
                    &head.model,
                    head.include_usage,
                    created,
                )),
            };
            let relay = Relay {
                upstream: resp.into_body(),
                splitter: sse::Splitter::new(),
                translator,
                drop_usage_only: injected && u.provider.wire == WireFormat::Openai,
                usage: Usage::default(),
                meter: Some(meter),
                first_byte: false,
                ended: false,
            };
            let mut out = http::Response::new(Body::from_stream(relay));
            *out.status_mut() = status;
            let h = out.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            );
            return out;
        }
        let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
        meter.awaiting_upstream = true;
        let body = match read_bounded(resp, MAX_RESPONSE_BYTES).await {
            Ok(b) => b,
            Err(msg) => {
                meter.awaiting_upstream = false;
                meter.finish(UsageStatus::UpstreamError, 502, Some(msg.clone()));
                return error_response(
                    StatusCode::BAD_GATEWAY,
                    ErrorType::Server,
                    "upstream_error",
                    &msg,
                );
            }
        };
        meter.awaiting_upstream = false;
        let body = if status.is_success() {
            let translated = match u.provider.wire {
                WireFormat::Openai => {
                    let usage = openai::response_usage(&body);
                    Ok((body, usage))
                }
                WireFormat::Anthropic => anthropic::chat_response(&body, &head.model)
                    .map(|(b, usage)| (Bytes::from(b), Some(usage))),
                WireFormat::Google => google::chat_response(&body, &head.model)
                    .map(|(b, usage)| (Bytes::from(b), Some(usage))),
            };
            match translated {
                Ok((body, usage)) => {
                    if let Some(usage) = usage {
                        meter.set_usage(usage);
                    }
                    meter.finish(UsageStatus::Ok, status.as_u16(), None);
                    body
                }
                Err(e) => {
                    let msg = format!("the answer of {} could not be read: {e}", u.label);
                    meter.finish(UsageStatus::UpstreamError, 502, Some(msg.clone()));
                    return error_response(
                        StatusCode::BAD_GATEWAY,
                        ErrorType::Server,
                        "upstream_error",
                        &msg,
                    );
                }
            }
        } else {
            let msg = error_text(u.provider.wire, &body);
            meter.finish(
                UsageStatus::UpstreamError,
                status.as_u16(),
                Some(msg.clone()),
            );
            if u.provider.wire != WireFormat::Openai {
                let kind = match status.as_u16() {
                    401 => ErrorType::Authentication,
                    403 => ErrorType::Permission,
                    404 => ErrorType::NotFound,
                    _ => ErrorType::InvalidRequest,
                };
                return error_response(status, kind, "upstream_error", &msg);
            }
            body
        };
        let content_type = if u.provider.wire == WireFormat::Openai {
            content_type
        } else {
            None
        };
        let mut out = http::Response::new(Body::from(body));
        *out.status_mut() = status;
        out.headers_mut().insert(
            http::header::CONTENT_TYPE,
            content_type.unwrap_or(HeaderValue::from_static("application/json")),
        );
        out
    }

    /// Every attempt failed: the last upstream's error answer, in OpenAI's shape.
    fn all_failed(
        &self,
        last: Option<(Failure, &LiveUpstream)>,
        mut meter: Meter,
    ) -> GatewayResponse {
        match last {
            None => {
                let msg =
                    "every upstream of this model is unavailable (circuit open); try again later";
                meter.finish(UsageStatus::UpstreamError, 503, Some(msg.into()));
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorType::ServiceUnavailable,
                    "upstreams_unavailable",
                    msg,
                )
            }
            Some((Failure::Timeout, u)) => {
                let msg = format!("the upstream {} did not answer in time", u.label);
                meter.finish(UsageStatus::UpstreamError, 504, Some(msg.clone()));
                error_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorType::Server,
                    "upstream_timeout",
                    &msg,
                )
            }
            Some((Failure::Connect(e), u)) => {
                let msg = format!("the upstream {} could not be reached: {e}", u.label);
                meter.finish(UsageStatus::UpstreamError, 502, Some(msg.clone()));
                error_response(
                    StatusCode::BAD_GATEWAY,
                    ErrorType::Server,
                    "upstream_unreachable",
                    &msg,
                )
            }
            Some((
                Failure::Status {
                    status,
                    headers,
                    body,
                    wire,
                },
                _,
            )) => {
                let text = error_text(wire, &body);
                meter.finish(
                    UsageStatus::UpstreamError,
                    status.as_u16(),
                    Some(format!("{} {text}", status.as_u16())),
                );
                let mut resp =
                    if wire == WireFormat::Openai && openai::error_message(&body).is_some() {
                        let mut r = http::Response::new(Body::from(body));
                        *r.status_mut() = status;
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        r
                    } else {
                        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                            ErrorType::RateLimit
                        } else {
                            ErrorType::Server
                        };
                        let code = if status == StatusCode::TOO_MANY_REQUESTS {
                            "rate_limit_exceeded"
                        } else {
                            "upstream_error"
                        };
                        error_response(status, kind, code, &text)
                    };
                if let Some(ra) = headers.get(http::header::RETRY_AFTER) {
                    resp.headers_mut()
                        .insert(http::header::RETRY_AFTER, ra.clone());
                }
                resp
            }
        }
    }
}

/// A readable message of an upstream error body.
fn error_text(wire: WireFormat, body: &[u8]) -> String {
    let message = match wire {
        WireFormat::Openai => openai::error_message(body),
        WireFormat::Anthropic => anthropic::error_message(body),
        WireFormat::Google => google::error_message(body),
    };
    message.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

/// A request that cannot be sent in the upstream's format: the client's to fix (400).
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// Why no request could be made for an upstream.
pub(crate) enum Unsendable {
    /// The client's request does not go into the upstream's format (400).
    Refused(Refusal),
    /// The upstream's base URL is unusable: the attempt fails, as one to an
    /// unreachable host does.
    BadUrl(String),
}

fn invalid(e: WireError) -> Refusal {
    Refusal {
        code: "invalid_request",
        message: e.to_string(),
    }
}

/// Relays an upstream's event stream to the client event by event, reading
/// usage on the way; dropped early (the client left), it drops the upstream
/// request and the meter records the cancellation.
struct Relay {
    upstream: hyper::body::Incoming,
    splitter: sse::Splitter,
    translator: Translator,
    /// The gateway asked for usage itself: the usage-only chunk is not the client's.
    drop_usage_only: bool,
    usage: Usage,
    meter: Option<Meter>,
    first_byte: bool,
    ended: bool,
}

/// Turns another provider's stream events into OpenAI chunks.
enum Translator {
    None,
    Anthropic(anthropic::ChatStream),
    Google(google::ChatStream),
}

impl Translator {
    fn event(&mut self, e: &sse::Event) -> Result<Vec<Bytes>, WireError> {
        match self {
            Translator::None => Ok(Vec::new()),
            Translator::Anthropic(t) => t.event(e),
            Translator::Google(t) => t.event(e),
        }
    }

    fn finish(&mut self) -> Vec<Bytes> {
        match self {
            Translator::None => Vec::new(),
            Translator::Anthropic(t) => t.finish(),
            Translator::Google(t) => t.finish(),
        }
    }

    fn usage(&self) -> Usage {
        match self {
            Translator::None => Usage::default(),
            Translator::Anthropic(t) => t.usage(),
            Translator::Google(t) => t.usage(),
        }
    }
}

fn concat(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::new();
            for p in parts {
                out.extend_from_slice(&p);
            }
            out.freeze()
        }
    }
}

/// The `data:` payload of a single-line event block, without copying.
fn data_of(block: &[u8]) -> Option<&[u8]> {
    let rest = block.strip_prefix(b"data:")?;
    Some(rest.trim_ascii())
}

impl Relay {
    /// Translates the complete events of another provider's stream.
    fn translate(&mut self, complete: &[u8], ends: &[usize]) -> Result<Bytes, WireError> {
        let mut out = Vec::new();
        for block in sse::blocks(complete, ends) {
            out.extend(self.translator.event(&sse::Event::parse(block))?);
        }
        self.usage = self.translator.usage();
        Ok(concat(out))
    }

    /// Reads usage from the complete events and leaves out the gateway's own
    /// usage chunk; the bytes otherwise pass as received.
    fn pass(&mut self, complete: Bytes, ends: &[usize]) -> Bytes {
        // The span of the one chunk to leave out, if there is one.
        let mut dropped: Option<(usize, usize)> = None;
        let mut start = 0;
        for &end in ends {
            let usage = data_of(&complete[start..end]).and_then(openai::chunk_usage);
            if let Some(cu) = usage {
                self.usage.merge(cu.usage);
                if cu.usage_only && self.drop_usage_only {
                    dropped = Some((start, end));
                }
            }
            start = end;
        }
        match dropped {
            None => complete,
            Some((s, e)) => {
                let mut out = BytesMut::with_capacity(complete.len() - (e - s));
                out.extend_from_slice(&complete[..s]);
                out.extend_from_slice(&complete[e..]);
                out.freeze()
            }
        }
    }

    fn end(&mut self, status: UsageStatus, error: Option<String>) {
        self.ended = true;
        let usage = self.usage;
        if let Some(mut m) = self.meter.take() {
            m.set_usage(usage);
            m.finish(status, 200, error);
        }
    }
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            let chunk = match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Some(data),
                    // Trailers carry no events.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => {
                    let msg = format!("the upstream stream broke off: {e}");
                    this.end(UsageStatus::UpstreamError, Some(msg.clone()));
                    return Poll::Ready(Some(Ok(stream_error_event(&msg))));
                }
                Poll::Ready(None) => None,
            };
            match chunk {
                Some(chunk) => {
                    if !this.first_byte {
                        this.first_byte = true;
                        if let Some(m) = this.meter.as_mut() {
                            let ttft = m.elapsed_ms();
                            m.with(|r| r.ttft_ms = Some(ttft));
                        }
                    }
                    match this.splitter.push(&chunk) {
                        Ok((complete, ends)) => {
                            if ends.is_empty() {
                                continue;
                            }
                            let out = if matches!(this.translator, Translator::None) {
                                this.pass(complete, &ends)
                            } else {
                                match this.translate(&complete, &ends) {
                                    Ok(out) => out,
                                    Err(e) => {
                                        let msg = e.to_string();
                                        this.end(UsageStatus::UpstreamError, Some(msg.clone()));
                                        return Poll::Ready(Some(Ok(stream_error_event(&msg))));
                                    }
                                }
                            };
                            if out.is_empty() {
                                continue;
                            }
                            return Poll::Ready(Some(Ok(out)));
                        }
                        Err(e) => {
                            this.end(UsageStatus::UpstreamError, Some(e.to_string()));
                            return Poll::Ready(Some(Ok(stream_error_event(&e.to_string()))));
                        }
                    }
                }
                None => {
                    let rest = this.splitter.finish();
                    let out = if matches!(this.translator, Translator::None) {
                        rest
                    } else {
                        // An unterminated last event still counts.
                        let mut parts = Vec::new();
                        if !rest.is_empty() {
                            if let Ok(p) = this.translator.event(&sse::Event::parse(&rest)) {
                                parts.extend(p);
                            }
                        }
                        parts.extend(this.translator.finish());
                        this.usage = this.translator.usage();
                        concat(parts)
                    };
                    this.end(UsageStatus::Ok, None);
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(out)));
                }
            }
        }
    }
}

/// An error inside a stream, as OpenAI sends one (the SDKs raise it).
fn stream_error_event(message: &str) -> Bytes {
    sse::data_event(&openai::error_body(
        ErrorType::Server,
        "upstream_error",
        message,
        None,
    ))
}
