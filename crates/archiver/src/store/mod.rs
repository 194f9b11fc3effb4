//! The small traits the workflow uses to reach CloudWatch Logs and S3.
//!
//! [`aws`] implements them with the AWS SDK; `memory` (built with the
//! `test-doubles` feature, so never into the Lambda binaries) implements
//! them in memory for tests, with the same rules.

pub mod aws;
#[cfg(any(test, feature = "test-doubles"))]
pub mod memory;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::batch::LogBatch;
use crate::domain::event::IngestedEvent;
use crate::error::{ArchiverError, Result};

/// What DescribeLogGroups says about a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Creation time (ms).
    pub creation_time: i64,
    /// Retention in days, if the group has a retention policy.
    pub retention_in_days: Option<i32>,
    /// Bytes the group stores (compressed, as billed). Unlike a stream's
    /// `storedBytes`, which AWS has reported as 0 since June 2019, the
    /// group's figure is real.
    #[serde(default)]
    pub stored_bytes: Option<i64>,
}

/// One group of a DescribeLogGroups page, as the account-wide run lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    /// Group name.
    pub name: String,
    /// The group's ARN without the trailing `:*` (what ListTagsForResource takes).
    pub arn: String,
}

/// Whether a data protection policy masks a group's events: its own
/// (GetDataProtectionPolicy) or the account's (DescribeAccountPolicies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProtection {
    /// The group has a data protection policy of its own.
    pub group_policy: bool,
    /// The account has a data protection policy (it applies to every group).
    pub account_policy: bool,
}

impl DataProtection {
    /// Whether any policy masks the group's events.
    pub fn masks(&self) -> bool {
        self.group_policy || self.account_policy
    }
}

/// What DescribeLogStreams says about a stream. The timestamps are
/// eventually consistent on AWS, so destructive decisions confirm them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// Creation time (ms).
    pub creation_time: i64,
    /// Oldest event time (ms), absent for a stream without events.
    pub first_event_timestamp: Option<i64>,
    /// Newest event time (ms).
    pub last_event_timestamp: Option<i64>,
    /// When the stream last received events (ms).
    pub last_ingestion_time: Option<i64>,
    /// Always 0 on AWS since June 2019 (the group's figure is real): no
    /// figure of the archiver depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<i64>,
}

/// One GetLogEvents call: the events of `stream` with
/// `start_ms <= t < end_ms`, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct EventsQuery<'a> {
    /// The group.
    pub group: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// First event time included (ms).
    pub start_ms: i64,
    /// First event time excluded (ms), `None` for no end.
    pub end_ms: Option<i64>,
    /// The forward token of the previous page, `None` for the first.
    pub token: Option<&'a str>,
    /// Events per page asked for (at most 10,000).
    pub limit: Option<i32>,
    /// Read the original text of a data-protected group (`unmask=true`,
    /// which needs `logs:Unmask`) instead of the masked one.
    pub unmask: bool,
}

/// One page of GetLogEvents.
#[derive(Debug, Clone, Default)]
pub struct EventsPage {
    /// The events, oldest first, with their ingestion times.
    pub events: Vec<IngestedEvent>,
    /// The token for the next page; equal to the token sent at the end.
    pub next_forward_token: Option<String>,
}

/// Status of a CloudWatch Logs export task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportStatus {
    /// Queued.
    Pending,
    /// Running.
    Running,
    /// Finished successfully.
    Completed,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Pending cancellation.
    PendingCancel,
}

impl ExportStatus {
    /// Whether the task still occupies the account's one export slot.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            ExportStatus::Pending | ExportStatus::Running | ExportStatus::PendingCancel
        )
    }
}

/// An export task as DescribeExportTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportTask {
    /// Task id.
    pub task_id: String,
    /// Task name, which the archiver derives from the group and run.
    pub task_name: String,
    /// Status.
    pub status: ExportStatus,
    /// Status message.
    pub message: String,
    /// When CloudWatch Logs created the task (ms), when it says.
    pub creation_ms: Option<i64>,
}

/// A CreateExportTask request: exports events with `from_ms <= t <= to_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// A readable task name.
    pub task_name: String,
    /// The group to export.
    pub log_group_name: String,
    /// First event time included (ms).
    pub from_ms: i64,
    /// Last event time included (ms); both ends are inclusive on AWS.
    pub to_ms: i64,
    /// Destination bucket.
    pub bucket: String,
    /// Destination key prefix; objects land at `prefix/taskId/stream/000000.gz`.
    pub prefix: String,
}

/// What CreateExportTask answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportStart {
    /// The task was created.
    Started(String),
    /// Another task is PENDING or RUNNING (LimitExceededException).
    SlotBusy,
}

/// The `rejectedLogEventsInfo` of a PutLogEvents answer: which events of
/// the batch CloudWatch Logs dropped instead of storing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedEvents {
    /// Events before this index were older than 14 days.
    pub too_old_end_index: Option<i32>,
    /// Events before this index were older than the group's retention.
    pub expired_end_index: Option<i32>,
    /// Events from this index on were more than 2 hours in the future.
    pub too_new_start_index: Option<i32>,
}

