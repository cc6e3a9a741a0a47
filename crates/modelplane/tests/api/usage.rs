//! Usage endpoints and model discovery, over both backends. Records are
//! seeded through `Store::insert_usage_batch` (what the gateway calls) and
//! every answer is checked against the same question answered here from
//! the records themselves.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};

use crate::both_backends;
use crate::helpers::{assert_error, TestApp};

both_backends!(
    list_filters_pages_and_counts_newest_first,
    aggregates_sum_every_group,
    rollups_answer_exactly_as_the_raw_records_do,
    series_list_every_bucket_with_zeros,
    latency_percentiles_match_hand_computed_values,
    ttft_counts_streamed_requests_only,
    export_streams_csv_with_rfc4180_quoting,
    usage_is_per_org_and_needs_admin,
    bad_usage_parameters_are_400,
    discover_creates_drafts_for_models_in_use,
    discover_counts_other_names_of_a_catalog_model_as_present,
    discover_bounds_and_scopes,
);

/// Which records a query should select.
type Keep = Box<dyn Fn(&UsageRecord) -> bool>;
/// A query's `from` and `to`.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A plain successful chat request; tests change what they need.
fn record(org: Uuid, key: Uuid, model: &str, t: DateTime<Utc>) -> UsageRecord {
    UsageRecord {
        id: Uuid::now_v7(),
        org_id: org,
        key_id: key,
        user_id: None,
        endpoint: Endpoint::ChatCompletions,
        requested_model: model.to_owned(),
        route: Some(format!("route-{model}")),
        upstream: Some("openai:https://api.openai.com/v1".to_owned()),
        upstream_model: Some(model.to_owned()),
        status: UsageStatus::Ok,
        http_status: 200,
        stream: false,
        prompt_tokens: Some(10),
        completion_tokens: Some(5),
        total_tokens: Some(15),
        cost_usd: Some(0.001),
        latency_ms: 100.0,
        ttft_ms: None,
        attempts: 1,
        error: None,
        created_at: t,
    }
}

/// The superadmin's own org (the bootstrap org, the only one at start).
async fn own_org(app: &TestApp) -> Uuid {
    let (status, orgs) = app.get("/api/v1/orgs").await;
    assert_eq!(status, StatusCode::OK, "{orgs}");
    orgs["orgs"][0]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("org id")
}

async fn seed(app: &TestApp, records: &[UsageRecord]) {
    let store = app.store().await;
    store
        .insert_usage_batch(records)
        .await
        .expect("insert usage");
    store.close().await;
}

async fn models_total(app: &TestApp) -> i64 {
    ok(app, "/api/v1/models?limit=1").await["total"]
        .as_i64()
        .expect("total")
}

