//! Org policies on the gateway: `PUT/GET /api/v1/policies`, the first
//! matching rule deciding every request, the model matched to the inventory
//! by route name, upstream model id or catalog alias, unregistered models as
//! tier_4, fallback past blocked upstreams, and 403 naming the rule.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::gateway::{chat, create_route, hi, json_of, openai_upstream, usage_rows};
use crate::helpers::{assert_error, Backend, TestApp};

/// The issue's example policy.
fn example() -> Value {
    json!({"rules": [
        {"name": "registered-only", "if": {"registered": false}, "then": "block"},
        {"name": "validated-high-risk", "if": {"risk_tier": ["tier_1", "tier_2"],
            "validation_status_not": ["validated"]}, "then": "block"},
        {"name": "no-retired", "if": {"lifecycle": ["deprecated", "sunset"]}, "then": "block"}
    ]})
}

async fn spawn_app(backend: Backend) -> Option<TestApp> {
    // No caching of route tables: inventory edits count on the next request.
    TestApp::spawn_with(backend, |c| c.gateway.cache_ttl_secs = Some(0)).await
}

/// The rule a refused request names, or None when it was served.
async fn outcome(app: &TestApp, token: &str, model: &str) -> Option<String> {
    let (status, _, body) = chat(app, token, hi(model)).await;
    if status == StatusCode::OK {
        return None;
    }
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let err = json_of(&body);
    assert_eq!(err["error"]["code"], "blocked_by_policy", "{err}");
    assert_eq!(err["error"]["type"], "permission_error");
    let msg = err["error"]["message"].as_str().expect("message");
    [
        "registered-only",
        "validated-high-risk",
        "no-retired",
        "local-only",
        "block-all",
    ]
    .into_iter()
    .find(|r| msg.contains(&format!("{r:?}")))
    .map(str::to_owned)
    .or(Some(msg.to_owned()))
}

