//! API keys as credentials: token generation, hashing, authentication,
//! scope checks, tenancy, and the first-run bootstrap.

use chrono::Duration;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use modelplane_domain::audit::{diff, Actor, AuditAction, AuditEvent, EntityType};
use modelplane_domain::key::{allows, ApiKey, Scope};
use modelplane_domain::limits::KeyLimits;
use modelplane_domain::org::{Org, RiskFramework};
use modelplane_domain::time::now;
use modelplane_store::{NewApiKey, Store};

use crate::error::{Entity, Result, ServiceError};
use crate::new_id;

/// Tokens look like `mp_<64 hex>`; the prefix helps secret scanners.
pub const TOKEN_PREFIX: &str = "mp_";
/// How many characters of a token are kept in clear to recognise the key.
const SHOWN_PREFIX_LEN: usize = 11;
/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL_SECS: i64 = 60;
pub const DEFAULT_ORG_NAME: &str = "default";

/// Who is calling: the key that authenticated the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub key_id: Uuid,
    pub org_id: Uuid,
    pub user_id: Option<Uuid>,
    pub scopes: Vec<Scope>,
    /// What the key may use through the gateway.
    pub limits: KeyLimits,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        allows(&self.scopes, scope)
    }

    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this key lacks the {} scope",
                scope.as_str()
            )))
        }
    }

    pub fn is_superadmin(&self) -> bool {
        self.has(Scope::Superadmin)
    }

    pub fn actor(&self) -> Actor {
        Actor {
            key_id: Some(self.key_id),
            user_id: self.user_id,
        }
    }

    /// The org an operation acts on: the key's own, or for a superadmin any
    /// org it names. Naming another org without superadmin reads as "not
    /// found", so a key never learns that another org exists.
    pub fn target_org(&self, requested: Option<Uuid>) -> Result<Uuid> {
        match requested {
            None => Ok(self.org_id),
            Some(id) if id == self.org_id || self.is_superadmin() => Ok(id),
            Some(_) => Err(ServiceError::NotFound(Entity::Org)),
        }
    }

    /// Whether this principal may see data of `org_id` at all.
    pub fn can_see_org(&self, org_id: Uuid) -> bool {
        org_id == self.org_id || self.is_superadmin()
    }
}

/// A freshly generated token with what is stored of it.
pub struct GeneratedToken {
    pub token: String,
    pub hash: String,
    pub prefix: String,
}

pub fn generate_token() -> GeneratedToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    GeneratedToken {
        hash: hash_token(&token),
        prefix: shown_prefix(&token),
        token,
    }
}

/// Tokens carry 256 random bits, so a fast hash is enough to make the stored
/// form useless to an attacker while keeping lookups by hash O(1).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn shown_prefix(token: &str) -> String {
    token.chars().take(SHOWN_PREFIX_LEN).collect()
}

/// Resolves a bearer token to its principal, recording the key's use.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal> {
    if token.is_empty() || token.len() > 512 {
        return Err(ServiceError::Unauthorized);
    }
    let key = store
        .find_api_key_by_hash(&hash_token(token))
        .await?
        .ok_or(ServiceError::Unauthorized)?;
    let now = now();
    if !key.is_usable_at(&now) {
        return Err(ServiceError::Unauthorized);
    }
    let stale_before = now - Duration::seconds(TOUCH_INTERVAL_SECS);
    if key.last_used_at.is_none_or(|t| t < stale_before) {
        if let Err(err) = store.touch_api_key(key.id, now, stale_before).await {
            // Failing to record use must not fail the request itself.
            tracing::warn!(key_id = %key.id, error = %err, "could not record key use");
        }
    }
    Ok(Principal {
        key_id: key.id,
        org_id: key.org_id,
        user_id: key.user_id,
        scopes: key.scopes,
        limits: key.limits,
    })
}

fn superadmin_key(org_id: Uuid, name: &str, token_hash: String, prefix: String) -> NewApiKey {
    NewApiKey {
        key: ApiKey {
            id: new_id(),
            org_id,
            user_id: None,
            name: name.to_owned(),
            prefix,
            scopes: vec![Scope::Superadmin],
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: now(),
            limits: KeyLimits::default(),
        },
        token_hash,
    }
}

