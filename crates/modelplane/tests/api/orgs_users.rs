use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    superadmin_manages_orgs_and_lookup_lists_them,
    org_names_are_unique,
    another_orgs_data_is_not_found_never_forbidden,
    org_admin_may_set_its_own_risk_framework,
    deleting_an_org_removes_its_data_but_keeps_its_audit_trail,
    users_crud_with_roles_and_lookup,
);

async fn superadmin_manages_orgs_and_lookup_lists_them(app: TestApp) {
    let (status, org) = app
        .post(
            "/api/v1/orgs",
            json!({"name": "acme", "risk_framework": "eu_ai_act"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(org["risk_framework"], "eu_ai_act");
    let (_, list) = app.get("/api/v1/orgs").await;
    assert_eq!(list["total"], 2);
    let names: Vec<&str> = list["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .map(|o| o["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["acme", "default"]);
    let (_, lookup) = app.get("/api/v1/orgs/lookup?q=ACM").await;
    assert_eq!(lookup["items"], json!([{"id": org["id"], "name": "acme"}]));
    let id = org["id"].as_str().expect("id");
    let (status, renamed) = app
        .patch(&format!("/api/v1/orgs/{id}"), json!({"name": "acme-corp"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["name"], "acme-corp");
    assert_eq!(renamed["risk_framework"], "eu_ai_act");
}

async fn org_names_are_unique(app: TestApp) {
    assert_eq!(
        app.post("/api/v1/orgs", json!({"name": "dup"})).await.0,
        StatusCode::CREATED
    );
    assert_error(
        &app.post("/api/v1/orgs", json!({"name": "dup"})).await,
        StatusCode::CONFLICT,
        "org_already_exists",
    );
    assert_error(
        &app.post("/api/v1/orgs", json!({"name": "  "})).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
}

async fn another_orgs_data_is_not_found_never_forbidden(app: TestApp) {
    let (a_org, a_admin) = app.org_with_admin("org-a").await;
    let (_b_org, b_admin) = app.org_with_admin("org-b").await;
    let call = |token: String, method: Method, path: String, body: Option<serde_json::Value>| {
        let app = &app;
        async move { app.call(method, &path, Some(&token), body).await }
    };
    let (_, model) = call(
        a_admin.clone(),
        Method::POST,
        "/api/v1/models".into(),
        Some(json!({"model_id": "secret", "provider": "p", "risk_tier": "tier_1"})),
    )
    .await;
    let mid = model["id"].as_str().expect("id").to_owned();
    let (_, user) = call(
        a_admin.clone(),
        Method::POST,
        "/api/v1/users".into(),
        Some(json!({"email": "u@a.com", "name": "U", "role": "viewer"})),
    )
    .await;
    let uid = user["id"].as_str().expect("id").to_owned();
    let (_, keys) = call(a_admin.clone(), Method::GET, "/api/v1/keys".into(), None).await;
    let kid = keys["keys"][0]["id"].as_str().expect("id").to_owned();

    for (method, path, code) in [
        (
            Method::GET,
            format!("/api/v1/models/{mid}"),
            "model_not_found",
        ),
        (
            Method::PATCH,
            format!("/api/v1/models/{mid}"),
            "model_not_found",
        ),
        (
            Method::DELETE,
            format!("/api/v1/models/{mid}"),
            "model_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/models/{mid}/history"),
            "model_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/users/{uid}"),
            "user_not_found",
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{uid}"),
            "user_not_found",
        ),
        (
            Method::DELETE,
            format!("/api/v1/keys/{kid}"),
            "api_key_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/{a_org}"),
            "org_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/users?org_id={a_org}"),
            "org_not_found",
        ),
        (
            Method::GET,
            format!("/api/v1/keys?org_id={a_org}"),
            "org_not_found",
        ),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"owner": "x"}));
        let got = call(b_admin.clone(), method.clone(), path.clone(), body).await;
        assert_error(&got, StatusCode::NOT_FOUND, code);
    }
    let (_, b_models) = call(b_admin.clone(), Method::GET, "/api/v1/models".into(), None).await;
    assert_eq!(b_models["total"], 0);
    let (_, b_search) = call(
        b_admin.clone(),
        Method::GET,
        "/api/v1/models?search=secret".into(),
        None,
    )
    .await;
    assert_eq!(b_search["total"], 0, "search never crosses orgs");
    let (_, b_export) = call(
        b_admin.clone(),
        Method::GET,
        "/api/v1/model-inventory-export?format=json&search=secret".into(),
        None,
    )
    .await;
    assert_eq!(b_export["total"], 0);
    let (_, b_orgs) = call(b_admin.clone(), Method::GET, "/api/v1/orgs".into(), None).await;
    assert_eq!(b_orgs["total"], 1, "an org admin sees only its own org");
    let (_, audit) = call(
        b_admin.clone(),
        Method::GET,
        "/api/v1/audit-events".into(),
        None,
    )
    .await;
    assert!(!audit.to_string().contains(&mid));
    let got = call(
        b_admin.clone(),
        Method::POST,
        "/api/v1/keys".into(),
        Some(json!({"name": "x", "scopes": ["admin"], "org_id": a_org})),
    )
    .await;
    assert_error(&got, StatusCode::NOT_FOUND, "org_not_found");
    // Still intact for its owner.
    assert_eq!(
        call(a_admin, Method::GET, format!("/api/v1/models/{mid}"), None)
            .await
            .0,
        StatusCode::OK
    );
}

