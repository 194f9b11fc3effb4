//! In-memory [`LogStore`] and [`ArchiveStore`] for fast tests, strict where
//! AWS is strict.
//!
//! They follow the same rules as the strict local emulator
//! (`tests/emulator/strict_logs.py`), so a workflow step that passes here
//! does not rely on a leniency AWS lacks:
//!
//! * GetLogEvents returns `start <= t < end`, pages of at most 10,000 events
//!   and 1 MB (message bytes + 26 per event, at least one event), and at the
//!   end hands back the forward token it was sent;
//!   [`MemoryLogs::set_empty_pages`] adds empty pages before every page and
//!   before the end, as AWS may return them.
//! * PutLogEvents takes a [`LogBatch`], valid by construction; events older
//!   than 14 days, than the group's retention, or more than 2 hours ahead of
//!   the clock are dropped and reported, which is a
//!   [`ArchiverError::ReplayRejected`] as in [`crate::store::aws`].
//! * GetLogEvents returns each event's ingestion time; on a group with a
//!   data protection policy ([`MemoryLogs::set_data_protection`]) events
//!   ingested after the policy read masked unless `unmask` is set.
//! * DescribeLogStreams reports first/last event timestamps and the last
//!   ingestion time, optionally as they stood a while ago
//!   ([`MemoryLogs::set_metadata_lag_ms`]: AWS updates them eventually), and
//!   a stream `storedBytes` of 0, as AWS does since June 2019; the group's
//!   stored bytes are real.
//! * PutRetentionPolicy takes only the values AWS accepts; events older than
//!   the retention are no longer read or exported.
//! * S3 conditional writes (`If-None-Match: *`, `If-Match`) are atomic.
//! * One export task may be active per account. A task stays RUNNING for a
//!   set number of DescribeExportTasks polls ([`ExportPlan`]) and then ends
//!   COMPLETED, FAILED or CANCELLED. A completed task writes
//!   `prefix/taskId/<stream>/000000.gz` for every stream with events in
//!   `from <= t <= to` (both inclusive), as gzip lines
//!   `2026-01-31T12:00:00.000Z message`, of the events ingested before the
//!   task was created (minus [`ExportPlan::unavailable_ms`]: AWS takes up to
//!   12 hours to make data exportable), masked as reads are.
//!
//! Both stores share a [`MemoryControl`]: a clock the test may set, a call
//! counter per API operation, and faults that fail the nth call of an
//! operation. [`MemoryAws`] builds the pair.
//!
//! ```
//! # tokio_test_block_on(async {
//! use archiver::store::memory::{FaultKind, MemoryAws};
//! use archiver::store::LogStore;
//!
//! let aws = MemoryAws::new();
//! aws.logs.seed("/app", "web", [archiver::LogEvent::new(1_000, "hello")], None);
//! aws.control().fail_nth("DescribeLogStreams", 1, FaultKind::Throttled);
//! assert!(aws.logs.list_streams("/app").await.is_err());
//! assert_eq!(aws.logs.list_streams("/app").await.unwrap().len(), 1);
//! assert_eq!(aws.control().calls("DescribeLogStreams"), 2);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::batch::{EVENT_OVERHEAD_BYTES, LogBatch};
use crate::domain::event::{IngestedEvent, LogEvent};
use crate::domain::export_format::encode_export_object;
use crate::domain::retention::RETENTION_DAYS;
use crate::error::{ArchiverError, Result};
use crate::store::{
    ArchiveStore, DataProtection, EventsPage, EventsQuery, ExportRequest, ExportStart, ExportStatus, ExportTask,
    GroupInfo, GroupSummary, LogStore, ObjectInfo, RejectedEvents, StreamInfo, Versioned, WriteCondition,
};
use crate::workflow::Clients;

/// Most events in one GetLogEvents page.
pub const PAGE_MAX_EVENTS: usize = 10_000;
/// Most bytes (message bytes + 26 per event) in one GetLogEvents page.
pub const PAGE_MAX_BYTES: usize = 1_048_576;
/// PutLogEvents drops events older than this, relative to the clock.
pub const TOO_OLD_MS: i64 = 14 * 24 * 3_600_000;
/// Streams per DescribeLogStreams page.
const DESCRIBE_STREAMS_PAGE: usize = 50;
/// PutLogEvents drops events further ahead of the clock than this.
pub const TOO_NEW_MS: i64 = 2 * 3_600_000;
const DAY_MS: i64 = 24 * 3_600_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock leaves consistent data
    // behind (every update is applied whole), so keep going.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A non-retryable service error, named like the AWS error code.
fn refused(operation: &'static str, code: &str, message: impl std::fmt::Display) -> ArchiverError {
    ArchiverError::Service {
        operation,
        message: format!("{code}: {message}"),
        retryable: false,
    }
}

// ---------------------------------------------------------------------------
// Control: clock, call counter, faults
// ---------------------------------------------------------------------------

/// How an injected fault fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The service throttled the call: [`ArchiverError::Throttled`].
    Throttled,
    /// A 5xx: a retryable [`ArchiverError::Service`] (`ServiceUnavailable`).
    ServiceUnavailable,
    /// PutLogEvents only: the batch is stored twice (a call that took
    /// effect, whose answer was lost, resent by the SDK); the call succeeds.
    AppliedTwice,
}

/// When a fault strikes: before the call has an effect, or after (the call
/// took effect, the caller sees the failure: a lost answer, a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before,
    After,
}

#[derive(Debug)]
struct FaultRule {
    operation: String,
    nth: u64,
    kind: FaultKind,
    phase: Phase,
    matched: u64,
    injected: u64,
}

