//! The account-wide run (`statemachine/parent.asl.json`): which groups it
//! archives, that only one such run works at a time, and what became of
//! each group.
//!
//! Its first step, [`list_groups`], takes the account-wide run's lease,
//! lists the groups with the name prefix (DescribeLogGroups, 50 a page),
//! keeps those with the tag when a tag filter is set (ListTagsForResource,
//! paced), leaves out the stack's own groups, and writes the list to S3 as
//! the JSON array a Distributed Map's ItemReader reads. The state payload
//! carries only where the list is and how long it is, so the parent's
//! history and payloads do not grow with the account. A Distributed Map then
//! runs the archive state machine for each group, one at a time, and writes
//! its children's results to S3 (ResultWriter). The last step,
//! [`summarize_groups`], counts them, writes a summary with every failed
//! group and its cause, and lets the lease go.
//!
//! One account-wide run at a time: the lease (`{prefix}/@parent/@lease.json`)
//! is the group lease's mechanism ([`super::lease::acquire_key`]), taken with
//! a conditional write, so of two runs started at once exactly one gets it
//! and the other ends `PARENT_BUSY` before it starts any group. It is not
//! renewed: a run holds it until it releases it at its end (or on its
//! failure path). A run that was stopped, timed out or failed without
//! reaching either leaves it behind; the next run asks Step Functions
//! whether the holder still runs (DescribeExecution, in the state machine)
//! and takes the lease over only when it does not (`takeOver`).
//!
//! ```text
//! {prefix}/@parent/@lease.json                          (one account-wide run at a time)
//! {prefix}/@parent/runs/{runId}/groups.json             (the Map's items)
//! {prefix}/@parent/runs/{runId}/groups/{part}.json      (while groups are listed across invocations)
//! {prefix}/@parent/runs/{runId}/results/{mapRunId}/...  (the Map's ResultWriter: manifest, SUCCEEDED_n, FAILED_n)
//! {prefix}/@parent/runs/{runId}/summary.json
//! ```
//!
//! Log group names cannot contain `@`, so `{prefix}/@parent/` never meets a
//! group's own keys (`{prefix}/{group path}/...`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lease::{Acquired, acquire_key, release_key};
use super::{Clients, LeaseHolder};
use crate::domain::input::{DEFAULT_INVOCATION_SECONDS, InputProblem, RUN_ID_MAX_CHARS};
use crate::domain::lease::Lease;
use crate::error::{ArchiverError, Result};

/// The account-wide run's lease is never renewed: it lasts as long as a
/// Standard execution can (one year), and a holder that ended without
/// releasing it is found by asking Step Functions, not by letting it lapse.
pub const PARENT_LEASE_TTL_MS: i64 = 366 * 24 * 3_600_000;

/// Default ListTagsForResource calls per second of a listing with a tag
/// filter: the lowest CloudWatch Logs control-plane quota (5 TPS), so the
/// listing never throttles the account's other callers much.
pub const DEFAULT_TAGS_PER_SECOND: u32 = 5;

/// The most failed groups the summary names in the execution's output and
/// cause; `summary.json` names them all.
const NAMED_FAILURES: usize = 10;

/// Where the account-wide run writes.
#[derive(Debug, Clone)]
pub struct ParentLayout {
    root: String,
}

impl ParentLayout {
    /// The layout under the archive prefix.
    pub fn new(prefix: &str) -> Self {
        Self {
            root: format!("{}/@parent", prefix.trim_matches('/')),
        }
    }

    /// The lease: which account-wide run works now.
    pub fn lease(&self) -> String {
        format!("{}/@lease.json", self.root)
    }

    /// The prefix of one run's objects.
    pub fn run_root(&self, run_id: &str) -> String {
        format!("{}/runs/{run_id}", self.root)
    }

    /// The groups of a run: the Map's ItemReader.
    pub fn groups(&self, run_id: &str) -> String {
        format!("{}/groups.json", self.run_root(run_id))
    }

    /// One invocation's share of the groups, kept until the list is written.
    pub fn groups_part(&self, run_id: &str, part: u32) -> String {
        format!("{}/groups/{part:06}.json", self.run_root(run_id))
    }