fn default_org() -> Org {
    let t = now();
    Org {
        id: new_id(),
        name: DEFAULT_ORG_NAME.to_owned(),
        risk_framework: RiskFramework::default(),
        created_at: t,
        updated_at: t,
    }
}

fn creation_events(org: &Org, key: &ApiKey) -> Vec<AuditEvent> {
    let actor = Actor::default();
    vec![
        AuditEvent {
            id: new_id(),
            org_id: org.id,
            entity_type: EntityType::Org,
            entity_id: org.id,
            action: AuditAction::Create,
            actor,
            at: org.created_at,
            changes: diff(None, Some(org)),
        },
        AuditEvent {
            id: new_id(),
            org_id: org.id,
            entity_type: EntityType::ApiKey,
            entity_id: key.id,
            action: AuditAction::Create,
            actor,
            at: key.created_at,
            changes: diff(None, Some(key)),
        },
    ]
}

/// On a fresh database, creates the default org and a superadmin key whose
/// token is exactly `admin_token`. Returns whether it did; a database that
/// already has an org is left alone.
pub async fn bootstrap(store: &Store, admin_token: &str) -> Result<bool> {
    if admin_token.trim().len() < 16 {
        return Err(ServiceError::Validation(
            modelplane_domain::ValidationError::new(
                "admin_token",
                "must be at least 16 characters",
            ),
        ));
    }
    let org = default_org();
    let key = superadmin_key(
        org.id,
        "bootstrap superadmin",
        hash_token(admin_token),
        shown_prefix(admin_token),
    );
    let events = creation_events(&org, &key.key);
    Ok(store.bootstrap(&org, &key, &events).await?)
}

/// Creates a new superadmin key (in the first org, creating the default org
/// on a fresh database) and returns its token: the CLI's way in.
pub async fn create_superadmin_key(store: &Store, name: &str) -> Result<(ApiKey, String)> {
    let generated = generate_token();
    let org = default_org();
    let key = superadmin_key(
        org.id,
        name,
        generated.hash.clone(),
        generated.prefix.clone(),
    );
    let events = creation_events(&org, &key.key);
    if store.bootstrap(&org, &key, &events).await? {
        return Ok((key.key, generated.token));
    }
    let (_, orgs) = store
        .list_orgs(
            None,
            None,
            modelplane_domain::page::Page {
                limit: 1,
                offset: 0,
            },
        )
        .await?;
    let first = orgs
        .into_iter()
        .min_by_key(|o| o.created_at)
        .ok_or(ServiceError::NotFound(Entity::Org))?;
    let key = superadmin_key(first.id, name, generated.hash, generated.prefix);
    let event = AuditEvent {
        id: new_id(),
        org_id: first.id,
        entity_type: EntityType::ApiKey,
        entity_id: key.key.id,
        action: AuditAction::Create,
        actor: Actor::default(),
        at: key.key.created_at,
        changes: diff(None, Some(&key.key)),
    };
    store.insert_api_key(&key, &event).await?;
    Ok((key.key, generated.token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(a.hash, hash_token(&a.token));
        assert_ne!(a.hash, a.token);
        assert_eq!(a.prefix, a.token[..SHOWN_PREFIX_LEN]);
    }

    #[test]
    fn target_org_hides_other_orgs_from_ordinary_keys() {
        let own = Uuid::now_v7();
        let other = Uuid::now_v7();
        let mut p = Principal {
            key_id: Uuid::now_v7(),
            org_id: own,
            user_id: None,
            scopes: vec![Scope::Admin],
            limits: KeyLimits::default(),
        };
        assert_eq!(p.target_org(None).ok(), Some(own));
        assert_eq!(p.target_org(Some(own)).ok(), Some(own));
        assert!(matches!(
            p.target_org(Some(other)),
            Err(ServiceError::NotFound(Entity::Org))
        ));
        p.scopes = vec![Scope::Superadmin];
        assert_eq!(p.target_org(Some(other)).ok(), Some(other));
    }
}
