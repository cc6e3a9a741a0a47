//! Cloud providers for the gateway: which are configured, the org's own keys
//! (sealed, audited without the key), every provider's model listing (cached,
//! served stale while refreshing), health probes, model status probes, and
//! routing a bare model name to the provider that lists it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::gateway::{chat, create_route, json_of, usage_rows};
use crate::helpers::{assert_error, serve_fixture, Backend, TestApp};
use modelplane::config::ProviderFile;

/// What a provider fixture saw and lists.
#[derive(Default)]
struct Provider {
    models: Mutex<Vec<String>>,
    listings: AtomicUsize,
    chats: Mutex<Vec<Value>>,
    auth: Mutex<Vec<String>>,
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn auth_of(headers: &HeaderMap) -> String {
    ["authorization", "x-api-key", "x-goog-api-key"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// An OpenAI-compatible provider that lists `models` and answers chats.
async fn openai_provider(models: &[&str]) -> (String, Arc<Provider>) {
    let state = Arc::new(Provider::default());
    *state.models.lock().expect("lock") = models.iter().map(|m| (*m).to_owned()).collect();
    async fn list(State(s): State<Arc<Provider>>, headers: HeaderMap) -> Response {
        s.listings.fetch_add(1, Ordering::SeqCst);
        s.auth.lock().expect("lock").push(auth_of(&headers));
        let data: Vec<Value> = s
            .models
            .lock()
            .expect("lock")
            .iter()
            .map(|m| json!({"id": m, "object": "model", "created": 1, "owned_by": "system"}))
            .collect();
        json_response(200, json!({"object": "list", "data": data}))
    }
    async fn chat(
        State(s): State<Arc<Provider>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        s.auth.lock().expect("lock").push(auth_of(&headers));
        let req: Value = serde_json::from_slice(&body).expect("json");
        s.chats.lock().expect("lock").push(req.clone());
        json_response(
            200,
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": req["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("served by {}", req["model"].as_str().unwrap_or_default())}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        )
    }
    let router = Router::new()
        .route("/v1/models", get(list))
        .route("/v1/chat/completions", post(chat))
        .with_state(state.clone());
    (format!("{}/v1", serve_fixture(router).await), state)
}

/// Anthropic's `/v1/models`, two pages (`has_more`, `after_id`).
async fn anthropic_provider() -> String {
    async fn list(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
        match q.get("after_id").map(String::as_str) {
            None => json_response(
                200,
                json!({"data": [{"type": "model", "id": "claude-a", "display_name": "Claude A", "created_at": "2025-01-01T00:00:00Z"}],
                "has_more": true, "first_id": "claude-a", "last_id": "claude-a"}),
            ),
            Some("claude-a") => json_response(
                200,
                json!({"data": [{"type": "model", "id": "claude-b", "display_name": "Claude B", "created_at": "2025-01-01T00:00:00Z"}],
                "has_more": false, "first_id": "claude-b", "last_id": "claude-b"}),
            ),
            Some(other) => json_response(
                400,
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("bad cursor {other}")}}),
            ),
        }
    }
    let router = Router::new().route("/v1/models", get(list));
    format!("{}/v1", serve_fixture(router).await)
}

/// Gemini's `/v1beta/models`, two pages (`nextPageToken`, `pageToken`).
async fn google_provider() -> String {
    async fn list(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
        match q.get("pageToken").map(String::as_str) {
            None => json_response(
                200,
                json!({"models": [{"name": "models/gemini-x", "displayName": "Gemini X"}], "nextPageToken": "p2"}),
            ),
            _ => json_response(
                200,
                json!({"models": [{"name": "models/gemini-y", "displayName": "Gemini Y"}]}),
            ),
        }
    }
    let router = Router::new().route("/v1beta/models", get(list));
    format!("{}/v1beta", serve_fixture(router).await)
}