impl RejectedEvents {
    /// Whether any event was dropped.
    pub fn any(&self) -> bool {
        self.too_old_end_index.is_some() || self.expired_end_index.is_some() || self.too_new_start_index.is_some()
    }

    /// The error a replay into `stream` raises for these dropped events.
    pub fn into_error(self, stream: &str) -> ArchiverError {
        ArchiverError::ReplayRejected {
            stream: stream.to_string(),
            detail: format!(
                "tooOldLogEventEndIndex={:?} expiredLogEventEndIndex={:?} tooNewLogEventStartIndex={:?}",
                self.too_old_end_index, self.expired_end_index, self.too_new_start_index
            ),
        }
    }
}

/// CloudWatch Logs, as far as the archiver needs it.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// The time now (ms): what the archiver compares with ingestion times
    /// and lease expiries. The system clock, except in the memory store,
    /// whose clock a test sets.
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
    /// The group, or `None` when it does not exist.
    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>>;
    /// One page of DescribeLogStreams (up to 50 streams) and the token of
    /// the next, `None` after the last.
    async fn list_streams_page(&self, group: &str, token: Option<&str>) -> Result<(Vec<StreamInfo>, Option<String>)>;
    /// Every stream of the group.
    async fn list_streams(&self, group: &str) -> Result<Vec<StreamInfo>> {
        let mut streams = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = self.list_streams_page(group, token.as_deref()).await?;
            streams.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(streams),
            }
        }
    }
    /// One stream, or `None` when it does not exist.
    async fn describe_stream(&self, group: &str, stream: &str) -> Result<Option<StreamInfo>>;
    /// One forward page of GetLogEvents. `Ok(None)` when the stream does not exist.
    async fn get_events_page(&self, query: EventsQuery<'_>) -> Result<Option<EventsPage>>;
    /// PutLogEvents of one batch, valid by construction. Events CloudWatch
    /// Logs drops (too old, beyond retention, too far in the future) are a
    /// [`ArchiverError::ReplayRejected`]; the others are stored.
    async fn put_events(&self, group: &str, stream: &str, batch: &LogBatch) -> Result<()>;
    /// CreateLogStream; `Ok(false)` when it already exists.
    async fn create_stream(&self, group: &str, stream: &str) -> Result<bool>;
    /// DeleteLogStream; `Ok(false)` when it did not exist.
    async fn delete_stream(&self, group: &str, stream: &str) -> Result<bool>;
    /// CreateExportTask.
    async fn create_export_task(&self, request: &ExportRequest) -> Result<ExportStart>;
    /// DescribeExportTasks for one task, `None` when unknown.
    async fn describe_export_task(&self, task_id: &str) -> Result<Option<ExportTask>>;
    /// A task of the account that is PENDING or RUNNING, if any.
    async fn active_export_task(&self) -> Result<Option<ExportTask>>;
    /// The data protection policies that mask the group's events.
    async fn data_protection(&self, group: &str) -> Result<DataProtection>;
    /// PutRetentionPolicy: events older than `days` expire (valid values only,
    /// see [`crate::domain::retention::RETENTION_DAYS`]).
    async fn put_retention(&self, group: &str, days: i32) -> Result<()>;
    /// DeleteRetentionPolicy: the group keeps its events forever.
    async fn delete_retention(&self, group: &str) -> Result<()>;
    /// One page of DescribeLogGroups of the groups whose names start with
    /// `prefix` (at most 50 a page), and the token of the next, `None` after
    /// the last.
    async fn list_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<(Vec<GroupSummary>, Option<String>)>;
    /// ListTagsForResource of a group (its ARN, without `:*`).
    async fn group_tags(&self, group_arn: &str) -> Result<BTreeMap<String, String>>;
}

/// An object listed under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: i64,
}

/// An object's bytes and the ETag a conditional write compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The object's bytes.
    pub body: Bytes,
    /// Its ETag, as S3 returned it.
    pub etag: String,
}

/// The condition of a conditional PutObject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if no object has the key.
    IfAbsent,
    /// `If-Match: etag`: only if the object is still this version.
    IfMatch(String),
}

/// S3, as far as the archiver needs it.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Whether the bucket exists and is reachable.
    async fn bucket_exists(&self, bucket: &str) -> Result<bool>;
    /// The object's bytes, or `None` when it does not exist.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>>;
    /// Whether the object exists.
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool>;
    /// Writes a whole object.
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()>;
    /// The object and its ETag, or `None` when it does not exist.
    async fn get_versioned(&self, bucket: &str, key: &str) -> Result<Option<Versioned>>;
    /// Writes the object only if `condition` holds (S3 conditional writes):
    /// `Some(etag)` of the new version, or `None` when the condition failed
    /// (412 Precondition Failed, 409 ConditionalRequestConflict, or a
    /// missing object for `IfMatch`).
    async fn put_if(&self, bucket: &str, key: &str, body: Bytes, condition: WriteCondition) -> Result<Option<String>>;
    /// Every object under the prefix, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<()>;
}
