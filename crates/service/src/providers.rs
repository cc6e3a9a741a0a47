//! An org's own gateway keys for cloud providers: set or removed with
//! `admin`, sealed before they reach the store, never returned; the audit
//! trail records only that a key was set or removed.

use std::collections::BTreeMap;

use serde_json::json;

use modelplane_domain::audit::{AuditAction, AuditEvent, EntityType, FieldChange};
use modelplane_domain::key::Scope;
use modelplane_domain::route::{provider, API_KEY_MAX};
use modelplane_domain::time::now;
use modelplane_domain::ValidationError;
use modelplane_store::Store;

use crate::error::Result;
use crate::secrets::SecretBox;
use crate::{new_id, Principal};

/// Sets (`Some`) or removes (`None`) the org's key of each named provider.
pub async fn set_keys(
    store: &Store,
    secrets: &SecretBox,
    p: &Principal,
    keys: BTreeMap<String, Option<String>>,
) -> Result<()> {
    p.require(Scope::Admin)?;
    if keys.is_empty() {
        return Err(ValidationError::new("keys", "name at least one provider").into());
    }
    if keys.len() > 64 {
        return Err(ValidationError::new("keys", "at most 64 providers at once").into());
    }
    let current: Vec<String> = store
        .provider_keys(p.org_id)
        .await?
        .into_iter()
        .map(|(slug, _)| slug)
        .collect();
    let mut sealed = Vec::with_capacity(keys.len());
    let mut changes = Vec::with_capacity(keys.len());
    for (slug, key) in keys {
        let field = format!("keys.{slug}");
        if provider(&slug).is_none() {
            return Err(ValidationError::new(field, "is not a provider the gateway knows").into());
        }
        let key = match key {
            Some(k) => {
                let k = k.trim().to_owned();
                if k.is_empty() || k.len() > API_KEY_MAX || k.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "must be 1 to {API_KEY_MAX} printable characters, or null to remove it"
                        ),
                    )
                    .into());
                }
                Some(secrets.seal(&k))
            }
            None => None,
        };
        changes.push(FieldChange {
            field: field.clone(),
            before: json!(if current.contains(&slug) {
                "set"
            } else {
                "unset"
            }),
            after: json!(if key.is_some() { "set" } else { "unset" }),
        });
        sealed.push((slug, key));
    }
    let at = now();
    let audit = AuditEvent {
        id: new_id(),
        org_id: p.org_id,
        entity_type: EntityType::ProviderKey,
        entity_id: p.org_id,
        action: AuditAction::Update,
        actor: p.actor(),
        at,
        changes,
    };
    store
        .set_provider_keys(p.org_id, &sealed, at.timestamp_micros(), &audit)
        .await?;
    Ok(())
}
