//! Usage (admin): the gateway's records, totals, time series, latency and
//! time-to-first-token percentiles, and the CSV export; and discovery of
//! models in use that the inventory lacks (`POST /api/v1/models/discover`).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use modelplane_domain::histogram::RELATIVE_ERROR;
use modelplane_domain::model::RiskTier;
use modelplane_domain::page::Page;
use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};
use modelplane_domain::usage_query::{SeriesBucket, UsageGroup};
use modelplane_service::usage::{
    self, DiscoverInput, DiscoveredStatus, DurationStats, Totals, UsageQuery,
};
use modelplane_store::DurationKind;

use super::models::csv_writer;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::extract::{ApiQuery, Auth, OptionalJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_usage))
        .routes(routes!(aggregate_usage))
        .routes(routes!(usage_series))
        .routes(routes!(usage_latency))
        .routes(routes!(usage_ttft))
        .routes(routes!(export_usage))
        .routes(routes!(discover_models))
}

/// A query struct with the filters every usage read takes, plus its own.
/// (serde cannot flatten a struct that refuses unknown fields.)
macro_rules! usage_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Another org's usage (superadmin only).
            org_id: Option<Uuid>,
            /// Records at or after this instant (RFC 3339).
            from: Option<DateTime<Utc>>,
            /// Records before this instant (RFC 3339).
            to: Option<DateTime<Utc>>,
            /// The model name the client asked for, exactly.
            model: Option<String>,
            key_id: Option<Uuid>,
            user_id: Option<Uuid>,
            /// The route that served the request.
            route: Option<String>,
            /// The upstream that answered last (`provider:base_url`).
            upstream: Option<String>,
            endpoint: Option<Endpoint>,
            status: Option<UsageStatus>,
            /// Streamed requests only (true) or unstreamed only (false).
            stream: Option<bool>,
            $($(#[$field_meta])* $field: $ty,)*
        }

        impl $name {
            fn filters(&self) -> UsageQuery {
                UsageQuery {
                    org_id: self.org_id,
                    from: self.from,
                    to: self.to,
                    model: self.model.clone(),
                    key_id: self.key_id,
                    user_id: self.user_id,
                    route: self.route.clone(),
                    upstream: self.upstream.clone(),
                    endpoint: self.endpoint,
                    status: self.status,
                    stream: self.stream,
                }
            }
        }
    };
}

usage_query!(UsageListQuery {
    /// Default 50, at most 200.
    limit: Option<i64>,
    offset: Option<i64>,
});

usage_query!(AggregateQuery {
    /// `model` (default), `key`, `org`, `upstream`, `route`, `user`, `endpoint` or `status`.
    group_by: Option<UsageGroup>,
    /// How many groups to list, most requests first: default 100, at most 1000.
    limit: Option<i64>,
});

usage_query!(SeriesQuery {
    /// `minute`, `hour` (default) or `day` (UTC).
    bucket: Option<SeriesBucket>,
});

usage_query!(PercentileQuery {
    /// `model` (default), `key`, `org`, `upstream`, `route`, `user`, `endpoint` or `status`.
    group_by: Option<UsageGroup>,
    /// How many groups to list, most requests first: default 100, at most 1000.
    limit: Option<i64>,
});

usage_query!(UsageExportQuery {});

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageList {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub records: Vec<UsageRecord>,
}

/// Sums over a set of requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotalsBody {
    pub requests: i64,
    /// Requests whose status is not `ok`.
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    /// The mean latency; null without requests.
    pub avg_latency_ms: Option<f64>,
}

