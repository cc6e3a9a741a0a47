//! Catalog use cases: read by any valid key, written by ingestion and by
//! `superadmin` keys (whose edits are marked `manual` and win over every
//! source).

use modelplane_domain::catalog::{
    apply_manual, normalize, Alias, CatalogChange, CatalogModel, FieldChange, ModelFacts,
    Provenance, Provider, MANUAL,
};
use modelplane_domain::key::Scope;
use modelplane_domain::page::Page;
use modelplane_domain::time;
use modelplane_domain::ValidationError;
use modelplane_store::{
    CatalogFilter, CatalogSort, Listing, Modified, ProviderSummary, ResolveCandidate, Store,
};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::{new_id, Entity, Listed, Principal, ServiceError};

/// One catalog model with its names and what each source said.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogView {
    pub model: CatalogModel,
    pub aliases: Vec<Alias>,
    pub listings: Vec<Listing>,
}

pub async fn list(
    store: &Store,
    filter: &CatalogFilter,
    sort: Option<CatalogSort>,
    page: Page,
) -> Result<Listed<CatalogModel>> {
    Ok(store.list_catalog(filter, sort, page).await?.into())
}

pub async fn get(store: &Store, id: uuid::Uuid) -> Result<CatalogView> {
    let model = store
        .get_catalog(id)
        .await?
        .ok_or(ServiceError::NotFound(Entity::CatalogModel))?;
    let aliases = store.catalog_aliases(id).await?;
    let listings = store.catalog_listings(id).await?;
    Ok(CatalogView {
        model,
        aliases,
        listings,
    })
}

pub async fn history(store: &Store, id: uuid::Uuid, page: Page) -> Result<Listed<CatalogChange>> {
    if store.get_catalog(id).await?.is_none() {
        return Err(ServiceError::NotFound(Entity::CatalogModel));
    }
    Ok(store.catalog_history(id, page).await?.into())
}

pub async fn providers(store: &Store) -> Result<Vec<ProviderSummary>> {
    Ok(store.catalog_providers().await?)
}

/// How a resolve query matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Normalized,
    Substring,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Normalized => "normalized",
            Self::Substring => "substring",
        }
    }

    pub fn confidence(self) -> f64 {
        match self {
            Self::Exact => 1.0,
            Self::Normalized => 0.8,
            Self::Substring => 0.5,
        }
    }
}

/// The catalog model a string names, how sure we are, and where the model
/// is deprecated or sunset, what replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub model: CatalogModel,
    pub kind: MatchKind,
    pub matched: String,
    pub matched_source: String,
    pub replacement: Option<CatalogModel>,
    /// Other models the string could mean, best first.
    pub alternatives: Vec<CatalogModel>,
}

/// Maps any model string to a catalog model: exact id or alias (1.0), then
/// normalized form (0.8: case, date and version suffixes, provider and
/// platform prefixes), then substring of an id (0.5).
pub async fn resolve(store: &Store, q: &str) -> Result<Option<Resolution>> {
    let q = q.trim();
    if q.is_empty() {
        return Err(ValidationError::new("q", "must not be empty").into());
    }
    if q.chars().count() > 300 {
        return Err(ValidationError::new("q", "must be at most 300 characters").into());
    }
    let mut found = None;
    let exact = store.resolve_exact(q).await?;
    if !exact.is_empty() {
        found = Some((MatchKind::Exact, exact));
    } else {
        let n = normalize(q);
        if !n.is_empty() {
            let normalized = store.resolve_normalized(&n).await?;
            if !normalized.is_empty() {
                found = Some((MatchKind::Normalized, normalized));
            } else if n.len() >= 3 {
                let sub = store.resolve_substring(&n).await?;
                if !sub.is_empty() {
                    found = Some((MatchKind::Substring, sub));
                }
            }
        }
    }
    let Some((kind, mut candidates)) = found else {
        return Ok(None);
    };
    rank(&mut candidates, q);
    let best = candidates.remove(0);
    let mut alternatives: Vec<CatalogModel> = Vec::new();
    for c in candidates {
        if c.model.id != best.model.id && !alternatives.iter().any(|m| m.id == c.model.id) {
            alternatives.push(c.model);
        }
    }
    alternatives.truncate(10);
    let replacement = replacement_of(store, &best.model).await?;
    Ok(Some(Resolution {
        model: best.model,
        kind,
        matched: best.matched,
        matched_source: best.matched_source,
        replacement,
        alternatives,
    }))
}

