//! Usage: what the gateway metered, for admins (records, totals, time
//! series, latency and time-to-first-token percentiles, CSV export), and
//! discovery of models in use that the inventory lacks.
//!
//! Every usage read needs `admin` and reads one org: the caller's, or for a
//! superadmin the org it names. Discovery needs `registry:write` and creates
//! its drafts through [`models::create`], so each is validated, linked to
//! the catalog and audited exactly as `POST /api/v1/models` would.

use std::collections::{BTreeMap, HashMap};

use futures::Stream;
use uuid::Uuid;

use modelplane_domain::catalog::normalize;
use modelplane_domain::discovery::{check_lookback, infer_provider};
use modelplane_domain::error::required_text;
use modelplane_domain::histogram::{Histogram, P50, P95, P99};
use modelplane_domain::key::Scope;
use modelplane_domain::model::{ModelCreate, RiskTier, ValidationStatus, MODEL_ID_MAX};
use modelplane_domain::page::Page;
use modelplane_domain::time::{from_micros, now, to_micros, Timestamp};
use modelplane_domain::usage::{Endpoint, UsageRecord, UsageStatus};
use modelplane_domain::usage_query::{
    check_range, series_starts, SeriesBucket, Span, UsageGroup, DAY_MICROS,
};
use modelplane_domain::ValidationError;
use modelplane_store::{
    DurationKind, InventoryName, Store, StoreError, UsageDurations, UsageFilter, UsageTotals,
};

use crate::error::{Result, ServiceError};
use crate::{models, Listed, Principal};

/// Groups an aggregate or percentile answer lists by default, and at most.
pub const DEFAULT_GROUPS: i64 = 100;
pub const MAX_GROUPS: i64 = 1000;

/// The filters every usage read takes.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Another org (superadmin only).
    pub org_id: Option<Uuid>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The requested model, exactly.
    pub model: Option<String>,
    pub key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub route: Option<String>,
    pub upstream: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub status: Option<UsageStatus>,
    pub stream: Option<bool>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// The org a usage read acts on and its store filter, after the scope and
/// tenancy checks.
fn prepare(p: &Principal, q: UsageQuery) -> Result<(Uuid, UsageFilter)> {
    p.require(Scope::Admin)?;
    let org_id = p.target_org(q.org_id)?;
    let span = check_range(q.from, q.to)?;
    Ok((
        org_id,
        UsageFilter {
            span,
            model: non_empty(q.model),
            key_id: q.key_id,
            user_id: q.user_id,
            route: non_empty(q.route),
            upstream: non_empty(q.upstream),
            endpoint: q.endpoint,
            status: q.status,
            except_status: None,
            stream: q.stream,
        },
    ))
}

/// Checks how many groups an answer may list: 1 to [`MAX_GROUPS`].
pub fn check_groups(limit: Option<i64>) -> Result<usize> {
    let limit = limit.unwrap_or(DEFAULT_GROUPS);
    if !(1..=MAX_GROUPS).contains(&limit) {
        return Err(
            ValidationError::new("limit", format!("must be between 1 and {MAX_GROUPS}")).into(),
        );
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

/// Sums over a set of requests, as answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub requests: i64,
    /// Requests whose status is not `ok`.
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    /// None when there were no requests.
    pub avg_latency_ms: Option<f64>,
}

impl From<&UsageTotals> for Totals {
    fn from(t: &UsageTotals) -> Self {
        Totals {
            requests: t.requests,
            errors: t.errors,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            total_tokens: t.total_tokens,
            cost_usd: t.cost_usd,
            avg_latency_ms: (t.requests > 0).then(|| t.latency_sum_ms / t.requests as f64),
        }
    }
}

/// '' (an absent user, route or upstream) is None.
fn group_key(key: String) -> Option<String> {
    (!key.is_empty()).then_some(key)
}

/// One page of the org's records, newest first, with the filtered total.
pub async fn list(
    store: &Store,
    p: &Principal,
    q: UsageQuery,
    page: Page,
) -> Result<Listed<UsageRecord>> {
    let (org_id, filter) = prepare(p, q)?;
    Ok(store.list_usage(org_id, &filter, page).await?.into())
}

/// Totals grouped by one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub org_id: Uuid,
    pub group_by: UsageGroup,
    pub totals: Totals,
    /// How many groups there are; `groups` holds the largest `limit`.
    pub groups_total: usize,
    /// Most requests first (then by key).
    pub groups: Vec<(Option<String>, Totals)>,
}

