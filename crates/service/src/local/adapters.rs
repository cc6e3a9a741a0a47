//! LoRA adapters: files registered for a base model. A path is absolute or
//! relative to `<data_dir>/adapters/`; either way it must resolve (symlinks
//! followed) inside the adapters directory or the models base directory.
//! Rank and alpha not given are read from the file (or the
//! `adapter_config.json` beside it). Unregistering keeps the file.

use std::path::{Path, PathBuf};

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::local::{check_relative_path, Adapter, AdapterInput};
use modelplane_domain::time::now;
use modelplane_formats::adapter;

use super::{blocking, validation, LocalModels};
use crate::auth::Principal;
use crate::error::{Entity, Result, ServiceError};

impl LocalModels {
    pub fn adapters_dir(&self) -> PathBuf {
        self.inner.settings.data_dir.join("adapters")
    }

    pub async fn list_adapters(&self, p: &Principal) -> Result<Vec<Adapter>> {
        p.require(Scope::Superadmin)?;
        Ok(self.inner.store.list_adapters().await?)
    }

    /// Registers an adapter; `input` is checked here (`AdapterInput::validated`).
    pub async fn register_adapter(&self, p: &Principal, input: AdapterInput) -> Result<Adapter> {
        p.require(Scope::Superadmin)?;
        let input = input.validated()?;
        let adapters_dir = self.adapters_dir();
        tokio::fs::create_dir_all(&adapters_dir)
            .await
            .map_err(|e| ServiceError::BadRequestCode {
                code: "unreadable_file",
                message: format!("cannot create {}: {e}", adapters_dir.display()),
            })?;
        let base = self.base_dir().await?;
        let path = input.path.clone();
        let roots = [adapters_dir, base];
        let file = resolve_adapter_path(&path, &roots).await?;
        let file_for_read = file.clone();
        let facts = blocking(move || {
            adapter::read_adapter(&file_for_read).map_err(|e| ServiceError::BadRequestCode {
                code: "not_an_adapter",
                message: format!("{path:?} is not a readable LoRA adapter: {e}"),
            })
        })
        .await?;
        let rank = input.rank.or(facts.rank);
        let alpha = input.alpha.or(facts.alpha);
        let a = Adapter {
            id: input.id.unwrap_or_else(|| crate::new_id().to_string()),
            name: input.name,
            base_model: input.base_model,
            rank,
            alpha,
            path: input.path,
            format: Some(facts.format),
            created_at: now(),
        };
        let audit = AuditEvent {
            id: crate::new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Adapter,
            entity_id: p.org_id,
            action: AuditAction::Create,
            actor: p.actor(),
            at: a.created_at,
            changes: audit_fields(&a, true),
        };
        if !self.inner.store.insert_adapter(&a, &audit).await? {
            return Err(ServiceError::AlreadyExists {
                entity: Entity::Adapter,
                message: format!("an adapter with id {:?} is already registered", a.id),
            });
        }
        Ok(a)
    }

    pub async fn delete_adapter(&self, p: &Principal, id: &str) -> Result<Adapter> {
        p.require(Scope::Superadmin)?;
        let a = self
            .inner
            .store
            .get_adapter(id)
            .await?
            .ok_or(ServiceError::NotFound(Entity::Adapter))?;
        let audit = AuditEvent {
            id: crate::new_id(),
            org_id: p.org_id,
            entity_type: EntityType::Adapter,
            entity_id: p.org_id,
            action: AuditAction::Delete,
            actor: p.actor(),
            at: now(),
            changes: audit_fields(&a, false),
        };
        if !self.inner.store.delete_adapter(id, &audit).await? {
            return Err(ServiceError::NotFound(Entity::Adapter));
        }
        Ok(a)
    }
}

fn audit_fields(a: &Adapter, created: bool) -> Vec<FieldChange> {
    let value = serde_json::json!({
        "id": a.id, "name": a.name, "base_model": a.base_model,
        "rank": a.rank, "alpha": a.alpha, "path": a.path,
    });
    let obj = value.as_object().cloned().unwrap_or_default();
    obj.into_iter()
        .map(|(field, v)| {
            let (before, after) = if created {
                (serde_json::Value::Null, v)
            } else {
                (v, serde_json::Value::Null)
            };
            FieldChange {
                field,
                before,
                after,
            }
        })
        .collect()
}

/// The real path of an adapter: relative paths under the first root; the
/// result must be inside one of `roots`.
async fn resolve_adapter_path(path: &str, roots: &[PathBuf]) -> Result<PathBuf> {
    let candidate = if Path::new(path).is_absolute() {
        if Path::new(path)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(validation("path", "must not contain '..'"));
        }
        PathBuf::from(path)
    } else {
        let rel = check_relative_path("path", path)?;
        if rel.is_empty() {
            return Err(validation("path", "must name an adapter file"));
        }
        roots[0].join(rel)
    };
    let real = tokio::fs::canonicalize(&candidate)
        .await
        .map_err(|_| ServiceError::NotFound(Entity::Path))?;
    for root in roots {
        if let Ok(root) = tokio::fs::canonicalize(root).await {
            if real.starts_with(&root) {
                return Ok(real);
            }
        }
    }
    Err(ServiceError::BadRequestCode {
        code: "path_outside_base_dir",
        message: format!(
            "path {path:?} must stay inside the adapters directory or the models base directory"
        ),
    })
}