/// The catalog model an upstream serves, for pricing and lifecycle: the
/// provider's own entry of that id, else an exact or normalized match of
/// `provider/model`, else an exact id or alias of the bare model, else a
/// normalized match of the same provider (engines serve models under their
/// own names, so only the bare model counts for them). Never a substring
/// guess: a wrong price is worse than none.
pub async fn identify(
    store: &Store,
    provider: &str,
    model: &str,
    engine: bool,
) -> Result<Option<CatalogModel>> {
    let model = model.trim();
    if model.is_empty() || model.chars().count() > 300 {
        return Ok(None);
    }
    let slug = Provider::from_name(provider).slug;
    if !engine {
        if let Some(m) = store.get_catalog_by_key(&slug, model).await? {
            return Ok(Some(m));
        }
    }
    let q = if engine {
        model.to_owned()
    } else {
        format!("{slug}/{model}")
    };
    let mut candidates = store.resolve_exact(&q).await?;
    if candidates.is_empty() && !engine {
        // An exact id or alias names one model wherever it is served
        // (a router or a cloud reselling another provider's model).
        candidates = store.resolve_exact(model).await?;
    }
    if candidates.is_empty() {
        let n = normalize(&q);
        if !n.is_empty() {
            candidates = store.resolve_normalized(&n).await?;
            if !engine {
                candidates.retain(|c| c.model.provider == slug);
            }
        }
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    rank(&mut candidates, &q);
    Ok(Some(candidates.remove(0).model))
}

/// Best candidate first: a match on the model's own id over an alias, a
/// listed model over an unlisted one, an active over a retired one, a
/// provider's own name over a platform's, then the shortest id.
fn rank(candidates: &mut [ResolveCandidate], q: &str) {
    let provider_hint = q.split_once('/').map(|(p, _)| Provider::from_name(p).slug);
    candidates.sort_by_key(|c| {
        (
            provider_hint
                .as_deref()
                .is_some_and(|p| p != c.model.provider),
            c.matched_source != "model_id",
            !c.model.listed,
            c.model.lifecycle() != modelplane_domain::catalog::Lifecycle::Active,
            Provider::known(&c.model.provider).is_none(),
            c.model.model_id.len(),
            c.model.model_id.clone(),
        )
    });
}

/// The recommended replacement of a deprecated or sunset model: its first
/// listed replacement that the catalog knows, preferring the same provider.
async fn replacement_of(store: &Store, model: &CatalogModel) -> Result<Option<CatalogModel>> {
    if model.lifecycle() == modelplane_domain::catalog::Lifecycle::Active {
        return Ok(None);
    }
    for name in model.facts.replacement_models.iter().flatten() {
        if let Some(m) = store.get_catalog_by_key(&model.provider, name).await? {
            return Ok(Some(m));
        }
        let mut exact = store.resolve_exact(name).await?;
        if exact.is_empty() {
            exact = store.resolve_normalized(&normalize(name)).await?;
        }
        if !exact.is_empty() {
            rank(&mut exact, &format!("{}/{name}", model.provider));
            return Ok(Some(exact.remove(0).model));
        }
    }
    Ok(None)
}

/// For each inventory entry (`provider`, `model_id`), the catalog model it
/// links to by itself: the same provider and id, then an id or alias of
/// that provider equal to it, then one equal once normalized
/// (`gpt-4o-2024-08-06` → `gpt-4o` only when no dated entry exists). All
/// entries are resolved from one batch of candidates.
pub async fn link_many(
    store: &Store,
    entries: &[(&str, &str)],
) -> Result<Vec<Option<CatalogModel>>> {
    let wanted: Vec<(String, String, String)> = entries
        .iter()
        .map(|(provider, model_id)| {
            let model_id = model_id.trim();
            (
                Provider::from_name(provider).slug,
                model_id.to_owned(),
                normalize(model_id),
            )
        })
        .collect();
    let keys: Vec<(String, String)> = wanted
        .iter()
        .filter(|(slug, id, _)| !slug.is_empty() && !id.is_empty())
        .map(|(_, id, n)| (id.clone(), n.clone()))
        .collect();
    if keys.is_empty() {
        return Ok(vec![None; entries.len()]);
    }
    let candidates = store.resolve_many(&keys).await?;
    Ok(wanted
        .iter()
        .map(|(slug, id, normalized)| {
            if slug.is_empty() || id.is_empty() {
                return None;
            }
            let ours = || candidates.iter().filter(|c| &c.model.provider == slug);
            if let Some(c) = ours().find(|c| &c.model.model_id == id) {
                return Some(c.model.clone());
            }
            if let Some(c) = ours().find(|c| &c.matched == id) {
                return Some(c.model.clone());
            }
            if normalized.is_empty() {
                return None;
            }
            let mut same: Vec<ResolveCandidate> = ours()
                .filter(|c| {
                    normalize(&c.matched) == *normalized
                        || normalize(&c.model.model_id) == *normalized
                })
                .cloned()
                .collect();
            if same.is_empty() {
                return None;
            }
            rank(&mut same, id);
            Some(same.remove(0).model)
        })
        .collect())
}

/// A model added by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogCreate {
    pub provider: String,
    pub model_id: String,
    pub facts: Map<String, Value>,
    pub aliases: Vec<Alias>,
}