    /// The prefix the Map's ResultWriter writes under.
    pub fn results(&self, run_id: &str) -> String {
        format!("{}/results", self.run_root(run_id))
    }

    /// What became of each group.
    pub fn summary(&self, run_id: &str) -> String {
        format!("{}/summary.json", self.run_root(run_id))
    }
}

/// What the account-wide state machine hands every step: the selection and
/// the deployment, and the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsRequest {
    /// The groups whose names start with this are archived.
    pub log_group_name_prefix: String,
    /// With a tag filter: only groups carrying this tag key ...
    #[serde(default)]
    pub tag_key: String,
    /// ... with this value.
    #[serde(default)]
    pub tag_value: String,
    /// The stack's own log groups, comma-separated: never archived.
    #[serde(default)]
    pub exclude_groups: String,
    /// The archive bucket.
    pub bucket: String,
    /// The archive prefix.
    pub prefix: String,
    /// `$$.Execution.Id`: the lease names it, so a later run can ask whether it still runs.
    #[serde(default)]
    pub execution_id: Option<String>,
    /// `$$.Execution.Name`: the run id in every key the run writes.
    pub execution_name: String,
    /// ListTagsForResource calls per second (default [`DEFAULT_TAGS_PER_SECOND`]).
    #[serde(default)]
    pub tags_per_second: Option<u32>,
    /// Seconds of listing per invocation before it hands back a continuation
    /// (default the workflow's invocation budget).
    #[serde(default)]
    pub invocation_seconds: Option<u64>,
}

impl GroupsRequest {
    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.log_group_name_prefix.trim().is_empty() {
            problems.push(InputProblem::new(
                "logGroupNamePrefix",
                "give the start of the names of the groups to archive, for example /aws/lambda/orders-",
            ));
        }
        if self.execution_name.is_empty()
            || self.execution_name.chars().count() > RUN_ID_MAX_CHARS
            || self.execution_name.contains('/')
        {
            problems.push(InputProblem::new(
                "executionName",
                "the execution name is the run id: 1 to 80 characters without '/'",
            ));
        }
        if self.bucket.is_empty() {
            problems.push(InputProblem::new("bucket", "the archive bucket is missing"));
        }
        if self.tags_per_second == Some(0) {
            problems.push(InputProblem::new("tagsPerSecond", "must be at least 1"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ArchiverError::InvalidInput(problems))
        }
    }

    fn layout(&self) -> ParentLayout {
        ParentLayout::new(&self.prefix)
    }

    fn excluded(&self) -> BTreeSet<&str> {
        self.exclude_groups
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect()
    }

    fn claimant(&self) -> Lease {
        Lease {
            run_id: self.execution_name.clone(),
            execution_arn: self.execution_id.clone(),
            mode: "all-groups".into(),
            cutoff: String::new(),
            acquired_at: String::new(),
            expires_at: String::new(),
            released: false,
        }
    }
}

/// Where a listing stopped, to go on from in the next invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingProgress {
    /// The DescribeLogGroups token of the next page.
    pub token: String,
    /// Parts written so far.
    pub parts: u32,
    /// Groups with the prefix seen so far.
    pub listed: u64,
    /// Groups selected so far.
    pub selected: u64,
    /// The stack's own groups left out so far.
    pub excluded: u64,
    /// Groups without the tag so far.
    pub not_tagged: u64,
}

/// Where the list of groups is: the Map's ItemReader and the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    /// Bucket of the list.
    pub bucket: String,
    /// Key of the list: a JSON array of `{"logGroupName": ...}`.
    pub key: String,
    /// Groups in the list: the Map's items.
    pub count: u64,
    /// Groups with the prefix.
    pub listed: u64,
    /// The stack's own groups left out.
    pub excluded: u64,
    /// Groups left out for want of the tag.
    pub not_tagged: u64,
    /// The prefix the Map's ResultWriter writes under.
    pub results_prefix: String,
}

