use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use modelplane_domain::agent::Agent;
use modelplane_domain::audit::AuditEvent;
use modelplane_domain::page::Page;

use crate::models::Modified;
use crate::orgs::like_pattern;
use crate::rows::{self, micros};
use crate::sql::Sql;
use crate::{insert_audit, Backend, Result, Store, StoreError, WriteTx};

/// What `MissingReference` names when an agent's model row points at a
/// model that is gone (deleted between the caller's check and its write).
pub const MODELS_TABLE: &str = "models";

/// Ids per `IN (…)` list when reading memberships of many rows.
const IN_CHUNK: usize = 500;

#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    pub active: Option<bool>,
}

/// An agent row without its models, which live in `agent_models`.
fn from_row(row: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: rows::uuid(row, "id")?,
        org_id: rows::uuid(row, "org_id")?,
        name: rows::text(row, "name")?,
        description: rows::opt_text(row, "description")?,
        active: rows::int(row, "active")? != 0,
        model_ids: Vec::new(),
        version: rows::int(row, "version")?,
        created_at: rows::time(row, "created_at")?,
        updated_at: rows::time(row, "updated_at")?,
    })
}

fn push_filter(sql: &mut Sql, org_id: Uuid, f: &AgentFilter) {
    sql.push(" WHERE org_id = ").bind(org_id.to_string());
    if let Some(q) = &f.q {
        sql.push(" AND lower(name) LIKE ")
            .bind(like_pattern(q))
            .push(" ESCAPE '\\'");
    }
    if let Some(active) = f.active {
        sql.push(" AND active = ").bind(i64::from(active));
    }
}

/// Replaces an agent's `agent_models` rows, keeping the order given. A model
/// deleted since the caller checked it fails with
/// `MissingReference(MODELS_TABLE)`.
async fn write_agent_models(tx: &mut Transaction<'static, Any>, agent: &Agent) -> Result<()> {
    sqlx::query("DELETE FROM agent_models WHERE agent_id = $1")
        .bind(agent.id.to_string())
        .execute(&mut **tx)
        .await?;
    if agent.model_ids.is_empty() {
        return Ok(());
    }
    let mut sql =
        Sql::new("INSERT INTO agent_models (agent_id, model_pk, org_id, position) VALUES ");
    for (position, model_pk) in (0_i64..).zip(&agent.model_ids) {
        if position > 0 {
            sql.push(", ");
        }
        sql.push("(")
            .bind(agent.id.to_string())
            .push(", ")
            .bind(model_pk.to_string())
            .push(", ")
            .bind(agent.org_id.to_string())
            .push(", ")
            .bind(position)
            .push(")");
    }
    let (text, args) = sql.build_for(crate::backend_of(tx));
    match sqlx::query_with(&text, args).execute(&mut **tx).await {
        Ok(_) => Ok(()),
        Err(e) => match StoreError::from(e) {
            StoreError::MissingReference(_) => {
                Err(StoreError::MissingReference(MODELS_TABLE.to_owned()))
            }
            other => Err(other),
        },
    }
}

/// The id and name of every active agent that uses the model, by name. For
/// the model-delete path, inside its transaction.
pub(crate) async fn active_agents_using_tx(
    tx: &mut Transaction<'static, Any>,
    model_pk: Uuid,
) -> Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query(
        "SELECT a.id, a.name FROM agent_models m JOIN agents a ON a.id = m.agent_id \
         WHERE m.model_pk = $1 AND a.active <> 0 ORDER BY a.name, a.id",
    )
    .bind(model_pk.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((rows::uuid(r, "id")?, rows::text(r, "name")?)))
        .collect()
}

