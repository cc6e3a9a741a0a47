//! Lists filtered by words, owner, tags, departments or agents. On SQLite
//! they are answered from the in-memory search index; the export answers
//! the same filters in SQL on both backends. Every answer of the list —
//! the models in order, the total, every facet — must equal what the
//! export's rows say, right after every kind of write.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    indexed_lists_agree_with_the_sql_export_through_every_kind_of_write,
    a_search_counts_only_the_callers_org,
);

const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "alphabet", "omega"];

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// The filters the check runs, each as a list query string.
fn filters(depts: &[String], agents: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec![
        "search=alpha".into(),
        "search=alp".into(),
        "search=alpha%20gamma".into(),
        "search=omega&risk_tier=tier_2".into(),
        "search=beta&tag=env:prod".into(),
        "search=delta&provider=OPEN".into(),
        "owner=Ann@Example.com".into(),
        "owner=bob@example.com&validation_status=draft".into(),
        // `ÉVA` and `Éva` are one owner to SQLite's ASCII folding, `éva`
        // another there (one to PostgreSQL's): list and export must agree.
        "owner=%C3%89VA@Example.com".into(),
        "owner=%C3%89va@example.com".into(),
        "owner=%C3%A9va@example.com".into(),
        "tag=env:prod".into(),
        "tag=env:prod&tag=team:risk".into(),
        "tag=env:nowhere".into(),
        "search=gamma&owner=ann@example.com&offset=1&limit=2".into(),
    ];
    for d in depts {
        out.push(format!("department_id={d}"));
        out.push(format!("department_id={d}&risk_tier=tier_1"));
        out.push(format!("department_id={d}&search=beta"));
    }
    out.push(format!(
        "department_id={}&department_id={}",
        depts[0], depts[1]
    ));
    for a in agents {
        out.push(format!("agent_id={a}"));
        out.push(format!("agent_id={a}&department_id={}", depts[2]));
    }
    out.push("department_search=Fin".into());
    out.push("agent_search=bot&search=alpha".into());
    out
}

/// Counts by key, leaving out zeros, from a facet list.
fn facet_counts(list: &Value) -> BTreeMap<String, i64> {
    list.as_array()
        .expect("facet list")
        .iter()
        .filter(|v| v["count"].as_i64() != Some(0))
        .map(|v| (id(v), v["count"].as_i64().expect("count")))
        .collect()
}

