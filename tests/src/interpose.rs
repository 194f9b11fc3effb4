//! Faults that only the Lambda side can produce: a function that dies right
//! after a given AWS call took effect, and another writer acting at an exact
//! point of a run.
//!
//! The Lambda host gives every invocation clients wrapped in
//! [`InterposedLogs`] / [`InterposedArchive`]. Before each call they record
//! it with what it touches (a [`Call`], which the IAM checks read); after it
//! they consult the shared [`Interposer`], which counts calls per function
//! and operation (AWS API names: `DeleteLogStream`, `PutObject`, ...) and
//! fires the rules armed by a test: a crash (the invocation panics, which the
//! host reports as `Runtime.ExitError`, as Lambda does for a process that
//! dies) or a hook (an async action, such as a writer's PutLogEvents, run
//! before the function sees the call's result).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use archiver::domain::batch::LogBatch;
use archiver::error::Result;
use archiver::store::{
    ArchiveStore, DataProtection, EventsPage, EventsQuery, ExportRequest, ExportStart, ExportTask, GroupInfo,
    GroupSummary, LogStore, ObjectInfo, StreamInfo, Versioned, WriteCondition,
};
use archiver::workflow::Clients;
use async_trait::async_trait;
use bytes::Bytes;

use crate::iam::{Call, Target};

/// The message of an injected crash's panic.
pub const INJECTED_CRASH: &str = "injected crash after side effects";

type HookAction = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Rule {
    function: String,
    operation: String,
    /// Only calls on this stream (or on an object whose key ends with it)
    /// count, when set.
    on: Option<String>,
    /// Matching calls seen.
    seen: u64,
    /// Fires from this matching call on (1-based).
    from_call: u64,
    /// Fires at most this many times.
    times: u64,
    fired: u64,
    action: RuleAction,
}

enum RuleAction {
    Crash,
    Hook(HookAction),
}

/// One call as it happened: when, by which invocation, on what.
#[derive(Debug, Clone)]
pub struct TimedCall {
    /// When the call was sent.
    pub sent: std::time::Instant,
    /// When its answer came back.
    pub answered: std::time::Instant,
    /// The function.
    pub function: String,
    /// The API operation (`DeleteLogStream`, `PutObject`, ...).
    pub operation: String,
    /// The invocation (numbered from 1 over all functions).
    pub invocation: u64,
    /// What it touched.
    pub target: Target,
}

#[derive(Default)]
struct State {
    invocations: BTreeMap<String, u64>,
    invocation_count: u64,
    calls: BTreeMap<(String, String), u64>,
    timeline: Vec<TimedCall>,
    largest_payload: usize,
    recorded: Vec<Call>,
    rules: Vec<Rule>,
}

/// The shared rules and call counts of one stack.
#[derive(Default, Clone)]
pub struct Interposer {
    state: Arc<Mutex<State>>,
}

impl Interposer {
    /// Crashes `function` right after its `nth` call of `operation` (counted
    /// over all its invocations) took effect, and after the following calls
    /// too until it crashed `times` times.
    pub fn crash_after(&self, function: &str, operation: &str, nth: u64, times: u64) {
        self.add(function, operation, None, nth, times, RuleAction::Crash);
    }

    /// [`crash_after`](Self::crash_after), counting only the calls on
    /// `stream` (or on an object whose key ends with it).
    pub fn crash_after_on(&self, function: &str, operation: &str, on: &str, nth: u64, times: u64) {
        self.add(function, operation, Some(on), nth, times, RuleAction::Crash);
    }

    /// [`hook_after`](Self::hook_after), counting only the calls on `on` (a
    /// stream, or the end of an object key).
    pub fn hook_after_on<F, Fut>(&self, function: &str, operation: &str, on: &str, nth: u64, action: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let action: HookAction = Arc::new(move || Box::pin(action()));
        self.add(function, operation, Some(on), nth, 1, RuleAction::Hook(action));
    }

