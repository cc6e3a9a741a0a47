//! The gateway at `/v1`: routes, proxying to OpenAI-compatible upstreams
//! byte for byte, translation to Anthropic and Gemini, fallback, circuit
//! breakers, OpenAI-shaped errors, client disconnects, and metering.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Row;

use crate::helpers::{assert_error, serve_fixture, Backend, TestApp};

/// What an upstream fixture saw.
#[derive(Default)]
pub struct Seen {
    pub bodies: Mutex<Vec<Bytes>>,
    pub auth: Mutex<Vec<String>>,
    pub hits: AtomicUsize,
    pub stream_dropped: AtomicBool,
}

/// Sets `stream_dropped` when the gateway drops the fixture's stream.
struct DropFlag(Arc<Seen>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.stream_dropped.store(true, Ordering::SeqCst);
    }
}

fn note(seen: &Seen, headers: &HeaderMap, body: &Bytes) {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    seen.bodies.lock().expect("lock").push(body.clone());
    let auth = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .or_else(|| headers.get("x-goog-api-key"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.auth.lock().expect("lock").push(auth);
}

fn sse(events: Vec<String>) -> Response {
    let stream = futures::stream::iter(events.into_iter().map(Ok::<_, std::io::Error>));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("response")
}

/// An OpenAI-compatible upstream (as vLLM or OpenAI answer).
pub async fn openai_upstream() -> (String, Arc<Seen>) {
    async fn chat(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
        note(&seen, &headers, &body);
        let req: Value = serde_json::from_slice(&body).expect("json body");
        let model = req["model"].as_str().unwrap_or_default().to_owned();
        if req["stream"] == true {
            let mut events: Vec<String> = ["Hel", "lo"]
                .iter()
                .map(|t| {
                    format!(
                        "data: {}\n\n",
                        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                               "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
                    )
                })
                .collect();
            if req["stream_options"]["include_usage"] == true {
                events.push(format!(
                    "data: {}\n\n",
                    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": model,
                           "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})
                ));
            }
            events.push("data: [DONE]\n\n".to_owned());
            return sse(events);
        }
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("served by {model}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        });
        ([("content-type", "application/json")], answer.to_string()).into_response()
    }
    async fn embeddings(
        State(seen): State<Arc<Seen>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        note(&seen, &headers, &body);
        let answer = json!({"object": "list", "model": "e",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}});
        ([("content-type", "application/json")], answer.to_string()).into_response()
    }
    async fn completions(
        State(seen): State<Arc<Seen>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        note(&seen, &headers, &body);
        let answer = json!({"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": " world", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}});
        ([("content-type", "application/json")], answer.to_string()).into_response()
    }
    async fn models() -> Response {
        (
            [("content-type", "application/json")],
            json!({"object": "list", "data": []}).to_string(),
        )
            .into_response()
    }
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .with_state(seen.clone());
    (format!("{}/v1", serve_fixture(router).await), seen)
}

/// An upstream that answers every request with `status` (and counts them).
pub async fn failing_upstream(status: u16) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .fallback(move |State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes| async move {
            note(&seen, &headers, &body);
            let status = StatusCode::from_u16(status).expect("status");
            (status, [("content-type", "application/json"), ("retry-after", "7")],
             json!({"error": {"message": "upstream says no", "type": "server_error", "code": null}}).to_string())
                .into_response()
        })
        .with_state(seen.clone());
    (format!("{}/v1", serve_fixture(router).await), seen)
}

/// An upstream that starts a stream and then never finishes it.
async fn endless_upstream() -> (String, Arc<Seen>) {
    async fn chat(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
        note(&seen, &headers, &body);
        let flag = DropFlag(seen.clone());
        let first = futures::stream::once(async {
            Ok::<_, std::io::Error>(format!(
                "data: {}\n\n",
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": "tick"}, "finish_reason": null}]})
            ))
        });
        let rest = futures::stream::unfold(flag, |flag| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, std::io::Error>(": keep-alive\n\n".to_owned()), flag))
        });
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(first.chain(rest)))
            .expect("response")
    }
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    (format!("{}/v1", serve_fixture(router).await), seen)
}

