//! The steps of the archive workflow, one function per Lambda entry point.
//!
//! Each step takes the JSON the state machine hands it and returns the JSON
//! the next state needs. Steps are idempotent: Step Functions retries them,
//! and an operator may re-run a whole execution.

mod abandon;
mod check;
mod confirm;
pub mod groups;
pub mod lambda;
pub mod lease;
pub mod local;
pub mod metrics;
mod read;
mod rebuild;
mod report;
pub mod retention;
mod scan;
pub mod staged;
mod start;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::input::{InvocationBudget, RunSettings};
use crate::domain::retention::RetentionStatus;
use crate::domain::window::ExportWindow;
use crate::store::{ArchiveStore, DataProtection, LogStore, StreamInfo};

pub use abandon::{abandon_run, abandon_start};
pub use check::check_export;
pub use groups::{
    GroupListing, GroupsRequest, GroupsSummary, ListGroupsCall, SummarizeCall, list_groups, release_groups,
    summarize_groups,
};
pub use read::{EventCursor, Page, ReadLimits, ReadProgress, read_events};
pub use rebuild::{rebuild_batch, record_batch_failure};
pub use report::{INGESTION_USD_PER_GB, RunReport, RunTotals, report_run};
pub use scan::scan_batch;
pub use staged::StagedSet;
pub use start::{StartRequest, start_export};

/// The services a step talks to.
#[derive(Clone)]
pub struct Clients {
    /// CloudWatch Logs.
    pub logs: Arc<dyn LogStore>,
    /// S3.
    pub archive: Arc<dyn ArchiveStore>,
}

impl Clients {
    /// Clients over the AWS SDK from the usual configuration chain.
    pub async fn from_env() -> Self {
        let config = crate::store::aws::load_config().await;
        Self::from_config(&config)
    }

    /// Clients over the AWS SDK from a loaded configuration.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            logs: Arc::new(crate::store::aws::CloudWatchLogs::from_config(config)),
            archive: Arc::new(crate::store::aws::S3Archive::from_config(config)),
        }
    }
}

/// The clients' time (see [`LogStore::now_ms`]) as a date: the fallback
/// start of a run whose input carries no execution start time.
pub(crate) fn clients_now(clients: &Clients) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(clients.logs.now_ms()).unwrap_or_else(chrono::Utc::now)
}

/// One invocation's work measured against its budget.
#[derive(Debug)]
pub(crate) struct BudgetClock {
    started: Instant,
    pages: u64,
    budget: InvocationBudget,
}

impl BudgetClock {
    pub(crate) fn start(budget: InvocationBudget) -> Self {
        Self {
            started: Instant::now(),
            pages: 0,
            budget,
        }
    }

    /// Counts API pages (GetLogEvents reads, PutLogEvents batches).
    pub(crate) fn spend(&mut self, pages: u64) {
        self.pages += pages;
    }

    /// Whether the invocation should hand back a continuation now.
    pub(crate) fn exhausted(&self) -> bool {
        self.pages >= self.budget.pages || self.started.elapsed() >= Duration::from_secs(self.budget.seconds)
    }
}

/// Where a run's export stands; `status` is what the state machine's Choice
/// states read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum ExportState {
    /// Another run holds the group's lease: end at once (or wait, when the
    /// input says so), touching nothing.
    GroupBusy {
        /// The run holding the group.
        held_by: LeaseHolder,
    },
    /// Another export task holds the account's one slot: wait and start again.
    Busy {
        /// The task holding the slot, when known.
        active_task_id: Option<String>,
    },
    /// The export task runs.
    Started {
        /// The task id.
        task_id: String,
        /// The exported window.
        window: ExportWindow,
        /// Where the task writes.
        destination_prefix: String,
        /// When it was created (ms): the earliest time it can have started
        /// reading, by the archiver's clock just before the call.
        started_at_ms: i64,
    },
    /// The checkpoint already covers the cutoff.
    NothingToExport,
    /// Plan mode: the window that would be exported.
    Planned {
        /// The window, if there is one.
        window: Option<ExportWindow>,
    },
    /// The export (if any) completed; the group's streams are being listed
    /// across invocations (a group can have 100,000 of them). The export is
    /// verified against the listing before the checkpoint moves.
    Listing {
        /// The completed export, if this run exported.
        export: Option<VerifiedExport>,
        /// Plan mode: the window a real run would export.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        planned_window: Option<ExportWindow>,
        /// The DescribeLogStreams token to go on from.
        token: Option<String>,
        /// Listing parts written to S3 so far.
        parts: u32,
        /// Streams listed so far.
        streams_in_group: u64,
    },
    /// The export (if any) is verified and the manifest written: prune now.
    Ready {
        /// The verified export, if this run exported.
        export: Option<VerifiedExport>,
        /// Plan mode: the window a real run would have exported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        planned_window: Option<ExportWindow>,
        /// The manifest for the Map state.
        manifest: ManifestRef,
        /// The data protection policies that mask the group.
        #[serde(default)]
        protection: DataProtection,
        /// The group's retention when the manifest was written.
        #[serde(default)]
        retention_days: Option<i32>,
        /// The group's stored bytes (compressed, as billed) before the streams
        /// were pruned.
        #[serde(default)]
        group_stored_bytes: Option<i64>,
    },
}