/// A provider that answers every request with `status`.
async fn answering(status: u16) -> String {
    let router = Router::new().fallback(move || async move {
        json_response(
            status,
            json!({"error": {"message": format!("fixture says {status}"), "type": "error"}}),
        )
    });
    format!("{}/v1", serve_fixture(router).await)
}

/// A provider that takes two seconds to answer anything.
async fn slow() -> String {
    let router = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        json_response(200, json!({"data": []}))
    });
    format!("{}/v1", serve_fixture(router).await)
}

fn provider(base_url: &str, key: Option<&str>) -> ProviderFile {
    ProviderFile {
        base_url: Some(base_url.to_owned()),
        api_key: key.map(|k| secrecy::SecretString::from(k.to_owned())),
        probe_model: None,
    }
}

async fn providers_are_listed_and_org_keys_are_sealed(backend: Backend) {
    let (base, seen) = openai_provider(&["gpt-4o"]).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.gateway.cache_ttl_secs = Some(0);
        c.providers
            .insert("openai".into(), provider(&base, Some("sk-platform")));
    })
    .await
    else {
        return;
    };
    let (status, listed) = app.get("/api/v1/admin/providers").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let find = |v: &Value, slug: &str| -> Value {
        v["providers"]
            .as_array()
            .expect("providers")
            .iter()
            .find(|p| p["provider"] == slug)
            .cloned()
            .unwrap_or_else(|| panic!("{slug} listed"))
    };
    let openai = find(&listed, "openai");
    assert_eq!(
        (openai["configured"].clone(), openai["key_source"].clone()),
        (json!(true), json!("config"))
    );
    let mistral = find(&listed, "mistral");
    assert_eq!(
        (mistral["configured"].clone(), mistral["key_source"].clone()),
        (json!(false), Value::Null)
    );
    assert!(
        find(&listed, "vllm")["configured"] == false,
        "an engine needs a base URL"
    );

    let (status, set) = app
        .put(
            "/api/v1/admin/providers",
            json!({"keys": {"mistral": "sk-mistral-secret", "openai": "sk-org-secret"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(find(&set, "mistral")["key_source"], "org");
    assert_eq!(
        find(&set, "openai")["key_source"],
        "org",
        "the org's key wins over the platform's"
    );
    assert!(
        !set.to_string().contains("secret"),
        "keys are never returned"
    );

    let mut db = app.database().await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT sealed_key FROM provider_keys ORDER BY provider")
            .fetch_all(&mut db)
            .await
            .expect("rows");
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|k| !k.contains("secret")),
        "sealed at rest"
    );
    let (_, audit) = app
        .get("/api/v1/audit-events?entity_type=provider_key")
        .await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert!(
        !audit.to_string().contains("secret"),
        "the audit trail holds no key: {audit}"
    );

    // Requests for openai/… now carry the org's key.
    let token = app.key_with(&["gateway"], None).await;
    let (status, _, _) = chat(
        &app,
        &token,
        json!({"model": "openai/gpt-4o", "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen.auth.lock().expect("lock").last().map(String::as_str),
        Some("Bearer sk-org-secret")
    );

    let (status, removed) = app
        .put(
            "/api/v1/admin/providers",
            json!({"keys": {"mistral": null}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(find(&removed, "mistral")["configured"], false);

    let unknown = app
        .put("/api/v1/admin/providers", json!({"keys": {"nope": "k"}}))
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(unknown.1["error"]["details"]["field"], "keys.nope");
    let empty = app
        .put("/api/v1/admin/providers", json!({"keys": {"groq": " "}}))
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "validation_error");

    let reader = app.key_with(&["registry:read"], None).await;
    for path in [
        "/api/v1/admin/providers",
        "/api/v1/admin/provider-models",
        "/api/v1/admin/provider-health",
    ] {
        let got = app
            .call(axum::http::Method::GET, path, Some(&reader), None)
            .await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
}

async fn provider_models_merge_listings_and_serve_stale_while_refreshing(backend: Backend) {
    let (openai, openai_seen) = openai_provider(&["gpt-4o", "gpt-4o-mini"]).await;
    let anthropic = anthropic_provider().await;
    let google = google_provider().await;
    let mistral = answering(429).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.gateway.cache_ttl_secs = Some(0);
        c.gateway.provider_models_ttl_secs = Some(0);
        c.providers
            .insert("openai".into(), provider(&openai, Some("sk-o")));
        c.providers
            .insert("anthropic".into(), provider(&anthropic, Some("sk-a")));
        c.providers
            .insert("google".into(), provider(&google, Some("g")));
        c.providers
            .insert("mistral".into(), provider(&mistral, Some("m")));
    })
    .await
    else {
        return;
    };
    let (status, got) = app.get("/api/v1/admin/provider-models").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let ids = |v: &Value| -> Vec<(String, String)> {
        v["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| {
                (
                    m["provider"].as_str().unwrap_or_default().to_owned(),
                    m["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let want: Vec<(String, String)> = [
        ("anthropic", "claude-a"),
        ("anthropic", "claude-b"),
        ("google", "gemini-x"),
        ("google", "gemini-y"),
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
    ]
    .iter()
    .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
    .collect();
    assert_eq!(ids(&got), want, "every page of every listing");
    assert_eq!(got["stale"], false);
    let claude = got["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["id"] == "claude-a")
        .cloned()
        .expect("claude-a");
    assert_eq!(claude["name"], "Claude A");
    let mistral_status = got["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .find(|p| p["provider"] == "mistral")
        .cloned()
        .expect("mistral");
    assert_eq!(mistral_status["status"], "rate_limited", "{mistral_status}");

    // A newer model appears; the next answer is the old list at once, and a refresh follows.
    openai_seen
        .models
        .lock()
        .expect("lock")
        .push("gpt-5".into());
    let (_, second) = app.get("/api/v1/admin/provider-models").await;
    assert_eq!(second["stale"], true);
    assert_eq!(ids(&second), want, "served stale, without waiting");
    let mut refreshed = false;
    for _ in 0..50 {
        let (_, next) = app.get("/api/v1/admin/provider-models").await;
        if ids(&next).iter().any(|(_, m)| m == "gpt-5") {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refreshed, "the background refresh lands");

    // A bare name that a configured provider lists is routed to it.
    let token = app.key_with(&["gateway"], None).await;
    let (status, _, body) = chat(
        &app,
        &token,
        json!({"model": "gpt-4o-mini", "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json_of(&body)["choices"][0]["message"]["content"],
        "served by gpt-4o-mini"
    );
    let rows = usage_rows(&app, 1).await;
    assert_eq!(rows[0]["upstream"], format!("openai:{openai}"));
    assert_eq!(rows[0]["route"], Value::Null, "no stored route served it");
    let (status, _, _) = chat(
        &app,
        &token,
        json!({"model": "not-listed-anywhere", "messages": []}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let resp = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let listed: Value = resp.json().await.expect("json");
    let names: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        names.contains(&"claude-a") && names.contains(&"gpt-4o"),
        "{names:?}"
    );
}

async fn provider_health_probes_every_configured_provider(backend: Backend) {
    let (openai, openai_seen) = openai_provider(&["gpt-4o"]).await;
    let mistral = answering(429).await;
    let groq = answering(503).await;
    let xai = answering(401).await;
    let together = slow().await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.gateway.probe_timeout_ms = Some(300);
        let mut o = provider(&openai, Some("sk-o"));
        o.probe_model = Some("gpt-4o-mini".into());
        c.providers.insert("openai".into(), o);
        c.providers
            .insert("mistral".into(), provider(&mistral, Some("m")));
        c.providers
            .insert("groq".into(), provider(&groq, Some("g")));
        c.providers.insert("xai".into(), provider(&xai, Some("x")));
        c.providers
            .insert("together".into(), provider(&together, Some("t")));
        c.providers.insert(
            "deepseek".into(),
            provider("http://127.0.0.1:9/v1", Some("d")),
        );
    })
    .await
    else {
        return;
    };
    let (status, got) = app.get("/api/v1/admin/provider-health").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let mut statuses: Vec<(String, String)> = got["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|p| {
            (
                p["provider"].as_str().unwrap_or_default().to_owned(),
                p["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    statuses.sort();
    let want: Vec<(String, String)> = [
        ("deepseek", "unreachable"),
        ("groq", "overloaded"),
        ("mistral", "rate_limited"),
        ("openai", "up"),
        ("together", "timeout"),
        ("xai", "error_401"),
    ]
    .iter()
    .map(|(p, s)| ((*p).to_owned(), (*s).to_owned()))
    .collect();
    assert_eq!(
        statuses, want,
        "only configured providers, each with its status"
    );
    assert!(
        openai_seen.chats.lock().expect("lock").is_empty(),
        "the default probe costs nothing"
    );
    let xai_detail = got["providers"]
        .as_array()
        .expect("p")
        .iter()
        .find(|p| p["provider"] == "xai")
        .cloned()
        .expect("xai");
    assert_eq!(xai_detail["detail"], "fixture says 401");

    let (status, paid) = app.get("/api/v1/admin/provider-health?paid=true").await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    let chats = openai_seen.chats.lock().expect("lock").clone();
    assert_eq!(chats.len(), 1);
    assert_eq!(
        (chats[0]["model"].clone(), chats[0]["max_tokens"].clone()),
        (json!("gpt-4o-mini"), json!(1))
    );
    let bad = app.get("/api/v1/admin/provider-health?paid=maybe").await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "validation_error");
}

async fn model_status_probes_each_model_where_it_would_go(backend: Backend) {
    let (openai, openai_seen) = openai_provider(&["gpt-4o"]).await;
    let (local, _) = openai_provider(&[]).await;
    let mistral = answering(429).await;
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.providers
            .insert("openai".into(), provider(&openai, Some("sk-o")));
        c.providers
            .insert("mistral".into(), provider(&mistral, Some("m")));
    })
    .await
    else {
        return;
    };
    create_route(&app, json!({"name": "house-model", "upstreams": [{"provider": "vllm", "model": "qwen", "base_url": local}]})).await;
    let (status, got) = app
        .post(
            "/api/v1/admin/provider-model-status",
            json!({"models": ["gpt-4o", "mistral/mistral-large", "house-model", "unknown-model"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let rows: Vec<(String, String, Value)> = got["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["model"].as_str().unwrap_or_default().to_owned(),
                m["status"].as_str().unwrap_or_default().to_owned(),
                m["provider"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("gpt-4o".to_owned(), "up".to_owned(), json!("openai")),
            (
                "mistral/mistral-large".to_owned(),
                "rate_limited".to_owned(),
                json!("mistral")
            ),
            ("house-model".to_owned(), "up".to_owned(), json!("vllm")),
            (
                "unknown-model".to_owned(),
                "not_found".to_owned(),
                Value::Null
            ),
        ]
    );
    let chats = openai_seen.chats.lock().expect("lock").clone();
    assert!(
        chats
            .iter()
            .any(|c| c["model"] == "gpt-4o" && c["max_tokens"] == 1),
        "{chats:?}"
    );

    let many: Vec<String> = (0..21).map(|i| format!("m{i}")).collect();
    let too_many = app
        .post(
            "/api/v1/admin/provider-model-status",
            json!({"models": many}),
        )
        .await;
    assert_error(&too_many, StatusCode::BAD_REQUEST, "validation_error");
    let none = app
        .post("/api/v1/admin/provider-model-status", json!({"models": []}))
        .await;
    assert_error(&none, StatusCode::BAD_REQUEST, "validation_error");
}

crate::both_backends_with!(
    providers_are_listed_and_org_keys_are_sealed,
    provider_models_merge_listings_and_serve_stale_while_refreshing,
    provider_health_probes_every_configured_provider,
    model_status_probes_each_model_where_it_would_go,
);