/// Something another party does right after a call took effect.
type Hook = std::sync::Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct ControlState {
    now_ms: Option<i64>,
    calls: BTreeMap<String, u64>,
    faults: Vec<FaultRule>,
    /// (operation, nth, calls seen, hook).
    hooks: Vec<(String, u64, u64, Hook)>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("now_ms", &self.now_ms)
            .field("calls", &self.calls)
            .field("faults", &self.faults)
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

/// The clock, call counter and fault injection shared by the memory stores.
///
/// Operations are named as in the AWS APIs: `GetLogEvents`, `PutLogEvents`,
/// `DescribeLogGroups`, `DescribeLogStreams`, `CreateLogStream`,
/// `DeleteLogStream`, `CreateExportTask`, `DescribeExportTasks`;
/// `HeadBucket`, `GetObject` (also ranged reads), `HeadObject`, `PutObject`,
/// `ListObjectsV2`, `DeleteObject`, `CreateMultipartUpload`, `UploadPart`,
/// `CompleteMultipartUpload`, `AbortMultipartUpload`.
#[derive(Debug, Default)]
pub struct MemoryControl {
    state: Mutex<ControlState>,
}

impl MemoryControl {
    /// The clock in ms: the time set by [`set_now_ms`](Self::set_now_ms),
    /// else the system clock.
    pub fn now_ms(&self) -> i64 {
        lock(&self.state)
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }

    /// Freezes the clock at `ms`.
    pub fn set_now_ms(&self, ms: i64) {
        lock(&self.state).now_ms = Some(ms);
    }

    /// Moves the clock forward (freezing it first if it followed the system clock).
    pub fn advance_ms(&self, ms: i64) {
        let now = self.now_ms();
        self.set_now_ms(now + ms);
    }

    /// Fails the `nth` call (1-based, counted from now) of `operation` with `kind`.
    pub fn fail_nth(&self, operation: &str, nth: u64, kind: FaultKind) {
        self.add_fault(operation, nth, kind, Phase::Before);
    }

    /// Lets the `nth` call of `operation` take effect, then fails it with
    /// `kind`, as a lost answer or a crash right after the call does.
    /// Applies to CreateLogStream, DeleteLogStream, PutLogEvents, PutObject.
    pub fn fail_nth_after(&self, operation: &str, nth: u64, kind: FaultKind) {
        self.add_fault(operation, nth, kind, Phase::After);
    }

    fn add_fault(&self, operation: &str, nth: u64, kind: FaultKind, phase: Phase) {
        lock(&self.state).faults.push(FaultRule {
            operation: operation.to_string(),
            nth,
            kind,
            phase,
            matched: 0,
            injected: 0,
        });
    }

    /// How many calls of `operation` the faults failed so far.
    pub fn injected(&self, operation: &str) -> u64 {
        lock(&self.state)
            .faults
            .iter()
            .filter(|f| f.operation == operation)
            .map(|f| f.injected)
            .sum()
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Calls of `operation` so far, failed ones included.
    pub fn calls(&self, operation: &str) -> u64 {
        lock(&self.state).calls.get(operation).copied().unwrap_or(0)
    }

    /// Calls of every operation so far.
    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        lock(&self.state).calls.clone()
    }

    /// Total calls of all operations so far.
    pub fn total_calls(&self) -> u64 {
        lock(&self.state).calls.values().sum()
    }

    /// Forgets the call counts.
    pub fn reset_calls(&self) {
        lock(&self.state).calls.clear();
    }

    /// Counts one call and fails it if a fault says so.
    fn enter(&self, operation: &'static str) -> Result<()> {
        *lock(&self.state).calls.entry(operation.to_string()).or_default() += 1;
        self.strike(operation, Phase::Before)
    }

    /// After a call took effect: fails it if a fault says so.
    fn leave(&self, operation: &'static str) -> Result<()> {
        let due: Vec<Hook> = {
            let mut state = lock(&self.state);
            state
                .hooks
                .iter_mut()
                .filter(|(op, ..)| op == operation)
                .filter_map(|(_, nth, seen, hook)| {
                    *seen += 1;
                    (*seen == *nth).then(|| hook.clone())
                })
                .collect()
        };
        for hook in due {
            hook();
        }
        self.strike(operation, Phase::After)
    }

    /// Runs `action` right after the `nth` call of `operation` took effect,
    /// before the caller sees its answer: another writer acting at an exact
    /// point of a run. Applies where [`fail_nth_after`](Self::fail_nth_after) does.
    pub fn after_nth(&self, operation: &str, nth: u64, action: impl Fn() + Send + Sync + 'static) {
        lock(&self.state)
            .hooks
            .push((operation.to_string(), nth, 0, std::sync::Arc::new(action)));
    }

    /// Whether this PutLogEvents call is to be stored twice.
    fn applies_twice(&self) -> bool {
        self.decide("PutLogEvents", Phase::After, |kind| kind == FaultKind::AppliedTwice)
            .is_some()
    }

    fn decide(&self, operation: &str, phase: Phase, kinds: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
        let mut state = lock(&self.state);
        let mut fail = None;
        for rule in state
            .faults
            .iter_mut()
            .filter(|f| f.operation == operation && f.phase == phase && kinds(f.kind))
        {
            rule.matched += 1;
            if rule.matched == rule.nth && fail.is_none() {
                rule.injected += 1;
                fail = Some(rule.kind);
            }
        }
        fail
    }

    fn strike(&self, operation: &'static str, phase: Phase) -> Result<()> {
        match self.decide(operation, phase, |kind| kind != FaultKind::AppliedTwice) {
            None | Some(FaultKind::AppliedTwice) => Ok(()),
            Some(FaultKind::Throttled) => Err(ArchiverError::Throttled {
                operation,
                message: "Rate exceeded (injected fault)".into(),
            }),
            Some(FaultKind::ServiceUnavailable) => Err(ArchiverError::Service {
                operation,
                message: "ServiceUnavailableException: injected fault".into(),
                retryable: true,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------

/// An object and its ETag (a version counter, unique in the store).
#[derive(Debug, Clone)]
struct Object {
    body: Bytes,
    etag: String,
}

#[derive(Debug, Default)]
struct S3State {
    buckets: BTreeMap<String, BTreeMap<String, Object>>,
    versions: u64,
}

impl S3State {
    fn next_etag(&mut self) -> String {
        self.versions += 1;
        format!("\"{:032x}\"", self.versions)
    }

    fn store(&mut self, operation: &'static str, bucket: &str, key: &str, body: Bytes) -> Result<String> {
        let etag = self.next_etag();
        self.bucket_mut(operation, bucket)?.insert(
            key.to_string(),
            Object {
                body,
                etag: etag.clone(),
            },
        );
        Ok(etag)
    }

    fn bucket_mut(&mut self, operation: &'static str, bucket: &str) -> Result<&mut BTreeMap<String, Object>> {
        self.buckets
            .get_mut(bucket)
            .ok_or_else(|| refused(operation, "NoSuchBucket", format!("bucket {bucket} does not exist")))
    }
}

/// An in-memory S3 ([`ArchiveStore`]).
#[derive(Debug)]
pub struct MemoryArchive {
    state: Mutex<S3State>,
    control: Arc<MemoryControl>,
}

impl MemoryArchive {
    /// An empty S3 with its own [`MemoryControl`].
    pub fn new() -> Self {
        Self::with_control(Arc::new(MemoryControl::default()))
    }

    /// An empty S3 sharing `control`.
    pub fn with_control(control: Arc<MemoryControl>) -> Self {
        Self {
            state: Mutex::new(S3State::default()),
            control,
        }
    }

    /// The shared clock, call counter and faults.
    pub fn control(&self) -> &Arc<MemoryControl> {
        &self.control
    }

    /// Creates a bucket (no error if it exists).
    pub fn create_bucket(&self, bucket: &str) {
        lock(&self.state).buckets.entry(bucket.to_string()).or_default();
    }

    /// Stores an object, creating the bucket if needed, without counting a
    /// call (to set up a test).
    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) {
        let mut state = lock(&self.state);
        state.buckets.entry(bucket.to_string()).or_default();
        let _ = state.store("PutObject", bucket, key, body.into());
    }

    /// An object's bytes, without counting a call.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        lock(&self.state).buckets.get(bucket)?.get(key).map(|o| o.body.clone())
    }

    /// The keys under `prefix`, in order, without counting a call.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        lock(&self.state).buckets.get(bucket).map_or_else(Vec::new, |objects| {
            objects.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
        })
    }

    /// Writes an object on behalf of another service (an export task).
    fn write(&self, operation: &'static str, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        lock(&self.state).store(operation, bucket, key, body).map(drop)
    }

    fn has_bucket(&self, bucket: &str) -> bool {
        lock(&self.state).buckets.contains_key(bucket)
    }
}

impl Default for MemoryArchive {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl ArchiveStore for MemoryArchive {
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        self.control.enter("HeadBucket")?;
        Ok(self.has_bucket(bucket))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        self.control.enter("GetObject")?;
        Ok(self.object(bucket, key))
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        self.control.enter("HeadObject")?;
        Ok(self.object(bucket, key).is_some())
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.control.enter("PutObject")?;
        self.write("PutObject", bucket, key, body)?;
        self.control.leave("PutObject")
    }

    async fn get_versioned(&self, bucket: &str, key: &str) -> Result<Option<Versioned>> {
        self.control.enter("GetObject")?;
        let state = lock(&self.state);
        Ok(state.buckets.get(bucket).and_then(|b| b.get(key)).map(|o| Versioned {
            body: o.body.clone(),
            etag: o.etag.clone(),
        }))
    }

    async fn put_if(&self, bucket: &str, key: &str, body: Bytes, condition: WriteCondition) -> Result<Option<String>> {
        self.control.enter("PutObject")?;
        // One lock for the check and the write: conditional writes are atomic.
        let mut state = lock(&self.state);
        let current = state.bucket_mut("PutObject", bucket)?.get(key).map(|o| o.etag.clone());
        let holds = match (&condition, current) {
            (WriteCondition::IfAbsent, current) => current.is_none(),
            (WriteCondition::IfMatch(etag), Some(current)) => *etag == current,
            (WriteCondition::IfMatch(_), None) => false,
        };
        if !holds {
            return Ok(None);
        }
        state.store("PutObject", bucket, key, body).map(Some)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.control.enter("ListObjectsV2")?;
        let mut state = lock(&self.state);
        let objects = state.bucket_mut("ListObjectsV2", bucket)?;
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(key, object)| ObjectInfo {
                key: key.clone(),
                size: i64::try_from(object.body.len()).unwrap_or(i64::MAX),
            })
            .collect())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.control.enter("DeleteObject")?;
        if let Some(objects) = lock(&self.state).buckets.get_mut(bucket) {
            objects.remove(key);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// CloudWatch Logs
// ---------------------------------------------------------------------------

/// What export tasks created from now on do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPlan {
    /// DescribeExportTasks polls of the task that still see it RUNNING.
    pub running_polls: u32,
    /// How it ends: `Completed` (objects written), `Failed` or `Cancelled`.
    pub outcome: ExportStatus,
    /// Events ingested this long before the task's creation are not yet
    /// exportable and missing from its objects (AWS: up to 12 hours).
    pub unavailable_ms: i64,
}

impl Default for ExportPlan {
    /// COMPLETED at the first poll, with every event ingested before its
    /// creation.
    fn default() -> Self {
        Self {
            running_polls: 0,
            outcome: ExportStatus::Completed,
            unavailable_ms: 0,
        }
    }
}

/// An export task as the memory CloudWatch Logs keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTaskRecord {
    /// Task id.
    pub task_id: String,
    /// The request that created it.
    pub request: ExportRequest,
    /// Current status.
    pub status: ExportStatus,
    /// Keys of the objects it wrote.
    pub objects: Vec<String>,
    /// When it was created (ms, the clock's time).
    pub creation_ms: i64,
    running_polls: u32,
    outcome: ExportStatus,
    unavailable_ms: i64,
}

