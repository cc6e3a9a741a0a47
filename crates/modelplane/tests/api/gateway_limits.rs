//! Key limits on the gateway: allowed models, requests and tokens per
//! minute and spend budgets priced from the catalog, holding across two
//! replicas on one database; 429 with `Retry-After` when exceeded.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::gateway::{chat, create_route, hi, json_of, openai_upstream, usage_rows};
use crate::helpers::{assert_error, Backend, TestApp};

/// Creates a gateway key with `limits` (fields of `POST /api/v1/keys`) and
/// returns (its id, its token).
async fn limited_key(app: &TestApp, limits: Value) -> (String, String) {
    let mut body = json!({"name": "limited", "scopes": ["gateway"]});
    for (k, v) in limits.as_object().expect("limits object") {
        body[k] = v.clone();
    }
    let (status, key) = app.post("/api/v1/keys", body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        key["id"].as_str().expect("id").to_owned(),
        key["token"].as_str().expect("token").to_owned(),
    )
}

/// Per-minute limits count in UTC minutes: a test that needs one minute
/// waits out the end of the current one when it is near.
async fn clear_of_minute_boundary(seconds_needed: u32) {
    let now = chrono::Utc::now();
    let into = chrono::Timelike::second(&now);
    if into + seconds_needed >= 60 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - into))).await;
    }
}

async fn spawn_app(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.gateway.cache_ttl_secs = Some(0);
        c.gateway.limits_sync_ms = Some(50);
    })
    .await
}

async fn a_key_calls_only_its_allowed_models(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    for name in ["chat-a", "chat-b", "team-x"] {
        create_route(&app, json!({"name": name, "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    }
    let (_, token) = limited_key(&app, json!({"allowed_models": ["chat-a", "team-*"]})).await;

    let (status, _, _) = chat(&app, &token, hi("chat-a")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = chat(&app, &token, hi("team-x")).await;
    assert_eq!(status, StatusCode::OK, "a trailing * matches any suffix");
    let (status, _, body) = chat(&app, &token, hi("chat-b")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let err = json_of(&body);
    assert_eq!(err["error"]["code"], "model_not_allowed", "{err}");
    assert_eq!(err["error"]["type"], "permission_error");

    let resp = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let listed: Value = resp.json().await.expect("json");
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["chat-a", "team-x"],
        "the list shows what the key may call"
    );

    let rows = usage_rows(&app, 3).await;
    let refused = rows
        .iter()
        .find(|r| r["requested_model"] == "chat-b")
        .expect("the refusal is metered");
    assert_eq!(
        (refused["status"].clone(), refused["http_status"].clone()),
        (json!("invalid"), json!(403))
    );
}

async fn requests_per_minute_hold_across_replicas(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let replica = app.replica("second").await;
    let (base, seen) = openai_upstream().await;
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    let (_, token) = limited_key(&app, json!({"rpm_limit": 5})).await;
    clear_of_minute_boundary(20).await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let target = if i % 2 == 0 { &app } else { &replica };
        let (status, headers, body) = chat(target, &token, hi("chat")).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let err = json_of(&body);
            assert_eq!(err["error"]["code"], "rpm_limit_exceeded", "{err}");
            assert_eq!(err["error"]["type"], "rate_limit_error");
            let retry: u64 = headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 429],
        "the two replicas together admit exactly the limit"
    );
    assert_eq!(
        seen.hits.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "refused requests never reach the upstream"
    );
    let rows = usage_rows(&app, 8).await;
    assert_eq!(
        rows.iter()
            .filter(|r| r["status"] == "rate_limited")
            .count(),
        3
    );
}

async fn tokens_per_minute_are_shared_between_replicas(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let replica = app.replica("second").await;
    let (base, _) = openai_upstream().await;
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    // Each answer reports 8 tokens.
    let (_, token) = limited_key(&app, json!({"tpm_limit": 12})).await;
    clear_of_minute_boundary(20).await;

    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK, "0 of 12 used");
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK, "8 of 12 used");
    let (status, headers, body) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "16 of 12 used");
    assert_eq!(json_of(&body)["error"]["code"], "tpm_limit_exceeded");
    assert!(headers.contains_key("retry-after"));

    // The other replica learns of the 16 tokens through the shared counter.
    let mut refused = false;
    for _ in 0..50 {
        let (status, _, _) = chat(&replica, &token, hi("chat")).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the second replica refuses once it has synced");
}

async fn budgets_are_priced_from_the_catalog(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    let (status, entry) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
                "pricing": {"input": 1.0, "output": 2.0, "currency": "USD"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "openai", "model": "gpt-4o", "base_url": base, "api_key": "sk-x"}]})).await;
    // 5 prompt tokens at $1/1M and 3 completion tokens at $2/1M: $0.000011 a request.
    let (key_id, token) = limited_key(
        &app,
        json!({"budget_usd": 0.00002, "budget_period": "daily"}),
    )
    .await;

    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK, "$0.000011 of $0.00002 spent");
    let (status, headers, body) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "$0.000022 spent");
    let err = json_of(&body);
    assert_eq!(err["error"]["code"], "budget_exceeded", "{err}");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=86_400).contains(&retry),
        "until the UTC day ends: {retry}"
    );

    usage_rows(&app, 3).await;
    let mut db = app.database().await;
    let costs: Vec<Option<f64>> =
        sqlx::query("SELECT cost_usd FROM usage_records WHERE key_id = $1 ORDER BY id")
            .bind(key_id)
            .fetch_all(&mut db)
            .await
            .expect("rows")
            .iter()
            .map(|r| r.get::<Option<f64>, _>("cost_usd"))
            .collect();
    assert_eq!(costs.len(), 3);
    for c in &costs[..2] {
        let c = c.expect("priced");
        assert!((c - 0.000011).abs() < 1e-12, "{c}");
    }
    assert_eq!(costs[2], None, "a refused request costs nothing");

    // The usage API sums the same cost.
    let (status, agg) = app
        .get("/api/v1/admin/usage/aggregate?group_by=model")
        .await;
    assert_eq!(status, StatusCode::OK, "{agg}");
    let total = agg["totals"]["cost_usd"].as_f64().expect("cost");
    assert!((total - 0.000022).abs() < 1e-12, "{agg}");
}