    /// Runs `action` once, right after the `nth` call of `operation` by
    /// `function` took effect and before the function goes on.
    pub fn hook_after<F, Fut>(&self, function: &str, operation: &str, nth: u64, action: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let action: HookAction = Arc::new(move || Box::pin(action()));
        self.add(function, operation, None, nth, 1, RuleAction::Hook(action));
    }

    fn add(&self, function: &str, operation: &str, on: Option<&str>, nth: u64, times: u64, action: RuleAction) {
        let mut state = self.state.lock().expect("interposer lock");
        state.rules.push(Rule {
            function: function.to_string(),
            operation: operation.to_string(),
            on: on.map(str::to_string),
            seen: 0,
            from_call: nth,
            times,
            fired: 0,
            action,
        });
    }

    /// How many times each rule fired, in the order they were armed.
    pub fn fired(&self) -> Vec<u64> {
        let state = self.state.lock().expect("interposer lock");
        state.rules.iter().map(|r| r.fired).collect()
    }

    /// Calls made per (function, operation).
    pub fn calls(&self) -> BTreeMap<(String, String), u64> {
        self.state.lock().expect("interposer lock").calls.clone()
    }

    /// Every successful call in the order it completed.
    pub fn timeline(&self) -> Vec<TimedCall> {
        self.state.lock().expect("interposer lock").timeline.clone()
    }

    /// Every store call each function made, with what it touched.
    pub fn recorded(&self) -> Vec<Call> {
        self.state.lock().expect("interposer lock").recorded.clone()
    }

    fn record(&self, function: &str, method: &'static str, target: Target) {
        self.state.lock().expect("interposer lock").recorded.push(Call {
            function: function.to_string(),
            method,
            target,
        });
    }

    /// Records the size of an invocation's event or result, in bytes.
    pub fn note_payload(&self, bytes: usize) {
        let mut state = self.state.lock().expect("interposer lock");
        state.largest_payload = state.largest_payload.max(bytes);
    }

    /// The largest Lambda event or result seen, in bytes.
    pub fn largest_payload(&self) -> usize {
        self.state.lock().expect("interposer lock").largest_payload
    }

    /// Invocations of `function` so far.
    pub fn invocations(&self, function: &str) -> u64 {
        let state = self.state.lock().expect("interposer lock");
        state.invocations.get(function).copied().unwrap_or(0)
    }

    /// Removes every rule (the counts stay).
    pub fn clear(&self) {
        self.state.lock().expect("interposer lock").rules.clear();
    }

    /// Clients for one invocation of `function`.
    pub fn wrap(&self, function: &str, clients: &Clients) -> Clients {
        let invocation = {
            let mut state = self.state.lock().expect("interposer lock");
            *state.invocations.entry(function.to_string()).or_default() += 1;
            state.invocation_count += 1;
            state.invocation_count
        };
        Clients {
            logs: Arc::new(InterposedLogs {
                inner: clients.logs.clone(),
                function: function.to_string(),
                invocation,
                interposer: self.clone(),
            }),
            archive: Arc::new(InterposedArchive {
                inner: clients.archive.clone(),
                function: function.to_string(),
                invocation,
                interposer: self.clone(),
            }),
        }
    }

    /// Counts the call and fires the matching rules.
    async fn after(&self, call: TimedCall) {
        let (function, operation) = (call.function.clone(), call.operation.clone());
        let target = call.target.clone();
        let matches_on = |on: &str| match &target {
            Target::Stream(_, stream) => stream == on,
            Target::Object(_, key) => key.ends_with(on),
            _ => false,
        };
        let mut hooks = Vec::new();
        let mut crash = false;
        {
            let mut state = self.state.lock().expect("interposer lock");
            state.timeline.push(call);
            *state.calls.entry((function.clone(), operation.clone())).or_default() += 1;
            for rule in &mut state.rules {
                if rule.function != function
                    || rule.operation != operation
                    || rule.on.as_deref().is_some_and(|on| !matches_on(on))
                {
                    continue;
                }
                rule.seen += 1;
                if rule.seen >= rule.from_call && rule.fired < rule.times {
                    rule.fired += 1;
                    match &rule.action {
                        RuleAction::Crash => crash = true,
                        RuleAction::Hook(action) => hooks.push(action.clone()),
                    }
                }
            }
        }
        for hook in hooks {
            hook().await;
        }
        if crash {
            panic!("{INJECTED_CRASH}: {function} after {operation}");
        }
    }
}