pub async fn aggregate(
    store: &Store,
    p: &Principal,
    q: UsageQuery,
    group_by: UsageGroup,
    limit: Option<i64>,
) -> Result<Aggregate> {
    let (org_id, filter) = prepare(p, q)?;
    let limit = check_groups(limit)?;
    let groups = store.usage_totals(org_id, &filter, Some(group_by)).await?;
    let mut all = UsageTotals::default();
    groups.values().for_each(|t| all.add(t));
    let mut groups: Vec<(String, UsageTotals)> = groups.into_iter().collect();
    groups.sort_by(|(ka, a), (kb, b)| b.requests.cmp(&a.requests).then_with(|| ka.cmp(kb)));
    Ok(Aggregate {
        org_id,
        group_by,
        totals: Totals::from(&all),
        groups_total: groups.len(),
        groups: groups
            .into_iter()
            .take(limit)
            .map(|(k, t)| (group_key(k), Totals::from(&t)))
            .collect(),
    })
}

/// Totals per time bucket, every bucket of the range listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub org_id: Uuid,
    pub bucket: SeriesBucket,
    pub from: Timestamp,
    pub to: Timestamp,
    /// (bucket start, totals), oldest first; empty buckets are zeros.
    pub points: Vec<(Timestamp, Totals)>,
}

/// A series over `[from, to)`: `to` defaults to now and `from` to the
/// bucket's default window before `to`.
pub async fn series(
    store: &Store,
    p: &Principal,
    mut q: UsageQuery,
    bucket: SeriesBucket,
) -> Result<Series> {
    let to = q.to.unwrap_or_else(now);
    let from = q
        .from
        .unwrap_or_else(|| from_micros(to_micros(&to).saturating_sub(bucket.default_window())));
    (q.from, q.to) = (Some(from), Some(to));
    let (org_id, filter) = prepare(p, q)?;
    let starts = series_starts(bucket, to_micros(&from), to_micros(&to))?;
    let found = store.usage_series(org_id, &filter, bucket).await?;
    let points = starts
        .into_iter()
        .map(|start| {
            let totals = found.get(&start).cloned().unwrap_or_default();
            (from_micros(start), Totals::from(&totals))
        })
        .collect();
    Ok(Series {
        org_id,
        bucket,
        from,
        to,
        points,
    })
}

