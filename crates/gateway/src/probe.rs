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
        let client = self.client();
        let req = if paid {
            let body = serde_json::json!({
                "model": u.model,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "ping"}],
            })
            .to_string();
            let head = match modelplane_wire::openai::RequestHead::parse(body.as_bytes()) {
                Ok(h) => h,
                Err(_) => return,
            };
            match self.build_request(
                u,
                modelplane_domain::usage::Endpoint::ChatCompletions,
                &head,
                &bytes::Bytes::from(body),
            ) {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            let engine = matches!(u.provider.slug, "vllm" | "llamacpp");
            let url = if engine {
                format!("{}/health", u.base_url.trim_end_matches("/v1"))
            } else {
                format!("{}/models", u.base_url)
            };
            let mut req = client.get(url);
            if let Some(key) = &u.api_key {
                req = match u.provider.wire {
                    WireFormat::Openai => req.bearer_auth(key),
                    WireFormat::Anthropic => req
                        .header("x-api-key", key)
                        .header("anthropic-version", modelplane_wire::anthropic::API_VERSION),
                    WireFormat::Google => req.header("x-goog-api-key", key),
                };
            }
            req
        };
        let started = Instant::now();
        let result = tokio::time::timeout(PROBE_TIMEOUT, req.send()).await;
        let latency = started.elapsed().as_secs_f64() * 1000.0;
        let now = self.inner.health.now_ms();
        match result {
            Err(_) => u
                .state
                .report(Outcome::Failed, now, None, None, Some("probe timed out")),
            Ok(Err(e)) => {
                let msg = format!("probe failed: {e}");
                u.state.report(Outcome::Failed, now, None, None, Some(&msg));
            }
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.is_success() {
                    u.state.report(
                        Outcome::Answered,
                        now,
                        Some(latency),
                        Some(status.as_u16()),
                        None,
                    );
                } else {
                    let msg = format!("probe answered {}", status.as_u16());
                    u.state.report(
                        Outcome::Failed,
                        now,
                        Some(latency),
                        Some(status.as_u16()),
                        Some(&msg),
                    );
                }
            }
        }
    }
}