async fn an_inventory_price_overrides_the_catalogs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    app.post(
        "/api/v1/catalog/models",
        json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
            "pricing": {"input": 1.0, "output": 2.0, "currency": "USD"}}}),
    )
    .await;
    app.create_model(
        json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_3",
        "sections": {"pricing": {"input": 10.0, "output": 20.0, "currency": "USD"}}}),
    )
    .await;
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "openai", "model": "gpt-4o", "base_url": base, "api_key": "sk-x"}]})).await;
    let token = app.key_with(&["gateway"], None).await;
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK);
    usage_rows(&app, 1).await;
    let mut db = app.database().await;
    let cost: Option<f64> = sqlx::query_scalar("SELECT cost_usd FROM usage_records")
        .fetch_one(&mut db)
        .await
        .expect("row");
    let cost = cost.expect("priced");
    assert!(
        (cost - 0.00011).abs() < 1e-12,
        "5 × $10/1M + 3 × $20/1M, the org's own price: {cost}"
    );
}

async fn limits_are_validated_edited_and_removed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (body, field) in [
        (json!({"rpm_limit": 0}), "rpm_limit"),
        (json!({"tpm_limit": 0}), "tpm_limit"),
        (json!({"budget_usd": -1.0}), "budget_usd"),
        (json!({"budget_period": "daily"}), "budget_period"),
        (json!({"allowed_models": ["a*b"]}), "allowed_models[0]"),
    ] {
        let mut key = json!({"name": "k", "scopes": ["gateway"]});
        for (k, v) in body.as_object().expect("object") {
            key[k] = v.clone();
        }
        let got = app.post("/api/v1/keys", key).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(got.1["error"]["details"]["field"], field, "{}", got.1);
    }
    let bad_period = app
        .post("/api/v1/keys", json!({"name": "k", "scopes": ["gateway"], "budget_usd": 1.0, "budget_period": "hourly"}))
        .await;
    assert_error(&bad_period, StatusCode::BAD_REQUEST, "validation_error");

    let (id, _) = limited_key(&app, json!({"rpm_limit": 60, "budget_usd": 5.0})).await;
    let (status, listed) = app.get("/api/v1/keys?q=limited").await;
    assert_eq!(status, StatusCode::OK);
    let key = &listed["keys"][0];
    assert_eq!(
        (
            key["rpm_limit"].clone(),
            key["budget_usd"].clone(),
            key["budget_period"].clone()
        ),
        (json!(60), json!(5.0), json!("monthly")),
        "the period defaults to monthly: {key}"
    );

    let (status, edited) = app
        .patch(
            &format!("/api/v1/keys/{id}"),
            json!({"rpm_limit": null, "tpm_limit": 1000, "allowed_models": ["chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert!(
        edited.get("rpm_limit").is_none(),
        "null removes a limit: {edited}"
    );
    assert_eq!(edited["tpm_limit"], 1000);
    assert_eq!(edited["budget_usd"], 5.0, "absent fields are kept");
    assert_eq!(edited["allowed_models"], json!(["chat"]));
    let (status, edited) = app
        .patch(&format!("/api/v1/keys/{id}"), json!({"budget_usd": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        edited.get("budget_period").is_none(),
        "the period goes with the budget: {edited}"
    );

    let (_, audit) = app
        .get("/api/v1/audit-events?entity_type=api_key&action=update")
        .await;
    assert_eq!(audit["total"], 2, "{audit}");
    let missing = app
        .patch(
            &format!("/api/v1/keys/{}", uuid::Uuid::now_v7()),
            json!({"rpm_limit": 1}),
        )
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "api_key_not_found");
    let unknown = app
        .patch(&format!("/api/v1/keys/{id}"), json!({"rpm": 1}))
        .await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "validation_error");
}

async fn an_edited_limit_applies_at_once_on_this_replica(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (base, _) = openai_upstream().await;
    create_route(&app, json!({"name": "chat", "upstreams": [{"provider": "vllm", "model": "m", "base_url": base}]})).await;
    let (id, token) = limited_key(&app, json!({})).await;
    clear_of_minute_boundary(15).await;
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .patch(&format!("/api/v1/keys/{id}"), json!({"rpm_limit": 1}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::OK, "the first request of the new limit");
    let (status, _, _) = chat(&app, &token, hi("chat")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

crate::both_backends_with!(
    a_key_calls_only_its_allowed_models,
    requests_per_minute_hold_across_replicas,
    tokens_per_minute_are_shared_between_replicas,
    budgets_are_priced_from_the_catalog,
    an_inventory_price_overrides_the_catalogs,
    limits_are_validated_edited_and_removed,
    an_edited_limit_applies_at_once_on_this_replica,
);
