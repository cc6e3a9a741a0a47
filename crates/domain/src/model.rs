//! The governed model inventory: one record per (org, model_id).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{optional_text, required_text};
use crate::patch::Patch;
use crate::sections::ModelSections;
use crate::time::Timestamp;
use crate::ValidationError;

/// Model-risk tier; tier_1 is the most material. The framework that defines
/// the tiers is an org setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    #[serde(rename = "tier_1")]
    Tier1,
    #[serde(rename = "tier_2")]
    Tier2,
    #[serde(rename = "tier_3")]
    Tier3,
    #[serde(rename = "tier_4")]
    Tier4,
}

impl RiskTier {
    pub const ALL: [RiskTier; 4] = [Self::Tier1, Self::Tier2, Self::Tier3, Self::Tier4];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tier1 => "tier_1",
            Self::Tier2 => "tier_2",
            Self::Tier3 => "tier_3",
            Self::Tier4 => "tier_4",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a model stands in its validation lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationStatus {
    Draft,
    PendingValidation,
    InValidation,
    NeedsRemediation,
    Validated,
    Deprecated,
}

impl ValidationStatus {
    pub const ALL: [ValidationStatus; 6] = [
        Self::Draft,
        Self::PendingValidation,
        Self::InValidation,
        Self::NeedsRemediation,
        Self::Validated,
        Self::Deprecated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::PendingValidation => "pending_validation",
            Self::InValidation => "in_validation",
            Self::NeedsRemediation => "needs_remediation",
            Self::Validated => "validated",
            Self::Deprecated => "deprecated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The one transition table of the lifecycle. Every state but
    /// `deprecated` may be deprecated; `deprecated` is final.
    pub fn allowed_targets(self) -> &'static [ValidationStatus] {
        use ValidationStatus::*;
        match self {
            Draft => &[PendingValidation, Deprecated],
            PendingValidation => &[InValidation, Draft, Deprecated],
            InValidation => &[Validated, NeedsRemediation, Deprecated],
            NeedsRemediation => &[PendingValidation, InValidation, Deprecated],
            Validated => &[InValidation, Deprecated],
            Deprecated => &[],
        }
    }

