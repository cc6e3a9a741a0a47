//! Usage records: the gateway's metering log.

use modelplane_domain::time::to_micros;
use modelplane_domain::usage::UsageRecord;

use crate::sql::Sql;
use crate::{Result, Store};

/// Rows per INSERT statement (21 parameters each, under SQLite's 32,766).
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Writes a batch of usage records in one transaction. A record whose id
    /// is already stored is skipped, so replaying a spilled batch that had
    /// partly reached the database writes each record once.
    pub async fn insert_usage_batch(&self, records: &[UsageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::new(
                "INSERT INTO usage_records (id, org_id, key_id, user_id, endpoint, requested_model, \
                 route, upstream, upstream_model, status, http_status, stream, prompt_tokens, \
                 completion_tokens, total_tokens, cost_usd, latency_ms, ttft_ms, attempts, error, \
                 created_at) VALUES ",
            );
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(r.id.to_string())
                    .push(", ")
                    .bind(r.org_id.to_string())
                    .push(", ")
                    .bind(r.key_id.to_string())
                    .push(", ")
                    .bind(r.user_id.map(|u| u.to_string()))
                    .push(", ")
                    .bind(r.endpoint.as_str())
                    .push(", ")
                    .bind(r.requested_model.clone())
                    .push(", ")
                    .bind(r.route.clone())
                    .push(", ")
                    .bind(r.upstream.clone())
                    .push(", ")
                    .bind(r.upstream_model.clone())
                    .push(", ")
                    .bind(r.status.as_str())
                    .push(", ")
                    .bind(i32::from(r.http_status))
                    .push(", ")
                    .bind(i32::from(r.stream))
                    .push(", ")
                    .bind(r.prompt_tokens)
                    .push(", ")
                    .bind(r.completion_tokens)
                    .push(", ")
                    .bind(r.total_tokens)
                    .push(", ")
                    .bind_f64(r.cost_usd)
                    .push(", ")
                    .bind(r.latency_ms)
                    .push(", ")
                    .bind_f64(r.ttft_ms)
                    .push(", ")
                    .bind(i32::try_from(r.attempts).unwrap_or(i32::MAX))
                    .push(", ")
                    .bind(r.error.clone())
                    .push(", ")
                    .bind(to_micros(&r.created_at))
                    .push(")");
            }
            sql.push(" ON CONFLICT (id) DO NOTHING");
            let (text, args) = sql.build_for(self.backend);
            sqlx::query_with(&text, args).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