async fn validate(app: &TestApp, id: &str) {
    for status in ["pending_validation", "in_validation", "validated"] {
        let (s, m) = app
            .patch(
                &format!("/api/v1/models/{id}"),
                json!({"validation_status": status}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{m}");
    }
}

async fn the_issues_policy_governs_every_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (status, empty) = app.get("/api/v1/policies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty,
        json!({"rules": [], "version": 0, "updated_at": null})
    );

    let (base, seen) = openai_upstream().await;
    create_route(&app, json!({"name": "chat-default", "upstreams": [{"provider": "openai", "model": "gpt-4o", "base_url": base, "api_key": "k"}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    assert_eq!(
        outcome(&app, &token, "chat-default").await,
        None,
        "no policy allows"
    );

    let (status, put) = app.put("/api/v1/policies", example()).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["version"], 1);
    let (_, got) = app.get("/api/v1/policies").await;
    assert_eq!(
        got["rules"],
        example()["rules"],
        "GET returns the rules as written"
    );

    assert_eq!(
        outcome(&app, &token, "chat-default").await.as_deref(),
        Some("registered-only")
    );

    // Registered by its upstream model id, as a high-risk model not yet validated.
    let model = app
        .create_model(json!({"model_id": "GPT-4o", "provider": "openai", "risk_tier": "tier_1"}))
        .await;
    let id = model["id"].as_str().expect("id");
    assert_eq!(
        outcome(&app, &token, "chat-default").await.as_deref(),
        Some("validated-high-risk")
    );
    validate(&app, id).await;
    let hits = seen.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        outcome(&app, &token, "chat-default").await,
        None,
        "validated: allowed"
    );
    assert_eq!(
        seen.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits + 1
    );

    // The catalog retires the model.
    let (s, c) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "openai", "model_id": "gpt-4o",
            "facts": {"lifecycle": "deprecated", "deprecation_date": "2026-01-01"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    // Catalog identifications are cached for a minute per replica; a fresh
    // replica sees the new entry at once.
    let fresh = app.replica("fresh").await;
    assert_eq!(
        outcome(&fresh, &token, "chat-default").await.as_deref(),
        Some("no-retired")
    );

    // Both replicas write to the one database.
    let rows = usage_rows(&app, 5).await;
    let blocked: Vec<&Value> = rows.iter().filter(|r| r["status"] == "blocked").collect();
    assert_eq!(blocked.len(), 3, "{rows:?}");
    assert!(blocked.iter().all(|r| r["http_status"] == 403));
    assert!(blocked[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("registered-only")));

    let (_, audit) = app.get("/api/v1/audit-events?entity_type=policy").await;
    assert_eq!(audit["total"], 1, "{audit}");
}

async fn the_route_name_and_catalog_aliases_match_the_inventory(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    let (s, _) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "anthropic", "model_id": "claude-sonnet-4-5",
            "aliases": [{"alias": "claude-sonnet-latest", "source": "official"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    create_route(&app, json!({"name": "support-bot", "upstreams": [{"provider": "openai-compatible", "model": "x", "base_url": base}]})).await;
    create_route(&app, json!({"name": "writer", "upstreams": [{"provider": "openai", "model": "claude-sonnet-latest", "base_url": base, "api_key": "k"}]})).await;
    app.put("/api/v1/policies", example()).await;
    let token = app.key_with(&["gateway"], None).await;

    assert_eq!(
        outcome(&app, &token, "support-bot").await.as_deref(),
        Some("registered-only")
    );
    // The inventory names the route itself.
    app.create_model(
        json!({"model_id": "support-bot", "provider": "internal", "risk_tier": "tier_3"}),
    )
    .await;
    assert_eq!(
        outcome(&app, &token, "support-bot").await,
        None,
        "tier_3 drafts pass this policy"
    );

    // `claude-sonnet-latest` is an alias of the catalog model the inventory entry links to.
    assert_eq!(
        outcome(&app, &token, "writer").await.as_deref(),
        Some("registered-only")
    );
    let linked = app
        .create_model(json!({"model_id": "claude-sonnet-4-5", "provider": "anthropic", "risk_tier": "tier_2"}))
        .await;
    assert!(
        linked["catalog_id"].is_string(),
        "linked to the catalog: {linked}"
    );
    assert_eq!(
        outcome(&app, &token, "writer").await.as_deref(),
        Some("validated-high-risk")
    );
}

async fn blocked_upstreams_are_skipped_for_allowed_ones(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (primary, primary_seen) = openai_upstream().await;
    let (fallback, fallback_seen) = openai_upstream().await;
    create_route(&app, json!({"name": "chat", "upstreams": [
        {"provider": "openai", "model": "risky-model", "base_url": primary, "api_key": "k", "priority": 0},
        {"provider": "openai", "model": "safe-model", "base_url": fallback, "api_key": "k", "priority": 1}
    ]})).await;
    app.create_model(
        json!({"model_id": "risky-model", "provider": "openai", "risk_tier": "tier_1"}),
    )
    .await;
    let safe = app
        .create_model(
            json!({"model_id": "safe-model", "provider": "openai", "risk_tier": "tier_1"}),
        )
        .await;
    validate(&app, safe["id"].as_str().expect("id")).await;
    app.put("/api/v1/policies", example()).await;
    let token = app.key_with(&["gateway"], None).await;

    let (status, _, body) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json_of(&body)["choices"][0]["message"]["content"],
        "served by safe-model"
    );
    assert_eq!(
        primary_seen.hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the blocked upstream is never asked"
    );
    assert_eq!(
        fallback_seen.hits.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

async fn allow_rules_are_exceptions_and_order_decides(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    create_route(&app, json!({"name": "local", "upstreams": [{"provider": "vllm", "model": "qwen", "base_url": base}]})).await;
    create_route(&app, json!({"name": "cloud", "upstreams": [{"provider": "openai", "model": "gpt-4o", "base_url": base, "api_key": "k"}]})).await;
    let (s, p) = app
        .put(
            "/api/v1/policies",
            json!({"rules": [
                {"name": "local-only", "if": {"provider": ["vllm", "llamacpp"]}, "then": "allow"},
                {"name": "block-all", "then": "block"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let token = app.key_with(&["gateway"], None).await;
    assert_eq!(outcome(&app, &token, "local").await, None);
    assert_eq!(
        outcome(&app, &token, "cloud").await.as_deref(),
        Some("block-all")
    );

    // An empty policy allows everything again.
    let (s, cleared) = app
        .put(
            "/api/v1/policies",
            json!({"rules": [], "expected_version": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["version"], 2);
    assert_eq!(outcome(&app, &token, "cloud").await, None);
}

async fn bad_policies_are_refused_and_nothing_changes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.put("/api/v1/policies", example()).await;
    let cases = [
        (
            json!({"rules": [{"name": "a", "if": {"risk_tier": []}, "then": "block"}]}),
            "rules[0].if.risk_tier",
        ),
        (
            json!({"rules": [{"name": "a", "then": "block"}, {"name": "a", "then": "allow"}]}),
            "rules[1].name",
        ),
        (
            json!({"rules": [{"name": "a", "if": {"tier": ["tier_1"]}, "then": "block"}]}),
            "rules[0].if",
        ),
        (
            json!({"rules": [{"name": "a", "if": {"risk_tier": ["tier_9"]}, "then": "block"}]}),
            "rules[0].if.risk_tier[0]",
        ),
        (
            json!({"rules": [{"name": "a", "then": "deny"}]}),
            "rules[0].then",
        ),
    ];
    for (body, field) in cases {
        let got = app.put("/api/v1/policies", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        let named = got.1["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(named.starts_with(field), "{body}: {named} / {}", got.1);
    }
    let stale = app
        .put(
            "/api/v1/policies",
            json!({"rules": [], "expected_version": 7}),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "version_conflict");
    let (_, got) = app.get("/api/v1/policies").await;
    assert_eq!(
        (got["version"].clone(), got["rules"].clone()),
        (json!(1), example()["rules"].clone())
    );

    // Reading takes registry:read; writing takes admin.
    let reader = app.key_with(&["registry:read"], None).await;
    let (status, _) = app
        .call(
            axum::http::Method::GET,
            "/api/v1/policies",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = app
        .call(
            axum::http::Method::PUT,
            "/api/v1/policies",
            Some(&reader),
            Some(json!({"rules": []})),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");

    // Another org has its own (empty) policy.
    let (_, other) = app.org_with_admin("other").await;
    let (_, theirs) = app
        .call(
            axum::http::Method::GET,
            "/api/v1/policies",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(theirs["version"], 0);
}

crate::both_backends_with!(
    the_issues_policy_governs_every_request,
    the_route_name_and_catalog_aliases_match_the_inventory,
    blocked_upstreams_are_skipped_for_allowed_ones,
    allow_rules_are_exceptions_and_order_decides,
    bad_policies_are_refused_and_nothing_changes,
);