#[derive(Debug, Clone)]
struct StoredEvent {
    timestamp: i64,
    seq: u64,
    message: String,
    ingestion_ms: i64,
}

#[derive(Debug, Default)]
struct Stream {
    creation_time: i64,
    /// Sorted by (timestamp, seq).
    events: Vec<StoredEvent>,
    last_ingestion_time: Option<i64>,
    stored_bytes: i64,
}

impl Stream {
    /// DescribeLogStreams' view: the event statistics as of `seen_at_ms`
    /// (events ingested later are not reflected yet), `storedBytes` 0.
    fn info(&self, name: &str, seen_at_ms: Option<i64>) -> StreamInfo {
        let seen = |e: &&StoredEvent| seen_at_ms.is_none_or(|at| e.ingestion_ms <= at);
        StreamInfo {
            name: name.to_string(),
            creation_time: self.creation_time,
            first_event_timestamp: self.events.iter().find(seen).map(|e| e.timestamp),
            last_event_timestamp: self.events.iter().rev().find(seen).map(|e| e.timestamp),
            last_ingestion_time: match seen_at_ms {
                None => self.last_ingestion_time,
                Some(at) => self.events.iter().map(|e| e.ingestion_ms).filter(|&i| i <= at).max(),
            },
            stored_bytes: Some(0),
        }
    }

    /// Adds events with new sequence numbers, keeping the order.
    fn store(&mut self, events: impl IntoIterator<Item = LogEvent>, next_seq: &mut u64, ingestion_ms: i64) {
        for e in events {
            *next_seq += 1;
            self.stored_bytes += i64::try_from(e.message.len()).unwrap_or(i64::MAX);
            self.events.push(StoredEvent {
                timestamp: e.timestamp,
                seq: *next_seq,
                message: e.message,
                ingestion_ms,
            });
        }
        self.events.sort_by_key(|e| (e.timestamp, e.seq));
        self.last_ingestion_time = Some(ingestion_ms);
    }
}

#[derive(Debug)]
struct Group {
    creation_time: i64,
    retention_in_days: Option<i32>,
    /// The group's data protection policy: the text it masks, and since when.
    protection: Option<Masking>,
    /// The group's tags.
    tags: BTreeMap<String, String>,
    streams: BTreeMap<String, Stream>,
}

impl Group {
    fn new(creation_time: i64, retention_in_days: Option<i32>) -> Self {
        Self {
            creation_time,
            retention_in_days,
            protection: None,
            tags: BTreeMap::new(),
            streams: BTreeMap::new(),
        }
    }

    /// Events with a timestamp before this are past the retention.
    fn expired_before(&self, now_ms: i64) -> Option<i64> {
        self.retention_in_days.map(|days| now_ms - i64::from(days) * DAY_MS)
    }
}

/// A data protection policy in memory: every occurrence of `pattern` in an
/// event ingested at or after `since_ms` reads as asterisks.
#[derive(Debug, Clone)]
struct Masking {
    pattern: String,
    since_ms: i64,
}

impl Masking {
    fn view(&self, event: &StoredEvent, unmask: bool) -> String {
        if unmask || event.ingestion_ms < self.since_ms || self.pattern.is_empty() {
            event.message.clone()
        } else {
            event
                .message
                .replace(&self.pattern, &"*".repeat(self.pattern.chars().count()))
        }
    }
}

#[derive(Debug, Default)]
struct LogsState {
    groups: BTreeMap<String, Group>,
    tasks: Vec<ExportTaskRecord>,
    next_seq: u64,
    next_task: u64,
    empty_pages: u32,
    export_plan: ExportPlan,
    metadata_lag_ms: Option<i64>,
    account_masking: Option<Masking>,
}

impl LogsState {
    fn group_mut(&mut self, operation: &'static str, group: &str) -> Result<&mut Group> {
        self.groups.get_mut(group).ok_or_else(|| {
            refused(
                operation,
                "ResourceNotFoundException",
                format!("log group {group} does not exist"),
            )
        })
    }
}

/// A GetLogEvents position: after the event `(timestamp, seq)`, with
/// `empties` empty pages already served there. Rendered as
/// `f/<timestamp>/<seq>/<empties>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    after: Option<(i64, u64)>,
    empties: u32,
}

impl Position {
    fn token(&self) -> String {
        match self.after {
            Some((t, seq)) => format!("f/{t}/{seq}/{}", self.empties),
            None => format!("f/start/0/{}", self.empties),
        }
    }

    fn parse(token: &str) -> Option<Position> {
        let mut parts = token.strip_prefix("f/")?.split('/');
        let (t, seq, empties) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let after = match t {
            "start" => None,
            t => Some((t.parse().ok()?, seq.parse().ok()?)),
        };
        Some(Position {
            after,
            empties: empties.parse().ok()?,
        })
    }
}

/// An in-memory CloudWatch Logs ([`LogStore`]); its export tasks write to a
/// [`MemoryArchive`].
#[derive(Debug)]
pub struct MemoryLogs {
    state: Mutex<LogsState>,
    archive: Arc<MemoryArchive>,
    control: Arc<MemoryControl>,
}

impl MemoryLogs {
    /// An empty CloudWatch Logs whose exports write to `archive`, sharing its control.
    pub fn new(archive: Arc<MemoryArchive>) -> Self {
        let control = Arc::clone(archive.control());
        Self {
            state: Mutex::new(LogsState::default()),
            archive,
            control,
        }
    }

    /// The shared clock, call counter and faults.
    pub fn control(&self) -> &Arc<MemoryControl> {
        &self.control
    }

    /// Creates a group now, without retention (no error if it exists).
    pub fn create_group(&self, group: &str) {
        let now = self.control.now_ms();
        self.create_group_with(group, now, None);
    }

