//! The small traits the workflow uses to reach CloudWatch Logs and S3.
//!
//! [`aws`] implements them with the AWS SDK; `memory` (built with the
//! `test-doubles` feature, so never into the Lambda binaries) implements
//! them in memory for tests, with the same rules.

pub mod aws;
#[cfg(any(test, feature = "test-doubles"))]
pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::batch::LogBatch;
use crate::domain::event::LogEvent;
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
    /// Stored bytes as reported (deprecated by AWS, often 0).
    pub stored_bytes: Option<i64>,
}

/// One page of GetLogEvents.
#[derive(Debug, Clone, Default)]
pub struct EventsPage {
    /// The events, oldest first.
    pub events: Vec<LogEvent>,
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
    /// One forward page of events with `start_ms <= t < end_ms`, oldest first.
    /// `Ok(None)` when the stream does not exist.
    async fn get_events_page(
        &self,
        group: &str,
        stream: &str,
        start_ms: i64,
        end_ms: Option<i64>,
        token: Option<&str>,
        limit: Option<i32>,
    ) -> Result<Option<EventsPage>>;
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
}

/// An object listed under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full key.
    pub key: String,
    /// Size in bytes.
    pub size: i64,
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
    /// Every object under the prefix, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, bucket: &str, key: &str) -> Result<()>;
}
