//! The run report: every outcome, totals, and an estimate of what the
//! re-ingestion of rebuilt streams costs.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Clients, ExportState, RunState, StreamOutcome};
use crate::domain::input::Mode;
use crate::domain::layout::GroupLayout;
use crate::error::{ArchiverError, Result};

/// CloudWatch Logs ingestion price per GB (us-east-1 standard class), used
/// for the re-ingestion estimate.
pub const INGESTION_USD_PER_GB: f64 = 0.50;

/// How many failed streams the execution's error names (the rest are in the report).
const FAILED_STREAMS_IN_ERROR: usize = 10;

/// Totals of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunTotals {
    /// Streams per action (`deleted`, `rebuilt`, `skipped`, ...).
    pub streams: BTreeMap<String, u64>,
    /// Export objects written by this run.
    pub export_objects: u64,
    /// Compressed bytes exported by this run.
    pub export_bytes: u64,
    /// Events replayed into rebuilt streams.
    pub events_replayed: u64,
    /// Bytes re-ingested (message bytes + 26 per event, as billed).
    pub bytes_replayed: u64,
    /// Stored bytes of deleted streams, as reported by CloudWatch.
    pub deleted_stored_bytes: i64,
    /// Estimated cost of the re-ingestion, in USD.
    pub estimated_reingestion_usd: f64,
}

/// The report of a run: returned as the execution output (without the
/// per-stream list, which can be large) and written to S3 in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The log group.
    pub log_group_name: String,
    /// The mode.
    pub mode: Mode,
    /// The cutoff, RFC 3339.
    pub cutoff: String,
    /// The run id.
    pub run_id: String,
    /// The export task of this run, if any.
    pub export_task_id: Option<String>,
    /// Totals.
    pub totals: RunTotals,
    /// Bucket of the full report.
    pub report_bucket: String,
    /// Key of the full report.
    pub report_key: String,
    /// Every stream's outcome (only in the S3 copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<StreamOutcome>,
}

/// Aggregates the outcomes of every Map item, writes the report, and fails
/// with `StreamsFailed` if any stream failed (after writing the report).
pub async fn report_run(run: RunState, clients: &Clients) -> Result<RunReport> {
    let settings = &run.settings;
    let layout = GroupLayout::of(settings);
    let run_id = settings.run_id();
    let mut outcomes: Vec<StreamOutcome> = Vec::new();
    let outcome_objects = clients
        .archive
        .list(&settings.bucket, &layout.outcomes_root(&run_id))
        .await?;
    for object in &outcome_objects {
        let Some(bytes) = clients.archive.get(&settings.bucket, &object.key).await? else {
            continue;
        };
        let batch: Vec<StreamOutcome> = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiverError::Internal(format!("outcome object {} is not valid: {e}", object.key)))?;
        outcomes.extend(batch);
    }

    let mut totals = RunTotals::default();
    if let ExportState::Ready {
        export: Some(export), ..
    } = &run.export
    {
        totals.export_objects = export.objects;
        totals.export_bytes = export.bytes;
    }
    for o in &outcomes {
        *totals.streams.entry(o.action.clone()).or_default() += 1;
        totals.events_replayed += o.events_replayed;
        totals.bytes_replayed += o.bytes_replayed + 26 * o.events_replayed;
        if o.action == "deleted" {
            totals.deleted_stored_bytes += o.stored_bytes;
        }
    }
    totals.estimated_reingestion_usd = totals.bytes_replayed as f64 / 1e9 * INGESTION_USD_PER_GB;

    let report_key = layout.report(&run_id);
    let report = RunReport {
        log_group_name: settings.log_group_name.clone(),
        mode: settings.mode,
        cutoff: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(settings.cutoff_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        run_id: run_id.clone(),
        export_task_id: match &run.export {
            ExportState::Ready { export: Some(e), .. } => Some(e.task_id.clone()),
            _ => None,
        },
        totals,
        report_bucket: settings.bucket.clone(),
        report_key: report_key.clone(),
        outcomes,
    };
    let body = serde_json::to_vec_pretty(&report).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients
        .archive
        .put(&settings.bucket, &report_key, Bytes::from(body))
        .await?;
    crate::workflow::metrics::run_metrics(&report, chrono::Utc::now().timestamp_millis()).emit();

    // The report holds everything; the working objects of the run go.
    for object in &outcome_objects {
        clients.archive.delete(&settings.bucket, &object.key).await?;
    }
    clients
        .archive
        .delete(&settings.bucket, &layout.manifest(&run_id))
        .await?;

    let failed: Vec<&StreamOutcome> = report.outcomes.iter().filter(|o| o.action == "failed").collect();
    if !failed.is_empty() {
        let streams = failed
            .iter()
            .take(FAILED_STREAMS_IN_ERROR)
            .map(|o| format!("{} ({})", o.stream, o.reason.as_deref().unwrap_or("no cause")))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ArchiverError::StreamsFailed {
            count: failed.len() as u64,
            streams,
            bucket: settings.bucket.clone(),
            report_key,
        });
    }
    Ok(RunReport {
        outcomes: Vec::new(),
        ..report
    })
}