/// Who holds a busy group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHolder {
    /// The run.
    pub run_id: String,
    /// Its execution, when it has one.
    pub execution_arn: Option<String>,
    /// Since when it holds the group (RFC 3339).
    pub since: String,
    /// When its lease lapses unless renewed (RFC 3339).
    pub expires_at: String,
}

/// A completed export whose objects were found in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedExport {
    /// The task id.
    pub task_id: String,
    /// The exported window.
    pub window: ExportWindow,
    /// Where its objects are.
    pub destination_prefix: String,
    /// Number of export objects (one or more per stream with events in the window).
    pub objects: u64,
    /// Compressed bytes exported.
    pub bytes: u64,
    /// When the task was created (ms): the earlier of the archiver's clock
    /// before the call and the task's own creation time.
    #[serde(default)]
    pub started_at_ms: i64,
}

/// Where the manifest is, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRef {
    /// Bucket of the manifest.
    pub bucket: String,
    /// Key of the manifest.
    pub key: String,
    /// Number of Map items.
    pub batches: u64,
    /// Candidate streams in the manifest.
    pub streams: u64,
    /// Streams in the group.
    pub streams_in_group: u64,
}

/// The state every step passes on: the settings and where the export stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// The validated settings.
    pub settings: RunSettings,
    /// The export.
    pub export: ExportState,
    /// What the run did to the group's retention.
    #[serde(default)]
    pub retention: RetentionStatus,
}

/// A candidate stream in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestStream {
    /// DescribeLogStreams data when the manifest was written; `None` for a
    /// stream that is gone but has a rebuild in progress.
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
    /// The name (repeated for gone streams).
    pub stream: String,
    /// Whether this run's export wrote an object for the stream; `None` when the run exported nothing.
    pub in_export: Option<bool>,
    /// Compressed bytes of the stream's objects in this run's export.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub export_bytes: u64,
    /// Earlier runs whose rebuild of this stream was interrupted (their
    /// rebuilding marker is still in S3): finished first, under their cutoff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unfinished_runs: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One Map item: a batch of streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBatch {
    /// Batch number, from 0.
    pub batch: u32,
    /// The streams.
    pub streams: Vec<ManifestStream>,
}

/// The input of scan-stream: the run and one batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// The run.
    pub run: RunState,
    /// The batch.
    pub batch: ManifestBatch,
    /// The previous invocation's result, when it handed back a continuation.
    #[serde(default)]
    pub scan: Option<ScanResult>,
}

/// What scan-stream decided for one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum StreamPlan {
    /// Every event is older than the cutoff: delete the stream once a fresh
    /// read confirms it and proves every old event archived.
    Delete {
        /// The stream.
        stream: String,
        /// Compressed bytes of the stream in this run's export.
        #[serde(default)]
        export_bytes: u64,
    },
    /// The kept events are staged: rebuild the stream from its staging segments.
    Rebuild {
        /// The stream.
        stream: String,
        /// The staged segments and totals.
        staged: StagedSet,
        /// Compressed bytes of the stream in this run's export.
        #[serde(default)]
        export_bytes: u64,
    },
    /// Finish the interrupted rebuild of an earlier run, under that run's
    /// cutoff, from the staging its marker names.
    Finish {
        /// The stream.
        stream: String,
        /// The earlier run.
        run_id: String,
    },
    /// Nothing is done; `outcome` says why.
    Leave {
        /// The stream.
        stream: String,
        /// The outcome to report.
        outcome: StreamOutcome,
    },
}