/// What the list-groups step answers; `status` is what the state machine's
/// Choice reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum GroupListing {
    /// Another account-wide run holds the lease: this one starts no group
    /// (unless the state machine finds the holder ended and takes over).
    ParentBusy {
        /// The run holding the lease.
        held_by: LeaseHolder,
    },
    /// The invocation's time ran out: call again with this to go on.
    Listing(ListingProgress),
    /// The list is written.
    Listed(GroupList),
}

/// The list-groups step's input: the request, and what the state machine
/// learnt so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListGroupsCall {
    /// The selection and the deployment.
    pub request: GroupsRequest,
    /// A holder the state machine found no longer running: its lease may be taken over.
    #[serde(default)]
    pub take_over: Option<String>,
    /// The previous invocation's answer, when it handed back a continuation.
    #[serde(default)]
    pub listing: Option<GroupListing>,
}

/// One item of the Map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupItem {
    /// The group.
    pub log_group_name: String,
}

/// Paces calls to at most `per_second`.
struct Pace {
    interval: Duration,
    last: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / f64::from(per_second.max(1))),
            last: None,
        }
    }

    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.interval).await;
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ArchiverError::Internal(format!("encoding JSON: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bucket: &str, key: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ArchiverError::Internal(format!("s3://{bucket}/{key} is unreadable: {e}")))
}

async fn read_json<T: serde::de::DeserializeOwned>(clients: &Clients, bucket: &str, key: &str) -> Result<T> {
    let body = clients.archive.get(bucket, key).await?.ok_or_else(|| {
        ArchiverError::Internal(format!(
            "s3://{bucket}/{key} is missing; was it deleted while the run was going?"
        ))
    })?;
    decode(bucket, key, &body)
}

/// Takes the account-wide run's lease (or says who holds it), then lists the
/// groups to archive, page by page, until done or the invocation's time is
/// up; writes the list for the Map.
pub async fn list_groups(call: ListGroupsCall, clients: &Clients) -> Result<GroupListing> {
    let request = &call.request;
    request.validate()?;
    let layout = request.layout();
    let lease_key = layout.lease();
    let acquired = acquire_key(
        clients,
        &request.bucket,
        &lease_key,
        &request.claimant(),
        PARENT_LEASE_TTL_MS,
        call.take_over.as_deref(),
    )
    .await?;
    if let Acquired::Busy(holder) = acquired {
        tracing::warn!(holder = holder.run_id, "another account-wide run holds the lease");
        return Ok(GroupListing::ParentBusy {
            held_by: LeaseHolder {
                run_id: holder.run_id,
                execution_arn: holder.execution_arn,
                since: holder.acquired_at,
                expires_at: holder.expires_at,
            },
        });
    }

    let mut progress = match call.listing {
        Some(GroupListing::Listing(progress)) => Some(progress),
        _ => None,
    }
    .unwrap_or(ListingProgress {
        token: String::new(),
        parts: 0,
        listed: 0,
        selected: 0,
        excluded: 0,
        not_tagged: 0,
    });
    let run_id = &request.execution_name;
    let excluded = request.excluded();
    let budget = Duration::from_secs(request.invocation_seconds.unwrap_or(DEFAULT_INVOCATION_SECONDS as u64));
    let started = Instant::now();
    let mut pace = Pace::new(request.tags_per_second.unwrap_or(DEFAULT_TAGS_PER_SECOND));
    let mut token = (!progress.token.is_empty()).then(|| progress.token.clone());
    let mut selected: Vec<GroupItem> = Vec::new();
    let finished = loop {
        let (page, next) = clients
            .logs
            .list_groups_page(&request.log_group_name_prefix, token.as_deref())
            .await?;
        for group in page {
            progress.listed += 1;
            if excluded.contains(group.name.as_str()) {
                progress.excluded += 1;
                continue;
            }
            if !request.tag_key.is_empty() {
                pace.wait().await;
                let tags = clients.logs.group_tags(&group.arn).await?;
                if tags.get(&request.tag_key) != Some(&request.tag_value) {
                    progress.not_tagged += 1;
                    continue;
                }
            }
            selected.push(GroupItem {
                log_group_name: group.name,
            });
        }
        match next {
            None => break true,
            Some(next) => token = Some(next),
        }
        if started.elapsed() >= budget {
            break false;
        }
    };
    progress.selected += selected.len() as u64;

    let bucket = &request.bucket;
    let list_key = layout.groups(run_id);
    if finished && progress.parts == 0 {
        clients.archive.put(bucket, &list_key, encode(&selected)?).await?;
    } else {
        // Part numbers from 1, in listing order.
        progress.parts += 1;
        clients
            .archive
            .put(bucket, &layout.groups_part(run_id, progress.parts), encode(&selected)?)
            .await?;
        if !finished {
            progress.token = token.unwrap_or_default();
            tracing::info!(listed = progress.listed, parts = progress.parts, "groups listed so far");
            return Ok(GroupListing::Listing(progress));
        }
        let mut all: Vec<GroupItem> = Vec::with_capacity(usize::try_from(progress.selected).unwrap_or(0));
        for part in 1..=progress.parts {
            let items: Vec<GroupItem> = read_json(clients, bucket, &layout.groups_part(run_id, part)).await?;
            all.extend(items);
        }
        clients.archive.put(bucket, &list_key, encode(&all)?).await?;
    }
    tracing::info!(
        listed = progress.listed,
        selected = progress.selected,
        excluded = progress.excluded,
        not_tagged = progress.not_tagged,
        "groups listed"
    );
    Ok(GroupListing::Listed(GroupList {
        bucket: bucket.clone(),
        key: list_key,
        count: progress.selected,
        listed: progress.listed,
        excluded: progress.excluded,
        not_tagged: progress.not_tagged,
        results_prefix: layout.results(run_id),
    }))
}

/// The summarize step's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SummarizeCall {
    /// The selection and the deployment.
    pub request: GroupsRequest,
    /// The list-groups answer (`LISTED`).
    pub listing: GroupListing,
    /// The Map's result with a ResultWriter (`{MapRunArn, ResultWriterDetails:
    /// {Bucket, Key}}`), or `null` when no group was selected.
    #[serde(default)]
    pub results: Option<Value>,
}