    /// Creates a group with a creation time and a retention (or updates them).
    pub fn create_group_with(&self, group: &str, creation_ms: i64, retention_in_days: Option<i32>) {
        let mut state = lock(&self.state);
        let g = state
            .groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(creation_ms, retention_in_days));
        g.creation_time = creation_ms;
        g.retention_in_days = retention_in_days;
    }

    /// Sets a tag of a group, creating the group if missing.
    pub fn tag_group(&self, group: &str, key: &str, value: &str) {
        self.create_group(group);
        let mut state = lock(&self.state);
        if let Some(g) = state.groups.get_mut(group) {
            g.tags.insert(key.to_string(), value.to_string());
        }
    }

    /// Stores events with any timestamps (no PutLogEvents rule applies),
    /// creating the group and stream if missing; the stream's last ingestion
    /// time becomes `ingestion_ms`, or the clock's time.
    pub fn seed(
        &self,
        group: &str,
        stream: &str,
        events: impl IntoIterator<Item = LogEvent>,
        ingestion_ms: Option<i64>,
    ) {
        let now = self.control.now_ms();
        let ingestion = ingestion_ms.unwrap_or(now);
        let mut state = lock(&self.state);
        let LogsState { groups, next_seq, .. } = &mut *state;
        let g = groups.entry(group.to_string()).or_insert_with(|| Group::new(now, None));
        let s = g.streams.entry(stream.to_string()).or_insert_with(|| Stream {
            creation_time: now,
            ..Stream::default()
        });
        s.store(events, next_seq, ingestion);
    }

    /// A stream's events in order, `None` when it does not exist; counts no call.
    pub fn events(&self, group: &str, stream: &str) -> Option<Vec<LogEvent>> {
        let state = lock(&self.state);
        let s = state.groups.get(group)?.streams.get(stream)?;
        Some(
            s.events
                .iter()
                .map(|e| LogEvent::new(e.timestamp, e.message.clone()))
                .collect(),
        )
    }

    /// The names of a group's streams; counts no call.
    pub fn stream_names(&self, group: &str) -> Vec<String> {
        lock(&self.state)
            .groups
            .get(group)
            .map_or_else(Vec::new, |g| g.streams.keys().cloned().collect())
    }

    /// GetLogEvents serves `n` empty pages, each with a new token, before
    /// every page of events and before the end of the stream.
    pub fn set_empty_pages(&self, n: u32) {
        lock(&self.state).empty_pages = n;
    }

    /// DescribeLogStreams reflects only events ingested at least `lag_ms`
    /// ago (`None`: at once). AWS updates these statistics "on an eventual
    /// consistency basis", typically within an hour.
    pub fn set_metadata_lag_ms(&self, lag_ms: Option<i64>) {
        lock(&self.state).metadata_lag_ms = lag_ms;
    }

    /// Gives the group a data protection policy masking `pattern` in events
    /// ingested from now on (`None` removes it).
    pub fn set_data_protection(&self, group: &str, pattern: Option<&str>) {
        let since_ms = self.control.now_ms();
        if let Some(g) = lock(&self.state).groups.get_mut(group) {
            g.protection = pattern.map(|p| Masking {
                pattern: p.to_string(),
                since_ms,
            });
        }
    }

    /// Gives the account a data protection policy masking `pattern` in every
    /// group's events ingested from now on (`None` removes it).
    pub fn set_account_data_protection(&self, pattern: Option<&str>) {
        let since_ms = self.control.now_ms();
        lock(&self.state).account_masking = pattern.map(|p| Masking {
            pattern: p.to_string(),
            since_ms,
        });
    }

    /// The ingestion times of a stream's events, in event order; counts no call.
    pub fn ingestion_times(&self, group: &str, stream: &str) -> Option<Vec<i64>> {
        let state = lock(&self.state);
        let s = state.groups.get(group)?.streams.get(stream)?;
        Some(s.events.iter().map(|e| e.ingestion_ms).collect())
    }

    /// What export tasks created from now on do.
    pub fn set_export_plan(&self, plan: ExportPlan) {
        lock(&self.state).export_plan = plan;
    }

    /// Creates a RUNNING export task of another caller that holds the
    /// account's slot until [`end_export_task`](Self::end_export_task).
    pub fn occupy_export_slot(&self) -> String {
        let now = self.control.now_ms();
        let mut state = lock(&self.state);
        let request = ExportRequest {
            task_name: "another-caller".into(),
            log_group_name: "/another/caller".into(),
            from_ms: 0,
            to_ms: 0,
            bucket: "another-caller".into(),
            prefix: "exportedlogs".into(),
        };
        let plan = ExportPlan {
            running_polls: u32::MAX,
            ..ExportPlan::default()
        };
        new_task(&mut state, request, plan, now)
    }

    /// Ends an active task now with `status`; a COMPLETED task writes its objects.
    pub fn end_export_task(&self, task_id: &str, status: ExportStatus) -> Result<()> {
        let mut state = lock(&self.state);
        let Some(index) = state.tasks.iter().position(|t| t.task_id == task_id) else {
            return Err(refused(
                "CancelExportTask",
                "ResourceNotFoundException",
                format!("no export task {task_id}"),
            ));
        };
        state.tasks[index].outcome = status;
        self.settle(&mut state, index);
        Ok(())
    }

    /// Every export task so far, oldest first; counts no call.
    pub fn export_tasks(&self) -> Vec<ExportTaskRecord> {
        lock(&self.state).tasks.clone()
    }

    /// Ends task `index` with its planned outcome; a COMPLETED task writes
    /// its objects first (and FAILS if its group or bucket vanished).
    fn settle(&self, state: &mut LogsState, index: usize) {
        let task = &state.tasks[index];
        if !task.status.is_active() {
            return;
        }
        let (status, objects) = match task.outcome {
            ExportStatus::Completed => match self.write_export(state, task) {
                Ok(objects) => (ExportStatus::Completed, objects),
                Err(_) => (ExportStatus::Failed, Vec::new()),
            },
            other => (other, Vec::new()),
        };
        let task = &mut state.tasks[index];
        task.status = status;
        task.objects = objects;
    }

    fn write_export(&self, state: &LogsState, task: &ExportTaskRecord) -> Result<Vec<String>> {
        const OP: &str = "CreateExportTask";
        let request = &task.request;
        let task_id = &task.task_id;
        let exportable_until = task.creation_ms - task.unavailable_ms;
        let expired_before = state
            .groups
            .get(&request.log_group_name)
            .and_then(|g| g.expired_before(self.control.now_ms()));
        let group = state.groups.get(&request.log_group_name).ok_or_else(|| {
            refused(
                OP,
                "ResourceNotFoundException",
                format!("log group {} does not exist", request.log_group_name),
            )
        })?;
        let mut written = Vec::new();
        for (name, stream) in &group.streams {
            let lo = stream.events.partition_point(|e| e.timestamp < request.from_ms);
            let hi = stream.events.partition_point(|e| e.timestamp <= request.to_ms);
            if hi <= lo {
                continue;
            }
            let events: Vec<LogEvent> = stream.events[lo..hi]
                .iter()
                .filter(|e| e.ingestion_ms <= exportable_until)
                .filter(|e| expired_before.is_none_or(|before| e.timestamp >= before))
                .map(|e| LogEvent::new(e.timestamp, state.view(group, e, false)))
                .collect();
            if events.is_empty() {
                continue;
            }
            let body = encode_export_object(&events)
                .map_err(|e| ArchiverError::Internal(format!("compressing an export object: {e}")))?;
            let key = export_key(&request.prefix, &format!("{task_id}/{name}/000000.gz"));
            self.archive.write(OP, &request.bucket, &key, Bytes::from(body))?;
            written.push(key);
        }
        Ok(written)
    }
}

