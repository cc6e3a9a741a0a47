//! The full (denormalized) inventory export: one row per model with every
//! section flattened, its departments and agents by name, and its catalog
//! entry. Streamed in batches like the summary export.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use modelplane_domain::org::RiskFramework;
use modelplane_domain::sections::ModelSections;
use modelplane_service::models::{self, ExportRow, ModelSearch};
use modelplane_service::Principal;

use super::models::{attachment, csv_writer, summary_record, ExportFormat, CSV_COLUMNS};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// The columns after the summary ones. Lists are joined with `; `; maps
/// (descriptions, values, flags) are JSON objects.
const FULL_COLUMNS: [&str; 27] = [
    "catalog_id",
    "catalog_provider",
    "catalog_model_id",
    "catalog_lifecycle",
    "context_window",
    "max_output_tokens",
    "department_ids",
    "departments",
    "agent_ids",
    "agents",
    "sections_set",
    "aliases",
    "descriptions",
    "values",
    "serving_providers",
    "flags",
    "modalities_in",
    "modalities_out",
    "temperature_levels",
    "reasoning_levels",
    "qualities",
    "voices",
    "pricing_input",
    "pricing_output",
    "pricing_cached_input",
    "pricing_currency",
    "catalog_open_weights",
];

fn join(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().collect::<Vec<_>>().join("; ")
}

fn json_or_empty<T: serde::Serialize>(v: &Option<T>) -> String {
    v.as_ref()
        .and_then(|v| serde_json::to_string(v).ok())
        .unwrap_or_default()
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The full row of one model: the summary columns, then `FULL_COLUMNS`.
fn full_record(row: &ExportRow, framework: RiskFramework) -> Vec<Cow<'_, str>> {
    let m = &row.model;
    let catalog = row.catalog.as_ref();
    let eff: ModelSections = m.sections.effective(catalog);
    let pricing = eff.pricing.as_ref();
    let list = |v: &Option<Vec<String>>| join(v.clone().unwrap_or_default());
    let mut record = summary_record(m, framework);
    record.extend(
        [
            num(m.catalog_id),
            catalog.map(|c| c.provider.clone()).unwrap_or_default(),
            catalog.map(|c| c.model_id.clone()).unwrap_or_default(),
            catalog
                .map(|c| c.lifecycle().as_str().to_owned())
                .unwrap_or_default(),
            num(catalog.and_then(|c| c.facts.context_window)),
            num(catalog.and_then(|c| c.facts.max_output_tokens)),
            join(row.departments.iter().map(|(id, _)| id.to_string())),
            join(row.departments.iter().map(|(_, name)| name.clone())),
            join(row.agents.iter().map(|(id, _)| id.to_string())),
            join(row.agents.iter().map(|(_, name)| name.clone())),
            join(m.sections.set_names().into_iter().map(str::to_owned)),
            list(&eff.aliases),
            json_or_empty(&eff.descriptions),
            json_or_empty(&eff.values),
            join(eff.providers.iter().flatten().map(|p| match &p.model_id {
                Some(id) => format!("{}:{id}", p.provider),
                None => p.provider.clone(),
            })),
            json_or_empty(&eff.flags),
            join(eff.modalities.iter().flat_map(|m| m.input.clone())),
            join(eff.modalities.iter().flat_map(|m| m.output.clone())),
            join(
                eff.temperature_levels
                    .iter()
                    .flatten()
                    .map(|l| format!("{}={}", l.name, l.value)),
            ),
            list(&eff.reasoning_levels),
            list(&eff.qualities),
            list(&eff.voices),
            num(pricing.and_then(|p| p.input)),
            num(pricing.and_then(|p| p.output)),
            num(pricing.and_then(|p| p.cached_input)),
            pricing.map(|p| p.currency.clone()).unwrap_or_default(),
            num(catalog.and_then(|c| c.facts.open_weights)),
        ]
        .map(Cow::Owned),
    );
    record
}