async fn org_admin_may_set_its_own_risk_framework(app: TestApp) {
    let (org, admin) = app.org_with_admin("fw").await;
    let got = app
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            Some(&admin),
            Some(json!({"risk_framework": "nist_ai_rmf"})),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["risk_framework"], "nist_ai_rmf");
    let got = app
        .call(
            Method::PATCH,
            &format!("/api/v1/orgs/{org}"),
            Some(&admin),
            Some(json!({"risk_framework": "astrology"})),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let got = app
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/{org}"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
}

async fn deleting_an_org_removes_its_data_but_keeps_its_audit_trail(app: TestApp) {
    let (org, admin) = app.org_with_admin("doomed").await;
    let (_, model) = app
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&admin),
            Some(json!({"model_id": "m", "provider": "p", "risk_tier": "tier_2"})),
        )
        .await;
    assert!(model["id"].is_string());
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/{org}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/models", Some(&admin), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get(&format!("/api/v1/orgs/{org}")).await,
        StatusCode::NOT_FOUND,
        "org_not_found",
    );
    // A superadmin of that org could not have done it to its own org.
    let (_, me) = app.get("/api/v1/orgs?q=default").await;
    let own = me["orgs"][0]["id"].as_str().expect("id");
    assert_error(
        &app.delete(&format!("/api/v1/orgs/{own}")).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // The deleted org's audit trail is still in the database.
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE org_id = $1")
        .bind(&org)
        .fetch_one(&mut app.database().await)
        .await
        .expect("count");
    assert!(
        count >= 3,
        "org create, key create, model create and org delete are kept: {count}"
    );
}

async fn users_crud_with_roles_and_lookup(app: TestApp) {
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "ann@example.com", "name": "Ann", "role": "editor"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = user["id"].as_str().expect("id");
    assert_error(
        &app.post(
            "/api/v1/users",
            json!({"email": "ANN@example.com", "name": "Ann 2", "role": "viewer"}),
        )
        .await,
        StatusCode::CONFLICT,
        "user_already_exists",
    );
    let got = app
        .post(
            "/api/v1/users",
            json!({"email": "not-an-email", "name": "X", "role": "viewer"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "email");
    let got = app
        .post(
            "/api/v1/users",
            json!({"email": "b@example.com", "name": "B", "role": "owner"}),
        )
        .await;
    assert_eq!(got.1["error"]["details"]["field"], "role");

    let (status, updated) = app
        .patch(
            &format!("/api/v1/users/{id}"),
            json!({"role": "admin", "name": "Ann A."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (updated["role"].as_str(), updated["name"].as_str()),
        (Some("admin"), Some("Ann A."))
    );
    let (_, list) = app.get("/api/v1/users?role=admin").await;
    assert_eq!(list["total"], 1);
    let reader = app.key_with(&["registry:read"], None).await;
    let (status, lookup) = app
        .call(
            Method::GET,
            "/api/v1/users/lookup?q=ann",
            Some(&reader),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lookup["items"], json!([{"id": id, "name": "Ann A."}]));

    let (_, key) = app
        .post(
            "/api/v1/keys",
            json!({"name": "ann", "scopes": ["registry:read"], "user_id": id}),
        )
        .await;
    let token = key["token"].as_str().expect("token");
    assert_eq!(
        app.delete(&format!("/api/v1/users/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &app.get(&format!("/api/v1/users/{id}")).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &app.call(Method::GET, "/api/v1/models", Some(token), None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (_, audit) = app
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={id}"
        ))
        .await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["delete", "update", "create"]);
}