    pub fn transition(self, to: ValidationStatus) -> Result<ValidationStatus, InvalidTransition> {
        if self.allowed_targets().contains(&to) {
            Ok(to)
        } else {
            Err(InvalidTransition {
                from: self,
                to,
                allowed: self.allowed_targets().to_vec(),
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation_status cannot go from {} to {}", from.as_str(), to.as_str())]
pub struct InvalidTransition {
    pub from: ValidationStatus,
    pub to: ValidationStatus,
    pub allowed: Vec<ValidationStatus>,
}

/// One entry of an org's model inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Provider model identifier, unique within the org.
    pub model_id: String,
    /// AI vendor or infrastructure provider (openai, anthropic, azure, self-hosted…).
    pub provider: String,
    pub display_name: String,
    pub risk_tier: RiskTier,
    pub validation_status: ValidationStatus,
    /// Accountable owner: an email address or team identifier.
    pub owner: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// What the model is approved to be used for.
    pub intended_use: Option<String>,
    /// Known limitations and conditions of use.
    pub limitations: Option<String>,
    /// Who built the model (team or vendor).
    pub developer: Option<String>,
    /// Independent validator; never the owner or the developer.
    pub validator: Option<String>,
    /// Third-party vendor of the model; null for a model developed in house.
    pub vendor: Option<String>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub next_review_at: Option<DateTime<Utc>>,
    /// Last time the gateway saw a request for this model.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Incremented on every change; send it back as `If-Match` or `expected_version`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The catalog model this entry is linked to; its facts show under `catalog`.
    pub catalog_id: Option<Uuid>,
    /// The org's departments this model belongs to (sorted).
    pub department_ids: Vec<Uuid>,
    /// The org's own sections; unset ones inherit from the catalog.
    pub sections: ModelSections,
}

pub const MODEL_ID_MAX: usize = 256;
pub const PROVIDER_MAX: usize = 128;
pub const SHORT_TEXT_MAX: usize = 256;
pub const LONG_TEXT_MAX: usize = 10_000;
pub const TAGS_MAX: usize = 64;
pub const TAG_KEY_MAX: usize = 128;
pub const TAG_VALUE_MAX: usize = 512;

/// The body of a create request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCreate {
    pub model_id: String,
    pub provider: String,
    pub risk_tier: RiskTier,
    /// Defaults to `model_id`.
    pub display_name: Option<String>,
    /// Defaults to `draft`.
    pub validation_status: Option<ValidationStatus>,
    pub owner: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub intended_use: Option<String>,
    pub limitations: Option<String>,
    pub developer: Option<String>,
    pub validator: Option<String>,
    pub vendor: Option<String>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub next_review_at: Option<DateTime<Utc>>,
    /// Links the entry to a catalog model; by default it links itself when
    /// its (provider, model_id) resolves in the catalog.
    pub catalog_id: Option<Uuid>,
    /// Departments of the org the model belongs to.
    #[serde(default)]
    pub department_ids: Vec<Uuid>,
    /// The org's own sections (names, descriptions, values, providers,
    /// flags, modalities, temperature and reasoning levels, qualities,
    /// voices, pricing).
    #[serde(default)]
    pub sections: ModelSections,
}

/// The body of an update. Absent fields are left alone; `null` clears an
/// optional field (and resets `display_name` to `model_id`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelChanges {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub display_name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<RiskTier>)]
    pub risk_tier: Patch<RiskTier>,
    #[serde(default)]
    #[schema(value_type = Option<ValidationStatus>)]
    pub validation_status: Patch<ValidationStatus>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub owner: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// `PUT` replaces the whole map; `PATCH` merges it, a null value removing that key.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Option<String>>>)]
    pub tags: Patch<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub intended_use: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub limitations: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub developer: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub validator: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub vendor: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub last_validated_at: Patch<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub next_review_at: Patch<Timestamp>,
    /// Links to a catalog model; `null` unlinks.
    #[serde(default)]
    #[schema(value_type = Option<Uuid>)]
    pub catalog_id: Patch<Uuid>,
    /// Replaces the model's departments; `null` or `[]` clears them.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub department_ids: Patch<Vec<Uuid>>,
    /// Per section: a value replaces it, `null` clears it (it inherits
    /// again), absent sections are kept. `null` for the whole object clears
    /// every section.
    #[serde(default)]
    #[schema(value_type = Option<ModelSections>)]
    pub sections: Patch<serde_json::Map<String, serde_json::Value>>,
    /// The version the change was based on; a stale one is refused with 409.
    pub expected_version: Option<i64>,
}

/// How an update treats `tags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagsMode {
    /// `PUT`: the given map replaces the stored one.
    Replace,
    /// `PATCH`: keys are merged; a null value removes the key.
    Merge,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRuleError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if tags.len() > TAGS_MAX {
        return Err(ValidationError::new(
            "tags",
            format!("at most {TAGS_MAX} tags"),
        ));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > TAG_KEY_MAX {
            return Err(ValidationError::new(
                "tags",
                format!("tag keys must be 1 to {TAG_KEY_MAX} characters"),
            ));
        }
        if key.contains(':') || key.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("tags.{key}"),
                "tag keys must not contain ':' or control characters",
            ));
        }
        if value.chars().count() > TAG_VALUE_MAX || value.chars().any(char::is_control) {
            return Err(ValidationError::new(
                format!("tags.{key}"),
                format!("tag values must be at most {TAG_VALUE_MAX} characters, without control characters"),
            ));
        }
    }
    Ok(())
}

pub const DEPARTMENTS_MAX: usize = 64;

/// A model's departments: sorted, each once, bounded.
pub fn departments(mut ids: Vec<Uuid>) -> Result<Vec<Uuid>, ValidationError> {
    ids.sort_unstable();
    ids.dedup();
    if ids.len() > DEPARTMENTS_MAX {
        return Err(ValidationError::new(
            "department_ids",
            format!("at most {DEPARTMENTS_MAX} departments"),
        ));
    }
    Ok(ids)
}

