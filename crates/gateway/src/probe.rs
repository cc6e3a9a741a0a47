//! Health probes of upstreams, for `POST /api/v1/admin/upstreams/refresh-health`.
//! The default probe costs nothing: the provider's model listing (`GET
//! /models`), or an engine's `/health`. A paid probe (a one-token chat
//! completion with the route's model) runs only when asked for.

use std::time::{Duration, Instant};

use futures::future::join_all;
use modelplane_domain::route::WireFormat;
use modelplane_service::ServiceError;
use uuid::Uuid;

use crate::health::{Outcome, UpstreamSnapshot};
use crate::proxy::Unsendable;
use crate::routing::LiveUpstream;
use crate::Gateway;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Gateway {
    /// Probes every upstream of the org's routes at once and returns the
    /// refreshed snapshots.
    pub async fn refresh_health(
        &self,
        org_id: Uuid,
        paid: bool,
    ) -> Result<Vec<UpstreamSnapshot>, ServiceError> {
        let table = self.inner.routes.table(self, org_id).await?;
        let mut seen = std::collections::HashSet::new();
        let mut probes = Vec::new();
        for route in table.routes.values() {
            for u in &route.upstreams {
                if seen.insert((u.provider.slug, u.base_url.clone())) {
                    probes.push(self.probe(u, paid));
                }
            }
        }
        join_all(probes).await;
        self.upstreams(org_id).await
    }

    async fn probe(&self, u: &LiveUpstream, paid: bool) {
        let started = Instant::now();
        let answer = if paid {
            match self.paid_probe(u).await {
                Some(answer) => answer,
                // The route's model makes no one-token chat: nothing to learn.
                None => return,
            }
        } else {
            self.free_probe(u).await
        };
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let now = self.inner.health.now_ms();
        match answer {
            Err(msg) => u.state.report(Outcome::Failed, now, None, None, Some(&msg)),
            Ok(status) if (200..300).contains(&status) => {
                u.state
                    .report(Outcome::Answered, now, Some(latency), Some(status), None);
            }
            Ok(status) => {
                let msg = format!("probe answered {status}");
                u.state.report(
                    Outcome::Failed,
                    now,
                    Some(latency),
                    Some(status),
                    Some(&msg),
                );
            }
        }
    }

    /// A one-token chat with the route's model: the answer's status, or why
    /// none came; `None` when no such request can be made.
    async fn paid_probe(&self, u: &LiveUpstream) -> Option<Result<u16, String>> {
        let body = serde_json::json!({
            "model": u.model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
        })
        .to_string();
        let head = modelplane_wire::openai::RequestHead::parse(body.as_bytes()).ok()?;
        let req = match self.build_request(
            u,
            modelplane_domain::usage::Endpoint::ChatCompletions,
            &head,
            &bytes::Bytes::from(body),
        ) {
            Ok(r) => r,
            Err(Unsendable::Refused(_)) => return None,
            Err(Unsendable::BadUrl(msg)) => return Some(Err(format!("probe failed: {msg}"))),
        };
        let client = self.upstream_client();
        Some(
            match tokio::time::timeout(PROBE_TIMEOUT, client.send(req)).await {
                Err(_) => Err("probe timed out".to_owned()),
                Ok(Err(e)) => Err(format!("probe failed: {e}")),
                Ok(Ok(resp)) => Ok(resp.status().as_u16()),
            },
        )
    }

    /// The provider's model listing, or an engine's `/health`: free.
    async fn free_probe(&self, u: &LiveUpstream) -> Result<u16, String> {
        let engine = matches!(u.provider.slug, "vllm" | "llamacpp");
        let url = if engine {
            format!("{}/health", u.base_url.trim_end_matches("/v1"))
        } else {
            format!("{}/models", u.base_url)
        };
        let mut req = self.admin_client().get(url);
        if let Some(key) = &u.api_key {
            req = match u.provider.wire {
                WireFormat::Openai => req.bearer_auth(key),
                WireFormat::Anthropic => req
                    .header("x-api-key", key)
                    .header("anthropic-version", modelplane_wire::anthropic::API_VERSION),
                WireFormat::Google => req.header("x-goog-api-key", key),
            };
        }
        match tokio::time::timeout(PROBE_TIMEOUT, req.send()).await {
            Err(_) => Err("probe timed out".to_owned()),
            Ok(Err(e)) => Err(format!("probe failed: {e}")),
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
        }
    }
}
