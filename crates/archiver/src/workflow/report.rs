//! The run report: every outcome, totals, and an estimate of what the
//! re-ingestion of rebuilt streams costs.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Clients, ExportState, RunState, StreamOutcome, lease};
use crate::domain::input::Mode;
use crate::domain::input::RunSettings;
use crate::domain::layout::{GroupLayout, StagingKey, StagingKeyKind};
use crate::domain::retention::RetentionStatus;
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
    /// Compressed bytes this run's export holds of the streams it deleted:
    /// what the archive took over from CloudWatch Logs for them.
    pub deleted_streams_export_bytes: u64,
    /// Events older than the cutoff that arrived too late for their export
    /// and were archived as supplements before their stream was deleted.
    pub events_supplemented: u64,
    /// The group's stored bytes (DescribeLogGroups, compressed as billed)
    /// when the manifest was written, before any stream was pruned.
    pub group_stored_bytes_before: Option<i64>,
    /// The group's stored bytes at the end of the run (CloudWatch Logs
    /// updates the figure eventually, so it may lag the deletes).
    pub group_stored_bytes_after: Option<i64>,
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
    /// The run id (the execution name).
    pub run_id: String,
    /// `SUCCEEDED`, or `FAILED` when a stream failed (the execution fails too).
    pub status: String,
    /// The execution, when the run has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// When the execution started, RFC 3339.
    #[serde(default)]
    pub started_at: String,
    /// When the report was written, RFC 3339.
    #[serde(default)]
    pub finished_at: String,
    /// The export task of this run, if any.
    pub export_task_id: Option<String>,
    /// Totals.
    pub totals: RunTotals,
    /// What the run did to the group's retention.
    #[serde(default)]
    pub retention: RetentionStatus,
    /// Bucket of the full report.
    pub report_bucket: String,
    /// Key of the full report.
    pub report_key: String,
    /// Every stream's outcome (only in the S3 copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<StreamOutcome>,
}

/// Removes this run's staging segments of streams without a rebuilding
/// marker: their stream was never deleted (a Map item failed between the
/// scan and the rebuild), so the stream itself holds those events. Staging
/// under a marker stays: it is the truth until a run finishes the stream.
async fn remove_unclaimed_staging(clients: &Clients, settings: &RunSettings, layout: &GroupLayout) -> Result<()> {
    let prefix = format!("{}{}/", layout.staging_root(), settings.run_id);
    let keys: Vec<StagingKey> = clients
        .archive
        .list(&settings.bucket, &prefix)
        .await?
        .iter()
        .filter_map(|o| layout.parse_staging_key(&o.key))
        .collect();
    let marked: BTreeSet<&str> = keys
        .iter()
        .filter(|k| k.kind == StagingKeyKind::RebuildingMarker)
        .map(|k| k.stream.as_str())
        .collect();
    for key in keys.iter().filter(|k| !marked.contains(k.stream.as_str())) {
        if let StagingKeyKind::Segment(segment) = key.kind {
            let object = layout.staging_segment(&key.run_id, &key.stream, segment);
            clients.archive.delete(&settings.bucket, &object).await?;
        }
    }
    Ok(())
}

/// Aggregates the outcomes of every Map item, writes the report, releases
/// the group's lease, and fails with `StreamsFailed` if any stream failed
/// (after writing the report).
pub async fn report_run(run: RunState, clients: &Clients) -> Result<RunReport> {
    let settings = &run.settings;
    let layout = GroupLayout::of(settings);
    let run_id = settings.run_id.clone();
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
        export,
        group_stored_bytes,
        ..
    } = &run.export
    {
        if let Some(export) = export {
            totals.export_objects = export.objects;
            totals.export_bytes = export.bytes;
        }
        totals.group_stored_bytes_before = *group_stored_bytes;
    }
    for o in &outcomes {
        *totals.streams.entry(o.action.clone()).or_default() += 1;
        totals.events_replayed += o.events_replayed;
        totals.bytes_replayed += o.bytes_replayed + 26 * o.events_replayed;
        totals.events_supplemented += o.events_supplemented;
        if o.action == "deleted" {
            totals.deleted_streams_export_bytes += o.export_bytes;
        }
    }
    totals.estimated_reingestion_usd = totals.bytes_replayed as f64 / 1e9 * INGESTION_USD_PER_GB;
    totals.group_stored_bytes_after = clients
        .logs
        .describe_group(&settings.log_group_name)
        .await?
        .and_then(|g| g.stored_bytes);
    let failed = outcomes.iter().filter(|o| o.action == "failed").count();
    let now_ms = clients.logs.now_ms();

    let report_key = layout.report(&run_id);
    let report = RunReport {
        log_group_name: settings.log_group_name.clone(),
        mode: settings.mode,
        cutoff: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(settings.cutoff_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        run_id: run_id.clone(),
        status: if failed > 0 { "FAILED" } else { "SUCCEEDED" }.into(),
        execution_arn: settings.execution_id.clone(),
        started_at: crate::domain::lease::rfc3339(settings.started_at_ms),
        finished_at: crate::domain::lease::rfc3339(now_ms),
        export_task_id: match &run.export {
            ExportState::Ready { export: Some(e), .. } => Some(e.task_id.clone()),
            _ => None,
        },
        totals,
        retention: run.retention.clone(),
        report_bucket: settings.bucket.clone(),
        report_key: report_key.clone(),
        outcomes,
    };
    let body = serde_json::to_vec_pretty(&report).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients
        .archive
        .put(&settings.bucket, &report_key, Bytes::from(body))
        .await?;
    crate::workflow::metrics::run_metrics(&report, now_ms).emit();
    if failed == 0 {
        crate::workflow::metrics::run_succeeded(now_ms).emit();
    }

    // The report holds everything; the working objects of the run go.
    for object in &outcome_objects {
        clients.archive.delete(&settings.bucket, &object.key).await?;
    }
    remove_unclaimed_staging(clients, settings, &layout).await?;
    for root in [layout.plans_root(&run_id), layout.progress_root(&run_id)] {
        for object in clients.archive.list(&settings.bucket, &root).await? {
            clients.archive.delete(&settings.bucket, &object.key).await?;
        }
    }
    clients
        .archive
        .delete(&settings.bucket, &layout.manifest(&run_id))
        .await?;
    if settings.mode != Mode::Plan {
        lease::release(clients, settings).await?;
    }

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