/// Percentiles of a duration, read from its histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationStats {
    pub count: i64,
    /// The exact mean.
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl From<&UsageDurations> for DurationStats {
    fn from(d: &UsageDurations) -> Self {
        let h: &Histogram = &d.histogram;
        DurationStats {
            count: d.count,
            avg_ms: (d.count > 0).then(|| d.sum_ms / d.count as f64),
            p50_ms: h.percentile(P50),
            p95_ms: h.percentile(P95),
            p99_ms: h.percentile(P99),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Percentiles {
    pub org_id: Uuid,
    pub group_by: UsageGroup,
    pub overall: DurationStats,
    pub groups_total: usize,
    /// Most requests first (then by key).
    pub groups: Vec<(Option<String>, DurationStats)>,
}

/// Percentiles of latency (every request) or time to first token
/// (streamed requests that have one), overall and per group.
pub async fn percentiles(
    store: &Store,
    p: &Principal,
    q: UsageQuery,
    group_by: UsageGroup,
    limit: Option<i64>,
    kind: DurationKind,
) -> Result<Percentiles> {
    let (org_id, filter) = prepare(p, q)?;
    let limit = check_groups(limit)?;
    let groups = store
        .usage_durations(org_id, &filter, Some(group_by), kind)
        .await?;
    let mut all = UsageDurations::default();
    for d in groups.values() {
        all.count += d.count;
        all.sum_ms += d.sum_ms;
        all.histogram.merge(&d.histogram);
    }
    let mut groups: Vec<(String, UsageDurations)> = groups.into_iter().collect();
    groups.sort_by(|(ka, a), (kb, b)| b.count.cmp(&a.count).then_with(|| ka.cmp(kb)));
    Ok(Percentiles {
        org_id,
        group_by,
        overall: DurationStats::from(&all),
        groups_total: groups.len(),
        groups: groups
            .into_iter()
            .take(limit)
            .map(|(k, d)| (group_key(k), DurationStats::from(&d)))
            .collect(),
    })
}

/// Every record under the filters, newest first, in batches.
pub fn export(
    store: &Store,
    p: &Principal,
    q: UsageQuery,
) -> Result<impl Stream<Item = Result<Vec<UsageRecord>, StoreError>> + Send + 'static> {
    let (org_id, filter) = prepare(p, q)?;
    Ok(store.stream_usage(org_id, filter))
}

/// What a discovery request asks.
#[derive(Debug, Clone, Default)]
pub struct DiscoverInput {
    /// 1 to 365; 30 by default.
    pub lookback_days: Option<i64>,
    /// The tier of the drafts it creates; `tier_4` by default.
    pub auto_assign_tier: Option<RiskTier>,
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveredStatus {
    /// Created now (or, in a dry run, would be).
    Created,
    /// The inventory has it already.
    Existing,
}

impl DiscoveredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Existing => "existing",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredModel {
    /// The model name as requested through the gateway.
    pub model_id: String,
    /// The inventory's provider when it has the model, else inferred.
    pub provider: String,
    pub status: DiscoveredStatus,
    pub validation_status: String,
    pub risk_tier: String,
    pub first_seen_at: Option<Timestamp>,
    pub last_seen_at: Option<Timestamp>,
    /// Requests in the look-back window.
    pub request_count: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub discovered: usize,
    pub created: usize,
    pub existing: usize,
    pub dry_run: bool,
    pub models: Vec<DiscoveredModel>,
}

/// Finds the models requested through the gateway in the last
/// `lookback_days` (refused requests — status `invalid` — do not count)
/// and creates a draft inventory entry, with the inferred provider and
/// `auto_assign_tier`, for each the inventory lacks. A name counts as
/// present when an inventory `model_id` equals it ignoring ASCII case,
/// equals its last `/` segment (`openai/gpt-4o`), or equals any name of the
/// catalog model the name is an id or alias of. Names that are not valid
/// model ids are left out.
pub async fn discover(store: &Store, p: &Principal, input: DiscoverInput) -> Result<Discovery> {
    p.require(Scope::RegistryWrite)?;
    let days = check_lookback(input.lookback_days)?;
    let tier = input.auto_assign_tier.unwrap_or(RiskTier::Tier4);
    let dry_run = input.dry_run.unwrap_or(false);
    let now = to_micros(&now());
    let filter = UsageFilter {
        span: Span::new(Some(now.saturating_sub(days * DAY_MICROS)), None),
        except_status: Some(UsageStatus::Invalid),
        ..UsageFilter::default()
    };
    let seen: BTreeMap<String, UsageTotals> = store
        .usage_totals(p.org_id, &filter, Some(UsageGroup::Model))
        .await?
        .into_iter()
        .filter(|(name, _)| {
            required_text("model_id", name, MODEL_ID_MAX).is_ok_and(|valid| &valid == name)
        })
        .collect();
    let names: Vec<String> = seen.keys().cloned().collect();
    let present = in_inventory(store, p.org_id, &names).await?;

    let mut models = Vec::with_capacity(seen.len());
    for (name, totals) in seen {
        let found = match present.get(&name) {
            Some(model) => Some(model.clone()),
            None if dry_run => None,
            None => create_draft(store, p, &name, tier).await?,
        };
        let first_seen_at = totals.first_at.map(from_micros);
        let last_seen_at = totals.last_at.map(from_micros);
        models.push(match found {
            Some(model) => DiscoveredModel {
                model_id: name,
                provider: model.provider,
                status: DiscoveredStatus::Existing,
                validation_status: model.validation_status,
                risk_tier: model.risk_tier,
                first_seen_at,
                last_seen_at,
                request_count: totals.requests,
            },
            None => DiscoveredModel {
                provider: infer_provider(&name).to_owned(),
                model_id: name,
                status: DiscoveredStatus::Created,
                validation_status: ValidationStatus::Draft.as_str().to_owned(),
                risk_tier: tier.as_str().to_owned(),
                first_seen_at,
                last_seen_at,
                request_count: totals.requests,
            },
        });
    }
    models.sort_by(|a, b| {
        b.request_count
            .cmp(&a.request_count)
            .then_with(|| a.model_id.cmp(&b.model_id))
    });
    let created = models
        .iter()
        .filter(|m| m.status == DiscoveredStatus::Created)
        .count();
    Ok(Discovery {
        discovered: models.len(),
        created,
        existing: models.len() - created,
        dry_run,
        models,
    })
}

/// Creates the draft of a discovered model the way `POST /api/v1/models`
/// does. None when it was created; the existing entry when another request
/// created it meanwhile.
async fn create_draft(
    store: &Store,
    p: &Principal,
    name: &str,
    tier: RiskTier,
) -> Result<Option<InventoryName>> {
    let input = ModelCreate {
        model_id: name.to_owned(),
        provider: infer_provider(name).to_owned(),
        risk_tier: tier,
        display_name: None,
        validation_status: Some(ValidationStatus::Draft),
        owner: None,
        description: None,
        tags: Default::default(),
        intended_use: None,
        limitations: None,
        developer: None,
        validator: None,
        vendor: None,
        last_validated_at: None,
        next_review_at: None,
        catalog_id: None,
        department_ids: Vec::new(),
        sections: Default::default(),
    };
    match models::create(store, p, input).await {
        Ok(_) => Ok(None),
        Err(ServiceError::AlreadyExists { .. }) => Ok(store
            .inventory_named(p.org_id, &[name.to_ascii_lowercase()])
            .await?
            .into_iter()
            .next()),
        Err(e) => Err(e),
    }
}

/// Which of `names` the org's inventory has, each with the inventory entry
/// that stands for it.
async fn in_inventory(
    store: &Store,
    org_id: Uuid,
    names: &[String],
) -> Result<HashMap<String, InventoryName>> {
    // Lower-case forms each name may be known by: itself, and its last
    // `/` segment.
    let mut forms: HashMap<String, Vec<String>> = HashMap::new();
    for name in names {
        let lower = name.to_ascii_lowercase();
        let mut own = vec![lower.clone()];
        if let Some((_, tail)) = lower.rsplit_once('/') {
            if !tail.is_empty() {
                own.push(tail.to_owned());
            }
        }
        forms.insert(name.clone(), own);
    }
    let mut present = match_forms(store, org_id, &forms).await?;

    // The rest: the other names of the catalog model each is an id or alias of.
    let missing: Vec<&String> = names.iter().filter(|n| !present.contains_key(*n)).collect();
    if missing.is_empty() {
        return Ok(present);
    }
    let keys: Vec<(String, String)> = missing
        .iter()
        .map(|n| ((*n).clone(), normalize(n)))
        .collect();
    let candidates = store.resolve_many(&keys).await?;
    let ids: Vec<Uuid> = candidates.iter().map(|c| c.model.id).collect();
    let aliases = store.catalog_aliases_of(&ids).await?;
    let mut catalog_forms: HashMap<String, Vec<String>> = HashMap::new();
    for name in missing {
        let lower = name.to_ascii_lowercase();
        let mut names_of: Vec<String> = Vec::new();
        for c in candidates
            .iter()
            .filter(|c| c.matched.eq_ignore_ascii_case(name))
        {
            names_of.push(c.model.model_id.to_ascii_lowercase());
            names_of.extend(
                aliases
                    .get(&c.model.id)
                    .into_iter()
                    .flatten()
                    .map(|a| a.to_ascii_lowercase()),
            );
        }
        names_of.retain(|n| *n != lower);
        names_of.sort();
        names_of.dedup();
        if !names_of.is_empty() {
            catalog_forms.insert(name.clone(), names_of);
        }
    }
    present.extend(match_forms(store, org_id, &catalog_forms).await?);
    Ok(present)
}

/// For each name, the inventory entry whose lower-case `model_id` is one of
/// its forms (the earliest form that matches wins).
async fn match_forms(
    store: &Store,
    org_id: Uuid,
    forms: &HashMap<String, Vec<String>>,
) -> Result<HashMap<String, InventoryName>> {
    let mut wanted: Vec<String> = forms.values().flatten().cloned().collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut by_lower: HashMap<String, InventoryName> = HashMap::new();
    for model in store.inventory_named(org_id, &wanted).await? {
        // Two entries differing only in case: the smaller model_id stands for both.
        let lower = model.model_id.to_ascii_lowercase();
        match by_lower.get(&lower) {
            Some(kept) if kept.model_id <= model.model_id => {}
            _ => {
                by_lower.insert(lower, model);
            }
        }
    }
    Ok(forms
        .iter()
        .filter_map(|(name, own)| {
            own.iter()
                .find_map(|form| by_lower.get(form))
                .map(|m| (name.clone(), m.clone()))
        })
        .collect())
}