impl From<Totals> for UsageTotalsBody {
    fn from(t: Totals) -> Self {
        UsageTotalsBody {
            requests: t.requests,
            errors: t.errors,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            total_tokens: t.total_tokens,
            cost_usd: t.cost_usd,
            avg_latency_ms: t.avg_latency_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageGroupTotals {
    /// The group's value: a model name, key, org or user id, route,
    /// upstream, endpoint or status; null for requests without a user,
    /// route or upstream.
    pub key: Option<String>,
    #[serde(flatten)]
    pub totals: UsageTotalsBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageAggregate {
    pub org_id: Uuid,
    pub group_by: UsageGroup,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Over every group.
    pub totals: UsageTotalsBody,
    /// How many groups there are; `groups` lists at most `limit`.
    pub groups_total: usize,
    pub groups: Vec<UsageGroupTotals>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSeriesPoint {
    /// The bucket's start; it holds `[start, start + bucket)`.
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub totals: UsageTotalsBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSeries {
    pub org_id: Uuid,
    pub bucket: SeriesBucket,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every bucket from the one holding `from` to the one holding the last
    /// instant before `to`, oldest first; a bucket without requests is zeros.
    pub buckets: Vec<UsageSeriesPoint>,
}

/// Nearest-rank percentiles read from a log-scale histogram: each is within
/// `relative_error` of the exact percentile. The mean is exact.
#[derive(Debug, Serialize, ToSchema)]
pub struct DurationStatsBody {
    pub count: i64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl From<DurationStats> for DurationStatsBody {
    fn from(d: DurationStats) -> Self {
        DurationStatsBody {
            count: d.count,
            avg_ms: d.avg_ms,
            p50_ms: d.p50_ms,
            p95_ms: d.p95_ms,
            p99_ms: d.p99_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DurationGroup {
    /// The group's value (see `UsageGroupTotals.key`).
    pub key: Option<String>,
    #[serde(flatten)]
    pub stats: DurationStatsBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePercentiles {
    pub org_id: Uuid,
    pub group_by: UsageGroup,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The largest relative error of a percentile (0.01: 1%).
    pub relative_error: f64,
    pub overall: DurationStatsBody,
    pub groups_total: usize,
    pub groups: Vec<DurationGroup>,
}

/// The body of `POST /api/v1/models/discover`; every field is optional and
/// the body may be left out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// Days of usage to scan: 1 to 365, default 30.
    pub lookback_days: Option<i64>,
    /// Risk tier of the drafts created; default `tier_4`.
    pub auto_assign_tier: Option<RiskTier>,
    /// Report what would be created without creating it; default false.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveredStatusBody {
    /// A draft was created (in a dry run: would be).
    Created,
    /// The inventory already has the model.
    Existing,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredModelBody {
    /// The model name as clients requested it through the gateway.
    pub model_id: String,
    /// The inventory's provider for an existing model; for a new one,
    /// inferred from the name (`unknown` when no pattern matches).
    pub provider: String,
    pub status: DiscoveredStatusBody,
    /// `draft` for a created model; the inventory's for an existing one.
    pub validation_status: String,
    /// `auto_assign_tier` for a created model; the inventory's for an existing one.
    pub risk_tier: String,
    /// The earliest request in the look-back window.
    pub first_seen_at: Option<DateTime<Utc>>,
    /// The latest request in the look-back window.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Requests in the look-back window (named after the default window of
    /// 30 days, whatever `lookback_days` is).
    pub request_count_30d: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoverResponse {
    /// Distinct model names found in usage.
    pub discovered: usize,
    /// Drafts created (in a dry run: that would be created).
    pub created: usize,
    /// Models the inventory already has (skipped).
    pub existing: usize,
    pub dry_run: bool,
    /// Most requested first.
    pub models: Vec<DiscoveredModelBody>,
}

/// The gateway's request records of the org, newest first, with the
/// filtered total. Needs `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage", tag = "usage", params(UsageListQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UsageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn list_usage(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UsageListQuery>,
) -> ApiResult<Json<UsageList>> {
    let page = Page::parse(q.limit, q.offset)?;
    let listed = usage::list(&s.store, &p, q.filters(), page).await?;
    Ok(Json(UsageList {
        total: listed.total,
        limit: page.limit,
        offset: page.offset,
        records: listed.items,
    }))
}

/// Totals grouped by one dimension: requests, errors, tokens, cost and mean
/// latency. Whole hours and days are read from rollups, so the cost does
/// not grow with the number of records. Needs `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage/aggregate", tag = "usage", params(AggregateQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UsageAggregate), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn aggregate_usage(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AggregateQuery>,
) -> ApiResult<Json<UsageAggregate>> {
    let group_by = q.group_by.unwrap_or_default();
    let a = usage::aggregate(&s.store, &p, q.filters(), group_by, q.limit).await?;
    Ok(Json(UsageAggregate {
        org_id: a.org_id,
        group_by: a.group_by,
        from: q.from,
        to: q.to,
        totals: a.totals.into(),
        groups_total: a.groups_total,
        groups: a
            .groups
            .into_iter()
            .map(|(key, totals)| UsageGroupTotals {
                key,
                totals: totals.into(),
            })
            .collect(),
    }))
}

/// Totals per UTC minute, hour or day over `[from, to)` (default: the last
/// 60 minutes, 24 hours or 30 days up to now), every bucket listed, at most
/// 10,000. Minute buckets are counted from the records themselves. Needs
/// `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage/series", tag = "usage", params(SeriesQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UsageSeries), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn usage_series(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SeriesQuery>,
) -> ApiResult<Json<UsageSeries>> {
    let bucket = q.bucket.unwrap_or_default();
    let series = usage::series(&s.store, &p, q.filters(), bucket).await?;
    Ok(Json(UsageSeries {
        org_id: series.org_id,
        bucket: series.bucket,
        from: series.from,
        to: series.to,
        buckets: series
            .points
            .into_iter()
            .map(|(start, totals)| UsageSeriesPoint {
                start,
                totals: totals.into(),
            })
            .collect(),
    }))
}

fn percentile_body(q: &PercentileQuery, answer: usage::Percentiles) -> UsagePercentiles {
    UsagePercentiles {
        org_id: answer.org_id,
        group_by: answer.group_by,
        from: q.from,
        to: q.to,
        relative_error: RELATIVE_ERROR,
        overall: answer.overall.into(),
        groups_total: answer.groups_total,
        groups: answer
            .groups
            .into_iter()
            .map(|(key, stats)| DurationGroup {
                key,
                stats: stats.into(),
            })
            .collect(),
    }
}

/// Latency (arrival to the last byte) p50/p95/p99, count and mean, overall
/// and per group. Percentiles are nearest-rank, read from a log-scale
/// histogram, within 1% of the exact value. Needs `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage/latency", tag = "usage", params(PercentileQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UsagePercentiles), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn usage_latency(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PercentileQuery>,
) -> ApiResult<Json<UsagePercentiles>> {
    let answer = usage::percentiles(
        &s.store,
        &p,
        q.filters(),
        q.group_by.unwrap_or_default(),
        q.limit,
        DurationKind::Latency,
    )
    .await?;
    Ok(Json(percentile_body(&q, answer)))
}

/// Time to first token of streamed requests: p50/p95/p99, count and mean,
/// overall and per group, like `/latency`. Needs `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage/ttft", tag = "usage", params(PercentileQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = UsagePercentiles), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn usage_ttft(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<PercentileQuery>,
) -> ApiResult<Json<UsagePercentiles>> {
    let answer = usage::percentiles(
        &s.store,
        &p,
        q.filters(),
        q.group_by.unwrap_or_default(),
        q.limit,
        DurationKind::Ttft,
    )
    .await?;
    Ok(Json(percentile_body(&q, answer)))
}

/// The export's columns, in order.
pub(crate) const USAGE_CSV_COLUMNS: [&str; 21] = [
    "id",
    "created_at",
    "org_id",
    "key_id",
    "user_id",
    "endpoint",
    "requested_model",
    "route",
    "upstream",
    "upstream_model",
    "status",
    "http_status",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "attempts",
    "error",
];

fn usage_record(r: &UsageRecord) -> [String; 21] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let float = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    [
        r.id.to_string(),
        r.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        r.org_id.to_string(),
        r.key_id.to_string(),
        r.user_id.map(|u| u.to_string()).unwrap_or_default(),
        r.endpoint.as_str().to_owned(),
        r.requested_model.clone(),
        text(&r.route),
        text(&r.upstream),
        text(&r.upstream_model),
        r.status.as_str().to_owned(),
        r.http_status.to_string(),
        r.stream.to_string(),
        num(r.prompt_tokens),
        num(r.completion_tokens),
        num(r.total_tokens),
        float(r.cost_usd),
        r.latency_ms.to_string(),
        float(r.ttft_ms),
        r.attempts.to_string(),
        text(&r.error),
    ]
}

fn csv_chunk(records: &[UsageRecord]) -> Result<Bytes, csv::Error> {
    let mut w = csv_writer(0);
    for r in records {
        w.write_record(usage_record(r))?;
    }
    w.into_inner()
        .map(Bytes::from)
        .map_err(|e| e.into_error().into())
}

/// The org's records under the filters as CSV (RFC 4180, a header row,
/// CRLF line ends), newest first, streamed in batches so memory stays flat.
/// Needs `admin`.
#[utoipa::path(get, path = "/api/v1/admin/usage/export", tag = "usage", params(UsageExportQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String, description = "CSV with a header row; `Content-Disposition: attachment; filename=\"usage-<date>.csv\"`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody, description = "org_not_found")))]
async fn export_usage(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<UsageExportQuery>,
) -> ApiResult<Response> {
    let batches = usage::export(&s.store, &p, q.filters())?;
    let mut header = csv_writer(0);
    // Writing into memory cannot fail; if it ever did, it is our bug.
    header.write_record(USAGE_CSV_COLUMNS).map_err(|e| {
        tracing::error!(error = %e, "could not write the CSV header");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
    })?;
    let header = header.into_inner().map(Bytes::from).unwrap_or_default();
    let to_io = |e: String| {
        tracing::error!(error = %e, "usage export aborted");
        std::io::Error::other(e)
    };
    let rows = batches.map(move |batch| {
        batch
            .map_err(|e| to_io(e.to_string()))
            .and_then(|b| csv_chunk(&b).map_err(|e| to_io(e.to_string())))
    });
    let stream = futures::stream::once(async move { Ok(header) }).chain(rows);
    let date = Utc::now().format("%Y-%m-%d");
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"usage-{date}.csv\"")) {
        response.headers_mut().insert(CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Scans the last `lookback_days` of gateway usage for model names the
/// inventory lacks and creates a `draft` entry for each, with
/// `auto_assign_tier` and a provider inferred from the name (OpenAI,
/// Anthropic, Google, Cohere, Meta, Mistral, xAI, DeepSeek and Alibaba
/// patterns; `unknown` otherwise). Each draft is created, linked to the
/// catalog and audited exactly as `POST /api/v1/models` would. A name is
/// already present when an inventory `model_id` equals it ignoring case,
/// equals its last `/` segment, or is another name of the same catalog
/// model. Requests refused as invalid do not count. Needs `registry:write`.
#[utoipa::path(post, path = "/api/v1/models/discover", tag = "models", request_body(content = DiscoverRequest, description = "Optional"),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DiscoverResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn discover_models(
    State(s): State<AppState>,
    Auth(p): Auth,
    OptionalJson(body): OptionalJson<DiscoverRequest>,
) -> ApiResult<Json<DiscoverResponse>> {
    let body = body.unwrap_or_default();
    let found = usage::discover(
        &s.store,
        &p,
        DiscoverInput {
            lookback_days: body.lookback_days,
            auto_assign_tier: body.auto_assign_tier,
            dry_run: body.dry_run,
        },
    )
    .await?;
    Ok(Json(DiscoverResponse {
        discovered: found.discovered,
        created: found.created,
        existing: found.existing,
        dry_run: found.dry_run,
        models: found
            .models
            .into_iter()
            .map(|m| DiscoveredModelBody {
                model_id: m.model_id,
                provider: m.provider,
                status: match m.status {
                    DiscoveredStatus::Created => DiscoveredStatusBody::Created,
                    DiscoveredStatus::Existing => DiscoveredStatusBody::Existing,
                },
                validation_status: m.validation_status,
                risk_tier: m.risk_tier,
                first_seen_at: m.first_seen_at,
                last_seen_at: m.last_seen_at,
                request_count_30d: m.request_count,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_row_has_one_value_per_column_in_order() {
        let record = UsageRecord {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            key_id: Uuid::nil(),
            user_id: None,
            endpoint: Endpoint::ChatCompletions,
            requested_model: "gpt-4o".into(),
            route: None,
            upstream: Some("openai:https://api.openai.com/v1".into()),
            upstream_model: None,
            status: UsageStatus::Ok,
            http_status: 200,
            stream: true,
            prompt_tokens: Some(3),
            completion_tokens: None,
            total_tokens: Some(3),
            cost_usd: Some(0.5),
            latency_ms: 12.5,
            ttft_ms: Some(4.0),
            attempts: 1,
            error: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let row = usage_record(&record);
        let at = |c: &str| {
            USAGE_CSV_COLUMNS
                .iter()
                .position(|x| *x == c)
                .map(|i| row[i].clone())
        };
        assert_eq!(at("requested_model").as_deref(), Some("gpt-4o"));
        assert_eq!(at("stream").as_deref(), Some("true"));
        assert_eq!(at("completion_tokens").as_deref(), Some(""));
        assert_eq!(at("cost_usd").as_deref(), Some("0.5"));
        assert_eq!(at("created_at").as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(at("http_status").as_deref(), Some("200"));
    }
}
