//! The state machine run in process, the way `statemachine/archive.asl.json`
//! runs it: for tests, benchmarks and tools that drive the workflow without
//! Step Functions. Retries follow the definition's Retry lists (transient
//! errors, a few times, without the waits), and a Map item whose retries ran
//! out is recorded as failed, as the definition's Catch does.

use super::{
    BatchFailure, BatchRequest, BatchSummary, Clients, ExportState, ManifestBatch, RebuildRequest, RunReport, RunState,
    StartRequest, abandon_run, abandon_start, check_export, rebuild_batch, record_batch_failure, report_run,
    scan_batch, start_export,
};
use crate::error::{ArchiverError, Result};

/// Attempts of a step whose errors are transient (the definition retries
/// them up to 6 times after the first).
const ATTEMPTS: u32 = 7;

/// What running one Map item took.
#[derive(Debug, Clone)]
pub struct ItemRun {
    /// rebuild-stream's final summary.
    pub summary: BatchSummary,
    /// scan-stream invocations (1 + continuations).
    pub scan_invocations: u32,
    /// rebuild-stream invocations (1 + continuations).
    pub rebuild_invocations: u32,
}

/// Calls `step` again while it fails with a transient error.
async fn retried<T, F, Fut>(mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// Scans the batch, then rebuilds it, each step called again with its
/// result while it hands back a continuation.
pub async fn run_map_item(run: &RunState, batch: ManifestBatch, clients: &Clients) -> Result<ItemRun> {
    let (mut scan_invocations, mut rebuild_invocations) = (0, 0);
    let mut scan = None;
    let scan = loop {
        scan_invocations += 1;
        let request = BatchRequest {
            run: run.clone(),
            batch: batch.clone(),
            scan: scan.clone(),
        };
        let result = retried(|| scan_batch(request.clone(), clients)).await?;
        if result.resume.is_none() {
            break result;
        }
        scan = Some(result);
    };
    let mut rebuild = None;
    loop {
        rebuild_invocations += 1;
        let request = RebuildRequest {
            run: run.clone(),
            batch: batch.clone(),
            scan: scan.clone(),
            rebuild: rebuild.clone(),
        };
        let summary = retried(|| rebuild_batch(request.clone(), clients)).await?;
        if summary.resume.is_none() {
            return Ok(ItemRun {
                summary,
                scan_invocations,
                rebuild_invocations,
            });
        }
        rebuild = Some(summary);
    }
}

/// How an execution run in process ended.
#[derive(Debug)]
pub enum Execution {
    /// The run's report (the execution output).
    Succeeded(RunReport),
    /// Another run holds the group: nothing was touched.
    GroupBusy(RunState),
    /// The run failed with this error (after the failure path let the group go).
    Failed(ArchiverError),
}

/// Runs a whole execution: start, export polls (without waiting between
/// them), the Map over the manifest's items one after another, the report;
/// on a failure, the failure path.
pub async fn run_execution(request: StartRequest, clients: &Clients) -> Execution {
    let run = match retried(|| start_export(request.clone(), clients)).await {
        Ok(run) => run,
        Err(e) => {
            let _ = abandon_start(request, clients).await;
            return Execution::Failed(e);
        }
    };
    match drive(run, clients).await {
        Ok(outcome) => outcome,
        Err((run, e)) => {
            let _ = abandon_run(run, clients).await;
            Execution::Failed(e)
        }
    }
}

async fn drive(mut run: RunState, clients: &Clients) -> std::result::Result<Execution, (RunState, ArchiverError)> {
    loop {
        match &run.export {
            ExportState::GroupBusy { .. } => return Ok(Execution::GroupBusy(run)),
            ExportState::Busy { .. } => {
                return Err((
                    run,
                    ArchiverError::ExportSlotBusy("in-process runs do not wait for the slot".into()),
                ));
            }
            ExportState::Ready { .. } => break,
            _ => match retried(|| check_export(run.clone(), clients)).await {
                Ok(next) => run = next,
                Err(e) => return Err((run, e)),
            },
        }
    }
    let ExportState::Ready { manifest, .. } = &run.export else {
        return Err((run, ArchiverError::Internal("the export is not ready".into())));
    };
    if manifest.batches > 0 {
        let body = match clients.archive.get(&manifest.bucket, &manifest.key).await {
            Ok(Some(body)) => body,
            Ok(None) => return Err((run, ArchiverError::Internal("the manifest is missing".into()))),
            Err(e) => return Err((run, e)),
        };
        let batches: Vec<ManifestBatch> = match serde_json::from_slice(&body) {
            Ok(batches) => batches,
            Err(e) => return Err((run, ArchiverError::Internal(format!("the manifest: {e}")))),
        };
        for batch in batches {
            if let Err(e) = run_map_item(&run, batch.clone(), clients).await {
                let failure = BatchFailure {
                    run: run.clone(),
                    batch,
                    error: serde_json::json!({"Error": e.name().as_str(), "Cause": e.to_string()}),
                };
                if let Err(e) = retried(|| record_batch_failure(failure.clone(), clients)).await {
                    return Err((run, e));
                }
            }
        }
    }
    match retried(|| report_run(run.clone(), clients)).await {
        Ok(report) => Ok(Execution::Succeeded(report)),
        Err(e) => Err((run, e)),
    }
}