/// A group whose archive run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedGroup {
    /// The group.
    pub log_group_name: String,
    /// FAILED, TIMED_OUT, ABORTED, or NOT_RUN (the Map ended before its turn).
    pub status: String,
    /// The archive execution's error, as Step Functions reports it.
    pub error: Option<String>,
    /// The archive execution's cause.
    pub cause: Option<String>,
    /// The archive execution, when one was started.
    pub execution_arn: Option<String>,
}

/// Where an S3 object is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
}

/// What an account-wide run did: the execution's output (with the first
/// failed groups) and, with every failed and busy group, `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsSummary {
    /// `SUCCEEDED`, or `GROUPS_FAILED` when a group's run failed (the
    /// execution then fails with `GroupsFailed` and this as its cause).
    pub status: String,
    /// The run (the execution name).
    pub run_id: String,
    /// The selection.
    pub log_group_name_prefix: String,
    /// Groups the run selected.
    pub groups: u64,
    /// Groups archived (their run succeeded).
    pub succeeded: u64,
    /// Groups another run held (`GROUP_BUSY`): not a failure, they are
    /// archived by that run or the next one.
    pub busy: u64,
    /// Groups whose run failed, timed out, was aborted or never started.
    pub failed: u64,
    /// The first failed groups (all of them are in the summary object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_groups: Vec<String>,
    /// The summary object: every failed group with its error and cause, and the busy groups.
    pub summary: ObjectRef,
    /// The Map's ResultWriter manifest: every child's input, output or error.
    pub results: Option<ObjectRef>,
    /// One line for the execution's cause when it fails.
    pub cause: String,
}

/// The summary object: [`GroupsSummary`] with every failed and busy group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsSummaryObject {
    /// The totals, as the execution's output.
    #[serde(flatten)]
    pub totals: GroupsSummary,
    /// Every group whose run did not succeed.
    pub failures: Vec<FailedGroup>,
    /// Every group another run held.
    pub busy_groups: Vec<String>,
}

