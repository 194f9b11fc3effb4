//! One Map item run in process, the way the state machine's `ScanDone?` and
//! `RebuildDone?` loops run it: for tests, benchmarks and tools that drive
//! the workflow without Step Functions.

use super::{BatchRequest, BatchSummary, Clients, ManifestBatch, RebuildRequest, RunState, rebuild_batch, scan_batch};
use crate::error::Result;

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
            scan,
        };
        let result = scan_batch(request, clients).await?;
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
            rebuild,
        };
        let summary = rebuild_batch(request, clients).await?;
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