/// A JSON record of the full view: the model, its effective sections, its
/// departments, agents and catalog entry.
fn full_json(row: &ExportRow) -> Value {
    let mut v = serde_json::to_value(&row.model).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert(
            "effective_sections".into(),
            serde_json::to_value(row.model.sections.effective(row.catalog.as_ref()))
                .unwrap_or(Value::Null),
        );
        let named = |items: &[(uuid::Uuid, String)]| -> Value {
            items
                .iter()
                .map(|(id, name)| serde_json::json!({"id": id, "name": name}))
                .collect()
        };
        map.insert("departments".into(), named(&row.departments));
        map.insert("agents".into(), named(&row.agents));
        map.insert(
            "catalog".into(),
            row.catalog
                .as_ref()
                .map(|c| serde_json::json!({"id": c.id, "provider": c.provider, "model_id": c.model_id, "facts": c.facts}))
                .unwrap_or(Value::Null),
        );
    }
    v
}

pub(super) async fn full_export(
    s: &AppState,
    p: &Principal,
    search: ModelSearch,
    format: ExportFormat,
    framework: RiskFramework,
) -> ApiResult<Response> {
    let batches = models::export_full(&s.store, p, search).await?;
    let to_io = |e: String| {
        tracing::error!(error = %e, "export aborted");
        std::io::Error::other(e)
    };
    match format {
        ExportFormat::Csv => {
            let mut header = csv_writer(0);
            let columns: Vec<&str> = CSV_COLUMNS
                .iter()
                .chain(FULL_COLUMNS.iter())
                .copied()
                .collect();
            header.write_record(&columns).map_err(|e| {
                tracing::error!(error = %e, "could not write the CSV header");
                ApiError::new(ErrorCode::Internal, "internal error; see the server log")
            })?;
            let header = header.into_inner().map(Bytes::from).unwrap_or_default();
            let rows = batches.map(move |batch| {
                let batch = batch.map_err(|e| to_io(e.to_string()))?;
                let mut w = csv_writer(0);
                for row in &batch {
                    w.write_record(full_record(row, framework).iter().map(|f| f.as_bytes()))
                        .map_err(|e| to_io(e.to_string()))?;
                }
                w.into_inner()
                    .map(Bytes::from)
                    .map_err(|e| to_io(e.to_string()))
            });
            let stream = futures::stream::once(async move { Ok(header) }).chain(rows);
            Ok(attachment(
                "text/csv; charset=utf-8",
                "csv",
                Body::from_stream(stream),
            ))
        }
        ExportFormat::Json => {
            let mut first = true;
            let rows = batches.map(move |batch| {
                let batch = batch.map_err(|e| to_io(e.to_string()))?;
                let mut out = Vec::new();
                for row in &batch {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut out, &full_json(row))
                        .map_err(|e| to_io(e.to_string()))?;
                }
                Ok::<_, std::io::Error>(Bytes::from(out))
            });
            let open = futures::stream::once(async { Ok(Bytes::from_static(b"{\"models\":[")) });
            let close = futures::stream::once(async { Ok(Bytes::from_static(b"]}")) });
            Ok(attachment(
                "application/json",
                "json",
                Body::from_stream(open.chain(rows).chain(close)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_header_has_one_column_per_value() {
        let model: modelplane_domain::model::Model = serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-7000-8000-000000000001", "org_id": "00000000-0000-7000-8000-000000000002",
            "model_id": "m", "provider": "p", "display_name": "m", "risk_tier": "tier_1",
            "validation_status": "draft", "owner": null, "description": null, "tags": {},
            "intended_use": null, "limitations": null, "developer": null, "validator": null,
            "vendor": null, "last_validated_at": null, "next_review_at": null, "last_seen_at": null,
            "version": 1, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "catalog_id": null, "department_ids": [], "sections": {"voices": ["a", "b"]}
        }))
        .expect("model");
        let row = ExportRow {
            model,
            catalog: None,
            departments: vec![],
            agents: vec![],
        };
        let record = full_record(&row, RiskFramework::default());
        assert_eq!(record.len(), CSV_COLUMNS.len() + FULL_COLUMNS.len());
        let voices = CSV_COLUMNS.len()
            + FULL_COLUMNS
                .iter()
                .position(|c| *c == "voices")
                .expect("voices");
        assert_eq!(record[voices], "a; b");
    }
}