impl Store {
    pub async fn get_agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(mut agent) = row.as_ref().map(from_row).transpose()? else {
            return Ok(None);
        };
        agent.model_ids = self
            .models_of_agents(&[agent.id])
            .await?
            .remove(&agent.id)
            .unwrap_or_default();
        Ok(Some(agent))
    }

    /// An org's agents by name, each with its models.
    pub async fn list_agents(
        &self,
        org_id: Uuid,
        filter: &AgentFilter,
        page: Page,
    ) -> Result<(i64, Vec<Agent>)> {
        let mut count = Sql::new("SELECT COUNT(*) FROM agents");
        push_filter(&mut count, org_id, filter);
        let mut list = Sql::new("SELECT * FROM agents");
        push_filter(&mut list, org_id, filter);
        list.push(" ORDER BY name, id").page(page);
        let (total, mut agents) = self.page(count, list, from_row).await?;
        let ids: Vec<Uuid> = agents.iter().map(|a| a.id).collect();
        let mut models = self.models_of_agents(&ids).await?;
        for agent in &mut agents {
            agent.model_ids = models.remove(&agent.id).unwrap_or_default();
        }
        Ok((total, agents))
    }

    /// Agent id → its model ids in order, for the given agents.
    async fn models_of_agents(&self, agent_ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Uuid>>> {
        let mut out: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for chunk in agent_ids.chunks(IN_CHUNK) {
            let mut sql =
                Sql::new("SELECT agent_id, model_pk FROM agent_models WHERE agent_id IN ");
            sql.bind_list(chunk.iter().map(Uuid::to_string))
                .push(" ORDER BY agent_id, position");
            let (text, args) = sql.build_for(self.backend);
            for row in sqlx::query_with(&text, args).fetch_all(&self.pool).await? {
                out.entry(rows::uuid(&row, "agent_id")?)
                    .or_default()
                    .push(rows::uuid(&row, "model_pk")?);
            }
        }
        Ok(out)
    }

    /// The id and name of every active agent of the org that uses the
    /// inventory model `model_id` (`models.id`), by name; empty when the
    /// model is not the org's.
    pub async fn active_agents_using(
        &self,
        org_id: Uuid,
        model_id: Uuid,
    ) -> Result<Vec<(Uuid, String)>> {
        // One read transaction, so the model's org and its agents are read
        // from the same state.
        let mut tx = self.pool.begin().await?;
        let owned: Option<String> =
            sqlx::query_scalar("SELECT id FROM models WHERE id = $1 AND org_id = $2")
                .bind(model_id.to_string())
                .bind(org_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let agents = match owned {
            Some(_) => active_agents_using_tx(&mut tx, model_id).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(agents)
    }

    /// Inventory model id → the ids of the org's agents (active or not) that
    /// use it, oldest agent first. Models no agent uses are absent.
    pub async fn agents_of_models(
        &self,
        org_id: Uuid,
        model_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Uuid>>> {
        let mut out: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for chunk in model_ids.chunks(IN_CHUNK) {
            let mut sql = Sql::new("SELECT model_pk, agent_id FROM agent_models WHERE org_id = ");
            sql.bind(org_id.to_string())
                .push(" AND model_pk IN ")
                .bind_list(chunk.iter().map(Uuid::to_string))
                .push(" ORDER BY model_pk, agent_id");
            let (text, args) = sql.build_for(self.backend);
            for row in sqlx::query_with(&text, args).fetch_all(&self.pool).await? {
                out.entry(rows::uuid(&row, "model_pk")?)
                    .or_default()
                    .push(rows::uuid(&row, "agent_id")?);
            }
        }
        Ok(out)
    }
}

/// The agent row and its models inside a write transaction, locked until it
/// ends (`FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds
/// the write lock).
async fn locked_agent(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Agent>> {
    let lock = match backend {
        Backend::Postgres => "SELECT * FROM agents WHERE id = $1 AND org_id = $2 FOR UPDATE",
        Backend::Sqlite => "SELECT * FROM agents WHERE id = $1 AND org_id = $2",
    };
    let row = sqlx::query(lock)
        .bind(id.to_string())
        .bind(org_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(mut agent) = row.as_ref().map(from_row).transpose()? else {
        return Ok(None);
    };
    let models: Vec<String> = sqlx::query_scalar(
        "SELECT model_pk FROM agent_models WHERE agent_id = $1 ORDER BY position",
    )
    .bind(id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    agent.model_ids = models
        .iter()
        .map(|s| rows::parse_uuid(s))
        .collect::<Result<_>>()?;
    Ok(Some(agent))
}

/// Agent writes. They run inside a [`WriteTx`] that the caller commits, so a
/// staged change's decision can apply one and record its outcome atomically.
impl WriteTx {
    /// Which of `ids` are inventory models (`models.id`) of the org, read in
    /// this transaction.
    pub async fn existing_model_pks(&mut self, org_id: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let mut sql = Sql::new("SELECT id FROM models WHERE org_id = ");
            sql.bind(org_id.to_string())
                .push(" AND id IN ")
                .bind_list(chunk.iter().map(Uuid::to_string));
            let (text, args) = sql.build_for(self.backend);
            let rows: Vec<String> = sqlx::query_scalar_with(&text, args)
                .fetch_all(&mut *self.tx)
                .await?;
            for id in &rows {
                found.push(rows::parse_uuid(id)?);
            }
        }
        Ok(found)
    }

    /// Inserts an agent, its model rows and its audit event.
    pub async fn insert_agent(&mut self, agent: &Agent, audit: &AuditEvent) -> Result<()> {
        let tx = &mut self.tx;
        sqlx::query(
            "INSERT INTO agents (id, org_id, name, description, active, version, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(agent.id.to_string())
        .bind(agent.org_id.to_string())
        .bind(agent.name.clone())
        .bind(agent.description.clone())
        .bind(i64::from(agent.active))
        .bind(agent.version)
        .bind(micros(&agent.created_at))
        .bind(micros(&agent.updated_at))
        .execute(&mut **tx)
        .await?;
        write_agent_models(tx, agent).await?;
        insert_audit(tx, audit).await
    }

    /// Reads an agent, locked against other writers, lets `decide` (pure
    /// domain logic: version check, update, audit event) produce the new
    /// version, and writes it with its models and audit event.
    pub async fn modify_agent<E>(
        &mut self,
        org_id: Uuid,
        id: Uuid,
        decide: impl FnOnce(Agent) -> std::result::Result<Option<(Agent, AuditEvent)>, E>,
    ) -> Result<Modified<E, Agent>> {
        let tx = &mut self.tx;
        let Some(current) = locked_agent(tx, self.backend, org_id, id).await? else {
            return Ok(Modified::NotFound);
        };
        let (next, audit) = match decide(current.clone()) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(None) => return Ok(Modified::Unchanged(current)),
            Ok(Some(change)) => change,
        };
        sqlx::query(
            "UPDATE agents SET name = $1, description = $2, active = $3, version = $4, \
             updated_at = $5 WHERE id = $6 AND org_id = $7",
        )
        .bind(next.name.clone())
        .bind(next.description.clone())
        .bind(i64::from(next.active))
        .bind(next.version)
        .bind(micros(&next.updated_at))
        .bind(next.id.to_string())
        .bind(next.org_id.to_string())
        .execute(&mut **tx)
        .await?;
        if next.model_ids != current.model_ids {
            write_agent_models(tx, &next).await?;
        }
        insert_audit(tx, &audit).await?;
        Ok(Modified::Written(next))
    }

    /// Deletes an agent (its model rows go with it) if `decide` agrees,
    /// with its audit event.
    pub async fn remove_agent<E>(
        &mut self,
        org_id: Uuid,
        id: Uuid,
        decide: impl FnOnce(&Agent) -> std::result::Result<AuditEvent, E>,
    ) -> Result<Modified<E, Agent>> {
        let tx = &mut self.tx;
        let Some(current) = locked_agent(tx, self.backend, org_id, id).await? else {
            return Ok(Modified::NotFound);
        };
        let audit = match decide(&current) {
            Err(e) => return Ok(Modified::Rejected(e)),
            Ok(audit) => audit,
        };
        sqlx::query("DELETE FROM agents WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org_id.to_string())
            .execute(&mut **tx)
            .await?;
        insert_audit(tx, &audit).await?;
        Ok(Modified::Written(current))
    }
}