/// Checks every filter: the list against the export of the same filter.
async fn check(app: &TestApp, when: &str, depts: &[String], agents: &[String]) {
    for filter in filters(depts, agents) {
        let page = |key: &str| {
            filter
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.parse::<usize>().ok())
        };
        let (offset, limit) = (page("offset=").unwrap_or(0), page("limit=").unwrap_or(50));
        let (status, listed) = app.get(&format!("/api/v1/models?{filter}")).await;
        assert_eq!(status, StatusCode::OK, "{when}: {filter}: {listed}");
        let (status, exported) = app
            .get(&format!(
                "/api/v1/model-inventory-export?format=json&view=full&{}",
                filter
                    .split('&')
                    .filter(|kv| !kv.starts_with("offset=") && !kv.starts_with("limit="))
                    .collect::<Vec<_>>()
                    .join("&")
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{when}: {filter}: {exported}");
        let rows = exported["models"].as_array().expect("models");
        let expect_ids: Vec<String> = rows.iter().map(id).skip(offset).take(limit).collect();
        let got_ids: Vec<String> = listed["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(id)
            .collect();
        assert_eq!(got_ids, expect_ids, "{when}: models of {filter}");
        assert_eq!(
            listed["total"].as_u64(),
            Some(rows.len() as u64),
            "{when}: total of {filter}"
        );
        let mut providers = BTreeMap::new();
        let mut departments = BTreeMap::new();
        let mut agent_counts = BTreeMap::new();
        for row in rows {
            *providers
                .entry(row["provider"].as_str().expect("provider").to_owned())
                .or_insert(0) += 1;
            for d in row["departments"].as_array().expect("departments") {
                *departments.entry(id(d)).or_insert(0) += 1;
            }
            for a in row["agents"].as_array().expect("agents") {
                *agent_counts.entry(id(a)).or_insert(0) += 1;
            }
        }
        let facets = &listed["facets"];
        assert_eq!(
            facet_counts(&facets["providers"]),
            providers,
            "{when}: providers of {filter}"
        );
        assert_eq!(
            facet_counts(&facets["departments"]),
            departments,
            "{when}: departments of {filter}"
        );
        assert_eq!(
            facet_counts(&facets["agents"]),
            agent_counts,
            "{when}: agents of {filter}"
        );
        assert_eq!(
            facets["departments"].as_array().map(Vec::len),
            Some(depts.len()),
            "{when}: every department is a choice"
        );
    }
}

async fn indexed_lists_agree_with_the_sql_export_through_every_kind_of_write(app: TestApp) {
    let mut depts = Vec::new();
    for name in ["Finance", "Fraud", "Legal"] {
        let (status, d) = app.post("/api/v1/departments", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{d}");
        depts.push(id(&d));
    }
    let owners = ["ann@example.com", "Ann@Example.com", "bob@example.com"];
    let providers = ["openai", "anthropic", "OpenRouter"];
    let tiers = ["tier_1", "tier_2", "tier_3", "tier_4"];
    let model = |i: usize| {
        let words: Vec<&str> = (0..3)
            .map(|k| WORDS[(i * 7 + k * 5) % WORDS.len()])
            .collect();
        let env = ["prod", "dev"][i % 2];
        let mut tags = json!({ "env": env });
        if i.is_multiple_of(3) {
            tags["team"] = json!("risk");
        }
        let dept_ids: Vec<&String> = match i % 4 {
            0 => vec![&depts[0]],
            1 => vec![&depts[1], &depts[2]],
            2 => vec![&depts[2]],
            _ => vec![],
        };
        json!({
            "model_id": format!("m{i:02}-{}", words[0]),
            "provider": providers[i % 3],
            "risk_tier": tiers[i % 4],
            "owner": if i % 6 == 5 { "ÉVA@Example.com" } else { owners[i % 3] },
            "description": words.join(" "),
            "tags": tags,
            "department_ids": dept_ids,
        })
    };
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(id(&app.create_model(model(i)).await));
    }
    let mut agents = Vec::new();
    for (name, members) in [("fraud bot", &ids[0..6]), ("legal helper", &ids[4..12])] {
        let (status, a) = app
            .post(
                "/api/v1/agents",
                json!({"name": name, "active": true, "model_ids": members}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        agents.push(a);
    }
    let agent_ids: Vec<String> = agents.iter().map(id).collect();
    check(&app, "created", &depts, &agent_ids).await;

    for (i, change) in [
        json!({"risk_tier": "tier_2", "description": "omega only"}),
        json!({"owner": "BOB@example.com", "tags": {"env": "prod", "team": "risk"}}),
        json!({"department_ids": [depts[0], depts[1]]}),
        json!({"validation_status": "pending_validation", "tags": {"env": null}}),
        json!({"owner": null, "department_ids": []}),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .patch(&format!("/api/v1/models/{}", ids[i * 3]), change)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    check(&app, "patched", &depts, &agent_ids).await;

    let (status, body) = app
        .put(
            &format!("/api/v1/models/{}", ids[1]),
            json!({"tags": {"env": "prod"}, "risk_tier": "tier_1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.delete(&format!("/api/v1/models/{}", ids[20])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(&app, "replaced and deleted", &depts, &agent_ids).await;

    let (status, body) = app
        .patch(
            &format!("/api/v1/agents/{}", agent_ids[0]),
            json!({"model_ids": [ids[13], ids[14], ids[2]], "expected_version": agents[0]["version"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .delete(&format!("/api/v1/agents/{}", agent_ids[1]))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(&app, "agents changed", &depts, &agent_ids).await;

    let (status, body) = app
        .post(
            "/api/v1/models/bulk-create",
            json!({"models": (30..40).map(model).collect::<Vec<_>>()}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app
        .post(
            "/api/v1/models/bulk-update",
            json!({"all": true, "filters": {"owner": "bob@example.com"}, "set": {"risk_tier": "tier_3"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/models/bulk-delete",
            json!({"model_ids": [ids[5], ids[6], ids[7]]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(&format!("/api/v1/models/{}/duplicate", ids[9]), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    check(&app, "bulk writes and a duplicate", &depts, &agent_ids).await;

    let (status, body) = app.post("/api/v1/admin/refresh", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    check(&app, "after a refresh", &depts, &agent_ids).await;
}

async fn a_search_counts_only_the_callers_org(app: TestApp) {
    for i in 0..3 {
        app.create_model(
            json!({"model_id": format!("ours-{i}"), "provider": "openai",
            "risk_tier": "tier_3", "description": "shared words", "owner": "ann@example.com"}),
        )
        .await;
    }
    let (_, other) = app.org_with_admin("other org").await;
    for i in 0..5 {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/models",
                Some(&other),
                Some(json!({"model_id": format!("theirs-{i}"), "provider": "anthropic",
                    "risk_tier": "tier_3", "description": "shared words", "owner": "ann@example.com"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for filter in [
        "search=shared",
        "owner=ann@example.com",
        "search=words&owner=ann@example.com",
    ] {
        let (_, ours) = app.get(&format!("/api/v1/models?{filter}")).await;
        assert_eq!(ours["total"], 3, "{filter}: {ours}");
        assert_eq!(
            facet_counts(&ours["facets"]["providers"]),
            BTreeMap::from([("openai".to_owned(), 3)]),
            "{filter}"
        );
        let (_, theirs) = app
            .call(
                Method::GET,
                &format!("/api/v1/models?{filter}"),
                Some(&other),
                None,
            )
            .await;
        assert_eq!(theirs["total"], 5, "{filter}: {theirs}");
    }
}