pub async fn create_route(app: &TestApp, body: Value) -> Value {
    let (status, route) = app.post("/api/v1/routes", body).await;
    assert_eq!(status, StatusCode::CREATED, "{route}");
    route
}

pub async fn chat(app: &TestApp, token: &str, body: Value) -> (StatusCode, HeaderMap, Bytes) {
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body"))
}

pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("json answer")
}

/// The usage rows of the app, waiting until `n` are written.
pub async fn usage_rows(app: &TestApp, n: usize) -> Vec<Value> {
    let mut conn = app.database().await;
    for _ in 0..100 {
        let rows = sqlx::query(
            "SELECT requested_model, route, upstream, upstream_model, status, http_status, stream, \
             prompt_tokens, completion_tokens, total_tokens, ttft_ms, attempts, error, endpoint \
             FROM usage_records ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .expect("usage rows");
        if rows.len() >= n {
            return rows
                .iter()
                .map(|r| {
                    json!({
                        "requested_model": r.get::<String, _>("requested_model"),
                        "route": r.get::<Option<String>, _>("route"),
                        "upstream": r.get::<Option<String>, _>("upstream"),
                        "upstream_model": r.get::<Option<String>, _>("upstream_model"),
                        "status": r.get::<String, _>("status"),
                        "http_status": r.get::<i32, _>("http_status"),
                        "stream": r.get::<i32, _>("stream") == 1,
                        "prompt_tokens": r.get::<Option<i64>, _>("prompt_tokens"),
                        "completion_tokens": r.get::<Option<i64>, _>("completion_tokens"),
                        "total_tokens": r.get::<Option<i64>, _>("total_tokens"),
                        "ttft_ms": r.get::<Option<f64>, _>("ttft_ms"),
                        "attempts": r.get::<i32, _>("attempts"),
                        "error": r.get::<Option<String>, _>("error"),
                        "endpoint": r.get::<String, _>("endpoint"),
                    })
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} usage records were written");
}

async fn chat_passes_through_byte_for_byte_and_is_metered(app: TestApp) {
    let (base, seen) = openai_upstream().await;
    let route = create_route(&app, json!({"name": "chat-default", "upstreams": [
        {"provider": "openai", "model": "gpt-4o", "base_url": base, "api_key": "sk-upstream-secret"}
    ]}))
    .await;
    assert_eq!(route["upstreams"][0]["api_key_set"], true);
    assert!(
        !route.to_string().contains("sk-upstream-secret"),
        "the key is never returned"
    );

    let token = app.key_with(&["gateway"], None).await;
    let sent = r#"{"model":"chat-default","messages":[{"role":"user","content":"hi \u00e9"}],"temperature":0.5}"#;
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer = json_of(&resp.bytes().await.expect("body"));
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "served by gpt-4o"
    );

    // The upstream got the client's bytes with only the model renamed, and the route's key.
    let received = seen.bodies.lock().expect("lock")[0].clone();
    assert_eq!(
        std::str::from_utf8(&received).expect("utf8"),
        sent.replace("\"chat-default\"", "\"gpt-4o\"")
    );
    assert_eq!(
        seen.auth.lock().expect("lock")[0],
        "Bearer sk-upstream-secret"
    );

    let rows = usage_rows(&app, 1).await;
    let r = &rows[0];
    assert_eq!(r["requested_model"], "chat-default");
    assert_eq!(r["route"], "chat-default");
    assert_eq!(r["upstream"], format!("openai:{base}"));
    assert_eq!(r["upstream_model"], "gpt-4o");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["http_status"], 200);
    assert_eq!(
        (
            r["prompt_tokens"].clone(),
            r["completion_tokens"].clone(),
            r["total_tokens"].clone()
        ),
        (json!(5), json!(3), json!(8))
    );
    assert_eq!(r["attempts"], 1);

    // The key is sealed in the database.
    let mut db = app.database().await;
    let stored: String = sqlx::query_scalar("SELECT upstreams FROM gateway_routes")
        .fetch_one(&mut db)
        .await
        .expect("row");
    assert!(!stored.contains("sk-upstream-secret"), "{stored}");
}

async fn streams_are_relayed_chunk_by_chunk_with_usage_metered(app: TestApp) {
    let (base, seen) = openai_upstream().await;
    create_route(&app, json!({"name": "fast", "upstreams": [{"provider": "vllm", "model": "qwen", "base_url": base}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    let (status, headers, body) = chat(
        &app,
        &token,
        json!({"model": "fast", "stream": true, "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk"))
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello");
    assert!(text.ends_with("data: [DONE]\n\n"));
    // The gateway asked for usage itself: the client, who did not, gets no usage chunk.
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{text}");
    let upstream_body = json_of(&seen.bodies.lock().expect("lock")[0]);
    assert_eq!(upstream_body["stream_options"]["include_usage"], true);

    // A client that asks for usage gets it, as sent.
    let (_, _, body) = chat(&app, &token, json!({"model": "fast", "stream": true, "stream_options": {"include_usage": true}, "messages": []})).await;
    assert!(String::from_utf8_lossy(&body).contains("\"total_tokens\":9"));

    let rows = usage_rows(&app, 2).await;
    for r in &rows {
        assert_eq!(r["stream"], true);
        assert_eq!(r["status"], "ok");
        assert_eq!(r["total_tokens"], 9);
        assert!(r["ttft_ms"].as_f64().is_some(), "{r}");
    }
}

async fn embeddings_and_completions_are_proxied(app: TestApp) {
    let (base, _) = openai_upstream().await;
    create_route(&app, json!({"name": "embed", "upstreams": [{"provider": "openai", "model": "text-embedding-3-small", "base_url": base}]})).await;
    create_route(&app, json!({"name": "legacy", "upstreams": [{"provider": "openai", "model": "babbage", "base_url": base}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    let resp = app
        .client
        .post(app.url("/v1/embeddings"))
        .bearer_auth(&token)
        .json(&json!({"model": "embed", "input": "hello"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json_of(&resp.bytes().await.expect("b"))["data"][0]["embedding"],
        json!([0.25, -0.5])
    );
    let resp = app
        .client
        .post(app.url("/v1/completions"))
        .bearer_auth(&token)
        .json(&json!({"model": "legacy", "prompt": "hello"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        json_of(&resp.bytes().await.expect("b"))["choices"][0]["text"],
        " world"
    );
    let rows = usage_rows(&app, 2).await;
    let endpoints: Vec<&str> = rows.iter().filter_map(|r| r["endpoint"].as_str()).collect();
    assert!(
        endpoints.contains(&"embeddings") && endpoints.contains(&"completions"),
        "{rows:?}"
    );
    let embed = rows
        .iter()
        .find(|r| r["endpoint"] == "embeddings")
        .expect("embeddings row");
    assert_eq!(embed["prompt_tokens"], 4);

    // /v1/models lists the org's routes.
    let resp = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let list = json_of(&resp.bytes().await.expect("b"));
    let ids: Vec<&str> = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["embed", "legacy"]);
}

async fn failures_fall_back_by_priority_and_open_the_circuit(app: TestApp) {
    let (bad, bad_seen) = failing_upstream(503).await;
    let (good, good_seen) = openai_upstream().await;
    create_route(
        &app,
        json!({"name": "resilient", "retries": 1, "upstreams": [
            {"provider": "openai-compatible", "model": "a", "base_url": bad, "priority": 0},
            {"provider": "openai-compatible", "model": "b", "base_url": good, "priority": 1}
        ]}),
    )
    .await;
    let token = app.key_with(&["gateway"], None).await;
    for _ in 0..6 {
        let (status, _, body) =
            chat(&app, &token, json!({"model": "resilient", "messages": []})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json_of(&body)["choices"][0]["message"]["content"],
            "served by b"
        );
    }
    // Five failures in a row opened the bad upstream's circuit: the sixth request skipped it.
    assert_eq!(bad_seen.hits.load(Ordering::SeqCst), 5);
    assert_eq!(good_seen.hits.load(Ordering::SeqCst), 6);
    let (status, health) = app.get("/api/v1/admin/upstreams").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let ups = health["upstreams"].as_array().expect("upstreams");
    let bad_state = ups
        .iter()
        .find(|u| u["base_url"] == bad)
        .expect("bad upstream");
    assert_eq!(bad_state["state"], "open");
    assert_eq!(bad_state["last_status"], 503);
    assert_eq!(bad_state["models"], json!(["resilient"]));
    let good_state = ups
        .iter()
        .find(|u| u["base_url"] == good)
        .expect("good upstream");
    assert_eq!(good_state["state"], "closed");
    let rows = usage_rows(&app, 6).await;
    assert_eq!(rows[0]["attempts"], 2);
    assert_eq!(rows[5]["attempts"], 1);

    // The free probe finds the good one up.
    let (status, probed) = app
        .post("/api/v1/admin/upstreams/refresh-health", json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{probed}");
}

async fn when_every_attempt_fails_the_last_error_is_returned(app: TestApp) {
    let (limited, _) = failing_upstream(429).await;
    create_route(
        &app,
        json!({"name": "busy", "retries": 0, "upstreams": [
            {"provider": "openai-compatible", "model": "m", "base_url": limited}
        ]}),
    )
    .await;
    create_route(
        &app,
        json!({"name": "down", "retries": 1, "timeout_ms": 500, "upstreams": [
            {"provider": "vllm", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
        ]}),
    )
    .await;
    let token = app.key_with(&["gateway"], None).await;
    let (status, headers, body) =
        chat(&app, &token, json!({"model": "busy", "messages": []})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(json_of(&body)["error"]["message"], "upstream says no");
    let (status, _, body) = chat(&app, &token, json!({"model": "down", "messages": []})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(json_of(&body)["error"]["code"], "upstream_unreachable");
    let rows = usage_rows(&app, 2).await;
    assert!(
        rows.iter().all(|r| r["status"] == "upstream_error"),
        "{rows:?}"
    );
}

async fn errors_on_v1_have_openais_shape(app: TestApp) {
    let openai_shape = |v: &Value, code: &str| {
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["type"].as_str().is_some(), "{v}");
    };
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": "x"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    openai_shape(&json_of(&resp.bytes().await.expect("b")), "invalid_api_key");

    let reader = app.key_with(&["registry:read"], None).await;
    let (status, _, body) = chat(&app, &reader, json!({"model": "x", "messages": []})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    openai_shape(&json_of(&body), "permission_denied");

    let token = app.key_with(&["gateway"], None).await;
    let (status, _, body) = chat(&app, &token, json!({"model": "nope", "messages": []})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    openai_shape(&json_of(&body), "model_not_found");

    for bad in ["{", "[]", "{\"messages\": []}", "{\"model\": 3}"] {
        let resp = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        openai_shape(&json_of(&resp.bytes().await.expect("b")), "invalid_request");
    }
    // A revoked key stops working at once, though the gateway had it cached.
    let (_, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "short-lived", "scopes": ["gateway"]}),
        )
        .await;
    let short = key["token"].as_str().expect("token").to_owned();
    let (status, _, _) = chat(&app, &short, json!({"model": "nope", "messages": []})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/api/v1/keys/{}", key["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = chat(&app, &short, json!({"model": "nope", "messages": []})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    openai_shape(&json_of(&body), "invalid_api_key");
    let resp = app
        .client
        .post(app.url("/v1/nothing-here"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    openai_shape(&json_of(&resp.bytes().await.expect("b")), "unknown_url");
    // The unknown model was metered as an invalid request.
    let rows = usage_rows(&app, 1).await;
    assert_eq!(rows[0]["status"], "invalid");
    assert_eq!(rows[0]["http_status"], 404);
}

/// `/v1` answers its own edges in OpenAI's shape: a wrong method is 405
/// with `Allow`, a body past 32 MiB is 413, the request id is kept (or
/// made) and returned, and each request is counted in the metrics under
/// its route.
async fn v1_edges_keep_openais_shape_request_ids_and_metrics(app: TestApp) {
    let token = app.key_with(&["gateway"], None).await;
    let resp = app
        .client
        .get(app.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .header("x-request-id", "req-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let body = json_of(&resp.bytes().await.expect("b"));
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");

    let big = vec![b' '; 33 << 20];
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "a fresh request id: {id}"
    );
    let body = json_of(&resp.bytes().await.expect("b"));
    assert_eq!(body["error"]["code"], "request_too_large", "{body}");

    let (status, _, _) = chat(&app, &token, json!({"model": "nope", "messages": []})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let scraper = app.key_with(&["metrics:read"], None).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&scraper)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    for line in [
        r#"http_requests_total{method="GET",route="/v1/chat/completions",status="405"} 1"#,
        r#"http_requests_total{method="POST",route="/v1/chat/completions",status="413"} 1"#,
        r#"http_requests_total{method="POST",route="/v1/chat/completions",status="404"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// Starts a stream through the route `slow` (an [`endless_upstream`]) and
/// reads its first chunk.
async fn open_slow_stream(
    client: &reqwest::Client,
    app: &TestApp,
    token: &str,
) -> impl futures::Stream<Item = reqwest::Result<Bytes>> + Unpin {
    let resp = client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({"model": "slow", "stream": true, "messages": []}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.expect("a chunk").expect("bytes");
    assert!(String::from_utf8_lossy(&first).contains("tick"));
    stream
}

async fn a_client_that_leaves_cancels_the_upstream_and_is_metered(app: TestApp) {
    let (base, seen) = endless_upstream().await;
    create_route(&app, json!({"name": "slow", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    let stream = open_slow_stream(&app.client, &app, &token).await;
    drop(stream);
    let rows = usage_rows(&app, 1).await;
    assert_eq!(rows[0]["status"], "cancelled");
    for _ in 0..100 {
        if seen.stream_dropped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upstream request was not cancelled");
}

/// An Anthropic Messages API upstream.
async fn anthropic_upstream() -> (String, Arc<Seen>) {
    async fn messages(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> Response {
        note(&seen, &headers, &body);
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        let req: Value = serde_json::from_slice(&body).expect("json");
        if req["stream"] == true {
            let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
            return sse(vec![
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": req["model"], "content": [], "usage": {"input_tokens": 11, "output_tokens": 1}}}),
                ),
                ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}}),
                ),
                ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}}),
                ),
                ev(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": 0}),
                ),
                ev(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
                ),
                ev("message_stop", json!({"type": "message_stop"})),
            ]);
        }
        let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": req["model"],
            "content": [{"type": "text", "text": format!("system was {}", req["system"])}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 6}});
        ([("content-type", "application/json")], answer.to_string()).into_response()
    }
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route("/v1/messages", post(messages))
        .with_state(seen.clone());
    (format!("{}/v1", serve_fixture(router).await), seen)
}

/// A Gemini API upstream.
async fn gemini_upstream() -> (String, Arc<Seen>) {
    async fn generate(
        State(seen): State<Arc<Seen>>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        note(&seen, &headers, &body);
        let part = |t: &str| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}]});
        if uri.path().ends_with(":streamGenerateContent") {
            let mut last = part("ao");
            last["candidates"][0]["finishReason"] = json!("STOP");
            last["usageMetadata"] =
                json!({"promptTokenCount": 6, "candidatesTokenCount": 2, "totalTokenCount": 8});
            return sse(vec![
                format!("data: {}\r\n\r\n", part("Ci")),
                format!("data: {last}\r\n\r\n"),
            ]);
        }
        let mut answer = part("Ciao");
        answer["candidates"][0]["finishReason"] = json!("STOP");
        answer["usageMetadata"] =
            json!({"promptTokenCount": 6, "candidatesTokenCount": 1, "totalTokenCount": 7});
        ([("content-type", "application/json")], answer.to_string()).into_response()
    }
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .fallback(post(generate))
        .with_state(seen.clone());
    (format!("{}/v1beta", serve_fixture(router).await), seen)
}

async fn anthropic_and_gemini_are_translated_both_ways(app: TestApp) {
    let (claude, claude_seen) = anthropic_upstream().await;
    let (gemini, gemini_seen) = gemini_upstream().await;
    create_route(&app, json!({"name": "claude", "upstreams": [{"provider": "anthropic", "model": "claude-sonnet-4-5", "base_url": claude, "api_key": "ak"}]})).await;
    create_route(&app, json!({"name": "gemini", "upstreams": [{"provider": "google", "model": "gemini-2.5-flash", "base_url": gemini, "api_key": "gk"}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    let messages =
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);

    let (status, _, body) = chat(
        &app,
        &token,
        json!({"model": "claude", "messages": messages}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer = json_of(&body);
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "system was \"be brief\""
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["total_tokens"], 16);
    let sent = json_of(&claude_seen.bodies.lock().expect("lock")[0]);
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(claude_seen.auth.lock().expect("lock")[0], "ak");

    let (_, _, body) = chat(
        &app,
        &token,
        json!({"model": "claude", "stream": true, "messages": messages}),
    )
    .await;
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).expect("chunk"))
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "Bonjour");
    assert!(text.ends_with("data: [DONE]\n\n"));

    let (status, _, body) = chat(
        &app,
        &token,
        json!({"model": "gemini", "messages": messages}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["choices"][0]["message"]["content"], "Ciao");
    let (_, _, body) = chat(
        &app,
        &token,
        json!({"model": "gemini", "stream": true, "messages": messages}),
    )
    .await;
    let text = String::from_utf8(body.to_vec()).expect("utf8");
    assert!(
        text.contains("\"Ci\"") && text.contains("\"ao\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let sent = json_of(&gemini_seen.bodies.lock().expect("lock")[0]);
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(gemini_seen.auth.lock().expect("lock")[0], "gk");

    let rows = usage_rows(&app, 4).await;
    let tokens: Vec<Value> = rows.iter().map(|r| r["total_tokens"].clone()).collect();
    assert_eq!(tokens, [json!(16), json!(15), json!(7), json!(8)]);
}

async fn routes_are_managed_per_org_with_sealed_keys(app: TestApp) {
    let body = json!({"name": "r1", "upstreams": [{"provider": "openai", "model": "gpt-4o", "api_key": "sk-1"}]});
    let route = create_route(&app, body.clone()).await;
    let id = route["id"].as_str().expect("id").to_owned();
    assert_eq!(route["version"], 1);
    assert_eq!(route["retries"], 1);
    assert_eq!(route["timeout_ms"], 30000);
    assert_error(
        &app.post("/api/v1/routes", body).await,
        StatusCode::CONFLICT,
        "route_already_exists",
    );
    assert_error(
        &app.post(
            "/api/v1/routes",
            json!({"name": "bad", "upstreams": [{"provider": "nope", "model": "m"}]}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    // A replace without api_key keeps the key; a stale version is refused.
    let (status, replaced) = app
        .put(
            &format!("/api/v1/routes/{id}"),
            json!({"name": "r1", "expected_version": 1,
        "upstreams": [{"provider": "openai", "model": "gpt-4.1", "weight": 3}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["upstreams"][0]["api_key_set"], true);
    assert_error(
        &app.put(&format!("/api/v1/routes/{id}"), json!({"name": "r1", "expected_version": 1, "upstreams": [{"provider": "openai", "model": "x"}]})).await,
        StatusCode::CONFLICT,
        "version_conflict",
    );
    let (status, replaced) = app
        .put(
            &format!("/api/v1/routes/{id}"),
            json!({"name": "r1",
        "upstreams": [{"provider": "openai", "model": "gpt-4.1", "api_key": null}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replaced["upstreams"][0]["api_key_set"], false);

    // Another org sees nothing; a reader may list but not write.
    let (_, other_admin) = app.org_with_admin("other").await;
    let (status, _) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/routes/{id}"),
            Some(&other_admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/routes",
            Some(&other_admin),
            None,
        )
        .await;
    assert_eq!(list["total"], 0);
    let reader = app.key_with(&["registry:read"], None).await;
    let (status, list) = app
        .call(reqwest::Method::GET, "/api/v1/routes", Some(&reader), None)
        .await;
    assert_eq!((status, list["total"].clone()), (StatusCode::OK, json!(1)));
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/routes",
            Some(&reader),
            Some(json!({"name": "x", "upstreams": [{"provider": "openai", "model": "m"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every change is audited, without the key.
    let (_, audit) = app
        .get(&format!("/api/v1/audit?entity_type=route&entity_id={id}"))
        .await;
    assert!(!audit.to_string().contains("sk-1"));
    let (status, _) = app.delete(&format!("/api/v1/routes/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.delete(&format!("/api/v1/routes/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn usage_written_at_shutdown_is_not_lost(app: TestApp) {
    let (base, _) = openai_upstream().await;
    create_route(
        &app,
        json!({"name": "m", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]}),
    )
    .await;
    let token = app.key_with(&["gateway"], None).await;
    for _ in 0..20 {
        let (status, _, _) = chat(&app, &token, json!({"model": "m", "messages": []})).await;
        assert_eq!(status, StatusCode::OK);
    }
    // A graceful restart flushes every queued record.
    let app = app.restart().await;
    let mut conn = app.database().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 20);
}

/// One event loop serves every connection: streams that never end, each
/// holding a connection open on it, leave it free to serve more streams and
/// the admin API (which it hands to the shared runtime) at the same time.
async fn one_event_loop_serves_open_streams_and_the_admin_api_together(backend: Backend) {
    // A loop that served one connection at a time would hang here: fail instead.
    tokio::time::timeout(Duration::from_secs(60), async {
        let Some(app) = TestApp::spawn_with(backend, |c| c.event_loops = 1).await else {
            return;
        };
        let (base, _seen) = endless_upstream().await;
        create_route(&app, json!({"name": "slow", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
        let token = app.key_with(&["gateway"], None).await;
        let mut open = Vec::new();
        for _ in 0..8 {
            // A client of its own each: a connection of its own each.
            open.push(open_slow_stream(&reqwest::Client::new(), &app, &token).await);
        }
        let (status, routes) = app.get("/api/v1/routes").await;
        assert_eq!(status, StatusCode::OK, "{routes}");
        assert_eq!(routes["routes"][0]["name"], "slow", "{routes}");
        // Every stream is still flowing.
        for stream in &mut open {
            let next = stream.next().await.expect("more").expect("bytes");
            assert!(String::from_utf8_lossy(&next).contains("keep-alive"));
        }
        drop(open);
        let rows = usage_rows(&app, 8).await;
        assert!(rows.iter().all(|r| r["status"] == "cancelled"), "{rows:?}");
    })
    .await
    .expect("every request answered within a minute");
}

/// A key without the `gateway` scope is refused on `/v1` every time, not
/// only while the gateway has not yet cached it.
async fn a_key_without_the_gateway_scope_is_refused_every_time(app: TestApp) {
    let (base, seen) = openai_upstream().await;
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    let token = app.key_with(&["registry:read"], None).await;
    for attempt in 0..3 {
        let (status, _, body) = chat(&app, &token, hi("chat")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "attempt {attempt}");
        assert_eq!(json_of(&body)["error"]["code"], "permission_denied");
    }
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0, "nothing was proxied");
}

/// A one-message chat request for `model`.
pub fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends requests for `model` to `replica` every 50 ms until one is
/// answered `after`, which must happen within 2 s (`what` names the change
/// awaited); every answer before it must be `before`.
async fn arrives_within_two_seconds(
    replica: &TestApp,
    token: &str,
    (model, before, after): (&str, StatusCode, StatusCode),
    what: &str,
) {
    let since = std::time::Instant::now();
    loop {
        let (status, _, body) = chat(replica, token, hi(model)).await;
        if status == after {
            break;
        }
        assert_eq!(status, before, "{what}: {}", String::from_utf8_lossy(&body));
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{what}: the change never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = since.elapsed();
    assert!(took < Duration::from_secs(2), "{what} took {took:?}");
}

/// A replica busy with requests answers from its caches, reloading them in
/// the background before they expire; a policy set, a model registered, a
/// route deleted and a key revoked on another replica still reach it within
/// the cache's ttl (1 s here, 2 s allowed for a slow machine), and no
/// request in between fails.
async fn edits_on_another_replica_reach_a_busy_replica_within_the_cache_ttl(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.gateway.cache_ttl_secs = Some(1)).await
    else {
        return;
    };
    let replica = app.replica("second").await;
    let (base, _) = openai_upstream().await;
    for name in ["kept", "dropped"] {
        create_route(&app, json!({"name": name, "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    }
    let (_, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "busy", "scopes": ["gateway"]}),
        )
        .await;
    let token = key["token"].as_str().expect("token").to_owned();
    // Several ttls of traffic: the replica reloads its entries as it goes.
    let busy = std::time::Instant::now();
    while busy.elapsed() < Duration::from_millis(2_500) {
        for model in ["kept", "dropped"] {
            let (status, _, body) = chat(&replica, &token, hi(model)).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The policy comes with the route table; the inventory entry a request
    // matches is worked out again by each reload.
    let (status, _) = app
        .put(
            "/api/v1/policies",
            json!({"rules": [{"name": "registered-only", "if": {"registered": false}, "then": "block"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    arrives_within_two_seconds(
        &replica,
        &token,
        ("kept", StatusCode::OK, StatusCode::FORBIDDEN),
        "the policy",
    )
    .await;
    app.create_model(json!({"model_id": "kept", "provider": "vllm", "risk_tier": "tier_3"}))
        .await;
    arrives_within_two_seconds(
        &replica,
        &token,
        ("kept", StatusCode::FORBIDDEN, StatusCode::OK),
        "the registration",
    )
    .await;
    let (status, _) = app.put("/api/v1/policies", json!({"rules": []})).await;
    assert_eq!(status, StatusCode::OK);
    arrives_within_two_seconds(
        &replica,
        &token,
        ("dropped", StatusCode::FORBIDDEN, StatusCode::OK),
        "clearing the policy",
    )
    .await;

    let (_, routes) = app.get("/api/v1/routes").await;
    let dropped = routes["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["name"] == "dropped")
        .expect("the route")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = app.delete(&format!("/api/v1/routes/{dropped}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    arrives_within_two_seconds(
        &replica,
        &token,
        ("dropped", StatusCode::OK, StatusCode::NOT_FOUND),
        "the deletion",
    )
    .await;

    let (status, _) = app
        .delete(&format!("/api/v1/keys/{}", key["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    arrives_within_two_seconds(
        &replica,
        &token,
        ("kept", StatusCode::OK, StatusCode::UNAUTHORIZED),
        "the revocation",
    )
    .await;
}

crate::both_backends_with!(edits_on_another_replica_reach_a_busy_replica_within_the_cache_ttl);

crate::both_backends_with!(one_event_loop_serves_open_streams_and_the_admin_api_together);

crate::both_backends!(
    chat_passes_through_byte_for_byte_and_is_metered,
    streams_are_relayed_chunk_by_chunk_with_usage_metered,
    embeddings_and_completions_are_proxied,
    failures_fall_back_by_priority_and_open_the_circuit,
    when_every_attempt_fails_the_last_error_is_returned,
    errors_on_v1_have_openais_shape,
    v1_edges_keep_openais_shape_request_ids_and_metrics,
    a_client_that_leaves_cancels_the_upstream_and_is_metered,
    anthropic_and_gemini_are_translated_both_ways,
    routes_are_managed_per_org_with_sealed_keys,
    usage_written_at_shutdown_is_not_lost,
    a_key_without_the_gateway_scope_is_refused_every_time,
);