fn export_key(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

fn new_task(state: &mut LogsState, request: ExportRequest, plan: ExportPlan, creation_ms: i64) -> String {
    state.next_task += 1;
    // Shaped like the UUIDs AWS uses, and deterministic.
    let task_id = format!("{:08x}-0000-4000-8000-{:012x}", state.next_task, state.next_task);
    state.tasks.push(ExportTaskRecord {
        task_id: task_id.clone(),
        request,
        status: ExportStatus::Running,
        objects: Vec::new(),
        creation_ms,
        running_polls: plan.running_polls,
        outcome: plan.outcome,
        unavailable_ms: plan.unavailable_ms,
    });
    task_id
}

fn task_view(task: &ExportTaskRecord) -> ExportTask {
    let message = match task.status {
        ExportStatus::Completed => "Completed successfully",
        ExportStatus::Failed => "Export task failed",
        ExportStatus::Cancelled => "Cancelled by user",
        _ => "Started successfully",
    };
    ExportTask {
        task_id: task.task_id.clone(),
        task_name: task.request.task_name.clone(),
        status: task.status,
        message: message.into(),
        creation_ms: Some(task.creation_ms),
    }
}

impl LogsState {
    /// An event's text as a reader without `logs:Unmask` (or an export) sees it.
    fn view(&self, group: &Group, event: &StoredEvent, unmask: bool) -> String {
        let masked = group
            .protection
            .as_ref()
            .map_or(event.message.clone(), |m| m.view(event, unmask));
        match &self.account_masking {
            None => masked,
            Some(account) => account.view(
                &StoredEvent {
                    message: masked,
                    ..event.clone()
                },
                unmask,
            ),
        }
    }
}

#[async_trait]
impl LogStore for MemoryLogs {
    fn now_ms(&self) -> i64 {
        self.control.now_ms()
    }

    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>> {
        self.control.enter("DescribeLogGroups")?;
        let now = self.control.now_ms();
        Ok(lock(&self.state).groups.get(group).map(|g| {
            let expired_before = g.expired_before(now);
            let stored: usize = g
                .streams
                .values()
                .flat_map(|s| &s.events)
                .filter(|e| expired_before.is_none_or(|before| e.timestamp >= before))
                .map(|e| e.message.len())
                .sum();
            GroupInfo {
                name: group.to_string(),
                creation_time: g.creation_time,
                retention_in_days: g.retention_in_days,
                stored_bytes: Some(i64::try_from(stored).unwrap_or(i64::MAX)),
            }
        }))
    }

    async fn list_streams_page(&self, group: &str, token: Option<&str>) -> Result<(Vec<StreamInfo>, Option<String>)> {
        self.control.enter("DescribeLogStreams")?;
        let now = self.control.now_ms();
        let mut state = lock(&self.state);
        let seen_at = state.metadata_lag_ms.map(|lag| now - lag);
        let g = state.group_mut("DescribeLogStreams", group)?;
        // The token is the last name of the previous page; pages of 50, as AWS.
        let after = token.unwrap_or_default();
        let page: Vec<StreamInfo> = g
            .streams
            .iter()
            .filter(|(name, _)| token.is_none() || name.as_str() > after)
            .take(DESCRIBE_STREAMS_PAGE)
            .map(|(name, s)| s.info(name, seen_at))
            .collect();
        let more = page.len() == DESCRIBE_STREAMS_PAGE
            && g.streams
                .keys()
                .any(|name| page.last().is_some_and(|last| name.as_str() > last.name.as_str()));
        let next = more.then(|| page.last().map(|s| s.name.clone())).flatten();
        Ok((page, next))
    }

    async fn describe_stream(&self, group: &str, stream: &str) -> Result<Option<StreamInfo>> {
        self.control.enter("DescribeLogStreams")?;
        let now = self.control.now_ms();
        let state = lock(&self.state);
        let seen_at = state.metadata_lag_ms.map(|lag| now - lag);
        Ok(state
            .groups
            .get(group)
            .and_then(|g| g.streams.get(stream))
            .map(|s| s.info(stream, seen_at)))
    }

    async fn get_events_page(&self, query: EventsQuery<'_>) -> Result<Option<EventsPage>> {
        const OP: &str = "GetLogEvents";
        self.control.enter(OP)?;
        let now = self.control.now_ms();
        let EventsQuery {
            group,
            stream,
            start_ms,
            end_ms,
            token,
            limit,
            unmask,
        } = query;
        let limit = match limit {
            None => PAGE_MAX_EVENTS,
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(PAGE_MAX_EVENTS).min(PAGE_MAX_EVENTS),
            Some(n) => {
                return Err(refused(
                    OP,
                    "InvalidParameterException",
                    format!("limit {n} is below 1"),
                ));
            }
        };
        let sent = match token {
            None => None,
            Some(t) => Some(
                Position::parse(t)
                    .ok_or_else(|| refused(OP, "InvalidParameterException", "the specified nextToken is invalid"))?,
            ),
        };
        let state = lock(&self.state);
        let Some(g) = state.groups.get(group) else {
            return Ok(None);
        };
        let Some(s) = g.streams.get(stream) else {
            return Ok(None);
        };
        let events = &s.events;
        // Events past the group's retention are no longer returned.
        let start_ms = g.expired_before(now).map_or(start_ms, |before| start_ms.max(before));
        let lo = events.partition_point(|e| e.timestamp < start_ms);
        let hi = end_ms.map_or(events.len(), |end| events.partition_point(|e| e.timestamp < end));
        let position = sent.unwrap_or(Position {
            after: None,
            empties: 0,
        });
        let from = match position.after {
            None => lo,
            Some(key) => lo.max(events.partition_point(|e| (e.timestamp, e.seq) <= key)),
        };
        // Empty pages, each with a new token, before every page and the end.
        if sent.is_some() && position.empties < state.empty_pages {
            let next = Position {
                empties: position.empties + 1,
                ..position
            };
            return Ok(Some(EventsPage {
                events: Vec::new(),
                next_forward_token: Some(next.token()),
            }));
        }
        let mut end = from;
        let mut bytes = 0usize;
        while end < hi.max(from) && end - from < limit {
            let size = event_size_of(&events[end]);
            if end > from && bytes + size > PAGE_MAX_BYTES {
                break;
            }
            bytes += size;
            end += 1;
        }
        let page: Vec<IngestedEvent> = events[from..end]
            .iter()
            .map(|e| IngestedEvent {
                event: LogEvent::new(e.timestamp, state.view(g, e, unmask)),
                ingestion_ms: e.ingestion_ms,
            })
            .collect();
        let next_forward_token = match events[from..end].last() {
            Some(last) => Position {
                after: Some((last.timestamp, last.seq)),
                empties: 0,
            }
            .token(),
            // The end: the token sent comes back unchanged.
            None => token.map_or_else(|| position.token(), str::to_string),
        };
        Ok(Some(EventsPage {
            events: page,
            next_forward_token: Some(next_forward_token),
        }))
    }

    async fn put_events(&self, group: &str, stream: &str, batch: &LogBatch) -> Result<()> {
        const OP: &str = "PutLogEvents";
        self.control.enter(OP)?;
        let now = self.control.now_ms();
        let mut state = lock(&self.state);
        let LogsState { groups, next_seq, .. } = &mut *state;
        let g = groups.get_mut(group).ok_or_else(|| {
            refused(
                OP,
                "ResourceNotFoundException",
                format!("log group {group} does not exist"),
            )
        })?;
        let expired_before = g.retention_in_days.map(|days| now - i64::from(days) * DAY_MS);
        let s = g.streams.get_mut(stream).ok_or_else(|| {
            refused(
                OP,
                "ResourceNotFoundException",
                format!("log stream {stream} does not exist"),
            )
        })?;
        let mut rejected = RejectedEvents::default();
        let mut accepted = Vec::with_capacity(batch.len());
        for (index, e) in batch.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            if e.timestamp < now - TOO_OLD_MS {
                rejected.too_old_end_index = Some(index + 1);
            } else if expired_before.is_some_and(|before| e.timestamp < before) {
                rejected.expired_end_index = Some(index + 1);
            } else if e.timestamp > now + TOO_NEW_MS {
                rejected.too_new_start_index.get_or_insert(index);
            } else {
                accepted.push(e.clone());
            }
        }
        if self.control.applies_twice() {
            s.store(accepted.clone(), next_seq, now);
        }
        s.store(accepted, next_seq, now);
        drop(state);
        if rejected.any() {
            return Err(rejected.into_error(stream));
        }
        self.control.leave(OP)
    }

    async fn create_stream(&self, group: &str, stream: &str) -> Result<bool> {
        self.control.enter("CreateLogStream")?;
        let now = self.control.now_ms();
        let mut state = lock(&self.state);
        let g = state.group_mut("CreateLogStream", group)?;
        if g.streams.contains_key(stream) {
            return Ok(false);
        }
        g.streams.insert(
            stream.to_string(),
            Stream {
                creation_time: now,
                ..Stream::default()
            },
        );
        drop(state);
        self.control.leave("CreateLogStream")?;
        Ok(true)
    }

    async fn delete_stream(&self, group: &str, stream: &str) -> Result<bool> {
        self.control.enter("DeleteLogStream")?;
        let existed = lock(&self.state)
            .groups
            .get_mut(group)
            .is_some_and(|g| g.streams.remove(stream).is_some());
        self.control.leave("DeleteLogStream")?;
        Ok(existed)
    }

    async fn create_export_task(&self, request: &ExportRequest) -> Result<ExportStart> {
        const OP: &str = "CreateExportTask";
        self.control.enter(OP)?;
        if request.from_ms > request.to_ms {
            return Err(refused(
                OP,
                "InvalidParameterException",
                "'from' must not be later than 'to'",
            ));
        }
        if !self.archive.has_bucket(&request.bucket) {
            return Err(refused(
                OP,
                "InvalidParameterException",
                format!("the given bucket {} does not exist", request.bucket),
            ));
        }
        let mut state = lock(&self.state);
        state.group_mut(OP, &request.log_group_name)?;
        if state.tasks.iter().any(|t| t.status.is_active()) {
            return Ok(ExportStart::SlotBusy);
        }
        let plan = state.export_plan;
        let task_id = new_task(&mut state, request.clone(), plan, self.control.now_ms());
        // AWS checks its permissions by writing this object at creation.
        self.archive.write(
            OP,
            &request.bucket,
            &export_key(&request.prefix, "aws-logs-write-test"),
            Bytes::from_static(b"Permission Check Successful"),
        )?;
        Ok(ExportStart::Started(task_id))
    }

    async fn describe_export_task(&self, task_id: &str) -> Result<Option<ExportTask>> {
        self.control.enter("DescribeExportTasks")?;
        let mut state = lock(&self.state);
        let Some(index) = state.tasks.iter().position(|t| t.task_id == task_id) else {
            return Ok(None);
        };
        let task = &mut state.tasks[index];
        if task.status.is_active() {
            if task.running_polls > 0 {
                task.running_polls -= 1;
            } else {
                self.settle(&mut state, index);
            }
        }
        Ok(Some(task_view(&state.tasks[index])))
    }

    async fn active_export_task(&self) -> Result<Option<ExportTask>> {
        self.control.enter("DescribeExportTasks")?;
        let state = lock(&self.state);
        Ok(state.tasks.iter().find(|t| t.status.is_active()).map(task_view))
    }

    async fn data_protection(&self, group: &str) -> Result<DataProtection> {
        self.control.enter("GetDataProtectionPolicy")?;
        self.control.enter("DescribeAccountPolicies")?;
        let state = lock(&self.state);
        let g = state.groups.get(group).ok_or_else(|| {
            refused(
                "GetDataProtectionPolicy",
                "ResourceNotFoundException",
                format!("log group {group} does not exist"),
            )
        })?;
        Ok(DataProtection {
            group_policy: g.protection.is_some(),
            account_policy: state.account_masking.is_some(),
        })
    }

    async fn put_retention(&self, group: &str, days: i32) -> Result<()> {
        const OP: &str = "PutRetentionPolicy";
        self.control.enter(OP)?;
        if !RETENTION_DAYS.contains(&days) {
            return Err(refused(
                OP,
                "InvalidParameterException",
                format!("{days} is not a valid retentionInDays: use one of {RETENTION_DAYS:?}"),
            ));
        }
        lock(&self.state).group_mut(OP, group)?.retention_in_days = Some(days);
        Ok(())
    }

    async fn delete_retention(&self, group: &str) -> Result<()> {
        const OP: &str = "DeleteRetentionPolicy";
        self.control.enter(OP)?;
        lock(&self.state).group_mut(OP, group)?.retention_in_days = None;
        Ok(())
    }

    async fn list_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<(Vec<GroupSummary>, Option<String>)> {
        const OP: &str = "DescribeLogGroups";
        const PAGE: usize = 50;
        self.control.enter(OP)?;
        // The token is the name of the last group of the previous page.
        let state = lock(&self.state);
        let names: Vec<&String> = state
            .groups
            .keys()
            .filter(|name| name.starts_with(prefix) && token.is_none_or(|after| name.as_str() > after))
            .take(PAGE + 1)
            .collect();
        let more = names.len() > PAGE;
        let page: Vec<GroupSummary> = names
            .into_iter()
            .take(PAGE)
            .map(|name| GroupSummary {
                name: name.clone(),
                arn: format!("arn:aws:logs:us-east-1:123456789012:log-group:{name}"),
            })
            .collect();
        let next = more.then(|| page.last().map(|g| g.name.clone())).flatten();
        Ok((page, next))
    }

    async fn group_tags(&self, group_arn: &str) -> Result<BTreeMap<String, String>> {
        const OP: &str = "ListTagsForResource";
        self.control.enter(OP)?;
        let name = group_arn.split_once(":log-group:").map_or(group_arn, |(_, name)| name);
        let mut state = lock(&self.state);
        Ok(state.group_mut(OP, name)?.tags.clone())
    }
}