/// A [`LogStore`] that reports every call to the [`Interposer`].
pub struct InterposedLogs {
    inner: Arc<dyn LogStore>,
    function: String,
    invocation: u64,
    interposer: Interposer,
}

/// An [`ArchiveStore`] that reports every call to the [`Interposer`].
pub struct InterposedArchive {
    inner: Arc<dyn ArchiveStore>,
    function: String,
    invocation: u64,
    interposer: Interposer,
}

macro_rules! interposed {
    ($self:ident, $operation:literal, $method:expr, $target:expr, $call:expr) => {{
        let target = $target;
        $self.interposer.record(&$self.function, $method, target.clone());
        let sent = std::time::Instant::now();
        let result = $call.await;
        if result.is_ok() {
            let call = TimedCall {
                sent,
                answered: std::time::Instant::now(),
                function: $self.function.clone(),
                operation: $operation.to_string(),
                invocation: $self.invocation,
                target,
            };
            $self.interposer.after(call).await;
        }
        result
    }};
}

fn group_target(group: &str) -> Target {
    Target::Group(group.to_string())
}

fn stream_target(group: &str, stream: &str) -> Target {
    Target::Stream(group.to_string(), stream.to_string())
}

fn object_target(bucket: &str, key: &str) -> Target {
    Target::Object(bucket.to_string(), key.to_string())
}

/// An export task writes to `bucket/prefix` as the CloudWatch Logs service.
fn export_target(request: &ExportRequest) -> Target {
    Target::Export {
        group: request.log_group_name.clone(),
        bucket: request.bucket.clone(),
        prefix: request.prefix.clone(),
    }
}

