//! Facet counts of the inventory list: for providers, departments and
//! agents, how many models each has under the list's current filters.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::models::{push_facets, ModelFilter, Providers};
use crate::orgs::like_pattern;
use crate::sql::Sql;
use crate::{rows, Result, Store};

/// One value of a facet and how many filtered models carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetValue {
    /// The provider name, or the department's or agent's id.
    pub id: String,
    pub name: String,
    pub count: i64,
}

/// The facets of one list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFacets {
    pub providers: Vec<FacetValue>,
    pub departments: Vec<FacetValue>,
    pub agents: Vec<FacetValue>,
}

fn value(row: &AnyRow) -> Result<FacetValue> {
    Ok(FacetValue {
        id: rows::text(row, "id")?,
        name: rows::text(row, "name")?,
        count: row.try_get::<i64, _>("n")?,
    })
}

/// Largest count first, then by name.
pub(crate) fn ordered(mut values: Vec<FacetValue>) -> Vec<FacetValue> {
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    values
}

/// The org resources a model list can be narrowed to by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelGroup {
    Department,
    Agent,
}

impl Store {
    /// The ids of the org's departments or agents whose name contains
    /// `needle`, case-insensitively.
    pub async fn group_ids_named(
        &self,
        org_id: Uuid,
        group: ModelGroup,
        needle: &str,
    ) -> Result<Vec<Uuid>> {
        let mut sql = Sql::new(match group {
            ModelGroup::Department => "SELECT id FROM departments WHERE org_id = ",
            ModelGroup::Agent => "SELECT id FROM agents WHERE org_id = ",
        });
        sql.bind(org_id.to_string())
            .push(" AND lower(name) LIKE ")
            .bind(like_pattern(needle))
            .push(" ESCAPE '\\'");
        let (text, args) = sql.build_for(self.backend);
        let ids: Vec<String> = sqlx::query_scalar_with(&text, args)
            .fetch_all(&self.pool)
            .await?;
        ids.iter().map(|id| rows::parse_uuid(id)).collect()
    }