pub async fn create(
    store: &Store,
    principal: &Principal,
    input: CatalogCreate,
) -> Result<CatalogView> {
    principal.require(Scope::Superadmin)?;
    let provider = Provider::from_name(&input.provider).slug;
    if provider.is_empty() {
        return Err(ValidationError::new("provider", "must name a provider").into());
    }
    let model_id = modelplane_domain::error::required_text("model_id", &input.model_id, 300)?;
    if store
        .get_catalog_by_key(&provider, &model_id)
        .await?
        .is_some()
    {
        return Err(ServiceError::AlreadyExists {
            entity: Entity::CatalogModel,
            message: format!("catalog model {provider}/{model_id} already exists"),
        });
    }
    let now = time::now();
    let merged = apply_manual(
        &ModelFacts::default(),
        &Provenance::new(),
        &input.facts,
        now,
    )?;
    let mut model = CatalogModel::new(new_id(), &provider, &model_id, now);
    model.facts = merged.facts;
    model.provenance = merged.provenance;
    let aliases: Vec<Alias> = input
        .aliases
        .into_iter()
        .map(|a| {
            let source = if a.source.is_empty() {
                MANUAL.to_owned()
            } else {
                a.source
            };
            Alias::new(a.alias, source)
        })
        .collect();
    if !store
        .insert_catalog_model(&model, &aliases, &merged.changes)
        .await?
    {
        return Err(ServiceError::AlreadyExists {
            entity: Entity::CatalogModel,
            message: format!("catalog model {provider}/{model_id} already exists"),
        });
    }
    get(store, model.id).await
}

/// An admin's edit of catalog facts: each named field takes the value (null
/// clears it) and is marked `manual`, so ingestion never overwrites it.
pub async fn update(
    store: &Store,
    principal: &Principal,
    id: uuid::Uuid,
    edits: Map<String, Value>,
) -> Result<CatalogView> {
    principal.require(Scope::Superadmin)?;
    let now = time::now();
    let outcome = store
        .modify_catalog(id, |current| {
            let merged = apply_manual(&current.facts, &current.provenance, &edits, now)?;
            let mut next = current;
            let before = next.provenance.clone();
            next.facts = merged.facts;
            next.provenance = merged.provenance;
            if merged.changes.is_empty() && next.provenance == before {
                return Ok::<_, ValidationError>(None);
            }
            next.updated_at = now;
            let changes: Vec<FieldChange> = merged.changes;
            Ok(Some((next, changes)))
        })
        .await?;
    match outcome {
        Modified::NotFound => Err(ServiceError::NotFound(Entity::CatalogModel)),
        Modified::Rejected(e) => Err(e.into()),
        Modified::Unchanged(_) | Modified::Written(_) => get(store, id).await,
    }
}
