use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    missing_or_unknown_keys_are_unauthorized,
    keys_work_as_bearer_and_as_x_api_key,
    created_token_is_shown_once_and_stored_only_as_a_hash,
    revoked_keys_stop_working_at_once,
    scopes_gate_each_route,
    keys_cannot_grant_more_than_their_creator_holds,
    a_users_role_caps_the_scopes_of_their_keys,
    key_list_filters_sorts_and_records_last_use,
    expiry_must_be_in_the_future_and_is_listed,
);

async fn missing_or_unknown_keys_are_unauthorized(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/api/v1/models", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": {"code": "unauthorized", "message": "missing API key: send Authorization: Bearer <token> or X-Api-Key"}})
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/models",
            Some("mp_not_a_real_token"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": {"code": "unauthorized", "message": "missing or invalid API key"}})
    );
    let resp = app
        .client
        .get(app.url("/api/v1/models"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

async fn keys_work_as_bearer_and_as_x_api_key(app: TestApp) {
    let resp = app
        .client
        .get(app.url("/api/v1/models"))
        .header("x-api-key", &app.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .client
        .get(app.url("/api/v1/models"))
        .header("authorization", format!("bearer {}", app.token))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
}

async fn created_token_is_shown_once_and_stored_only_as_a_hash(app: TestApp) {
    let (status, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "ci", "scopes": ["registry:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let token = key["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("mp_"));
    assert_eq!(key["prefix"], token[..11]);
    assert_eq!(key["scopes"], json!(["registry:read"]));

    let (_, list) = app.get("/api/v1/keys?q=ci").await;
    assert_eq!(list["total"], 1);
    assert!(
        list["keys"][0].get("token").is_none(),
        "tokens are never listed"
    );
    assert!(!list.to_string().contains(&token));

    // The database holds a hash, never the token.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_keys")
        .fetch_all(&mut app.database().await)
        .await
        .expect("query");
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .all(|h| h.len() == 64 && *h != token && !h.contains(&token[3..])));

    let (status, _) = app
        .call(Method::GET, "/api/v1/models", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn revoked_keys_stop_working_at_once(app: TestApp) {
    let (_, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "temp", "scopes": ["registry:read"]}),
        )
        .await;
    let token = key["token"].as_str().expect("token");
    let id = key["id"].as_str().expect("id");
    assert_eq!(
        app.call(Method::GET, "/api/v1/models", Some(token), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.delete(&format!("/api/v1/keys/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/models", Some(token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.delete(&format!("/api/v1/keys/{id}")).await,
        StatusCode::NOT_FOUND,
        "api_key_not_found",
    );
    let (_, listed) = app.get("/api/v1/keys?include_revoked=true&q=temp").await;
    assert!(listed["keys"][0]["revoked_at"].is_string());
    let (_, listed) = app.get("/api/v1/keys?q=temp").await;
    assert_eq!(listed["total"], 0, "revoked keys are hidden by default");
}

async fn scopes_gate_each_route(app: TestApp) {
    let reader = app.key_with(&["registry:read"], None).await;
    let writer = app.key_with(&["registry:write"], None).await;
    let gateway = app.key_with(&["gateway"], None).await;
    let body = json!({"model_id": "m", "provider": "p", "risk_tier": "tier_4"});

    assert_eq!(
        app.call(Method::GET, "/api/v1/models", Some(&reader), None)
            .await
            .0,
        StatusCode::OK
    );
    let refused = app
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&reader),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        refused,
        (
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "forbidden", "message": "this key lacks the registry:write scope"}})
        )
    );
    assert_eq!(
        app.call(Method::POST, "/api/v1/models", Some(&writer), Some(body))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/models", Some(&gateway), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/keys", Some(&writer), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/users", Some(&reader), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::POST,
            "/api/v1/orgs",
            Some(&writer),
            Some(json!({"name": "x"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn keys_cannot_grant_more_than_their_creator_holds(app: TestApp) {
    let admin = app.key_with(&["admin"], None).await;
    let body = json!({"name": "escalate", "scopes": ["superadmin"]});
    assert_error(
        &app.call(Method::POST, "/api/v1/keys", Some(&admin), Some(body))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let body = json!({"name": "scrape", "scopes": ["metrics:read"]});
    assert_error(
        &app.call(Method::POST, "/api/v1/keys", Some(&admin), Some(body))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let body = json!({"name": "fine", "scopes": ["registry:write", "gateway"]});
    assert_eq!(
        app.call(Method::POST, "/api/v1/keys", Some(&admin), Some(body))
            .await
            .0,
        StatusCode::CREATED
    );
    let body = json!({"name": "none", "scopes": []});
    assert_error(
        &app.call(Method::POST, "/api/v1/keys", Some(&admin), Some(body))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
    let body = json!({"name": "bad", "scopes": ["root"]});
    let got = app
        .call(Method::POST, "/api/v1/keys", Some(&admin), Some(body))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "scopes[0]");
}

async fn a_users_role_caps_the_scopes_of_their_keys(app: TestApp) {
    let (status, viewer) = app
        .post(
            "/api/v1/users",
            json!({"email": "Viewer@Example.com", "name": "Vi", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{viewer}");
    assert_eq!(viewer["email"], "viewer@example.com");
    let uid = viewer["id"].as_str().expect("id");
    let got = app
        .post(
            "/api/v1/keys",
            json!({"name": "v", "scopes": ["registry:write"], "user_id": uid}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "scopes");
    let (status, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "v", "scopes": ["registry:read"], "user_id": uid}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(key["user_id"], uid);

    // The actor of a change made with a user's key names the user.
    let editor_user = app
        .post(
            "/api/v1/users",
            json!({"email": "ed@example.com", "name": "Ed", "role": "editor"}),
        )
        .await
        .1;
    let ed_id = editor_user["id"].as_str().expect("id");
    let (_, ed_key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "ed", "scopes": ["registry:write"], "user_id": ed_id}),
        )
        .await;
    let token = ed_key["token"].as_str().expect("token");
    let (status, model) = app
        .call(
            Method::POST,
            "/api/v1/models",
            Some(token),
            Some(json!({"model_id": "m", "provider": "p", "risk_tier": "tier_1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, history) = app
        .get(&format!(
            "/api/v1/models/{}/history",
            model["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        history["events"][0]["actor"],
        json!({"key_id": ed_key["id"], "user_id": ed_id})
    );
}

async fn key_list_filters_sorts_and_records_last_use(app: TestApp) {
    let (_, u) = app
        .post(
            "/api/v1/users",
            json!({"email": "a@example.com", "name": "A", "role": "admin"}),
        )
        .await;
    let uid = u["id"].as_str().expect("id");
    for name in ["beta", "alpha", "gamma"] {
        app.post(
            "/api/v1/keys",
            json!({"name": name, "scopes": ["registry:read"], "user_id": uid}),
        )
        .await;
    }
    let (_, by_user) = app
        .get(&format!("/api/v1/keys?user_id={uid}&sort=name"))
        .await;
    assert_eq!(by_user["total"], 3);
    let names: Vec<&str> = by_user["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let (_, desc) = app
        .get(&format!("/api/v1/keys?user_id={uid}&sort=-name&limit=1"))
        .await;
    assert_eq!(desc["keys"][0]["name"], "gamma");
    assert_eq!(desc["limit"], 1);
    assert_error(
        &app.get("/api/v1/keys?sort=bogus").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );

    let (_, listed) = app.get("/api/v1/keys?q=bootstrap").await;
    assert!(
        listed["keys"][0]["last_used_at"].is_string(),
        "the bootstrap key has been used: {listed}"
    );
    let (_, listed) = app.get("/api/v1/keys?q=alpha").await;
    assert!(listed["keys"][0]["last_used_at"].is_null());
}

async fn expiry_must_be_in_the_future_and_is_listed(app: TestApp) {
    let past = "2001-01-01T00:00:00Z";
    let got = app
        .post(
            "/api/v1/keys",
            json!({"name": "old", "scopes": ["gateway"], "expires_at": past}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "expires_at");
    let future = "2999-01-01T00:00:00Z";
    let (status, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "new", "scopes": ["registry:read"], "expires_at": future}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(key["expires_at"], future);
    let token = key["token"].as_str().expect("token");
    assert_eq!(
        app.call(Method::GET, "/api/v1/models", Some(token), None)
            .await
            .0,
        StatusCode::OK
    );
}