fn event_size_of(e: &StoredEvent) -> usize {
    e.message.len().saturating_add(EVENT_OVERHEAD_BYTES)
}

// ---------------------------------------------------------------------------
// Both
// ---------------------------------------------------------------------------

/// A memory CloudWatch Logs and S3 sharing one [`MemoryControl`].
#[derive(Debug, Clone)]
pub struct MemoryAws {
    /// CloudWatch Logs.
    pub logs: Arc<MemoryLogs>,
    /// S3.
    pub archive: Arc<MemoryArchive>,
}

impl MemoryAws {
    /// Empty services, the clock following the system clock.
    pub fn new() -> Self {
        let archive = Arc::new(MemoryArchive::new());
        let logs = Arc::new(MemoryLogs::new(Arc::clone(&archive)));
        Self { logs, archive }
    }

    /// The shared clock, call counter and faults.
    pub fn control(&self) -> &Arc<MemoryControl> {
        self.archive.control()
    }

    /// The workflow's [`Clients`] over these services.
    pub fn clients(&self) -> Clients {
        Clients {
            logs: Arc::clone(&self.logs) as Arc<dyn LogStore>,
            archive: Arc::clone(&self.archive) as Arc<dyn ArchiveStore>,
        }
    }
}

impl Default for MemoryAws {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::export_format::{format_export_text, read_export_object};
    use crate::error::ErrorName;
    use crate::workflow::{ReadLimits, ReadProgress, read_events};

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn aws() -> MemoryAws {
        let aws = MemoryAws::new();
        aws.control().set_now_ms(NOW);
        aws
    }

    fn events(range: std::ops::Range<i64>, t0: i64) -> Vec<LogEvent> {
        range.map(|i| LogEvent::new(t0 + i, format!("event {i}"))).collect()
    }

    /// Every event of the stream through the workflow's reader, and the GetLogEvents calls it took.
    async fn read_all(aws: &MemoryAws, stream: &str, start: i64, end: Option<i64>) -> (Vec<LogEvent>, u64) {
        let before = aws.control().calls("GetLogEvents");
        let mut out = Vec::new();
        let progress = read_events(
            aws.logs.as_ref(),
            "g",
            stream,
            start,
            end,
            None,
            ReadLimits::UNBOUNDED,
            |e| {
                out.push(e);
                Ok(())
            },
        )
        .await
        .unwrap();
        assert!(
            matches!(progress, ReadProgress::Finished { events, .. } if events == out.len() as u64),
            "{progress:?}"
        );
        (out, aws.control().calls("GetLogEvents") - before)
    }

