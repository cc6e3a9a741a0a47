//! Idempotency keys: who claimed a key first, and the result to replay.

use crate::{Result, Store};

/// What a claim of `(scope, key)` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: the caller runs the request and records its result.
    Claimed,
    /// The same request ran before: here is what it answered.
    Replay {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

impl Store {
    /// Claims `key` for a request with `fingerprint`, or reports what holds
    /// it. Claims older than `expired_before` (microseconds) are forgotten.
    pub async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: i64,
        expired_before: i64,
    ) -> Result<Claim> {
        let mut tx = self.begin_write().await?;
        // Expired keys go as they are passed (an index range, empty most
        // of the time), so the table holds one day of keys at most.
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope.to_owned())
        .bind(key.to_owned())
        .bind(fingerprint.to_owned())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let claim = if inserted {
            Claim::Claimed
        } else {
            let (held, status, content_type, body): (
                String,
                Option<i64>,
                Option<String>,
                Option<Vec<u8>>,
            ) = sqlx::query_as(
                "SELECT fingerprint, status, content_type, body FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2",
            )
            .bind(scope.to_owned())
            .bind(key.to_owned())
            .fetch_one(&mut *tx)
            .await?;
            match status {
                _ if held != fingerprint => Claim::Mismatch,
                None => Claim::InProgress,
                Some(status) => Claim::Replay {
                    status: u16::try_from(status).unwrap_or(500),
                    content_type,
                    body: body.unwrap_or_default(),
                },
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// Records the result of a claimed key.
    pub async fn finish_idempotency(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, content_type = $2, body = $3 \
             WHERE scope = $4 AND key = $5",
        )
        .bind(i64::from(status))
        .bind(content_type.map(str::to_owned))
        .bind(body.to_vec())
        .bind(scope.to_owned())
        .bind(key.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a claim whose request failed on our side, so a retry runs.
    pub async fn release_idempotency(&self, scope: &str, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status IS NULL",
        )
        .bind(scope.to_owned())
        .bind(key.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
