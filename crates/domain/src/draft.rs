//! Drafts: a pending edit of a model (or of a new model) with its own
//! optimistic version. Every accepted patch increments the version; a patch
//! based on a stale version is refused. Publishing applies the form to the
//! model atomically, and is refused if the model changed since the draft was
//! taken.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{Model, ModelChanges, ModelCreate, RiskTier, ValidationStatus};
use crate::patch::Patch;
use crate::sections::{ModelSections, SECTION_NAMES};
use crate::time::Timestamp;
use crate::ValidationError;

/// The form a draft holds: every editable field of a model, each optional
/// while the draft is being worked on. Publishing checks it in full.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftForm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_tier: Option<RiskTier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_status: Option<ValidationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitations: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub developer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_validated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_review_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sections: Option<ModelSections>,
}

/// A draft as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Draft {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The inventory model the draft edits; null for a new model.
    pub model: Option<Uuid>,
    /// The model's version when the draft was taken.
    pub base_version: Option<i64>,
    /// Who owns the draft: `user:<id>`, or `key:<id>` for a key with no user.
    pub author: String,
    /// Starts at 1; every accepted patch adds one.
    pub version: i64,
    pub form_state: DraftForm,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every field a form may carry, for error messages.
const FORM_FIELDS: [&str; 19] = [
    "model_id",
    "provider",
    "risk_tier",
    "display_name",
    "validation_status",
    "owner",
    "description",
    "tags",
    "intended_use",
    "limitations",
    "developer",
    "validator",
    "vendor",
    "last_validated_at",
    "next_review_at",
    "catalog_id",
    "department_ids",
    "sections",
    "expected_version",
];

impl DraftForm {
    /// The form of an existing model: every field as it is now.
    pub fn of(model: &Model) -> DraftForm {
        DraftForm {
            model_id: Some(model.model_id.clone()),
            provider: Some(model.provider.clone()),
            risk_tier: Some(model.risk_tier),
            display_name: Some(model.display_name.clone()),
            validation_status: Some(model.validation_status),
            owner: model.owner.clone(),
            description: model.description.clone(),
            tags: Some(model.tags.clone()),
            intended_use: model.intended_use.clone(),
            limitations: model.limitations.clone(),
            developer: model.developer.clone(),
            validator: model.validator.clone(),
            vendor: model.vendor.clone(),
            last_validated_at: model.last_validated_at,
            next_review_at: model.next_review_at,
            catalog_id: model.catalog_id,
            department_ids: Some(model.department_ids.clone()),
            sections: Some(model.sections.clone()),
        }
    }

    /// Applies a patch: each field given replaces that field, `null` clears
    /// it. Types are checked now; completeness when the draft is published.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<DraftForm, ValidationError> {
        let mut merged = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for (key, value) in patch {
            if !FORM_FIELDS.contains(&key.as_str()) || key == "expected_version" {
                return Err(ValidationError::new(
                    key.as_str(),
                    "not a field of a model draft",
                ));
            }
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
        let next: DraftForm =
            serde_path_to_error::deserialize(Value::Object(merged)).map_err(|e| {
                let path = e.path().to_string();
                let field = if path.is_empty() || path == "." {
                    "form_state".to_owned()
                } else {
                    path
                };
                ValidationError::new(field, e.into_inner().to_string())
            })?;
        if let Some(sections) = &next.sections {
            sections.validate()?;
        }
        Ok(next)
    }

    /// The create request a draft of a new model publishes as.
    pub fn to_create(&self) -> Result<ModelCreate, ValidationError> {
        let missing = |field: &str| ValidationError::new(field, "required to publish the draft");
        Ok(ModelCreate {
            model_id: self.model_id.clone().ok_or_else(|| missing("model_id"))?,
            provider: self.provider.clone().ok_or_else(|| missing("provider"))?,
            risk_tier: self.risk_tier.ok_or_else(|| missing("risk_tier"))?,
            display_name: self.display_name.clone(),
            validation_status: self.validation_status,
            owner: self.owner.clone(),
            description: self.description.clone(),
            tags: self.tags.clone().unwrap_or_default(),
            intended_use: self.intended_use.clone(),
            limitations: self.limitations.clone(),
            developer: self.developer.clone(),
            validator: self.validator.clone(),
            vendor: self.vendor.clone(),
            last_validated_at: self.last_validated_at,
            next_review_at: self.next_review_at,
            catalog_id: self.catalog_id,
            department_ids: self.department_ids.clone().unwrap_or_default(),
            sections: self.sections.clone().unwrap_or_default(),
        })
    }

    /// The full replacement a draft of `model` publishes as: every field
    /// takes the form's value, a field the form cleared is cleared.
    pub fn to_changes(&self, model: &Model) -> Result<ModelChanges, ValidationError> {
        if self
            .model_id
            .as_deref()
            .is_some_and(|m| m != model.model_id)
        {
            return Err(ValidationError::new(
                "model_id",
                "a published draft cannot change the model's model_id",
            ));
        }
        if self
            .provider
            .as_deref()
            .is_some_and(|p| p != model.provider)
        {
            return Err(ValidationError::new(
                "provider",
                "a published draft cannot change the model's provider",
            ));
        }
        fn put<T>(v: Option<T>) -> Patch<T> {
            v.map_or(Patch::Null, Patch::Value)
        }
        let sections = self.sections.clone().unwrap_or_default();
        let mut section_patch = match serde_json::to_value(&sections) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for name in SECTION_NAMES {
            section_patch.entry(name).or_insert(Value::Null);
        }
        Ok(ModelChanges {
            display_name: put(self.display_name.clone()),
            risk_tier: put(self.risk_tier),
            validation_status: put(self.validation_status),
            owner: put(self.owner.clone()),
            description: put(self.description.clone()),
            tags: Patch::Value(
                self.tags
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, Some(v)))
                    .collect(),
            ),
            intended_use: put(self.intended_use.clone()),
            limitations: put(self.limitations.clone()),
            developer: put(self.developer.clone()),
            validator: put(self.validator.clone()),
            vendor: put(self.vendor.clone()),
            last_validated_at: put(self.last_validated_at),
            next_review_at: put(self.next_review_at),
            catalog_id: put(self.catalog_id),
            department_ids: Patch::Value(self.department_ids.clone().unwrap_or_default()),
            sections: Patch::Value(section_patch),
            expected_version: None,
        })
    }
}