    /// The names of all of the org's departments or agents, by id.
    pub async fn group_names(
        &self,
        org_id: Uuid,
        group: ModelGroup,
    ) -> Result<std::collections::HashMap<Uuid, String>> {
        let sql = match group {
            ModelGroup::Department => "SELECT id, name FROM departments WHERE org_id = $1",
            ModelGroup::Agent => "SELECT id, name FROM agents WHERE org_id = $1",
        };
        let found: Vec<(String, String)> = sqlx::query_as(sql)
            .bind(org_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        found
            .into_iter()
            .map(|(id, name)| Ok((rows::parse_uuid(&id)?, name)))
            .collect()
    }

    /// Counts per provider, department and agent of the models `filter`
    /// selects. Departments and agents of the org that no selected model
    /// uses are listed with 0, so a client can show every choice.
    pub async fn model_facets(&self, org_id: Uuid, filter: &ModelFilter) -> Result<ModelFacets> {
        if let Some(index) = self.search_index_for(filter) {
            let answer = self.indexed_list(index, org_id, filter, None, true).await?;
            return Ok(answer.facets.unwrap_or_default());
        }
        let providers = match self.prepare(org_id, filter).await? {
            Some(p) => p,
            // The filter can match nothing: every count is zero.
            None => Providers::OneOf(Vec::new()),
        };
        let nothing = matches!(&providers, Providers::OneOf(list) if list.is_empty())
            || Self::matches_nothing(filter, &providers);
        // Three independent reads, each on its own pooled connection.
        let (provider_counts, departments, agents) = tokio::try_join!(
            async {
                if nothing {
                    Ok(Vec::new())
                } else {
                    self.provider_facet(org_id, filter, &providers).await
                }
            },
            self.link_facet(org_id, filter, &providers, nothing, ModelGroup::Department),
            self.link_facet(org_id, filter, &providers, nothing, ModelGroup::Agent)
        )?;
        Ok(ModelFacets {
            providers: provider_counts,
            departments,
            agents,
        })
    }

    /// One page of the org's models, the filtered total and the facets
    /// under the same filter: one pass of the search index where it answers
    /// the filter, else the list and the facet queries side by side.
    pub async fn list_models_with_facets(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        page: modelplane_domain::page::Page,
    ) -> Result<((i64, Vec<modelplane_domain::model::Model>), ModelFacets)> {
        if let Some(index) = self.search_index_for(filter) {
            let answer = self
                .indexed_list(index, org_id, filter, Some(page), true)
                .await?;
            return Ok((
                (answer.total, answer.models),
                answer.facets.unwrap_or_default(),
            ));
        }
        tokio::try_join!(
            self.list_models(org_id, filter, page),
            self.model_facets(org_id, filter)
        )
    }

    async fn provider_facet(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: &Providers,
    ) -> Result<Vec<FacetValue>> {
        let sql = if Self::summary_only(filter) {
            let mut sql = Sql::new(
                "SELECT provider AS id, provider AS name, CAST(SUM(n) AS BIGINT) AS n \
                 FROM model_counts WHERE org_id = ",
            );
            sql.bind(org_id.to_string());
            push_facets(&mut sql, filter, providers);
            sql.push(" GROUP BY provider HAVING SUM(n) > 0");
            sql
        } else {
            // Grouping by an expression, not the column, keeps SQLite's
            // planner from walking the whole (org_id, provider) index for
            // the GROUP BY when the filter's own index is far narrower.
            let mut sql = Sql::new(
                "SELECT provider || '' AS id, MIN(provider) AS name, \
                 CAST(COUNT(*) AS BIGINT) AS n FROM models",
            );
            self.push_filter(&mut sql, org_id, filter, providers);
            sql.push(" GROUP BY provider || ''");
            sql
        };
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok(ordered(rows.iter().map(value).collect::<Result<_>>()?))
    }

    /// Counts of a link table (departments or agents) restricted to the
    /// filtered models; the link rows are joined only where they belong to
    /// a selected model, so unused groups count 0. Filters of tier, status
    /// and provider alone are answered from the trigger-kept
    /// `model_group_counts`.
    async fn link_facet(
        &self,
        org_id: Uuid,
        filter: &ModelFilter,
        providers: &Providers,
        nothing: bool,
        group: ModelGroup,
    ) -> Result<Vec<FacetValue>> {
        let (groups, kind, links, column) = match group {
            ModelGroup::Department => (
                "departments",
                "department",
                "model_departments",
                "department_id",
            ),
            ModelGroup::Agent => ("agents", "agent", "agent_models", "agent_id"),
        };
        let mut sql = Sql::new("SELECT g.id AS id, g.name AS name, ");
        let summary = !nothing && Self::summary_only(filter);
        if summary {
            sql.push("CAST(COALESCE(SUM(c.n), 0) AS BIGINT) AS n FROM ")
                .push(groups)
                .push(" g LEFT JOIN model_group_counts c ON c.org_id = g.org_id AND c.kind = ")
                .bind(kind)
                .push(" AND c.group_id = g.id");
            push_facets(&mut sql, filter, providers);
        } else {
            // Driven from the filtered models: each one's link rows are a
            // seek on the link table's model index.
            sql.push("CAST(COALESCE(x.n, 0) AS BIGINT) AS n FROM ")
                .push(groups)
                .push(" g LEFT JOIN (SELECT ")
                .push(column)
                .push(" AS gid, COUNT(*) AS n FROM ")
                .push(links)
                .push(" WHERE ");
            if nothing {
                sql.push("1 = 0");
            } else {
                sql.push("model_pk IN (SELECT id FROM models");
                self.push_filter(&mut sql, org_id, filter, providers);
                sql.push(")");
            }
            sql.push(" GROUP BY ")
                .push(column)
                .push(") x ON x.gid = g.id");
        }
        sql.push(" WHERE g.org_id = ").bind(org_id.to_string());
        if summary {
            sql.push(" GROUP BY g.id, g.name");
        }
        let (text, args) = sql.build_for(self.backend);
        let rows = sqlx::query_with(&text, args).fetch_all(&self.pool).await?;
        Ok(ordered(rows.iter().map(value).collect::<Result<_>>()?))
    }
}