/// One child execution record of a ResultWriter file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChildRecord {
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultFile {
    key: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
struct ResultFiles {
    #[serde(default)]
    failed: Vec<ResultFile>,
    #[serde(default)]
    pending: Vec<ResultFile>,
    #[serde(default)]
    succeeded: Vec<ResultFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultManifest {
    #[serde(default)]
    result_files: ResultFiles,
}

fn group_of(record: &ChildRecord) -> String {
    let from = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v["logGroupName"].as_str().map(str::to_string))
    };
    from(&record.output)
        .or_else(|| from(&record.input))
        .unwrap_or_else(|| "(unknown)".into())
}

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(chars).collect::<String>())
    }
}

/// A failed child: its error, and the archive execution's own error and
/// cause when the cause is the `.sync` integration's execution description.
fn failure_of(record: &ChildRecord) -> FailedGroup {
    let described = record
        .cause
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .filter(|v| v.get("ExecutionArn").is_some());
    let text = |v: &Value, field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let (error, cause, execution_arn) = match &described {
        Some(d) => (
            text(d, "Error").or_else(|| record.error.clone()),
            text(d, "Cause"),
            text(d, "ExecutionArn"),
        ),
        None => (record.error.clone(), record.cause.clone(), None),
    };
    FailedGroup {
        log_group_name: group_of(record),
        status: record.status.clone().unwrap_or_else(|| "FAILED".into()),
        error,
        cause: cause.map(|c| clip(&c, 2_000)),
        execution_arn,
    }
}

/// Counts what became of every group from the Map's ResultWriter files,
/// writes the summary, lets the account-wide lease go, and answers the
/// execution's output.
pub async fn summarize_groups(call: SummarizeCall, clients: &Clients) -> Result<GroupsSummary> {
    let request = &call.request;
    let GroupListing::Listed(list) = &call.listing else {
        return Err(ArchiverError::Internal(
            "summarize-groups needs the LISTED answer of list-groups".into(),
        ));
    };
    let layout = request.layout();
    let run_id = &request.execution_name;
    let (mut succeeded, mut busy) = (0u64, Vec::new());
    let mut failures = Vec::new();
    let mut manifest_ref = None;
    if let Some(details) = call.results.as_ref().map(|r| &r["ResultWriterDetails"]) {
        let bucket = details["Bucket"].as_str().unwrap_or(&request.bucket).to_string();
        let key = details["Key"].as_str().unwrap_or_default().to_string();
        let manifest: ResultManifest = read_json(clients, &bucket, &key).await?;
        let files = &manifest.result_files;
        for file in &files.succeeded {
            let records: Vec<ChildRecord> = read_json(clients, &bucket, &file.key).await?;
            for record in records {
                let output: Value = record
                    .output
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
                    .unwrap_or(Value::Null);
                match output["status"].as_str() {
                    Some("GROUP_BUSY") => busy.push(group_of(&record)),
                    _ => succeeded += 1,
                }
            }
        }
        for (file, pending) in files
            .failed
            .iter()
            .map(|f| (f, false))
            .chain(files.pending.iter().map(|f| (f, true)))
        {
            let records: Vec<ChildRecord> = read_json(clients, &bucket, &file.key).await?;
            failures.extend(records.iter().map(|r| {
                let mut failed = failure_of(r);
                if pending {
                    failed.status = "NOT_RUN".into();
                }
                failed
            }));
        }
        manifest_ref = Some(ObjectRef { bucket, key });
    }
    // Every selected group has a record, unless the Map ended early.
    let recorded = succeeded + busy.len() as u64 + failures.len() as u64;
    let failed = failures.len() as u64 + list.count.saturating_sub(recorded);
    let failed_groups: Vec<String> = failures
        .iter()
        .take(NAMED_FAILURES)
        .map(|f| f.log_group_name.clone())
        .collect();
    let summary_ref = ObjectRef {
        bucket: request.bucket.clone(),
        key: layout.summary(run_id),
    };
    let cause = if failed == 0 {
        format!("{succeeded} of {} groups archived, {} busy", list.count, busy.len())
    } else {
        let first: Vec<String> = failures
            .iter()
            .take(NAMED_FAILURES)
            .map(|f| {
                format!(
                    "{} ({})",
                    f.log_group_name,
                    f.error.as_deref().unwrap_or(f.status.as_str())
                )
            })
            .collect();
        format!(
            "{failed} of {} groups failed: {}{}; the others ran. Every failed group with its cause: s3://{}/{}",
            list.count,
            first.join(", "),
            if failed as usize > first.len() { ", ..." } else { "" },
            summary_ref.bucket,
            summary_ref.key
        )
    };
    let totals = GroupsSummary {
        status: if failed == 0 { "SUCCEEDED" } else { "GROUPS_FAILED" }.into(),
        run_id: run_id.clone(),
        log_group_name_prefix: request.log_group_name_prefix.clone(),
        groups: list.count,
        succeeded,
        busy: busy.len() as u64,
        failed,
        failed_groups,
        summary: summary_ref.clone(),
        results: manifest_ref,
        cause,
    };
    let object = GroupsSummaryObject {
        totals: totals.clone(),
        failures,
        busy_groups: busy,
    };
    clients
        .archive
        .put(&summary_ref.bucket, &summary_ref.key, encode(&object)?)
        .await?;
    release_groups(request.clone(), clients).await?;
    tracing::info!(
        groups = totals.groups,
        succeeded = totals.succeeded,
        busy = totals.busy,
        failed = totals.failed,
        "account-wide run summarized"
    );
    Ok(totals)
}