impl Draft {
    /// A new draft, version 1.
    pub fn new(
        id: Uuid,
        org_id: Uuid,
        author: String,
        base: Option<&Model>,
        form_state: DraftForm,
        now: Timestamp,
    ) -> Draft {
        Draft {
            id,
            org_id,
            model: base.map(|m| m.id),
            base_version: base.map(|m| m.version),
            author,
            version: 1,
            form_state,
            created_at: now,
            updated_at: now,
        }
    }

    /// The draft after a patch based on `expected_version`: refused when
    /// stale; the version moves by one.
    pub fn patch(
        &self,
        expected_version: i64,
        patch: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<Draft, DraftError> {
        if expected_version != self.version {
            return Err(DraftError::Stale {
                expected: expected_version,
                current: self.version,
            });
        }
        let form_state = self.form_state.patched(patch)?;
        Ok(Draft {
            version: self.version + 1,
            form_state,
            updated_at: now,
            ..self.clone()
        })
    }

    /// Whether the model the draft edits is still at the version it was
    /// taken from.
    pub fn check_base(&self, model: &Model) -> Result<(), DraftError> {
        match self.base_version {
            Some(base) if base != model.version => Err(DraftError::ModelChanged {
                base,
                current: model.version,
            }),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DraftError {
    #[error("draft version {expected} is stale; the current version is {current}")]
    Stale { expected: i64, current: i64 },
    #[error("the model changed since the draft was taken (version {base}, now {current})")]
    ModelChanged { base: i64, current: i64 },
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{apply_changes, new_model, TagsMode};
    use crate::time::now;
    use serde_json::json;

    fn model() -> Model {
        let input: ModelCreate = serde_json::from_value(json!({
            "model_id": "gpt-4o", "provider": "openai", "risk_tier": "tier_2",
            "owner": "a@x", "tags": {"team": "a"}, "sections": {"voices": ["alloy"]}
        }))
        .expect("valid body");
        new_model(input, Uuid::from_u128(1), Uuid::from_u128(2), now()).expect("valid")
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn each_accepted_patch_moves_the_version_and_a_stale_one_is_refused() {
        let m = model();
        let d = Draft::new(
            Uuid::nil(),
            m.org_id,
            "key:x".into(),
            Some(&m),
            DraftForm::of(&m),
            now(),
        );
        let d2 = d
            .patch(1, &obj(json!({"owner": "b@x"})), now())
            .expect("fresh");
        assert_eq!(d2.version, 2);
        assert_eq!(d2.form_state.owner.as_deref(), Some("b@x"));
        assert_eq!(
            d2.patch(1, &obj(json!({"owner": "c@x"})), now()),
            Err(DraftError::Stale {
                expected: 1,
                current: 2
            })
        );
        let err = d2
            .patch(2, &obj(json!({"risk_tier": "tier_9"})), now())
            .expect_err("bad type");
        assert!(matches!(err, DraftError::Validation(v) if v.field == "risk_tier"));
        let err = d2
            .patch(2, &obj(json!({"colour": "red"})), now())
            .expect_err("unknown");
        assert!(matches!(err, DraftError::Validation(v) if v.field == "colour"));
    }

    #[test]
    fn publishing_replaces_every_field_with_the_form() {
        let m = model();
        let d = Draft::new(
            Uuid::nil(),
            m.org_id,
            "key:x".into(),
            Some(&m),
            DraftForm::of(&m),
            now(),
        );
        let d = d
            .patch(1, &obj(json!({"owner": null, "tags": {"team": "b"}, "sections": {"qualities": ["hd"]}})), now())
            .expect("valid");
        let changes = d.form_state.to_changes(&m).expect("same model");
        let next = apply_changes(&m, changes, TagsMode::Replace, now())
            .expect("valid")
            .expect("changed");
        assert_eq!(next.owner, None);
        assert_eq!(next.tags.get("team").map(String::as_str), Some("b"));
        assert_eq!(next.sections.voices, None);
        assert_eq!(next.sections.qualities, Some(vec!["hd".to_owned()]));
        // An untouched draft publishes as no change at all.
        let same = DraftForm::of(&m).to_changes(&m).expect("same model");
        assert_eq!(apply_changes(&m, same, TagsMode::Replace, now()), Ok(None));
    }

    #[test]
    fn a_draft_taken_before_a_model_change_is_refused_and_new_models_need_ids() {
        let mut m = model();
        let d = Draft::new(
            Uuid::nil(),
            m.org_id,
            "key:x".into(),
            Some(&m),
            DraftForm::of(&m),
            now(),
        );
        assert_eq!(d.check_base(&m), Ok(()));
        m.version += 1;
        assert_eq!(
            d.check_base(&m),
            Err(DraftError::ModelChanged {
                base: 1,
                current: 2
            })
        );
        let blank = DraftForm::default();
        assert_eq!(blank.to_create().expect_err("incomplete").field, "model_id");
    }
}