#[async_trait]
impl LogStore for InterposedLogs {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>> {
        interposed!(
            self,
            "DescribeLogGroups",
            "describe_group",
            group_target(group),
            self.inner.describe_group(group)
        )
    }
    async fn list_streams_page(&self, group: &str, token: Option<&str>) -> Result<(Vec<StreamInfo>, Option<String>)> {
        interposed!(
            self,
            "DescribeLogStreams",
            "list_streams_page",
            group_target(group),
            self.inner.list_streams_page(group, token)
        )
    }
    async fn describe_stream(&self, group: &str, stream: &str) -> Result<Option<StreamInfo>> {
        interposed!(
            self,
            "DescribeLogStreams",
            "describe_stream",
            stream_target(group, stream),
            self.inner.describe_stream(group, stream)
        )
    }
    async fn get_events_page(&self, query: EventsQuery<'_>) -> Result<Option<EventsPage>> {
        let method = if query.unmask {
            "get_events_page_unmasked"
        } else {
            "get_events_page"
        };
        interposed!(
            self,
            "GetLogEvents",
            method,
            stream_target(query.group, query.stream),
            self.inner.get_events_page(query)
        )
    }
    async fn put_events(&self, group: &str, stream: &str, batch: &LogBatch) -> Result<()> {
        interposed!(
            self,
            "PutLogEvents",
            "put_events",
            stream_target(group, stream),
            self.inner.put_events(group, stream, batch)
        )
    }
    async fn create_stream(&self, group: &str, stream: &str) -> Result<bool> {
        interposed!(
            self,
            "CreateLogStream",
            "create_stream",
            stream_target(group, stream),
            self.inner.create_stream(group, stream)
        )
    }
    async fn delete_stream(&self, group: &str, stream: &str) -> Result<bool> {
        interposed!(
            self,
            "DeleteLogStream",
            "delete_stream",
            stream_target(group, stream),
            self.inner.delete_stream(group, stream)
        )
    }
    async fn create_export_task(&self, request: &ExportRequest) -> Result<ExportStart> {
        interposed!(
            self,
            "CreateExportTask",
            "create_export_task",
            export_target(request),
            self.inner.create_export_task(request)
        )
    }
    async fn describe_export_task(&self, task_id: &str) -> Result<Option<ExportTask>> {
        interposed!(
            self,
            "DescribeExportTasks",
            "describe_export_task",
            Target::Account,
            self.inner.describe_export_task(task_id)
        )
    }
    async fn active_export_task(&self) -> Result<Option<ExportTask>> {
        interposed!(
            self,
            "DescribeExportTasks",
            "active_export_task",
            Target::Account,
            self.inner.active_export_task()
        )
    }
    async fn data_protection(&self, group: &str) -> Result<DataProtection> {
        interposed!(
            self,
            "GetDataProtectionPolicy",
            "data_protection",
            group_target(group),
            self.inner.data_protection(group)
        )
    }
    async fn put_retention(&self, group: &str, days: i32) -> Result<()> {
        interposed!(
            self,
            "PutRetentionPolicy",
            "put_retention",
            group_target(group),
            self.inner.put_retention(group, days)
        )
    }
    async fn delete_retention(&self, group: &str) -> Result<()> {
        interposed!(
            self,
            "DeleteRetentionPolicy",
            "delete_retention",
            group_target(group),
            self.inner.delete_retention(group)
        )
    }
    async fn list_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<(Vec<GroupSummary>, Option<String>)> {
        interposed!(
            self,
            "DescribeLogGroups",
            "list_groups_page",
            Target::Account,
            self.inner.list_groups_page(prefix, token)
        )
    }
    async fn group_tags(&self, group_arn: &str) -> Result<std::collections::BTreeMap<String, String>> {
        let group = group_arn.split_once(":log-group:").map_or(group_arn, |(_, name)| name);
        interposed!(
            self,
            "ListTagsForResource",
            "group_tags",
            group_target(group),
            self.inner.group_tags(group_arn)
        )
    }
}

#[async_trait]
impl ArchiveStore for InterposedArchive {
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        interposed!(
            self,
            "HeadBucket",
            "bucket_exists",
            Target::Bucket(bucket.into()),
            self.inner.bucket_exists(bucket)
        )
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        interposed!(
            self,
            "GetObject",
            "get",
            object_target(bucket, key),
            self.inner.get(bucket, key)
        )
    }
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        interposed!(
            self,
            "HeadObject",
            "exists",
            object_target(bucket, key),
            self.inner.exists(bucket, key)
        )
    }
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        interposed!(
            self,
            "PutObject",
            "put",
            object_target(bucket, key),
            self.inner.put(bucket, key, body)
        )
    }
    async fn get_versioned(&self, bucket: &str, key: &str) -> Result<Option<Versioned>> {
        interposed!(
            self,
            "GetObject",
            "get",
            object_target(bucket, key),
            self.inner.get_versioned(bucket, key)
        )
    }
    async fn put_if(&self, bucket: &str, key: &str, body: Bytes, condition: WriteCondition) -> Result<Option<String>> {
        interposed!(
            self,
            "PutObject",
            "put",
            object_target(bucket, key),
            self.inner.put_if(bucket, key, body, condition)
        )
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        interposed!(
            self,
            "ListObjectsV2",
            "list",
            Target::Bucket(bucket.into()),
            self.inner.list(bucket, prefix)
        )
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        interposed!(
            self,
            "DeleteObject",
            "delete",
            object_target(bucket, key),
            self.inner.delete(bucket, key)
        )
    }
}
