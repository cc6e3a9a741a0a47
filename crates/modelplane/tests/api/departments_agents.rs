//! Departments, agents, and the departments users belong to.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    departments_crud_lookup_and_unique_names,
    departments_are_org_scoped_and_written_by_admins,
    a_department_in_use_cannot_be_deleted,
    agents_crud_keeps_model_order_and_lookup,
    agent_model_ids_must_be_models_of_the_org,
    stale_agent_versions_are_refused,
    agents_are_org_scoped_and_written_with_registry_write,
    store_reports_the_agents_of_models,
    users_carry_their_department_ids,
);

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Calls as `token`.
async fn call_as(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(method, path, Some(token), body).await
}

async fn department(app: &TestApp, name: &str) -> String {
    let (status, d) = app.post("/api/v1/departments", json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    id_of(&d)
}

async fn model(app: &TestApp, model_id: &str) -> String {
    id_of(
        &app.create_model(json!({"model_id": model_id, "provider": "p", "risk_tier": "tier_3"}))
            .await,
    )
}

/// The actions of an entity's audit events, newest first.
async fn audit_actions(app: &TestApp, entity_type: &str, id: &str) -> Vec<String> {
    let (status, audit) = app
        .get(&format!(
            "/api/v1/audit-events?entity_type={entity_type}&entity_id={id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

async fn departments_crud_lookup_and_unique_names(app: TestApp) {
    let (status, sales) = app
        .post(
            "/api/v1/departments",
            json!({"name": " Sales ", "description": "Field sales"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sales}");
    assert_eq!(sales["name"], "Sales");
    assert_eq!(sales["description"], "Field sales");
    let sales_id = id_of(&sales);
    let risk_id = department(&app, "Risk").await;

    let got = app
        .post("/api/v1/departments", json!({"name": "Sales"}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "department_already_exists");
    let got = app.post("/api/v1/departments", json!({"name": "  "})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "name");

    let (status, list) = app.get("/api/v1/departments?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&list["total"], &list["limit"], &list["offset"]),
        (&json!(2), &json!(1), &json!(0))
    );
    assert_eq!(list["departments"][0]["name"], "Risk", "ordered by name");
    let (_, found) = app.get("/api/v1/departments?q=ALE").await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["departments"][0], sales);
    let (_, lookup) = app.get("/api/v1/departments/lookup?q=ris").await;
    assert_eq!(
        lookup,
        json!({"total": 1, "limit": 50, "offset": 0, "items": [{"id": risk_id, "name": "Risk"}]})
    );

    let path = format!("/api/v1/departments/{sales_id}");
    assert_eq!(app.get(&path).await, (StatusCode::OK, sales.clone()));
    let got = app.patch(&path, json!({"name": "Risk"})).await;
    assert_error(&got, StatusCode::CONFLICT, "department_already_exists");
    let (status, renamed) = app
        .patch(&path, json!({"name": "Sales EMEA", "description": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(
        (&renamed["name"], &renamed["description"]),
        (&json!("Sales EMEA"), &Value::Null)
    );
    assert_eq!(app.get(&path).await.1, renamed);
    let got = app.patch(&path, json!({"colour": "red"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");

    assert_eq!(app.delete(&path).await.0, StatusCode::NO_CONTENT);
    assert_error(
        &app.get(&path).await,
        StatusCode::NOT_FOUND,
        "department_not_found",
    );
    assert_error(
        &app.delete(&path).await,
        StatusCode::NOT_FOUND,
        "department_not_found",
    );
    assert_eq!(
        audit_actions(&app, "department", &sales_id).await,
        ["delete", "update", "create"]
    );
    // The name is free again.
    department(&app, "Sales").await;
}

async fn departments_are_org_scoped_and_written_by_admins(app: TestApp) {
    let theirs = department(&app, "Theirs").await;
    let (_, admin) = app.org_with_admin("other").await;
    let path = format!("/api/v1/departments/{theirs}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Mine"}))),
        (Method::DELETE, None),
    ] {
        let got = call_as(&app, &admin, method, &path, body).await;
        assert_error(&got, StatusCode::NOT_FOUND, "department_not_found");
    }
    let (_, list) = call_as(&app, &admin, Method::GET, "/api/v1/departments", None).await;
    assert_eq!(list["total"], 0, "another org's departments are not listed");
    // Each org has its own namespace of names.
    let (status, _) = call_as(
        &app,
        &admin,
        Method::POST,
        "/api/v1/departments",
        Some(json!({"name": "Theirs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let reader = app.key_with(&["registry:read"], None).await;
    let writer = app.key_with(&["registry:write"], None).await;
    let gateway = app.key_with(&["gateway"], None).await;
    for token in [&reader, &writer] {
        assert_eq!(
            call_as(&app, token, Method::GET, &path, None).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call_as(&app, token, Method::GET, "/api/v1/departments/lookup", None)
                .await
                .1["total"],
            1
        );
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v1/departments",
                Some(json!({"name": "Nope"})),
            ),
            (Method::PATCH, path.as_str(), Some(json!({"name": "Nope"}))),
            (Method::DELETE, path.as_str(), None),
        ] {
            let got = call_as(&app, token, method, path, body).await;
            assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    let got = call_as(&app, &gateway, Method::GET, "/api/v1/departments", None).await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.get(&path).await.1["name"], "Theirs", "untouched");
}

async fn a_department_in_use_cannot_be_deleted(app: TestApp) {
    let dept = department(&app, "Ops").await;
    let path = format!("/api/v1/departments/{dept}");
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "o@example.com", "name": "O", "role": "viewer", "department_ids": [dept]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let got = app.delete(&path).await;
    assert_error(&got, StatusCode::CONFLICT, "department_in_use");
    assert_eq!(
        got.1["error"]["details"],
        json!({"department_id": dept, "models": 0, "users": 1})
    );

    // Models join departments through `model_departments`; written here
    // directly, as the model edit path that fills it is not this test's.
    let model_pk = model(&app, "filed").await;
    let (_, me) = app.get("/api/v1/orgs?q=default").await;
    let org = me["orgs"][0]["id"].as_str().expect("org id").to_owned();
    sqlx::query(
        "INSERT INTO model_departments (model_pk, department_id, org_id) VALUES ($1, $2, $3)",
    )
    .bind(&model_pk)
    .bind(&dept)
    .bind(&org)
    .execute(&mut app.database().await)
    .await
    .expect("file the model");
    let got = app.delete(&path).await;
    assert_error(&got, StatusCode::CONFLICT, "department_in_use");
    assert_eq!(got.1["error"]["details"]["models"], 1);
    assert_eq!(got.1["error"]["details"]["users"], 1);

    let (status, moved) = app
        .patch(
            &format!("/api/v1/users/{}", id_of(&user)),
            json!({"department_ids": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(
        app.delete(&format!("/api/v1/models/{model_pk}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(audit_actions(&app, "department", &dept).await[0], "delete");

    // Deleting a whole org takes its departments and memberships with it.
    let (org, admin) = app.org_with_admin("closing").await;
    let (_, d) = call_as(
        &app,
        &admin,
        Method::POST,
        "/api/v1/departments",
        Some(json!({"name": "All"})),
    )
    .await;
    let (status, _) = call_as(
        &app,
        &admin,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "c@example.com", "name": "C", "role": "viewer", "department_ids": [d["id"]]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/{org}")).await.0,
        StatusCode::NO_CONTENT
    );
}

async fn agents_crud_keeps_model_order_and_lookup(app: TestApp) {
    let m1 = model(&app, "m1").await;
    let m2 = model(&app, "m2").await;
    let (status, agent) = app
        .post(
            "/api/v1/agents",
            json!({"name": "Helpdesk", "description": "Answers tickets", "model_ids": [m2, m1]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let id = id_of(&agent);
    assert_eq!(
        (
            &agent["active"],
            &agent["version"],
            &agent["model_ids"],
            &agent["description"]
        ),
        (
            &json!(true),
            &json!(1),
            &json!([m2, m1]),
            &json!("Answers tickets")
        )
    );
    let path = format!("/api/v1/agents/{id}");
    assert_eq!(app.get(&path).await, (StatusCode::OK, agent.clone()));

    let (status, idle) = app
        .post(
            "/api/v1/agents",
            json!({"name": "Archiver", "active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{idle}");
    assert_eq!(idle["model_ids"], json!([]));
    let got = app
        .post("/api/v1/agents", json!({"name": "Helpdesk"}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "agent_already_exists");

    let (_, list) = app.get("/api/v1/agents").await;
    assert_eq!(
        (&list["total"], &list["limit"], &list["offset"]),
        (&json!(2), &json!(50), &json!(0))
    );
    assert_eq!(list["agents"], json!([idle, agent]), "by name, with models");
    let (_, active) = app.get("/api/v1/agents?active=true").await;
    assert_eq!(active["agents"], json!([agent]));
    let (_, lookup) = app.get("/api/v1/agents/lookup?q=HELP").await;
    assert_eq!(lookup["items"], json!([{"id": id, "name": "Helpdesk"}]));

    let (status, edited) = app
        .patch(
            &path,
            json!({"model_ids": [m1], "active": false, "description": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (
            &edited["model_ids"],
            &edited["active"],
            &edited["version"],
            &edited["description"]
        ),
        (&json!([m1]), &json!(false), &json!(2), &Value::Null)
    );
    let (status, same) = app.patch(&path, json!({"model_ids": [m1]})).await;
    assert_eq!(
        (status, &same["version"]),
        (StatusCode::OK, &json!(2)),
        "no change, no new version"
    );
    let got = app.patch(&path, json!({"name": "Archiver"})).await;
    assert_error(&got, StatusCode::CONFLICT, "agent_already_exists");

    assert_eq!(app.delete(&path).await.0, StatusCode::NO_CONTENT);
    assert_error(
        &app.get(&path).await,
        StatusCode::NOT_FOUND,
        "agent_not_found",
    );
    assert_eq!(
        audit_actions(&app, "agent", &id).await,
        ["delete", "update", "create"]
    );
    // Deleting the agent leaves its models alone.
    assert_eq!(
        app.get(&format!("/api/v1/models/{m2}")).await.0,
        StatusCode::OK
    );
}

async fn agent_model_ids_must_be_models_of_the_org(app: TestApp) {
    let mine = model(&app, "mine").await;
    let (_, admin) = app.org_with_admin("elsewhere").await;
    let (_, foreign) = call_as(
        &app,
        &admin,
        Method::POST,
        "/api/v1/models",
        Some(json!({"model_id": "theirs", "provider": "p", "risk_tier": "tier_1"})),
    )
    .await;
    let foreign = id_of(&foreign);
    let unknown = Uuid::now_v7().to_string();

    let got = app
        .post(
            "/api/v1/agents",
            json!({"name": "a", "model_ids": [mine, unknown, foreign]}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "model_ids");
    let message = got.1["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&unknown) && message.contains(&foreign) && !message.contains(&mine),
        "names exactly the unknown ids: {message}"
    );
    let got = app
        .post(
            "/api/v1/agents",
            json!({"name": "a", "model_ids": [mine, mine]}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "model_ids");
    let got = app
        .post(
            "/api/v1/agents",
            json!({"name": "a", "model_ids": ["nope"]}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    let (_, list) = app.get("/api/v1/agents").await;
    assert_eq!(list["total"], 0, "nothing was written");

    let (status, agent) = app
        .post("/api/v1/agents", json!({"name": "a", "model_ids": [mine]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let path = format!("/api/v1/agents/{}", id_of(&agent));
    let got = app
        .patch(&path, json!({"model_ids": [mine, foreign]}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "model_ids");
    assert_eq!(app.get(&path).await.1, agent, "unchanged");
}

async fn stale_agent_versions_are_refused(app: TestApp) {
    let (_, agent) = app.post("/api/v1/agents", json!({"name": "v"})).await;
    let path = format!("/api/v1/agents/{}", id_of(&agent));
    let (status, v2) = app
        .patch(&path, json!({"description": "one", "expected_version": 1}))
        .await;
    assert_eq!((status, &v2["version"]), (StatusCode::OK, &json!(2)));
    let got = app
        .patch(&path, json!({"description": "two", "expected_version": 1}))
        .await;
    assert_error(&got, StatusCode::CONFLICT, "version_conflict");
    assert_eq!(
        got.1["error"]["details"],
        json!({"expected_version": 1, "current_version": 2})
    );
    assert_eq!(app.get(&path).await.1["description"], "one");
    let (status, v3) = app
        .patch(&path, json!({"description": "two", "expected_version": 2}))
        .await;
    assert_eq!((status, &v3["version"]), (StatusCode::OK, &json!(3)));
    let got = app.patch(&path, json!({"expected_version": "x"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
}

async fn agents_are_org_scoped_and_written_with_registry_write(app: TestApp) {
    let (_, agent) = app.post("/api/v1/agents", json!({"name": "ours"})).await;
    let path = format!("/api/v1/agents/{}", id_of(&agent));
    let (_, admin) = app.org_with_admin("nosy").await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "x"}))),
        (Method::DELETE, None),
    ] {
        let got = call_as(&app, &admin, method, &path, body).await;
        assert_error(&got, StatusCode::NOT_FOUND, "agent_not_found");
    }
    let (_, list) = call_as(&app, &admin, Method::GET, "/api/v1/agents/lookup", None).await;
    assert_eq!(list["total"], 0);

    let reader = app.key_with(&["registry:read"], None).await;
    assert_eq!(
        call_as(&app, &reader, Method::GET, &path, None).await.0,
        StatusCode::OK
    );
    for (method, path, body) in [
        (Method::POST, "/api/v1/agents", Some(json!({"name": "r"}))),
        (Method::PATCH, path.as_str(), Some(json!({"name": "r"}))),
        (Method::DELETE, path.as_str(), None),
    ] {
        let got = call_as(&app, &reader, method, path, body).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    }
    let writer = app.key_with(&["registry:write"], None).await;
    let (status, made) = call_as(
        &app,
        &writer,
        Method::POST,
        "/api/v1/agents",
        Some(json!({"name": "w"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    // Registry readers may follow an agent's history.
    let (status, audit) = call_as(
        &app,
        &reader,
        Method::GET,
        &format!(
            "/api/v1/audit-events?entity_type=agent&entity_id={}",
            id_of(&made)
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(audit["total"], 1);
}

async fn store_reports_the_agents_of_models(app: TestApp) {
    let m1 = model(&app, "m1").await;
    let m2 = model(&app, "m2").await;
    let unused = model(&app, "unused").await;
    let mut agents = Vec::new();
    for (name, active, models) in [
        ("Zed", true, json!([m1, m2])),
        ("Alpha", true, json!([m1])),
        ("Dormant", false, json!([m1])),
    ] {
        let (status, a) = app
            .post(
                "/api/v1/agents",
                json!({"name": name, "active": active, "model_ids": models}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        agents.push(Uuid::parse_str(&id_of(&a)).expect("uuid"));
    }
    let (zed, alpha, dormant) = (agents[0], agents[1], agents[2]);
    let (_, me) = app.get("/api/v1/orgs?q=default").await;
    let org = Uuid::parse_str(me["orgs"][0]["id"].as_str().expect("id")).expect("uuid");
    let uuid = |s: &str| Uuid::parse_str(s).expect("uuid");

    let store = modelplane_store::Store::connect(&app.database_url)
        .await
        .expect("store");
    let using = store
        .active_agents_using(org, uuid(&m1))
        .await
        .expect("active agents");
    assert_eq!(
        using,
        vec![(alpha, "Alpha".to_owned()), (zed, "Zed".to_owned())],
        "active ones only, by name"
    );
    assert_eq!(
        store
            .active_agents_using(org, uuid(&unused))
            .await
            .expect("none"),
        vec![]
    );
    assert_eq!(
        store
            .active_agents_using(Uuid::now_v7(), uuid(&m1))
            .await
            .expect("other org"),
        vec![],
        "another org learns nothing"
    );
    let of = store
        .agents_of_models(org, &[uuid(&m1), uuid(&m2), uuid(&unused)])
        .await
        .expect("agents of models");
    assert_eq!(of.len(), 2, "{of:?}");
    assert_eq!(
        of[&uuid(&m1)],
        vec![zed, alpha, dormant],
        "oldest agent first"
    );
    assert_eq!(of[&uuid(&m2)], vec![zed]);
    assert!(store
        .agents_of_models(Uuid::now_v7(), &[uuid(&m1)])
        .await
        .expect("other org")
        .is_empty());
    store.close().await;
}

async fn users_carry_their_department_ids(app: TestApp) {
    let d1 = department(&app, "One").await;
    let d2 = department(&app, "Two").await;
    let (status, user) = app
        .post(
            "/api/v1/users",
            json!({"email": "d@example.com", "name": "D", "role": "editor", "department_ids": [d2, d1]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["department_ids"], json!([d2, d1]));
    let id = id_of(&user);
    let path = format!("/api/v1/users/{id}");
    assert_eq!(app.get(&path).await.1, user);
    let (_, list) = app.get("/api/v1/users?q=d%40example").await;
    assert_eq!(list["users"], json!([user]));

    let (status, plain) = app
        .post(
            "/api/v1/users",
            json!({"email": "p@example.com", "name": "P", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{plain}");
    assert_eq!(plain["department_ids"], json!([]));

    let (status, moved) = app.patch(&path, json!({"department_ids": [d1]})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["department_ids"], json!([d1]));
    assert_eq!(app.get(&path).await.1["department_ids"], json!([d1]));
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT department_id FROM user_departments WHERE user_id = $1")
            .bind(&id)
            .fetch_all(&mut app.database().await)
            .await
            .expect("membership rows");
    assert_eq!(rows, vec![d1.clone()], "the rows mirror the list");
    let (status, renamed) = app.patch(&path, json!({"name": "Dee"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["department_ids"], json!([d1]), "left alone");

    let (_, admin) = app.org_with_admin("far").await;
    let (_, foreign) = call_as(
        &app,
        &admin,
        Method::POST,
        "/api/v1/departments",
        Some(json!({"name": "Far"})),
    )
    .await;
    let foreign = id_of(&foreign);
    let unknown = Uuid::now_v7().to_string();
    for body in [
        json!({"email": "x@example.com", "name": "X", "role": "viewer", "department_ids": [d1, unknown]}),
        json!({"email": "x@example.com", "name": "X", "role": "viewer", "department_ids": [foreign]}),
        json!({"email": "x@example.com", "name": "X", "role": "viewer", "department_ids": [d1, d1]}),
    ] {
        let got = app.post("/api/v1/users", body).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(got.1["error"]["details"]["field"], "department_ids");
    }
    let got = app
        .patch(&path, json!({"department_ids": [d2, foreign]}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(got.1["error"]["details"]["field"], "department_ids");
    assert!(got.1["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(&foreign)));
    assert_eq!(app.get(&path).await.1["department_ids"], json!([d1]));
    let (_, audit) = app
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={id}"
        ))
        .await;
    let changed: Vec<&str> = audit["events"][1]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert_eq!(changed, ["department_ids"], "the move is audited");
}