/// Why a user limited to `own` departments may not edit a model of
/// `model_departments` (None: they may). Such a user may edit only models
/// whose departments are all among their own.
pub fn department_refusal(own: &[Uuid], model_departments: &[Uuid]) -> Option<String> {
    let outside: Vec<String> = model_departments
        .iter()
        .filter(|d| !own.contains(d))
        .map(Uuid::to_string)
        .collect();
    (!outside.is_empty()).then(|| {
        format!(
            "the model belongs to departments you are not in: {}",
            outside.join(", ")
        )
    })
}

/// The validator must be independent of the owner and the developer.
fn check_independence(model: &Model) -> Result<(), ValidationError> {
    let Some(validator) = model.validator.as_deref() else {
        return Ok(());
    };
    let same = |other: &Option<String>| {
        other
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case(validator))
    };
    if same(&model.owner) {
        return Err(ValidationError::new(
            "validator",
            "must be independent of the owner",
        ));
    }
    if same(&model.developer) {
        return Err(ValidationError::new(
            "validator",
            "must be independent of the developer",
        ));
    }
    Ok(())
}

fn text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ValidationError> {
    optional_text(field, value, max)
}

fn patch_text(
    field: &str,
    patch: Patch<String>,
    current: Option<String>,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match patch {
        Patch::Absent => Ok(current),
        Patch::Null => Ok(None),
        Patch::Value(v) => text(field, Some(&v), max),
    }
}

/// Builds a new model from a create request; ids and time come from the caller.
pub fn new_model(
    input: ModelCreate,
    id: Uuid,
    org_id: Uuid,
    now: Timestamp,
) -> Result<Model, ValidationError> {
    let model_id = required_text("model_id", &input.model_id, MODEL_ID_MAX)?;
    let provider = required_text("provider", &input.provider, PROVIDER_MAX)?;
    let display_name = text(
        "display_name",
        input.display_name.as_deref(),
        SHORT_TEXT_MAX,
    )?
    .unwrap_or_else(|| model_id.clone());
    validate_tags(&input.tags)?;
    input.sections.validate()?;
    let model = Model {
        id,
        org_id,
        model_id,
        provider,
        display_name,
        risk_tier: input.risk_tier,
        validation_status: input.validation_status.unwrap_or(ValidationStatus::Draft),
        owner: text("owner", input.owner.as_deref(), SHORT_TEXT_MAX)?,
        description: text("description", input.description.as_deref(), LONG_TEXT_MAX)?,
        tags: input.tags,
        intended_use: text("intended_use", input.intended_use.as_deref(), LONG_TEXT_MAX)?,
        limitations: text("limitations", input.limitations.as_deref(), LONG_TEXT_MAX)?,
        developer: text("developer", input.developer.as_deref(), SHORT_TEXT_MAX)?,
        validator: text("validator", input.validator.as_deref(), SHORT_TEXT_MAX)?,
        vendor: text("vendor", input.vendor.as_deref(), SHORT_TEXT_MAX)?,
        last_validated_at: input.last_validated_at,
        next_review_at: input.next_review_at,
        last_seen_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
        catalog_id: input.catalog_id,
        department_ids: departments(input.department_ids)?,
        sections: input.sections,
    };
    check_independence(&model)?;
    Ok(model)
}