    fn query<'a>(
        group: &'a str,
        stream: &'a str,
        start_ms: i64,
        end_ms: Option<i64>,
        token: Option<&'a str>,
        limit: Option<i32>,
    ) -> EventsQuery<'a> {
        EventsQuery {
            group,
            stream,
            start_ms,
            end_ms,
            token,
            limit,
            unmask: false,
        }
    }

    /// One GetLogEvents page of group `g` that must exist.
    async fn page(
        aws: &MemoryAws,
        stream: &str,
        start: i64,
        end: Option<i64>,
        token: Option<&str>,
        limit: Option<i32>,
    ) -> EventsPage {
        let page = aws
            .logs
            .get_events_page(query("g", stream, start, end, token, limit))
            .await;
        page.unwrap().expect("the stream exists")
    }

    fn batch(events: Vec<LogEvent>) -> LogBatch {
        LogBatch::new(events).unwrap()
    }

    #[tokio::test]
    async fn get_log_events_includes_start_and_excludes_end() {
        let aws = aws();
        aws.logs.seed("g", "s", events(0..10, 1_000), None);
        let (got, _) = read_all(&aws, "s", 1_003, Some(1_007)).await;
        let times: Vec<i64> = got.iter().map(|e| e.timestamp).collect();
        assert_eq!(times, vec![1_003, 1_004, 1_005, 1_006]);
        assert!(page(&aws, "s", 0, Some(1_000), None, None).await.events.is_empty());
    }

    #[tokio::test]
    async fn get_log_events_pages_hold_at_most_10000_events_and_end_on_the_repeated_token() {
        let aws = aws();
        aws.logs.seed("g", "s", events(0..25_000, NOW - HOUR), None);
        let first = page(&aws, "s", 0, None, None, None).await;
        assert_eq!(first.events.len(), PAGE_MAX_EVENTS);
        let asked = page(&aws, "s", 0, None, None, Some(20_000)).await;
        assert_eq!(asked.events.len(), PAGE_MAX_EVENTS);

        let (got, calls) = read_all(&aws, "s", 0, None).await;
        assert_eq!(got, events(0..25_000, NOW - HOUR));
        // Three pages of events, then the call whose token comes back unchanged.
        assert_eq!(calls, 4);
        let last = page(&aws, "s", 0, None, None, None).await;
        let mut token = last.next_forward_token.unwrap();
        for _ in 0..3 {
            let page = page(&aws, "s", 0, None, Some(&token), None).await;
            token = page.next_forward_token.unwrap();
        }
        let end = page(&aws, "s", 0, None, Some(&token), None).await;
        assert!(end.events.is_empty());
        assert_eq!(end.next_forward_token.as_deref(), Some(token.as_str()));
    }

    #[tokio::test]
    async fn get_log_events_pages_hold_at_most_1_mb() {
        let aws = aws();
        let big = "x".repeat(300_000);
        aws.logs
            .seed("g", "s", (0..5).map(|i| LogEvent::new(i, big.clone())), None);
        // Oversized as seeded, still alone on its page.
        aws.logs
            .seed("g", "huge", [LogEvent::new(0, "y".repeat(2 * PAGE_MAX_BYTES))], None);
        let page = page(&aws, "s", 0, None, None, None).await;
        assert_eq!(
            page.events.len(),
            3,
            "a fourth 300,026-byte event would pass 1,048,576 bytes"
        );
        let (got, _) = read_all(&aws, "s", 0, None).await;
        assert_eq!(got.len(), 5);
        let (got, _) = read_all(&aws, "huge", 0, None).await;
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn empty_pages_before_every_page_and_the_end_are_followed() {
        let aws = aws();
        aws.logs.seed("g", "s", events(0..25, 0), None);
        aws.logs.set_empty_pages(2);
        let mut out = Vec::new();
        let progress = read_events(
            aws.logs.as_ref(),
            "g",
            "s",
            0,
            None,
            None,
            ReadLimits {
                max_events: None,
                page_size: Some(10),
            },
            |e| {
                out.push(e);
                Ok(())
            },
        )
        .await
        .unwrap();
        assert!(
            matches!(progress, ReadProgress::Finished { events: 25, .. }),
            "{progress:?}"
        );
        assert_eq!(out, events(0..25, 0));
        // Pages of 10, 10, 5 events, two empty pages before the 2nd, the 3rd
        // and the end, and the final repeated token.
        assert_eq!(aws.control().calls("GetLogEvents"), 3 + 3 * 2 + 1);
    }

    #[tokio::test]
    async fn get_log_events_refuses_a_bad_limit_or_token_and_reports_a_missing_stream() {
        let aws = aws();
        aws.logs.seed("g", "s", events(0..3, 0), None);
        for (token, limit) in [(None, Some(0)), (Some("garbage"), None)] {
            let err = aws
                .logs
                .get_events_page(query("g", "s", 0, None, token, limit))
                .await
                .unwrap_err();
            assert_eq!(err.name(), ErrorName::ServiceError, "{err}");
        }
        for (group, stream) in [("g", "nope"), ("nope", "s")] {
            let missing = aws
                .logs
                .get_events_page(query(group, stream, 0, None, None, None))
                .await;
            assert!(missing.unwrap().is_none(), "{group}/{stream}");
        }
    }

    #[tokio::test]
    async fn put_log_events_stores_the_batch_and_updates_the_stream_description() {
        let aws = aws();
        aws.logs.create_group("g");
        assert!(aws.logs.create_stream("g", "s").await.unwrap());
        let empty = aws.logs.describe_stream("g", "s").await.unwrap().unwrap();
        assert_eq!(
            (
                empty.first_event_timestamp,
                empty.last_event_timestamp,
                empty.last_ingestion_time
            ),
            (None, None, None)
        );
        assert_eq!((empty.creation_time, empty.stored_bytes), (NOW, Some(0)));

        aws.control().advance_ms(5_000);
        let put = batch(vec![LogEvent::new(NOW - HOUR, "abc"), LogEvent::new(NOW - 60_000, "é")]);
        aws.logs.put_events("g", "s", &put).await.unwrap();
        let info = aws.logs.describe_stream("g", "s").await.unwrap().unwrap();
        assert_eq!(info.first_event_timestamp, Some(NOW - HOUR));
        assert_eq!(info.last_event_timestamp, Some(NOW - 60_000));
        assert_eq!(info.last_ingestion_time, Some(NOW + 5_000));
        // A stream's storedBytes is 0 on AWS since June 2019; the group's is real.
        assert_eq!(info.stored_bytes, Some(0));
        let group = aws.logs.describe_group("g").await.unwrap().unwrap();
        assert_eq!(group.stored_bytes, Some(3 + 2));
        assert_eq!(aws.logs.events("g", "s").unwrap(), put.into_events());
        assert_eq!(aws.logs.list_streams("g").await.unwrap(), vec![info]);
    }

    #[tokio::test]
    async fn put_log_events_drops_too_old_expired_and_too_new_events_and_says_so() {
        let aws = aws();
        aws.logs.create_group_with("g", 0, Some(7));
        aws.logs.create_stream("g", "s").await.unwrap();
        let day = 24 * HOUR;
        let old = batch(vec![
            LogEvent::new(NOW - 14 * day - 2, "too old"),
            LogEvent::new(NOW - 14 * day - 1, "too old"),
            LogEvent::new(NOW - 14 * day + 1, "expired"),
        ]);
        let err = aws.logs.put_events("g", "s", &old).await.unwrap_err();
        assert_eq!(err.name(), ErrorName::ReplayRejected);
        assert!(err.to_string().contains("tooOldLogEventEndIndex=Some(2)"), "{err}");
        assert!(err.to_string().contains("expiredLogEventEndIndex=Some(3)"), "{err}");

        let new = batch(vec![
            LogEvent::new(NOW - HOUR, "kept"),
            LogEvent::new(NOW + 2 * HOUR, "kept, exactly 2 h ahead"),
            LogEvent::new(NOW + 2 * HOUR + 1, "too new"),
            LogEvent::new(NOW + 3 * HOUR, "too new"),
        ]);
        let err = aws.logs.put_events("g", "s", &new).await.unwrap_err();
        assert!(err.to_string().contains("tooNewLogEventStartIndex=Some(2)"), "{err}");
        // The accepted events are stored all the same, as on AWS.
        let kept: Vec<String> = aws
            .logs
            .events("g", "s")
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(kept, vec!["kept", "kept, exactly 2 h ahead"]);
    }

    #[tokio::test]
    async fn put_log_events_needs_the_group_and_stream() {
        let aws = aws();
        let one = batch(vec![LogEvent::new(NOW, "m")]);
        let err = aws.logs.put_events("g", "s", &one).await.unwrap_err();
        assert_eq!(err.name(), ErrorName::ServiceError);
        aws.logs.create_group("g");
        let err = aws.logs.put_events("g", "s", &one).await.unwrap_err();
        assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
    }

    #[tokio::test]
    async fn create_and_delete_log_stream() {
        let aws = aws();
        assert!(
            aws.logs.create_stream("g", "s").await.is_err(),
            "the group does not exist"
        );
        aws.logs.create_group("g");
        assert!(aws.logs.create_stream("g", "s").await.unwrap());
        assert!(!aws.logs.create_stream("g", "s").await.unwrap());
        assert!(aws.logs.delete_stream("g", "s").await.unwrap());
        assert!(!aws.logs.delete_stream("g", "s").await.unwrap());
        assert!(!aws.logs.delete_stream("nope", "s").await.unwrap());
        assert!(aws.logs.describe_stream("g", "s").await.unwrap().is_none());
        assert!(aws.logs.list_streams("nope").await.is_err());
        assert!(aws.logs.describe_group("nope").await.unwrap().is_none());
    }

    fn export_request(from_ms: i64, to_ms: i64) -> ExportRequest {
        ExportRequest {
            task_name: "t".into(),
            log_group_name: "g".into(),
            from_ms,
            to_ms,
            bucket: "b".into(),
            prefix: "exp".into(),
        }
    }

    async fn start_export(aws: &MemoryAws, from_ms: i64, to_ms: i64) -> String {
        match aws
            .logs
            .create_export_task(&export_request(from_ms, to_ms))
            .await
            .unwrap()
        {
            ExportStart::Started(id) => id,
            ExportStart::SlotBusy => panic!("the slot is busy"),
        }
    }

    async fn status(aws: &MemoryAws, id: &str) -> ExportStatus {
        aws.logs.describe_export_task(id).await.unwrap().unwrap().status
    }

    #[tokio::test]
    async fn export_writes_every_stream_with_events_in_the_inclusive_window() {
        let aws = aws();
        aws.archive.create_bucket("b");
        aws.logs.seed("g", "a/b", events(0..10, 100), None);
        aws.logs.seed("g", "late", events(0..3, 500), None);
        aws.logs.seed("g", "empty", Vec::new(), None);
        let id = start_export(&aws, 102, 107).await;
        assert_eq!(status(&aws, &id).await, ExportStatus::Completed);
        let key = format!("exp/{id}/a/b/000000.gz");
        assert_eq!(
            aws.archive.keys("b", "exp/"),
            vec![key.clone(), "exp/aws-logs-write-test".to_string()]
        );
        let exported = read_export_object(&aws.archive.object("b", &key).unwrap()).unwrap();
        assert_eq!(exported, events(2..8, 100), "from and to are both inclusive");
        let text = format_export_text(&events(2..3, 100));
        assert!(text.starts_with("1970-01-01T00:00:00.102Z event 2"), "{text}");
        assert_eq!(aws.logs.export_tasks()[0].objects, vec![key]);
    }

    #[tokio::test]
    async fn export_runs_for_the_planned_polls_and_holds_the_only_slot() {
        let aws = aws();
        aws.archive.create_bucket("b");
        aws.logs.seed("g", "s", events(0..3, 0), None);
        aws.logs.set_export_plan(ExportPlan {
            running_polls: 2,
            outcome: ExportStatus::Completed,
            ..ExportPlan::default()
        });
        let id = start_export(&aws, 0, 10).await;
        let busy = aws.logs.create_export_task(&export_request(0, 10)).await.unwrap();
        assert_eq!(busy, ExportStart::SlotBusy);
        assert_eq!(aws.logs.active_export_task().await.unwrap().unwrap().task_id, id);
        assert_eq!(status(&aws, &id).await, ExportStatus::Running);
        assert_eq!(status(&aws, &id).await, ExportStatus::Running);
        assert!(
            aws.archive.keys("b", &format!("exp/{id}/")).is_empty(),
            "nothing before completion"
        );
        assert_eq!(status(&aws, &id).await, ExportStatus::Completed);
        assert_eq!(aws.archive.keys("b", &format!("exp/{id}/")).len(), 1);
        assert!(aws.logs.active_export_task().await.unwrap().is_none());
        start_export(&aws, 0, 10).await;
    }

    #[tokio::test]
    async fn failed_and_cancelled_exports_write_nothing() {
        for outcome in [ExportStatus::Failed, ExportStatus::Cancelled] {
            let aws = aws();
            aws.archive.create_bucket("b");
            aws.logs.seed("g", "s", events(0..3, 0), None);
            aws.logs.set_export_plan(ExportPlan {
                running_polls: 0,
                outcome,
                ..ExportPlan::default()
            });
            let id = start_export(&aws, 0, 10).await;
            let task = aws.logs.describe_export_task(&id).await.unwrap().unwrap();
            assert_eq!(task.status, outcome);
            assert!(!task.message.is_empty());
            assert!(aws.archive.keys("b", &format!("exp/{id}/")).is_empty());
        }
    }

    #[tokio::test]
    async fn another_callers_task_blocks_until_it_ends() {
        let aws = aws();
        aws.archive.create_bucket("b");
        aws.logs.create_group("g");
        let other = aws.logs.occupy_export_slot();
        for _ in 0..3 {
            assert_eq!(status(&aws, &other).await, ExportStatus::Running);
        }
        let busy = aws.logs.create_export_task(&export_request(0, 10)).await.unwrap();
        assert_eq!(busy, ExportStart::SlotBusy);
        aws.logs.end_export_task(&other, ExportStatus::Cancelled).unwrap();
        assert_eq!(status(&aws, &other).await, ExportStatus::Cancelled);
        start_export(&aws, 0, 10).await;
        assert!(aws.logs.describe_export_task("unknown").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn export_requests_are_checked() {
        let aws = aws();
        aws.logs.create_group("g");
        let no_bucket = aws.logs.create_export_task(&export_request(0, 10)).await.unwrap_err();
        assert!(no_bucket.to_string().contains("bucket"), "{no_bucket}");
        aws.archive.create_bucket("b");
        assert!(aws.logs.create_export_task(&export_request(11, 10)).await.is_err());
        let mut other_group = export_request(0, 10);
        other_group.log_group_name = "nope".into();
        assert!(aws.logs.create_export_task(&other_group).await.is_err());
        assert!(aws.logs.export_tasks().is_empty());
    }

    #[tokio::test]
    async fn objects_are_written_listed_in_key_order_and_deleted() {
        let aws = aws();
        let s3 = aws.archive.as_ref();
        assert!(!s3.bucket_exists("b").await.unwrap());
        assert!(s3.put("b", "k", Bytes::from_static(b"x")).await.is_err());
        s3.create_bucket("b");
        for key in ["p/b", "p/a", "q/a", "p"] {
            s3.put("b", key, Bytes::from(key.to_string())).await.unwrap();
        }
        let listed: Vec<(String, i64)> = s3
            .list("b", "p/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(listed, vec![("p/a".to_string(), 3), ("p/b".to_string(), 3)]);
        assert_eq!(s3.get("b", "q/a").await.unwrap().as_deref(), Some(&b"q/a"[..]));
        assert!(s3.exists("b", "p").await.unwrap());
        s3.delete("b", "p").await.unwrap();
        s3.delete("b", "p").await.unwrap();
        assert!(!s3.exists("b", "p").await.unwrap());
        assert!(s3.get("b", "p").await.unwrap().is_none());
        assert!(s3.get("nope", "p").await.unwrap().is_none());
        assert!(s3.list("nope", "").await.is_err());
    }

    #[tokio::test]
    async fn faults_fail_the_nth_call_and_calls_are_counted() {
        let aws = aws();
        aws.archive.create_bucket("b");
        aws.control().fail_nth("PutObject", 2, FaultKind::Throttled);
        aws.control().fail_nth("GetObject", 1, FaultKind::ServiceUnavailable);
        let s3 = aws.archive.as_ref();
        s3.put("b", "1", Bytes::new()).await.unwrap();
        let err = s3.put("b", "2", Bytes::new()).await.unwrap_err();
        assert_eq!(err.name(), ErrorName::Throttled);
        assert!(err.is_transient());
        s3.put("b", "3", Bytes::new()).await.unwrap();
        let err = s3.get("b", "1").await.unwrap_err();
        assert_eq!(err.name(), ErrorName::ServiceUnavailable);
        assert!(s3.get("b", "1").await.unwrap().is_some());
        assert_eq!(
            aws.archive.keys("b", ""),
            vec!["1", "3"],
            "a failed call changes nothing"
        );
        assert_eq!(aws.control().calls("PutObject"), 3);
        assert_eq!(aws.control().injected("PutObject"), 1);
        assert_eq!(aws.control().total_calls(), 5);
        aws.control().reset_calls();
        assert!(aws.control().all_calls().is_empty());
    }

    #[test]
    fn the_clock_follows_the_system_until_set() {
        let control = MemoryControl::default();
        let system = chrono::Utc::now().timestamp_millis();
        assert!((control.now_ms() - system).abs() < 60_000);
        control.set_now_ms(42);
        control.advance_ms(8);
        assert_eq!(control.now_ms(), 50);
    }
}