impl StreamPlan {
    /// The stream the plan is for.
    pub fn stream(&self) -> &str {
        match self {
            StreamPlan::Delete { stream, .. }
            | StreamPlan::Rebuild { stream, .. }
            | StreamPlan::Finish { stream, .. }
            | StreamPlan::Leave { stream, .. } => stream,
        }
    }
}

/// Every `action` a [`StreamOutcome`] can carry (each is also a metric,
/// `Streams<Action>`, and a line of the report).
pub const STREAM_ACTIONS: [&str; 13] = [
    "deleted",
    "rebuilt",
    "finished",
    "skipped",
    "fresh",
    "empty",
    "gone",
    "left",
    "failed",
    "would-delete",
    "would-rebuild",
    "would-finish",
    "retained",
];

/// What happened to one stream, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// One of [`STREAM_ACTIONS`]: `deleted`, `rebuilt`, `finished` (an
    /// earlier run's rebuild), `skipped`, `fresh`, `empty`, `gone`, `left`
    /// (recreated by its writer), `failed`, `retained` (left to the group's
    /// retention), or in plan mode `would-delete` / `would-rebuild` /
    /// `would-finish`.
    pub action: String,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Events replayed into the rebuilt stream (or that would be).
    pub events_replayed: u64,
    /// Message bytes replayed (what re-ingestion is billed on, plus 26 per event).
    pub bytes_replayed: u64,
    /// Compressed bytes of the stream in this run's export (what the
    /// archive holds of it from this run).
    #[serde(default)]
    pub export_bytes: u64,
    /// Events older than the cutoff that arrived too late for the export,
    /// written to the archive as supplements before the delete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_supplemented: u64,
}

impl StreamOutcome {
    /// An outcome without counts; `action` is one of [`STREAM_ACTIONS`].
    pub fn new(stream: &str, action: &str, reason: Option<String>) -> Self {
        debug_assert!(STREAM_ACTIONS.contains(&action), "{action}");
        Self {
            stream: stream.to_string(),
            action: action.to_string(),
            reason,
            ..Self::default()
        }
    }
}

/// The input of rebuild-stream: the Map item as it stands after the scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildRequest {
    /// The run.
    pub run: RunState,
    /// The batch.
    pub batch: ManifestBatch,
    /// What scan-stream decided.
    pub scan: ScanResult,
    /// The previous invocation's result, when it handed back a continuation.
    #[serde(default)]
    pub rebuild: Option<BatchSummary>,
}

/// The output of scan-stream: how many streams are planned (the plans are
/// in S3, so the state payload never grows with the batch) and, when the
/// invocation's budget ran out, where to go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// Streams planned so far, in batch order.
    pub planned: usize,
    /// Where the next invocation goes on; `null` when the batch is done
    /// (always present, so the state machine's Choice can test it).
    pub resume: Option<ScanResume>,
}

/// Where a scan stopped inside a stream's staging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResume {
    /// The stream being staged (index in the batch; equals `planned`).
    pub stream: usize,
    /// The GetLogEvents forward token to read on from; `None` when the
    /// stream's scan has not started.
    pub token: Option<String>,
    /// What is staged so far.
    pub staged: StagedSet,
}

/// Where a rebuild stopped; the details are in the batch's progress object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildResume {
    /// The stream to go on with (index in the plans).
    pub stream: usize,
}

/// The part of a rebuild a continuation resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum RebuildPhase {
    /// The stream is recreated; this many staged events (oldest first) are replayed.
    Replay {
        /// Events replayed so far.
        replayed: u64,
    },
    /// Every staged event is replayed; read the stream back and compare.
    Verify,
}

/// A Map item that failed after its retries (from the Catch).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFailure {
    /// The run.
    pub run: RunState,
    /// The batch that failed.
    pub batch: ManifestBatch,
    /// The error as Step Functions caught it (`Error`, `Cause`).
    pub error: serde_json::Value,
}

/// What rebuild-stream returns: counts only, the outcomes are in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// The batch number.
    pub batch: u32,
    /// Where the outcomes are, once the batch is done.
    pub outcome_key: Option<String>,
    /// Streams that failed.
    pub failed: u64,
    /// Where the next invocation goes on; `null` when the batch is done
    /// (always present, so the state machine's Choice can test it).
    pub resume: Option<RebuildResume>,
}