/// Applies an update to a model. Returns `None` when nothing would change, so
/// the caller writes (and audits) nothing.
pub fn apply_changes(
    current: &Model,
    changes: ModelChanges,
    tags_mode: TagsMode,
    now: Timestamp,
) -> Result<Option<Model>, ModelRuleError> {
    let mut next = current.clone();
    match changes.display_name {
        Patch::Absent => {}
        Patch::Null => next.display_name = next.model_id.clone(),
        Patch::Value(v) => {
            next.display_name = text("display_name", Some(&v), SHORT_TEXT_MAX)?
                .unwrap_or_else(|| next.model_id.clone());
        }
    }
    match changes.risk_tier {
        Patch::Absent => {}
        Patch::Null => return Err(ValidationError::new("risk_tier", "must not be null").into()),
        Patch::Value(t) => next.risk_tier = t,
    }
    match changes.validation_status {
        Patch::Absent => {}
        Patch::Null => {
            return Err(ValidationError::new("validation_status", "must not be null").into())
        }
        Patch::Value(to) if to == current.validation_status => {}
        Patch::Value(to) => {
            next.validation_status = current.validation_status.transition(to)?;
            if to == ValidationStatus::Validated && changes.last_validated_at.is_absent() {
                next.last_validated_at = Some(now);
            }
        }
    }
    next.owner = patch_text("owner", changes.owner, next.owner, SHORT_TEXT_MAX)?;
    next.description = patch_text(
        "description",
        changes.description,
        next.description,
        LONG_TEXT_MAX,
    )?;
    next.intended_use = patch_text(
        "intended_use",
        changes.intended_use,
        next.intended_use,
        LONG_TEXT_MAX,
    )?;
    next.limitations = patch_text(
        "limitations",
        changes.limitations,
        next.limitations,
        LONG_TEXT_MAX,
    )?;
    next.developer = patch_text(
        "developer",
        changes.developer,
        next.developer,
        SHORT_TEXT_MAX,
    )?;
    next.validator = patch_text(
        "validator",
        changes.validator,
        next.validator,
        SHORT_TEXT_MAX,
    )?;
    next.vendor = patch_text("vendor", changes.vendor, next.vendor, SHORT_TEXT_MAX)?;
    next.last_validated_at = changes.last_validated_at.apply_to(next.last_validated_at);
    next.next_review_at = changes.next_review_at.apply_to(next.next_review_at);
    next.catalog_id = changes.catalog_id.apply_to(next.catalog_id);
    match changes.tags {
        Patch::Absent => {}
        Patch::Null => next.tags.clear(),
        Patch::Value(given) => {
            if tags_mode == TagsMode::Replace {
                next.tags.clear();
            }
            for (key, value) in given {
                match value {
                    Some(v) => next.tags.insert(key, v),
                    None => next.tags.remove(&key),
                };
            }
        }
    }
    match changes.department_ids {
        Patch::Absent => {}
        Patch::Null => next.department_ids.clear(),
        Patch::Value(ids) => next.department_ids = departments(ids)?,
    }
    match changes.sections {
        Patch::Absent => {}
        Patch::Null => next.sections = ModelSections::default(),
        Patch::Value(patch) => next.sections = next.sections.patched(&patch)?,
    }
    validate_tags(&next.tags)?;
    check_independence(&next)?;
    if next == *current {
        return Ok(None);
    }
    next.version = current.version + 1;
    next.updated_at = now;
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::now;
    use ValidationStatus::*;

    #[test]
    fn every_transition_pair_matches_the_table() {
        let allowed = [
            (Draft, PendingValidation),
            (Draft, Deprecated),
            (PendingValidation, InValidation),
            (PendingValidation, Draft),
            (PendingValidation, Deprecated),
            (InValidation, Validated),
            (InValidation, NeedsRemediation),
            (InValidation, Deprecated),
            (NeedsRemediation, PendingValidation),
            (NeedsRemediation, InValidation),
            (NeedsRemediation, Deprecated),
            (Validated, InValidation),
            (Validated, Deprecated),
        ];
        for from in ValidationStatus::ALL {
            for to in ValidationStatus::ALL {
                let expect = allowed.contains(&(from, to));
                let got = from.transition(to);
                assert_eq!(got.is_ok(), expect, "{from:?} -> {to:?}");
                if let Err(e) = got {
                    assert_eq!(e.allowed, from.allowed_targets());
                }
            }
        }
        assert!(Deprecated.allowed_targets().is_empty());
    }

    fn create(json: serde_json::Value) -> Result<Model, ValidationError> {
        let input: ModelCreate = serde_json::from_value(json).expect("valid create body");
        new_model(input, Uuid::nil(), Uuid::nil(), now())
    }

    fn base() -> Model {
        create(
            serde_json::json!({"model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "owner": "risk@example.com", "tags": {"a": "1", "b": "2"}}),
        )
        .expect("valid model")
    }

    fn change(json: serde_json::Value) -> ModelChanges {
        serde_json::from_value(json).expect("valid changes")
    }

    #[test]
    fn department_limited_users_edit_only_models_wholly_in_their_departments() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(department_refusal(&[a], &[]), None);
        assert_eq!(department_refusal(&[a, b], &[a, b]), None);
        let refusal = department_refusal(&[a], &[a, b]).expect("refused");
        assert!(refusal.contains(&b.to_string()) && !refusal.contains(&a.to_string()));
        assert!(department_refusal(&[], &[a]).is_some());
    }

    #[test]
    fn create_defaults_display_name_and_status() {
        let m = base();
        assert_eq!(m.display_name, "gpt-4o");
        assert_eq!(m.validation_status, Draft);
        assert_eq!(m.version, 1);
    }

    #[test]
    fn create_rejects_blank_ids_and_dependent_validators() {
        let err =
            create(serde_json::json!({"model_id": " ", "provider": "x", "risk_tier": "tier_1"}))
                .expect_err("must be refused");
        assert_eq!(err.field, "model_id");
        let err = create(
            serde_json::json!({"model_id": "m", "provider": "x", "risk_tier": "tier_1",
            "owner": "a@x", "validator": "A@X"}),
        )
        .expect_err("must be refused");
        assert_eq!(err.field, "validator");
        let err = create(
            serde_json::json!({"model_id": "m", "provider": "x", "risk_tier": "tier_1",
            "tags": {"a:b": "c"}}),
        )
        .expect_err("must be refused");
        assert_eq!(err.field, "tags.a:b");
    }

    #[test]
    fn tags_replace_under_put_and_merge_under_patch() {
        let m = base();
        let c = || change(serde_json::json!({"tags": {"b": null, "c": "3"}}));
        let put = apply_changes(&m, c(), TagsMode::Replace, now())
            .expect("ok")
            .expect("changed");
        assert_eq!(put.tags, BTreeMap::from([("c".to_owned(), "3".to_owned())]));
        let patch = apply_changes(&m, c(), TagsMode::Merge, now())
            .expect("ok")
            .expect("changed");
        assert_eq!(
            patch.tags,
            BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("c".to_owned(), "3".to_owned())
            ])
        );
        assert_eq!(patch.version, 2);
    }

    #[test]
    fn unchanged_update_is_a_no_op() {
        let m = base();
        let same =
            change(serde_json::json!({"owner": "risk@example.com", "validation_status": "draft"}));
        assert_eq!(apply_changes(&m, same, TagsMode::Merge, now()), Ok(None));
    }

    #[test]
    fn refused_transition_names_allowed_targets() {
        let m = base();
        let err = apply_changes(
            &m,
            change(serde_json::json!({"validation_status": "validated"})),
            TagsMode::Merge,
            now(),
        )
        .expect_err("must be refused");
        assert_eq!(
            err,
            ModelRuleError::InvalidTransition(InvalidTransition {
                from: Draft,
                to: Validated,
                allowed: vec![PendingValidation, Deprecated]
            })
        );
    }

    #[test]
    fn validating_stamps_last_validated_at_and_null_clears_fields() {
        let mut m = base();
        m.validation_status = InValidation;
        let t = now();
        let next = apply_changes(&m, change(serde_json::json!({"validation_status": "validated", "owner": null, "display_name": null})), TagsMode::Merge, t)
            .expect("ok")
            .expect("changed");
        assert_eq!(next.last_validated_at, Some(t));
        assert_eq!(next.owner, None);
        assert_eq!(next.display_name, "gpt-4o");
        let err = apply_changes(
            &m,
            change(serde_json::json!({"risk_tier": null})),
            TagsMode::Merge,
            t,
        )
        .expect_err("must be refused");
        assert!(matches!(err, ModelRuleError::Validation(v) if v.field == "risk_tier"));
    }
}