/// Lets the account-wide lease go, if this run holds it: the end of a run,
/// and its failure path.
pub async fn release_groups(request: GroupsRequest, clients: &Clients) -> Result<()> {
    let key = request.layout().lease();
    if release_key(clients, &request.bucket, &key, &request.execution_name).await? {
        tracing::info!(run_id = request.execution_name, "account-wide lease released");
    }
    Ok(())
}

/// The groups of a written list, for tools and tests.
pub async fn read_group_list(clients: &Clients, list: &GroupList) -> Result<Vec<GroupItem>> {
    read_json(clients, &list.bucket, &list.key).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::memory::MemoryAws;

    /// Tags by group, as a test sets them up.
    type Tags = BTreeMap<&'static str, (&'static str, &'static str)>;

    const BUCKET: &str = "archive";

    fn aws(groups: &[&str], tags: &Tags) -> MemoryAws {
        let aws = MemoryAws::new();
        aws.archive.create_bucket(BUCKET);
        for g in groups {
            aws.logs.create_group(g);
        }
        for (g, (k, v)) in tags {
            aws.logs.tag_group(g, k, v);
        }
        aws
    }

    fn request(run: &str) -> GroupsRequest {
        GroupsRequest {
            log_group_name_prefix: "/app/".into(),
            tag_key: String::new(),
            tag_value: String::new(),
            exclude_groups: "/app/own-a, /app/own-b".into(),
            bucket: BUCKET.into(),
            prefix: "cwl-archiver".into(),
            execution_id: Some(format!("arn:aws:states:us-east-1:123456789012:execution:all:{run}")),
            execution_name: run.into(),
            tags_per_second: Some(1_000),
            invocation_seconds: None,
        }
    }

    fn call(request: GroupsRequest) -> ListGroupsCall {
        ListGroupsCall {
            request,
            take_over: None,
            listing: None,
        }
    }

    async fn listed(aws: &MemoryAws, listing: GroupListing) -> (GroupList, Vec<String>) {
        let GroupListing::Listed(list) = listing else {
            panic!("not listed: {listing:?}");
        };
        let names = read_group_list(&aws.clients(), &list)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.log_group_name)
            .collect();
        (list, names)
    }

    #[tokio::test]
    async fn lists_the_prefix_across_pages_without_the_stacks_own_groups() {
        let mut groups: Vec<String> = (0..120).map(|i| format!("/app/g{i:03}")).collect();
        groups.extend(["/app/own-a".into(), "/app/own-b".into(), "/other/x".into()]);
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let aws = aws(&names, &Tags::new());
        let clients = aws.clients();
        let (list, listed_names) = listed(&aws, list_groups(call(request("r1")), &clients).await.unwrap()).await;
        assert_eq!(list.count, 120);
        assert_eq!(list.listed, 122);
        assert_eq!(list.excluded, 2);
        assert_eq!(listed_names.len(), 120);
        assert!(listed_names.iter().all(|n| n.starts_with("/app/g")));
        // Three DescribeLogGroups pages of 50.
        assert_eq!(aws.control().calls("DescribeLogGroups"), 3);
        assert_eq!(list.key, "cwl-archiver/@parent/runs/r1/groups.json");
        assert_eq!(list.results_prefix, "cwl-archiver/@parent/runs/r1/results");
    }

    #[tokio::test]
    async fn a_tag_filter_keeps_only_the_tagged_groups_with_the_value() {
        let tags = Tags::from([
            ("/app/a", ("archive", "yes")),
            ("/app/b", ("archive", "no")),
            ("/app/c", ("team", "yes")),
        ]);
        let aws = aws(&["/app/a", "/app/b", "/app/c", "/app/d"], &tags);
        let mut req = request("r1");
        req.tag_key = "archive".into();
        req.tag_value = "yes".into();
        let (list, names) = listed(&aws, list_groups(call(req), &aws.clients()).await.unwrap()).await;
        assert_eq!(names, ["/app/a"]);
        assert_eq!(list.not_tagged, 3);
        assert_eq!(aws.control().calls("ListTagsForResource"), 4);
    }

    #[tokio::test]
    async fn a_listing_out_of_time_goes_on_in_the_next_invocation() {
        let groups: Vec<String> = (0..130).map(|i| format!("/app/g{i:03}")).collect();
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let aws = aws(&names, &Tags::new());
        let clients = aws.clients();
        let mut req = request("r1");
        // No time at all: one page per invocation.
        req.invocation_seconds = Some(0);
        let mut next = call(req);
        let mut invocations = 0;
        let list = loop {
            invocations += 1;
            match list_groups(next.clone(), &clients).await.unwrap() {
                GroupListing::Listing(progress) => next.listing = Some(GroupListing::Listing(progress)),
                other => break other,
            }
        };
        assert_eq!(invocations, 3);
        let (list, listed_names) = listed(&aws, list).await;
        assert_eq!(list.count, 130);
        assert_eq!(listed_names, groups);
    }

    #[tokio::test]
    async fn one_account_wide_run_at_a_time() {
        let aws = aws(&["/app/a"], &Tags::new());
        let clients = aws.clients();
        assert!(matches!(
            list_groups(call(request("first")), &clients).await.unwrap(),
            GroupListing::Listed(_)
        ));
        // A second run finds the first one's lease.
        let busy = list_groups(call(request("second")), &clients).await.unwrap();
        let GroupListing::ParentBusy { held_by } = busy else {
            panic!("{busy:?}");
        };
        assert_eq!(held_by.run_id, "first");
        assert!(held_by.execution_arn.unwrap().ends_with(":first"));
        // The first run again (a retried step) still holds it.
        assert!(matches!(
            list_groups(call(request("first")), &clients).await.unwrap(),
            GroupListing::Listed(_)
        ));
        // Told that the holder ended, the second run takes it over; a third
        // run told about a holder that is not the current one does not.
        let mut take = call(request("second"));
        take.take_over = Some("first".into());
        assert!(matches!(
            list_groups(take.clone(), &clients).await.unwrap(),
            GroupListing::Listed(_)
        ));
        let mut third = call(request("third"));
        third.take_over = Some("first".into());
        assert!(matches!(
            list_groups(third, &clients).await.unwrap(),
            GroupListing::ParentBusy { .. }
        ));
        // Released at the end of the run: the next one takes it at once.
        release_groups(request("second"), &clients).await.unwrap();
        assert!(matches!(
            list_groups(call(request("fourth")), &clients).await.unwrap(),
            GroupListing::Listed(_)
        ));
    }

    #[tokio::test]
    async fn the_request_is_checked_before_anything_is_touched() {
        let aws = aws(&["/app/a"], &Tags::new());
        let mut req = request("r/1");
        req.log_group_name_prefix = " ".into();
        let err = list_groups(call(req), &aws.clients()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("logGroupNamePrefix") && text.contains("executionName"),
            "{text}"
        );
        assert_eq!(aws.control().total_calls(), 0);
    }

    fn record(group: &str, status: &str, output: Option<Value>, error: Option<(&str, &str)>) -> Value {
        let mut r = serde_json::json!({
            "ExecutionArn": format!("arn:aws:states:us-east-1:123456789012:execution:all/Groups:{group}"),
            "Input": serde_json::json!({"logGroupName": group, "archive": {}}).to_string(),
            "Status": status,
        });
        if let Some(o) = output {
            r["Output"] = Value::String(o.to_string());
        }
        if let Some((e, c)) = error {
            r["Error"] = e.into();
            r["Cause"] = c.into();
        }
        r
    }

    #[tokio::test]
    async fn the_summary_counts_every_group_and_names_the_failed_ones() {
        let aws = aws(&["/app/a", "/app/b", "/app/c", "/app/d"], &Tags::new());
        let clients = aws.clients();
        let req = request("r1");
        let listing = list_groups(call(req.clone()), &clients).await.unwrap();
        let base = "cwl-archiver/@parent/runs/r1/results/map-1";
        let archived = serde_json::json!({"logGroupName": "/app/a", "status": "SUCCEEDED"});
        let held = serde_json::json!({"logGroupName": "/app/b", "status": "GROUP_BUSY"});
        let described = serde_json::json!({
            "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:archive:x",
            "Status": "FAILED", "Error": "InvalidInput", "Cause": "bucket no-such-bucket does not exist"
        });
        aws.archive.insert(
            BUCKET,
            &format!("{base}/SUCCEEDED_0.json"),
            Value::from(vec![
                record("/app/a", "SUCCEEDED", Some(archived), None),
                record("/app/b", "SUCCEEDED", Some(held), None),
            ])
            .to_string(),
        );
        aws.archive.insert(
            BUCKET,
            &format!("{base}/FAILED_0.json"),
            Value::from(vec![record(
                "/app/c",
                "FAILED",
                None,
                Some(("States.TaskFailed", &described.to_string())),
            )])
            .to_string(),
        );
        let manifest = serde_json::json!({"ResultFiles": {
            "SUCCEEDED": [{"Key": format!("{base}/SUCCEEDED_0.json"), "Size": 1}],
            "FAILED": [{"Key": format!("{base}/FAILED_0.json"), "Size": 1}],
            "PENDING": []}});
        aws.archive
            .insert(BUCKET, &format!("{base}/manifest.json"), manifest.to_string());
        let results = serde_json::json!({"MapRunArn": "arn", "ResultWriterDetails": {"Bucket": BUCKET, "Key": format!("{base}/manifest.json")}});
        let summary = summarize_groups(
            SummarizeCall {
                request: req.clone(),
                listing,
                results: Some(results),
            },
            &clients,
        )
        .await
        .unwrap();
        assert_eq!(
            (summary.groups, summary.succeeded, summary.busy, summary.failed),
            (4, 1, 1, 2),
            "{summary:?}"
        );
        assert_eq!(summary.status, "GROUPS_FAILED");
        assert_eq!(summary.failed_groups, ["/app/c"]);
        assert!(summary.cause.contains("/app/c (InvalidInput)"), "{}", summary.cause);
        let object: GroupsSummaryObject = decode(
            BUCKET,
            &summary.summary.key,
            &aws.archive.object(BUCKET, &summary.summary.key).unwrap(),
        )
        .unwrap();
        assert_eq!(object.busy_groups, ["/app/b"]);
        assert_eq!(
            object.failures[0].cause.as_deref(),
            Some("bucket no-such-bucket does not exist")
        );
        assert!(
            object.failures[0]
                .execution_arn
                .as_deref()
                .unwrap()
                .ends_with(":archive:x")
        );
        // The lease is let go.
        let lease: Lease = decode(
            BUCKET,
            "l",
            &aws.archive
                .object(BUCKET, &ParentLayout::new("cwl-archiver").lease())
                .unwrap(),
        )
        .unwrap();
        assert!(lease.released);
        assert!(lease.expires_at_ms() > aws.control().now_ms() + 360 * 24 * 3_600_000);
    }
}