async fn ok(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Totals computed here from the records.
#[derive(Debug, Default, Clone)]
struct Expected {
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cost_usd: f64,
    latency_sum: f64,
}

impl Expected {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.errors += i64::from(r.status != UsageStatus::Ok);
        self.prompt_tokens += r.prompt_tokens.unwrap_or(0);
        self.completion_tokens += r.completion_tokens.unwrap_or(0);
        self.total_tokens += r.total_tokens.unwrap_or(0);
        self.cost_usd += r.cost_usd.unwrap_or(0.0);
        self.latency_sum += r.latency_ms;
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Checks an answered totals object against the expected sums.
fn check_totals(got: &Value, want: &Expected, what: &str) {
    assert_eq!(got["requests"], want.requests, "{what}: {got}");
    assert_eq!(got["errors"], want.errors, "{what}: {got}");
    assert_eq!(got["prompt_tokens"], want.prompt_tokens, "{what}: {got}");
    assert_eq!(
        got["completion_tokens"], want.completion_tokens,
        "{what}: {got}"
    );
    assert_eq!(got["total_tokens"], want.total_tokens, "{what}: {got}");
    assert!(
        close(got["cost_usd"].as_f64().expect("cost"), want.cost_usd),
        "{what}: cost {got} vs {}",
        want.cost_usd
    );
    if want.requests == 0 {
        assert!(got["avg_latency_ms"].is_null(), "{what}: {got}");
    } else {
        let avg = want.latency_sum / want.requests as f64;
        assert!(
            close(got["avg_latency_ms"].as_f64().expect("avg"), avg),
            "{what}: avg {got} vs {avg}"
        );
    }
}

/// The value a record has for a `group_by`, as the API names it.
fn group_value(r: &UsageRecord, group: &str) -> Option<String> {
    match group {
        "model" => Some(r.requested_model.clone()),
        "key" => Some(r.key_id.to_string()),
        "org" => Some(r.org_id.to_string()),
        "user" => r.user_id.map(|u| u.to_string()),
        "route" => r.route.clone(),
        "upstream" => r.upstream.clone(),
        "endpoint" => Some(r.endpoint.as_str().to_owned()),
        "status" => Some(r.status.as_str().to_owned()),
        _ => unreachable!("group {group}"),
    }
}

/// The exact nearest-rank percentile.
fn nearest_rank(values: &[f64], per_mille: u64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() as u64 * per_mille).div_ceil(1000).max(1) as usize;
    sorted[rank - 1]
}

/// Checks count, mean and p50/p95/p99 against the values, the
/// percentiles within the stated relative error.
fn check_durations(got: &Value, values: &[f64], what: &str) {
    assert_eq!(got["count"], values.len() as i64, "{what}: {got}");
    if values.is_empty() {
        for f in ["avg_ms", "p50_ms", "p95_ms", "p99_ms"] {
            assert!(got[f].is_null(), "{what}: {got}");
        }
        return;
    }
    let avg = values.iter().sum::<f64>() / values.len() as f64;
    assert!(
        close(got["avg_ms"].as_f64().expect("avg"), avg),
        "{what}: {got} vs {avg}"
    );
    for (field, p) in [("p50_ms", 500), ("p95_ms", 950), ("p99_ms", 990)] {
        let exact = nearest_rank(values, p);
        let reported = got[field].as_f64().expect("percentile");
        assert!(
            (reported - exact).abs() <= exact * 0.01 * (1.0 + 1e-9),
            "{what}: {field} {reported} vs exact {exact}"
        );
    }
}

async fn list_filters_pages_and_counts_newest_first(app: TestApp) {
    let org = own_org(&app).await;
    let (k1, k2) = (Uuid::now_v7(), Uuid::now_v7());
    let user = Uuid::now_v7();
    let base = at("2025-04-02T10:00:00Z");
    let mut records = Vec::new();
    for i in 0..30i64 {
        let mut r = record(
            org,
            if i % 3 == 0 { k2 } else { k1 },
            if i % 2 == 0 {
                "gpt-4o"
            } else {
                "claude-3-5-sonnet"
            },
            base + Duration::minutes(i * 7),
        );
        r.user_id = (i % 5 == 0).then_some(user);
        r.stream = i % 4 == 0;
        r.endpoint = if i % 10 == 9 {
            Endpoint::Embeddings
        } else {
            Endpoint::ChatCompletions
        };
        if i % 6 == 5 {
            r.status = UsageStatus::UpstreamError;
            r.http_status = 502;
            r.upstream = Some("anthropic:https://api.anthropic.com".to_owned());
        }
        if i % 7 == 0 {
            r.route = None;
        }
        records.push(r);
    }
    seed(&app, &records).await;

    // Newest first, paged, with the total.
    let page = ok(&app, "/api/v1/admin/usage?limit=10&offset=5").await;
    assert_eq!(page["total"], 30);
    assert_eq!(
        (page["limit"].clone(), page["offset"].clone()),
        (json!(10), json!(5))
    );
    let ids: Vec<&str> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    let mut newest_first = records.clone();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let want: Vec<String> = newest_first[5..15]
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(ids, want);
    let first = &page["records"][0];
    assert_eq!(first["requested_model"], newest_first[5].requested_model);
    assert_eq!(first["created_at"], q(newest_first[5].created_at));

    // Each filter, alone and combined, against the records.
    let k1s = k1.to_string();
    let users = user.to_string();
    let cases: Vec<(String, Keep)> = vec![
        (
            "model=gpt-4o".into(),
            Box::new(|r| r.requested_model == "gpt-4o"),
        ),
        (format!("key_id={k1s}"), Box::new(move |r| r.key_id == k1)),
        (
            format!("user_id={users}"),
            Box::new(move |r| r.user_id == Some(user)),
        ),
        (
            "route=route-gpt-4o".into(),
            Box::new(|r| r.route.as_deref() == Some("route-gpt-4o")),
        ),
        (
            "upstream=anthropic:https://api.anthropic.com".into(),
            Box::new(|r| r.upstream.as_deref() == Some("anthropic:https://api.anthropic.com")),
        ),
        (
            "endpoint=embeddings".into(),
            Box::new(|r| r.endpoint == Endpoint::Embeddings),
        ),
        (
            "status=upstream_error".into(),
            Box::new(|r| r.status == UsageStatus::UpstreamError),
        ),
        ("stream=true".into(), Box::new(|r| r.stream)),
        ("stream=false".into(), Box::new(|r| !r.stream)),
        (
            format!(
                "from={}&to={}",
                q(base + Duration::minutes(35)),
                q(base + Duration::minutes(140))
            ),
            Box::new(move |r| {
                r.created_at >= base + Duration::minutes(35)
                    && r.created_at < base + Duration::minutes(140)
            }),
        ),
        (
            format!("model=claude-3-5-sonnet&stream=false&key_id={k1s}"),
            Box::new(move |r| {
                r.requested_model == "claude-3-5-sonnet" && !r.stream && r.key_id == k1
            }),
        ),
        ("model=no-such-model".into(), Box::new(|_| false)),
    ];
    for (query, keep) in cases {
        let got = ok(&app, &format!("/api/v1/admin/usage?limit=200&{query}")).await;
        let mut want: Vec<&UsageRecord> = records.iter().filter(|r| keep(r)).collect();
        want.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        assert_eq!(got["total"], want.len() as i64, "{query}");
        let got_ids: Vec<&str> = got["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        let want_ids: Vec<String> = want.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(got_ids, want_ids, "{query}");
    }
}

async fn aggregates_sum_every_group(app: TestApp) {
    let org = own_org(&app).await;
    let keys = [Uuid::now_v7(), Uuid::now_v7()];
    let users = [Uuid::now_v7()];
    let base = at("2025-02-03T08:15:00Z");
    let mut rng = Lcg(7);
    let mut records = Vec::new();
    for i in 0..120i64 {
        let model = *rng.pick(&["gpt-4o", "claude-3-5-sonnet", "llama-3", "mistral-large"]);
        let mut r = record(
            org,
            *rng.pick(&keys),
            model,
            base + Duration::minutes(i * 13),
        );
        r.user_id = (rng.below(3) == 0).then_some(users[0]);
        r.route = (rng.below(4) != 0).then(|| format!("route-{model}"));
        r.upstream = (rng.below(5) != 0).then(|| rng.pick(&["u1", "u2"]).to_string());
        r.endpoint = *rng.pick(&Endpoint::ALL);
        r.status = *rng.pick(&[
            UsageStatus::Ok,
            UsageStatus::Ok,
            UsageStatus::Ok,
            UsageStatus::Cancelled,
            UsageStatus::RateLimited,
        ]);
        r.prompt_tokens = (rng.below(6) != 0).then(|| rng.below(1000) as i64);
        r.completion_tokens = (rng.below(6) != 0).then(|| rng.below(500) as i64);
        r.total_tokens = Some(r.prompt_tokens.unwrap_or(0) + r.completion_tokens.unwrap_or(0));
        r.cost_usd = (rng.below(4) != 0).then(|| rng.below(10_000) as f64 / 1e5);
        r.latency_ms = 5.0 + rng.below(4000) as f64 / 3.0;
        records.push(r);
    }
    seed(&app, &records).await;

    for group in [
        "model", "key", "org", "upstream", "route", "user", "endpoint", "status",
    ] {
        let got = ok(
            &app,
            &format!("/api/v1/admin/usage/aggregate?group_by={group}"),
        )
        .await;
        assert_eq!(got["group_by"], group);
        assert_eq!(got["org_id"], org.to_string());
        let mut want: BTreeMap<Option<String>, Expected> = BTreeMap::new();
        let mut all = Expected::default();
        for r in &records {
            want.entry(group_value(r, group)).or_default().add(r);
            all.add(r);
        }
        check_totals(&got["totals"], &all, group);
        assert_eq!(got["groups_total"], want.len(), "{group}");
        let groups = got["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), want.len(), "{group}");
        for g in groups {
            let key = g["key"].as_str().map(str::to_owned);
            let expected = want
                .get(&key)
                .unwrap_or_else(|| panic!("{group}: unexpected {key:?}"));
            check_totals(g, expected, &format!("{group}={key:?}"));
        }
        // Most requests first.
        let counts: Vec<i64> = groups
            .iter()
            .map(|g| g["requests"].as_i64().expect("n"))
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "{group}: {counts:?}"
        );
    }

    // Model is the default group; limit keeps the largest groups and says how many there are.
    let got = ok(&app, "/api/v1/admin/usage/aggregate?limit=2").await;
    assert_eq!(got["group_by"], "model");
    assert_eq!(got["groups_total"], 4);
    assert_eq!(got["groups"].as_array().map(Vec::len), Some(2));
    assert_eq!(got["totals"]["requests"], 120);

    // Filters apply to aggregates too.
    let got = ok(
        &app,
        "/api/v1/admin/usage/aggregate?group_by=status&model=gpt-4o&stream=false",
    )
    .await;
    let mut want = Expected::default();
    records
        .iter()
        .filter(|r| r.requested_model == "gpt-4o")
        .for_each(|r| want.add(r));
    check_totals(&got["totals"], &want, "filtered");

    // Nothing in range: zeros, no groups.
    let got = ok(
        &app,
        "/api/v1/admin/usage/aggregate?from=2030-01-01T00:00:00Z",
    )
    .await;
    check_totals(&got["totals"], &Expected::default(), "empty");
    assert_eq!(got["groups"], json!([]));
}

async fn rollups_answer_exactly_as_the_raw_records_do(app: TestApp) {
    let org = own_org(&app).await;
    let keys = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let users = [Uuid::now_v7(), Uuid::now_v7()];
    let base = at("2025-03-10T00:00:00Z");
    let start = base - Duration::hours(27);
    let span_micros = (Duration::hours(27 + 48 + 5))
        .num_microseconds()
        .expect("micros") as u64;
    let mut rng = Lcg(42);
    let mut records = Vec::new();
    for _ in 0..700 {
        let model = *rng.pick(&["gpt-4o", "claude-3-5-sonnet", "llama-3"]);
        let t = start + Duration::microseconds(rng.below(span_micros) as i64);
        let mut r = record(org, *rng.pick(&keys), model, t);
        r.user_id = (rng.below(2) == 0).then(|| *rng.pick(&users));
        r.route = (rng.below(5) != 0).then(|| format!("route-{model}"));
        r.upstream = (rng.below(5) != 0).then(|| rng.pick(&["openai:a", "azure:b"]).to_string());
        r.endpoint = *rng.pick(&Endpoint::ALL);
        r.status = *rng.pick(&[
            UsageStatus::Ok,
            UsageStatus::Ok,
            UsageStatus::Ok,
            UsageStatus::UpstreamError,
            UsageStatus::Cancelled,
        ]);
        r.stream = rng.below(2) == 0;
        r.prompt_tokens = (rng.below(8) != 0).then(|| rng.below(2000) as i64);
        r.completion_tokens = (rng.below(8) != 0).then(|| rng.below(800) as i64);
        r.total_tokens = r
            .prompt_tokens
            .map(|p| p + r.completion_tokens.unwrap_or(0));
        r.cost_usd = (rng.below(3) != 0).then(|| rng.below(100_000) as f64 / 1e6);
        // Latency spread over four orders of magnitude.
        r.latency_ms = (1.5 + rng.below(9000) as f64 / 1000.0).exp();
        r.ttft_ms = r.stream.then(|| 3.0 + rng.below(200_000) as f64 / 100.0);
        records.push(r);
    }
    // Several batches, and one of them written twice: a replayed batch is
    // neither stored nor counted again. The last batch is half stored
    // already: only its new half is stored and counted.
    let store = app.store().await;
    let held_back = records.len() - 10;
    for batch in records[..held_back].chunks(97) {
        store.insert_usage_batch(batch).await.expect("insert");
    }
    store
        .insert_usage_batch(&records[held_back - 10..])
        .await
        .expect("half replayed");
    store
        .insert_usage_batch(&records[97..194])
        .await
        .expect("replay");
    let mut with_repeat = records[..5].to_vec();
    with_repeat.push(records[0].clone());
    store
        .insert_usage_batch(&with_repeat)
        .await
        .expect("repeat within a batch");
    store.close().await;

    let m = Duration::minutes;
    let h = Duration::hours;
    let d = Duration::days;
    let windows: Vec<Window> = vec![
        (None, None),
        (Some(base), Some(base + d(2))),
        (Some(base + h(3)), Some(base + d(1) + h(7))),
        (
            Some(base - d(1) + h(3) + m(17) + Duration::seconds(5)),
            Some(base + d(2) + h(2) + m(41)),
        ),
        (Some(base + h(5) + m(10)), Some(base + h(5) + m(50))),
        (Some(base + h(5) + m(10)), Some(base + h(6) + m(20))),
        (None, Some(base + d(1) + m(30))),
        (Some(base + h(13) + Duration::microseconds(1)), None),
    ];
    let filters: Vec<(&str, Keep)> = vec![
        ("", Box::new(|_| true)),
        (
            "&model=gpt-4o&status=ok",
            Box::new(|r| r.requested_model == "gpt-4o" && r.status == UsageStatus::Ok),
        ),
        (
            "&stream=true&endpoint=chat_completions",
            Box::new(|r| r.stream && r.endpoint == Endpoint::ChatCompletions),
        ),
    ];
    for (from, to) in &windows {
        let mut range = String::new();
        if let Some(f) = from {
            range.push_str(&format!("&from={}", q(*f)));
        }
        if let Some(t) = to {
            range.push_str(&format!("&to={}", q(*t)));
        }
        for (filter, keep) in &filters {
            let selected: Vec<&UsageRecord> = records
                .iter()
                .filter(|r| {
                    from.is_none_or(|f| r.created_at >= f) && to.is_none_or(|t| r.created_at < t)
                })
                .filter(|r| keep(r))
                .collect();
            let what = format!("{range}{filter}");

            let list = ok(&app, &format!("/api/v1/admin/usage?limit=1{range}{filter}")).await;
            assert_eq!(list["total"], selected.len() as i64, "list total {what}");

            for group in ["model", "user", "route", "status"] {
                let got = ok(
                    &app,
                    &format!("/api/v1/admin/usage/aggregate?group_by={group}{range}{filter}"),
                )
                .await;
                let mut want: BTreeMap<Option<String>, Expected> = BTreeMap::new();
                let mut all = Expected::default();
                for r in &selected {
                    want.entry(group_value(r, group)).or_default().add(r);
                    all.add(r);
                }
                check_totals(&got["totals"], &all, &what);
                let groups = got["groups"].as_array().expect("groups");
                assert_eq!(groups.len(), want.len(), "{group} {what}");
                for g in groups {
                    let key = g["key"].as_str().map(str::to_owned);
                    check_totals(g, &want[&key], &format!("{group}={key:?} {what}"));
                }
            }

            let got = ok(
                &app,
                &format!("/api/v1/admin/usage/latency?limit=100{range}{filter}"),
            )
            .await;
            assert_eq!(got["relative_error"], 0.01);
            let latencies: Vec<f64> = selected.iter().map(|r| r.latency_ms).collect();
            check_durations(&got["overall"], &latencies, &format!("latency {what}"));
            for g in got["groups"].as_array().expect("groups") {
                let model = g["key"].as_str().expect("model");
                let values: Vec<f64> = selected
                    .iter()
                    .filter(|r| r.requested_model == model)
                    .map(|r| r.latency_ms)
                    .collect();
                check_durations(g, &values, &format!("latency {model} {what}"));
            }

            let got = ok(
                &app,
                &format!("/api/v1/admin/usage/ttft?group_by=key{range}{filter}"),
            )
            .await;
            let ttfts: Vec<f64> = selected
                .iter()
                .filter(|r| r.stream)
                .filter_map(|r| r.ttft_ms)
                .collect();
            check_durations(&got["overall"], &ttfts, &format!("ttft {what}"));
        }
    }
}

async fn series_list_every_bucket_with_zeros(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let base = at("2025-05-01T00:00:00Z");
    let times = [
        (10, UsageStatus::Ok),
        (10, UsageStatus::Ok),
        (59, UsageStatus::Ok),
        (150, UsageStatus::Ok),
        (150, UsageStatus::UpstreamError),
        (151, UsageStatus::Ok),
        (300, UsageStatus::Ok),
    ];
    let records: Vec<UsageRecord> = times
        .iter()
        .map(|(minute, status)| {
            let mut r = record(org, key, "gpt-4o", base + Duration::minutes(*minute));
            r.status = *status;
            r
        })
        .collect();
    seed(&app, &records).await;

    let counts = |body: &Value| -> Vec<(String, i64, i64)> {
        body["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| {
                (
                    b["start"].as_str().expect("start").to_owned(),
                    b["requests"].as_i64().expect("requests"),
                    b["errors"].as_i64().expect("errors"),
                )
            })
            .collect()
    };
    let hour = |i: i64| q(base + Duration::hours(i));

    let got = ok(
        &app,
        &format!("/api/v1/admin/usage/series?from={}&to={}", q(base), hour(6)),
    )
    .await;
    assert_eq!(got["bucket"], "hour");
    assert_eq!(
        counts(&got),
        vec![
            (hour(0), 3, 0),
            (hour(1), 0, 0),
            (hour(2), 3, 1),
            (hour(3), 0, 0),
            (hour(4), 0, 0),
            (hour(5), 1, 0),
        ]
    );
    assert_eq!(got["buckets"][0]["total_tokens"], 45);
    assert_eq!(got["buckets"][1]["cost_usd"], 0.0);
    assert!(got["buckets"][1]["avg_latency_ms"].is_null());

    // Ragged ends: buckets still start on the hour; only records in range count.
    let got = ok(
        &app,
        &format!(
            "/api/v1/admin/usage/series?bucket=hour&from={}&to={}",
            q(base + Duration::minutes(30)),
            q(base + Duration::minutes(151))
        ),
    )
    .await;
    assert_eq!(
        counts(&got),
        vec![(hour(0), 1, 0), (hour(1), 0, 0), (hour(2), 2, 1)]
    );

    let got = ok(
        &app,
        &format!(
            "/api/v1/admin/usage/series?bucket=day&from={}&to={}",
            q(base - Duration::days(1)),
            q(base + Duration::days(2))
        ),
    )
    .await;
    let day = |i: i64| q(base + Duration::days(i));
    assert_eq!(
        counts(&got),
        vec![(day(-1), 0, 0), (day(0), 7, 1), (day(1), 0, 0)]
    );

    let got = ok(
        &app,
        &format!(
            "/api/v1/admin/usage/series?bucket=minute&from={}&to={}",
            q(base),
            hour(1)
        ),
    )
    .await;
    let minutes = counts(&got);
    assert_eq!(minutes.len(), 60);
    assert_eq!(minutes[10].1, 2);
    assert_eq!(minutes[59].1, 1);
    assert_eq!(minutes.iter().map(|m| m.1).sum::<i64>(), 3);

    // Filters narrow the series.
    let got = ok(
        &app,
        &format!(
            "/api/v1/admin/usage/series?status=upstream_error&from={}&to={}",
            q(base),
            hour(3)
        ),
    )
    .await;
    assert_eq!(
        counts(&got),
        vec![(hour(0), 0, 0), (hour(1), 0, 0), (hour(2), 1, 1)]
    );

    // Defaults: the last 24 hours (25 buckets when now is not on the hour).
    let got = ok(&app, "/api/v1/admin/usage/series").await;
    let n = got["buckets"].as_array().map(Vec::len).expect("buckets");
    assert!(n == 24 || n == 25, "{n}");
    let got = ok(&app, "/api/v1/admin/usage/series?bucket=day").await;
    let n = got["buckets"].as_array().map(Vec::len).expect("buckets");
    assert!(n == 30 || n == 31, "{n}");

    // At most 10,000 buckets.
    let too_many = app
        .get(&format!(
            "/api/v1/admin/usage/series?bucket=minute&from={}&to={}",
            q(base),
            q(base + Duration::days(7))
        ))
        .await;
    assert_error(&too_many, StatusCode::BAD_REQUEST, "validation_error");
    assert_eq!(too_many.1["error"]["details"]["field"], "bucket");
    ok(
        &app,
        &format!(
            "/api/v1/admin/usage/series?bucket=minute&from={}&to={}",
            q(base),
            q(base + Duration::minutes(10_000))
        ),
    )
    .await;
}

async fn latency_percentiles_match_hand_computed_values(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let base = at("2025-06-01T12:00:00Z");
    let mut records = Vec::new();
    // fast: 1..=100 ms; slow: 20 requests of 1, 2, … 20 seconds.
    for i in 1..=100i64 {
        let mut r = record(org, key, "fast", base + Duration::seconds(i));
        r.latency_ms = i as f64;
        records.push(r);
    }
    for i in 1..=20i64 {
        let mut r = record(org, key, "slow", base + Duration::minutes(i));
        r.latency_ms = i as f64 * 1000.0;
        records.push(r);
    }
    seed(&app, &records).await;

    let got = ok(&app, "/api/v1/admin/usage/latency").await;
    assert_eq!(got["group_by"], "model");
    let groups = got["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 2);
    let fast = &groups[0];
    assert_eq!(fast["key"], "fast");
    assert_eq!(fast["count"], 100);
    assert!(close(fast["avg_ms"].as_f64().expect("avg"), 50.5));
    // Hand-computed nearest-rank percentiles of 1..=100: 50, 95, 99.
    for (field, exact) in [("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)] {
        let v = fast[field].as_f64().expect("percentile");
        assert!((v - exact).abs() <= exact * 0.01, "{field} {v}");
    }
    // slow: ranks 10, 19 and 20 of 20 → 10 s, 19 s, 20 s.
    let slow = &groups[1];
    for (field, exact) in [
        ("p50_ms", 10_000.0),
        ("p95_ms", 19_000.0),
        ("p99_ms", 20_000.0),
    ] {
        let v = slow[field].as_f64().expect("percentile");
        assert!((v - exact).abs() <= exact * 0.01, "{field} {v}");
    }
    // Overall: 120 values; rank 60 is 60 ms, rank 114 is 14 s, rank 119 is 19 s.
    let all = &got["overall"];
    assert_eq!(all["count"], 120);
    for (field, exact) in [("p50_ms", 60.0), ("p95_ms", 14_000.0), ("p99_ms", 19_000.0)] {
        let v = all[field].as_f64().expect("percentile");
        assert!((v - exact).abs() <= exact * 0.01, "{field} {v}");
    }

    // Other groupings and an empty range.
    let got = ok(&app, "/api/v1/admin/usage/latency?group_by=key&limit=1").await;
    assert_eq!(got["groups"][0]["key"], key.to_string());
    assert_eq!(got["groups"][0]["count"], 120);
    let got = ok(
        &app,
        "/api/v1/admin/usage/latency?from=2030-01-01T00:00:00Z",
    )
    .await;
    check_durations(&got["overall"], &[], "empty");
    assert_eq!(got["groups"], json!([]));
}

async fn ttft_counts_streamed_requests_only(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let base = at("2025-06-02T00:00:00Z");
    let mut records = Vec::new();
    for i in 1..=40i64 {
        let mut r = record(org, key, "streamer", base + Duration::minutes(i * 5));
        r.stream = true;
        r.ttft_ms = Some(i as f64 * 10.0);
        r.latency_ms = 1000.0 + i as f64;
        records.push(r);
    }
    // Not streamed: a time to first token here does not count.
    let mut r = record(org, key, "streamer", base + Duration::minutes(3));
    r.ttft_ms = Some(99_999.0);
    records.push(r);
    // Streamed without a first token (failed before one).
    let mut r = record(org, key, "broken", base + Duration::minutes(4));
    r.stream = true;
    r.ttft_ms = None;
    r.status = UsageStatus::UpstreamError;
    records.push(r);
    // Plain requests of another model.
    for i in 0..5 {
        records.push(record(org, key, "plain", base + Duration::minutes(i)));
    }
    seed(&app, &records).await;

    let got = ok(&app, "/api/v1/admin/usage/ttft").await;
    let values: Vec<f64> = (1..=40).map(|i| f64::from(i) * 10.0).collect();
    check_durations(&got["overall"], &values, "ttft overall");
    let groups = got["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "{got}");
    assert_eq!(groups[0]["key"], "streamer");
    // Hand-computed: ranks 20, 38, 40 of 40 → 200, 380, 400 ms.
    for (field, exact) in [("p50_ms", 200.0), ("p95_ms", 380.0), ("p99_ms", 400.0)] {
        let v = groups[0][field].as_f64().expect("percentile");
        assert!((v - exact).abs() <= exact * 0.01, "{field} {v}");
    }
    // Asking for unstreamed requests finds no time to first token.
    let got = ok(&app, "/api/v1/admin/usage/ttft?stream=false").await;
    assert_eq!(got["overall"]["count"], 0);
    // The latency of the same requests counts all of them.
    let got = ok(&app, "/api/v1/admin/usage/latency?model=streamer").await;
    assert_eq!(got["overall"]["count"], 41);
}

async fn export_streams_csv_with_rfc4180_quoting(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let user = Uuid::now_v7();
    let base = at("2025-07-01T00:00:00Z");
    let tricky = "upstream said \"no\", then\nclosed";
    let mut quoted = record(org, key, "quoted, model", base);
    quoted.error = Some(tricky.to_owned());
    quoted.status = UsageStatus::UpstreamError;
    quoted.http_status = 502;
    quoted.user_id = Some(user);
    quoted.route = None;
    quoted.stream = true;
    quoted.ttft_ms = Some(12.5);
    quoted.cost_usd = None;
    quoted.completion_tokens = None;
    // Past one export batch (2,000), many sharing one timestamp.
    let mut bulk: Vec<UsageRecord> = (0..2050i64)
        .map(|i| record(org, key, "bulk", base + Duration::seconds(i / 7)))
        .collect();
    bulk.push(quoted.clone());
    seed(&app, &bulk).await;

    let resp = app
        .client
        .get(app.url("/api/v1/admin/usage/export?model=quoted,%20model"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    let today = Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"usage-{today}.csv\"")
    );
    let body = resp.text().await.expect("body");
    let (header, rest) = body.split_once("\r\n").expect("CRLF line ends");
    assert_eq!(
        header,
        "id,created_at,org_id,key_id,user_id,endpoint,requested_model,route,upstream,upstream_model,status,http_status,stream,prompt_tokens,completion_tokens,total_tokens,cost_usd,latency_ms,ttft_ms,attempts,error"
    );
    assert!(
        rest.contains("\"upstream said \"\"no\"\", then\nclosed\""),
        "{rest}"
    );
    assert!(rest.contains("\"quoted, model\""), "{rest}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid csv");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(&row[0], quoted.id.to_string());
    assert_eq!(&row[1], "2025-07-01T00:00:00Z");
    assert_eq!(&row[4], user.to_string());
    assert_eq!(&row[5], "chat_completions");
    assert_eq!(&row[6], "quoted, model");
    assert_eq!(&row[7], "");
    assert_eq!(&row[10], "upstream_error");
    assert_eq!(&row[11], "502");
    assert_eq!(&row[12], "true");
    assert_eq!(&row[14], "");
    assert_eq!(&row[16], "");
    assert_eq!(&row[18], "12.5");
    assert_eq!(&row[20], tricky);

    // Past a batch boundary: every record once, newest first.
    let resp = app
        .client
        .get(app.url("/api/v1/admin/usage/export?model=bulk"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    let body = resp.text().await.expect("body");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("valid csv");
    assert_eq!(rows.len(), 2050);
    let ids: HashSet<&str> = rows.iter().map(|r| r.get(0).expect("id")).collect();
    assert_eq!(ids.len(), 2050);
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| at(r.get(1).expect("time"))).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Filters and the range apply.
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/admin/usage/export?model=bulk&to={}",
            q(base + Duration::seconds(10))
        )))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("sent");
    let body = resp.text().await.expect("body");
    assert_eq!(body.matches("\r\n").count(), 1 + 70, "header and 70 rows");
}

async fn usage_is_per_org_and_needs_admin(app: TestApp) {
    let org_a = own_org(&app).await;
    let (org_b, admin_b) = app.org_with_admin("usage-b").await;
    let org_b: Uuid = org_b.parse().expect("org id");
    let base = at("2025-08-01T00:00:00Z");
    let key = Uuid::now_v7();
    let mut records: Vec<UsageRecord> = (0..6)
        .map(|i| record(org_a, key, "a-model", base + Duration::minutes(i)))
        .collect();
    records.extend((0..2).map(|i| record(org_b, key, "b-model", base + Duration::minutes(i))));
    seed(&app, &records).await;

    // The other org's admin sees only its own org.
    let call = |token: &str, path: String| {
        let app = &app;
        let token = token.to_owned();
        async move {
            app.call(reqwest::Method::GET, &path, Some(&token), None)
                .await
        }
    };
    let (status, list) = call(&admin_b, "/api/v1/admin/usage".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 2);
    assert!(list["records"]
        .as_array()
        .expect("records")
        .iter()
        .all(|r| r["org_id"] == org_b.to_string()));
    let (_, agg) = call(&admin_b, "/api/v1/admin/usage/aggregate".into()).await;
    assert_eq!(
        agg["groups"],
        json!([{"key": "b-model", "requests": 2, "errors": 0, "prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30, "cost_usd": 0.002, "avg_latency_ms": 100.0}])
    );
    // Naming another org is "not found" for an org admin, in every endpoint.
    for path in ["", "/aggregate", "/series", "/latency", "/ttft", "/export"] {
        let got = call(
            &admin_b,
            format!("/api/v1/admin/usage{path}?org_id={org_a}"),
        )
        .await;
        assert_error(&got, StatusCode::NOT_FOUND, "org_not_found");
    }
    // Filtering by a key of the other org finds nothing.
    let (_, list) = call(
        &admin_b,
        format!("/api/v1/admin/usage?key_id={key}&model=a-model"),
    )
    .await;
    assert_eq!(list["total"], 0);

    // A superadmin reads its own org by default and any org it names.
    assert_eq!(ok(&app, "/api/v1/admin/usage").await["total"], 6);
    let b = ok(
        &app,
        &format!("/api/v1/admin/usage/aggregate?org_id={org_b}&group_by=org"),
    )
    .await;
    assert_eq!(b["org_id"], org_b.to_string());
    assert_eq!(b["groups"][0]["key"], org_b.to_string());
    assert_eq!(b["totals"]["requests"], 2);

    // Below admin: 403; no key: 401.
    let writer = app.key_with(&["registry:write"], None).await;
    for path in ["", "/aggregate", "/series", "/latency", "/ttft", "/export"] {
        let got = call(&writer, format!("/api/v1/admin/usage{path}")).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
        let got = app
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/admin/usage{path}"),
                None,
                None,
            )
            .await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let admin_a = app.key_with(&["admin"], None).await;
    let (status, list) = call(&admin_a, "/api/v1/admin/usage".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 6);
}

async fn bad_usage_parameters_are_400(app: TestApp) {
    let cases = [
        ("/api/v1/admin/usage?nope=1", "nope"),
        ("/api/v1/admin/usage?from=yesterday", "from"),
        ("/api/v1/admin/usage?to=2025-13-01T00:00:00Z", "to"),
        (
            "/api/v1/admin/usage?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z",
            "from",
        ),
        ("/api/v1/admin/usage?from=1969-12-31T00:00:00Z", "from"),
        ("/api/v1/admin/usage?key_id=not-a-uuid", "key_id"),
        ("/api/v1/admin/usage?user_id=1", "user_id"),
        ("/api/v1/admin/usage?status=fine", "status"),
        ("/api/v1/admin/usage?endpoint=images", "endpoint"),
        ("/api/v1/admin/usage?stream=maybe", "stream"),
        ("/api/v1/admin/usage?limit=0", "limit"),
        ("/api/v1/admin/usage?limit=201", "limit"),
        ("/api/v1/admin/usage?offset=-1", "offset"),
        ("/api/v1/admin/usage?org_id=x", "org_id"),
        ("/api/v1/admin/usage/aggregate?group_by=color", "group_by"),
        ("/api/v1/admin/usage/aggregate?limit=1001", "limit"),
        ("/api/v1/admin/usage/aggregate?bucket=hour", "bucket"),
        ("/api/v1/admin/usage/series?bucket=week", "bucket"),
        ("/api/v1/admin/usage/series?group_by=model", "group_by"),
        (
            "/api/v1/admin/usage/series?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
            "from",
        ),
        ("/api/v1/admin/usage/latency?group_by=nope", "group_by"),
        ("/api/v1/admin/usage/latency?limit=0", "limit"),
        ("/api/v1/admin/usage/ttft?offset=3", "offset"),
        ("/api/v1/admin/usage/export?limit=5", "limit"),
        ("/api/v1/admin/usage/export?from=2025-01-01", "from"),
    ];
    for (path, field) in cases {
        let got = app.get(path).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(
            got.1["error"]["details"]["field"], field,
            "{path}: {}",
            got.1
        );
    }
    // An empty filter value is no filter.
    ok(&app, "/api/v1/admin/usage?model=&route=").await;
}

async fn discover_creates_drafts_for_models_in_use(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let now = Utc::now();
    app.create_model(json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2", "validation_status": "pending_validation"}))
        .await;
    let mut records = Vec::new();
    let mut add = |model: &str, n: i64, days_ago: i64, status: UsageStatus| {
        for i in 0..n {
            let mut r = record(
                org,
                key,
                model,
                now - Duration::days(days_ago) - Duration::minutes(i),
            );
            r.status = status;
            records.push(r);
        }
    };
    add("gpt-4o-mini", 3, 2, UsageStatus::Ok);
    add(
        "claude-3-5-sonnet-20241022",
        2,
        5,
        UsageStatus::UpstreamError,
    );
    add("GPT-4o", 4, 1, UsageStatus::Ok);
    add("openai/gpt-4o", 1, 1, UsageStatus::Ok);
    add("mystery-model", 1, 3, UsageStatus::Ok);
    add("typo-modell", 5, 1, UsageStatus::Invalid);
    add("old-model", 2, 40, UsageStatus::Ok);
    seed(&app, &records).await;
    // Another org's usage is not this org's discovery.
    let (other, _) = app.org_with_admin("elsewhere").await;
    let foreign = record(
        other.parse().expect("org"),
        key,
        "foreign-model",
        now - Duration::days(1),
    );
    seed(&app, &[foreign]).await;

    assert_eq!(models_total(&app).await, 1);

    // A dry run reports and creates nothing.
    let (status, dry) = app
        .post(
            "/api/v1/models/discover",
            json!({"dry_run": true, "auto_assign_tier": "tier_3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["discovered"], 5, "{dry}");
    assert_eq!(dry["created"], 3, "{dry}");
    assert_eq!(dry["existing"], 2, "{dry}");
    assert_eq!(models_total(&app).await, 1);

    // The real run.
    let (status, run) = app
        .post(
            "/api/v1/models/discover",
            json!({"auto_assign_tier": "tier_3"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["dry_run"], false);
    assert_eq!(
        (
            run["discovered"].clone(),
            run["created"].clone(),
            run["existing"].clone()
        ),
        (json!(5), json!(3), json!(2))
    );
    assert_eq!(
        run["models"], dry["models"],
        "a dry run answers what the run does"
    );
    let by_id: BTreeMap<String, Value> = run["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| (m["model_id"].as_str().expect("id").to_owned(), m.clone()))
        .collect();
    let keys: Vec<&str> = by_id.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "GPT-4o",
            "claude-3-5-sonnet-20241022",
            "gpt-4o-mini",
            "mystery-model",
            "openai/gpt-4o"
        ]
    );
    // Most requested first.
    assert_eq!(run["models"][0]["model_id"], "GPT-4o");
    let mini = &by_id["gpt-4o-mini"];
    assert_eq!(mini["status"], "created");
    assert_eq!(mini["provider"], "openai");
    assert_eq!(mini["validation_status"], "draft");
    assert_eq!(mini["risk_tier"], "tier_3");
    assert_eq!(mini["request_count_30d"], 3);
    let first = at(mini["first_seen_at"].as_str().expect("first"));
    let last = at(mini["last_seen_at"].as_str().expect("last"));
    assert_eq!(last - first, Duration::minutes(2));
    assert_eq!(by_id["claude-3-5-sonnet-20241022"]["provider"], "anthropic");
    assert_eq!(by_id["mystery-model"]["provider"], "unknown");
    for existing in ["GPT-4o", "openai/gpt-4o"] {
        let m = &by_id[existing];
        assert_eq!(m["status"], "existing", "{existing}");
        assert_eq!(m["provider"], "openai");
        assert_eq!(m["risk_tier"], "tier_2");
        assert_eq!(m["validation_status"], "pending_validation");
    }
    assert_eq!(by_id["GPT-4o"]["request_count_30d"], 4);

    // The drafts exist with their tier and provider, each audited as a create.
    assert_eq!(models_total(&app).await, 4);
    for (model_id, provider) in [
        ("gpt-4o-mini", "openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"),
        ("mystery-model", "unknown"),
    ] {
        let list = ok(&app, "/api/v1/models?limit=200").await;
        let model = list["models"]
            .as_array()
            .expect("models")
            .iter()
            .find(|m| m["model_id"] == model_id)
            .unwrap_or_else(|| panic!("{model_id} not created: {list}"))
            .clone();
        assert_eq!(model["provider"], provider);
        assert_eq!(model["risk_tier"], "tier_3");
        assert_eq!(model["validation_status"], "draft");
        let id = model["id"].as_str().expect("id");
        let history = ok(&app, &format!("/api/v1/models/{id}/history")).await;
        assert_eq!(history["total"], 1, "{history}");
        assert_eq!(history["events"][0]["action"], "create");
    }

    // Run again: everything exists now.
    let (_, again) = app.post("/api/v1/models/discover", json!({})).await;
    assert_eq!(
        (again["created"].clone(), again["existing"].clone()),
        (json!(0), json!(5)),
        "{again}"
    );
    let mini = again["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["model_id"] == "gpt-4o-mini")
        .cloned()
        .expect("mini");
    assert_eq!(mini["status"], "existing");
    assert_eq!(mini["risk_tier"], "tier_3");

    // A longer look-back finds the older model; tier_4 is the default.
    let (_, longer) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/models/discover",
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(longer["discovered"], 5, "no body: the defaults");
    let (_, longer) = app
        .post("/api/v1/models/discover", json!({"lookback_days": 60}))
        .await;
    assert_eq!(longer["discovered"], 6);
    let old = longer["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["model_id"] == "old-model")
        .cloned()
        .expect("old");
    assert_eq!(old["status"], "created");
    assert_eq!(old["risk_tier"], "tier_4");
    assert_eq!(old["provider"], "unknown");
}

async fn discover_bounds_and_scopes(app: TestApp) {
    for (body, field) in [
        (json!({"lookback_days": 0}), "lookback_days"),
        (json!({"lookback_days": 366}), "lookback_days"),
        (json!({"lookback_days": "ten"}), "lookback_days"),
        (json!({"auto_assign_tier": "tier_9"}), "auto_assign_tier"),
        (json!({"dry_run": "yes"}), "dry_run"),
        (json!({"scan": true}), "scan"),
    ] {
        let got = app.post("/api/v1/models/discover", body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, "validation_error");
        assert_eq!(got.1["error"]["details"]["field"], field, "{body}");
    }
    for days in [1, 365] {
        let (status, body) = app
            .post(
                "/api/v1/models/discover",
                json!({"lookback_days": days, "dry_run": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["discovered"], 0);
    }
    let reader = app.key_with(&["registry:read"], None).await;
    let got = app
        .call(
            reqwest::Method::POST,
            "/api/v1/models/discover",
            Some(&reader),
            Some(json!({})),
        )
        .await;
    assert_error(&got, StatusCode::FORBIDDEN, "forbidden");
    let writer = app.key_with(&["registry:write"], None).await;
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/models/discover",
            Some(&writer),
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn discover_counts_other_names_of_a_catalog_model_as_present(app: TestApp) {
    let org = own_org(&app).await;
    let key = Uuid::now_v7();
    let (status, entry) = app
        .post(
            "/api/v1/catalog/models",
            json!({"provider": "anthropic", "model_id": "claude-3-5-sonnet-20241022", "aliases": [
                {"alias": "claude-3-5-sonnet-latest"},
                {"alias": "anthropic.claude-3-5-sonnet-20241022-v2:0", "source": "bedrock"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    app.create_model(json!({"model_id": "claude-3-5-sonnet-20241022", "provider": "anthropic", "risk_tier": "tier_2"}))
        .await;
    let now = Utc::now();
    let names = [
        // Aliases of the catalog model the inventory has, in any case.
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "Claude-3-5-Sonnet-Latest",
        // Same normalized name, another snapshot: not the same model.
        "claude-3-5-sonnet-20240620",
    ];
    let records: Vec<UsageRecord> = names
        .iter()
        .map(|n| record(org, key, n, now - Duration::hours(1)))
        .collect();
    seed(&app, &records).await;

    let (status, found) = app
        .post("/api/v1/models/discover", json!({"dry_run": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let status_of = |name: &str| {
        found["models"]
            .as_array()
            .expect("models")
            .iter()
            .find(|m| m["model_id"] == name)
            .map(|m| (m["status"].clone(), m["risk_tier"].clone()))
            .unwrap_or_else(|| panic!("{name} missing: {found}"))
    };
    assert_eq!(status_of(names[0]), (json!("existing"), json!("tier_2")));
    assert_eq!(status_of(names[1]), (json!("existing"), json!("tier_2")));
    assert_eq!(status_of(names[2]), (json!("created"), json!("tier_4")));
    assert_eq!(
        (found["created"].clone(), found["existing"].clone()),
        (json!(1), json!(2))
    );
}
