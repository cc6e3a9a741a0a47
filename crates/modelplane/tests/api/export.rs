use futures::{stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    csv_export_has_the_seed_columns_rfc4180_quoting_and_a_dated_name,
    export_applies_the_list_filters_and_json_returns_every_record,
    export_streams_past_one_batch_without_losing_or_repeating_rows,
    the_full_view_flattens_every_section_departments_agents_and_catalog_facts,
);

async fn export(app: &TestApp, query: &str) -> (reqwest::header::HeaderMap, String) {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/model-inventory-export{query}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    (headers, resp.text().await.expect("body"))
}

async fn csv_export_has_the_seed_columns_rfc4180_quoting_and_a_dated_name(app: TestApp) {
    let tricky = "Line one, with a comma\nline \"two\"";
    let m = app
        .create_model(
            json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
        "description": tricky, "owner": "risk@example.com", "tags": {"bu": "retail"}}),
        )
        .await;
    let (headers, body) = export(&app, "").await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        headers["content-disposition"],
        format!("attachment; filename=\"model-inventory-{today}.csv\"")
    );

    let (header_line, rest) = body.split_once("\r\n").expect("CRLF line endings");
    let seed_columns = "id,model_id,provider,display_name,risk_tier,validation_status,owner,description,tags,last_seen_at,created_at,updated_at";
    assert!(header_line.starts_with(seed_columns), "{header_line}");
    assert!(header_line.ends_with("intended_use,limitations,developer,validator,vendor,last_validated_at,next_review_at,version,risk_framework"));
    assert!(
        rest.contains("\"Line one, with a comma\nline \"\"two\"\"\""),
        "RFC 4180 quoting: {rest}"
    );

    // A real CSV reader gets the original values back.
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid csv");
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], m["id"].as_str().expect("id"));
    assert_eq!(&rows[0][7], tricky);
    assert_eq!(
        serde_json::from_str::<Value>(&rows[0][8]).expect("tags json"),
        json!({"bu": "retail"})
    );
    assert_eq!(&rows[0][10], m["created_at"].as_str().expect("created_at"));
    assert_eq!(&rows[0][20], "sr26_2");
}

async fn export_applies_the_list_filters_and_json_returns_every_record(app: TestApp) {
    for (i, tier) in ["tier_1", "tier_2", "tier_2", "tier_3"].iter().enumerate() {
        app.create_model(json!({"model_id": format!("m{i}"), "provider": "p", "risk_tier": tier}))
            .await;
    }
    let (_, csv_body) = export(&app, "?format=csv&risk_tier=tier_2").await;
    assert_eq!(
        csv_body.matches("\r\n").count(),
        3,
        "header and two rows: {csv_body}"
    );
    let (headers, json_body) = export(&app, "?format=json").await;
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers["content-disposition"]
        .to_str()
        .expect("ascii")
        .ends_with(".json\""));
    let doc: Value = serde_json::from_str(&json_body).expect("valid json");
    assert_eq!(doc["total"], 4);
    let (_, mut listed) = app.get("/api/v1/models").await;
    // The list adds views for the caller (effective sections, edit rights);
    // the export carries the records themselves.
    for m in listed["models"].as_array_mut().expect("models") {
        let m = m.as_object_mut().expect("object");
        for view in [
            "effective_sections",
            "can_edit",
            "disabled_reason",
            "agent_ids",
        ] {
            m.remove(view);
        }
    }
    assert_eq!(
        doc["models"], listed["models"],
        "the same records as the list, newest first"
    );
    let (_, empty) = export(&app, "?format=json&provider=nobody").await;
    assert_eq!(
        serde_json::from_str::<Value>(&empty).expect("json"),
        json!({"models": [], "total": 0})
    );
    assert_error(
        &app.get("/api/v1/model-inventory-export?format=xml").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    );
}

async fn export_streams_past_one_batch_without_losing_or_repeating_rows(app: TestApp) {
    let total = 2_050;
    let results: Vec<StatusCode> = stream::iter(0..total)
        .map(|i| {
            let app = &app;
            async move { app.post("/api/v1/models", json!({"model_id": format!("bulk-{i:05}"), "provider": "p", "risk_tier": "tier_4"})).await.0 }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(results.iter().all(|s| *s == StatusCode::CREATED));
    let (_, body) = export(&app, "").await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let mut ids: Vec<String> = reader
        .records()
        .map(|r| r.expect("row")[1].to_owned())
        .collect();
    assert_eq!(ids.len(), total);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no row repeated");
}

async fn the_full_view_flattens_every_section_departments_agents_and_catalog_facts(app: TestApp) {
    let (status, _) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "openai", "model_id": "gpt-4o", "facts": {
                "context_window": 128000, "capabilities": {"reasoning_efforts": ["low", "high"]},
                "pricing": {"input": 2.5, "output": 10.0, "currency": "USD"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, research) = app
        .post("/api/v1/departments", json!({"name": "Research"}))
        .await;
    let m = app
        .create_model(
            json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "department_ids": [research["id"]],
            "sections": {"voices": ["alloy", "nova"], "flags": {"active": true},
                         "temperature_levels": [{"name": "precise", "value": 0.2}]}}),
        )
        .await;
    let (_, bot) = app
        .post(
            "/api/v1/agents",
            json!({"name": "Support bot", "model_ids": [m["id"]]}),
        )
        .await;
    assert!(bot["id"].is_string(), "{bot}");
    app.create_model(json!({"model_id": "other", "provider": "p", "risk_tier": "tier_4"}))
        .await;

    let (_, body) = export(&app, "?format=csv&view=full&model_id=gpt-4o").await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid csv");
    assert_eq!(rows.len(), 1, "only the model asked for: {body}");
    let col = |name: &str| -> String {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        rows[0][i].to_owned()
    };
    assert_eq!(col("model_id"), "gpt-4o");
    assert_eq!(col("risk_framework"), "sr26_2");
    assert_eq!(col("departments"), "Research");
    assert_eq!(col("agents"), "Support bot");
    assert_eq!(col("voices"), "alloy; nova");
    assert_eq!(col("temperature_levels"), "precise=0.2");
    assert_eq!(col("flags"), r#"{"active":true}"#);
    assert_eq!(
        col("reasoning_levels"),
        "low; high",
        "inherited from the catalog"
    );
    assert_eq!(col("pricing_input"), "2.5");
    assert_eq!(col("context_window"), "128000");
    assert_eq!(col("catalog_model_id"), "gpt-4o");
    assert_eq!(col("sections_set"), "flags; temperature_levels; voices");

    let by_id = export(
        &app,
        &format!("?view=full&model_id={}", m["id"].as_str().expect("id")),
    )
    .await
    .1;
    assert_eq!(by_id.matches("\r\n").count(), 2, "header and the one row");
    let (_, everything) = export(&app, "?view=full").await;
    assert_eq!(everything.matches("\r\n").count(), 3);
    let (_, json_body) = export(&app, "?view=full&format=json&model_id=gpt-4o").await;
    let doc: Value = serde_json::from_str(&json_body).expect("json");
    assert_eq!(doc["models"][0]["agents"][0]["name"], "Support bot");
    assert_eq!(
        doc["models"][0]["effective_sections"]["pricing"]["input"],
        2.5
    );
}
