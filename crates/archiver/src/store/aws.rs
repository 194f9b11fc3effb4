//! [`LogStore`] and [`ArchiveStore`] over the AWS SDK.

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_sdk_cloudwatchlogs as logs;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3 as s3;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;

use crate::domain::batch::LogBatch;
use crate::domain::event::{IngestedEvent, LogEvent};
use crate::error::{ArchiverError, Result};
use crate::store::{
    ArchiveStore, DataProtection, EventsPage, EventsQuery, ExportRequest, ExportStart, ExportStatus, ExportTask,
    GroupInfo, GroupSummary, LogStore, ObjectInfo, RejectedEvents, StreamInfo, Versioned, WriteCondition,
};

/// Attempts per call, counting the first: throttling at 5 TPS quotas is
/// normal for DeleteLogStream and DescribeLogStreams, so retry generously.
pub const MAX_ATTEMPTS: u32 = 8;

/// The retry policy of every SDK client of the archiver: standard mode
/// (exponential backoff with jitter, throttling and 5xx retried) with
/// [`MAX_ATTEMPTS`] attempts.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// Loads the AWS configuration the usual way (environment, profile, IMDS,
/// `AWS_ENDPOINT_URL`) with [`retry_config`].
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::from_env().retry_config(retry_config()).load().await
}

/// The SDK implementation of [`LogStore`].
#[derive(Clone, Debug)]
pub struct CloudWatchLogs {
    client: logs::Client,
}

impl CloudWatchLogs {
    /// Wraps a CloudWatch Logs client.
    pub fn new(client: logs::Client) -> Self {
        Self { client }
    }

    /// A client from a loaded configuration.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(logs::Client::new(config))
    }
}

/// Maps an SDK error to the library's error: throttling, transient, or not.
fn sdk_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> ArchiverError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let server_error = err.raw_response().is_some_and(|r| r.status().is_server_error());
    let code = err.code().map(str::to_string);
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&err)));
    match code.as_deref() {
        Some(
            "ThrottlingException" | "Throttling" | "SlowDown" | "TooManyRequestsException" | "RequestLimitExceeded",
        ) => ArchiverError::Throttled { operation, message },
        Some(
            "ServiceUnavailableException"
            | "ServiceUnavailable"
            | "InternalError"
            | "InternalFailure"
            | "ServiceException",
        ) => ArchiverError::Service {
            operation,
            message,
            retryable: true,
        },
        Some(_) => ArchiverError::Service {
            operation,
            message,
            retryable: false,
        },
        // No error code: a timeout, a dropped connection, or an unparseable response.
        None => ArchiverError::Service {
            operation,
            message,
            retryable: matches!(
                err,
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
            ) || server_error,
        },
    }
}

fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err.code(),
        Some("ResourceNotFoundException" | "NoSuchKey" | "NotFound" | "NoSuchBucket" | "404")
    )
}

fn is_condition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = err.raw_response().map(|r| r.status().as_u16());
    matches!(
        err.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
    ) || matches!(status, Some(412 | 409))
}

fn stream_info(s: &logs::types::LogStream) -> StreamInfo {
    StreamInfo {
        name: s.log_stream_name().unwrap_or_default().to_string(),
        creation_time: s.creation_time().unwrap_or_default(),
        first_event_timestamp: s.first_event_timestamp(),
        last_event_timestamp: s.last_event_timestamp(),
        last_ingestion_time: s.last_ingestion_time(),
        #[allow(deprecated)]
        stored_bytes: s.stored_bytes(),
    }
}

fn export_task(t: &logs::types::ExportTask) -> ExportTask {
    use logs::types::ExportTaskStatusCode as Code;
    let status = t.status();
    let code = status.and_then(|s| s.code());
    ExportTask {
        task_id: t.task_id().unwrap_or_default().to_string(),
        task_name: t.task_name().unwrap_or_default().to_string(),
        status: match code {
            Some(Code::Completed) => ExportStatus::Completed,
            Some(Code::Running) => ExportStatus::Running,
            Some(Code::Failed) => ExportStatus::Failed,
            Some(Code::Cancelled) => ExportStatus::Cancelled,
            Some(Code::PendingCancel) => ExportStatus::PendingCancel,
            _ => ExportStatus::Pending,
        },
        message: status.and_then(|s| s.message()).unwrap_or_default().to_string(),
        creation_ms: t.execution_info().and_then(|i| i.creation_time()),
    }
}

#[async_trait]
impl LogStore for CloudWatchLogs {
    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>> {
        let mut pages = self
            .client
            .describe_log_groups()
            .log_group_name_prefix(group)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeLogGroups", e))?;
            if let Some(g) = page.log_groups().iter().find(|g| g.log_group_name() == Some(group)) {
                return Ok(Some(GroupInfo {
                    name: group.to_string(),
                    creation_time: g.creation_time().unwrap_or_default(),
                    retention_in_days: g.retention_in_days(),
                    stored_bytes: g.stored_bytes(),
                }));
            }
        }
        Ok(None)
    }

    async fn list_streams_page(&self, group: &str, token: Option<&str>) -> Result<(Vec<StreamInfo>, Option<String>)> {
        let page = self
            .client
            .describe_log_streams()
            .log_group_name(group)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeLogStreams", e))?;
        let streams = page.log_streams().iter().map(stream_info).collect();
        Ok((streams, page.next_token().map(str::to_string)))
    }

    async fn describe_stream(&self, group: &str, stream: &str) -> Result<Option<StreamInfo>> {
        let out = self
            .client
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(stream)
            .send()
            .await;
        match out {
            Ok(page) => Ok(page
                .log_streams()
                .iter()
                .find(|s| s.log_stream_name() == Some(stream))
                .map(stream_info)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_error("DescribeLogStreams", e)),
        }
    }

    async fn get_events_page(&self, query: EventsQuery<'_>) -> Result<Option<EventsPage>> {
        let out = self
            .client
            .get_log_events()
            .log_group_name(query.group)
            .log_stream_name(query.stream)
            .start_time(query.start_ms)
            .set_end_time(query.end_ms)
            .start_from_head(true)
            .set_next_token(query.token.map(str::to_string))
            .set_limit(query.limit)
            .set_unmask(query.unmask.then_some(true))
            .send()
            .await;
        match out {
            Ok(page) => Ok(Some(EventsPage {
                events: page
                    .events()
                    .iter()
                    .map(|e| IngestedEvent {
                        event: LogEvent::new(e.timestamp().unwrap_or_default(), e.message().unwrap_or_default()),
                        // Missing only if AWS changed the API: then the event
                        // counts as ingested now, the strictest reading.
                        ingestion_ms: e
                            .ingestion_time()
                            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
                    })
                    .collect(),
                next_forward_token: page.next_forward_token().map(str::to_string),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_error("GetLogEvents", e)),
        }
    }

    async fn put_events(&self, group: &str, stream: &str, batch: &LogBatch) -> Result<()> {
        let events = batch
            .iter()
            .map(|e| {
                logs::types::InputLogEvent::builder()
                    .timestamp(e.timestamp)
                    .message(e.message.clone())
                    .build()
                    .map_err(|err| ArchiverError::Internal(format!("building an InputLogEvent: {err}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await
            .map_err(|e| sdk_error("PutLogEvents", e))?;
        let rejected = out.rejected_log_events_info().map(|r| RejectedEvents {
            too_old_end_index: r.too_old_log_event_end_index(),
            expired_end_index: r.expired_log_event_end_index(),
            too_new_start_index: r.too_new_log_event_start_index(),
        });
        match rejected {
            // An empty rejectedLogEventsInfo is treated as a rejection too: never assume success.
            Some(rejected) => Err(rejected.into_error(stream)),
            None => Ok(()),
        }
    }

    async fn create_stream(&self, group: &str, stream: &str) -> Result<bool> {
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(false),
            Err(e) => Err(sdk_error("CreateLogStream", e)),
        }
    }

    async fn delete_stream(&self, group: &str, stream: &str) -> Result<bool> {
        match self
            .client
            .delete_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(sdk_error("DeleteLogStream", e)),
        }
    }

    async fn create_export_task(&self, request: &ExportRequest) -> Result<ExportStart> {
        let out = self
            .client
            .create_export_task()
            .task_name(&request.task_name)
            .log_group_name(&request.log_group_name)
            .from(request.from_ms)
            .to(request.to_ms)
            .destination(&request.bucket)
            .destination_prefix(&request.prefix)
            .customize()
            // A retry of a create whose answer was lost would start a second
            // task over the same window; the workflow retries instead, after
            // looking for its own task by name.
            .config_override(logs::config::Builder::default().retry_config(RetryConfig::disabled()))
            .send()
            .await;
        match out {
            Ok(out) => Ok(ExportStart::Started(out.task_id().unwrap_or_default().to_string())),
            Err(e) if e.code() == Some("LimitExceededException") => Ok(ExportStart::SlotBusy),
            Err(e) => Err(sdk_error("CreateExportTask", e)),
        }
    }

    async fn describe_export_task(&self, task_id: &str) -> Result<Option<ExportTask>> {
        let out = self
            .client
            .describe_export_tasks()
            .task_id(task_id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeExportTasks", e))?;
        Ok(out.export_tasks().first().map(export_task))
    }

    async fn active_export_task(&self) -> Result<Option<ExportTask>> {
        use logs::types::ExportTaskStatusCode as Code;
        for code in [Code::Running, Code::Pending] {
            let out = self
                .client
                .describe_export_tasks()
                .status_code(code)
                .limit(1)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeExportTasks", e))?;
            if let Some(task) = out.export_tasks().first() {
                return Ok(Some(export_task(task)));
            }
        }
        Ok(None)
    }

    async fn data_protection(&self, group: &str) -> Result<DataProtection> {
        let group_policy = match self
            .client
            .get_data_protection_policy()
            .log_group_identifier(group)
            .send()
            .await
        {
            Ok(out) => out.policy_document().is_some_and(|d| !d.is_empty()),
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(sdk_error("GetDataProtectionPolicy", e)),
        };
        let account_policy = match self
            .client
            .describe_account_policies()
            .policy_type(logs::types::PolicyType::DataProtectionPolicy)
            .send()
            .await
        {
            Ok(out) => !out.account_policies().is_empty(),
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(sdk_error("DescribeAccountPolicies", e)),
        };
        Ok(DataProtection {
            group_policy,
            account_policy,
        })
    }

    async fn put_retention(&self, group: &str, days: i32) -> Result<()> {
        self.client
            .put_retention_policy()
            .log_group_name(group)
            .retention_in_days(days)
            .send()
            .await
            .map_err(|e| sdk_error("PutRetentionPolicy", e))?;
        Ok(())
    }

    async fn delete_retention(&self, group: &str) -> Result<()> {
        match self.client.delete_retention_policy().log_group_name(group).send().await {
            Ok(_) => Ok(()),
            // No policy to delete: the group already keeps its events.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk_error("DeleteRetentionPolicy", e)),
        }
    }

    async fn list_groups_page(&self, prefix: &str, token: Option<&str>) -> Result<(Vec<GroupSummary>, Option<String>)> {
        let page = self
            .client
            .describe_log_groups()
            .set_log_group_name_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .limit(50)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeLogGroups", e))?;
        let groups = page
            .log_groups()
            .iter()
            .filter_map(|g| {
                let name = g.log_group_name()?.to_string();
                // `logGroupArn` has no trailing `:*`; older answers only carry `arn`.
                let arn = g
                    .log_group_arn()
                    .map(str::to_string)
                    .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))?;
                Some(GroupSummary { name, arn })
            })
            .collect();
        Ok((groups, page.next_token().map(str::to_string)))
    }

    async fn group_tags(&self, group_arn: &str) -> Result<std::collections::BTreeMap<String, String>> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(group_arn)
            .send()
            .await
            .map_err(|e| sdk_error("ListTagsForResource", e))?;
        Ok(out
            .tags()
            .map(|tags| tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }
}

/// The SDK implementation of [`ArchiveStore`].
#[derive(Clone, Debug)]
pub struct S3Archive {
    client: s3::Client,
}

impl S3Archive {
    /// Wraps an S3 client.
    pub fn new(client: s3::Client) -> Self {
        Self { client }
    }

    /// A client from a loaded configuration. Path-style addressing is used
    /// when an explicit endpoint is configured (S3-compatible stores and
    /// local emulators rarely resolve virtual-hosted bucket names).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        let path_style = config.endpoint_url().is_some();
        let conf = s3::config::Builder::from(config).force_path_style(path_style).build();
        Self::new(s3::Client::from_conf(conf))
    }
}

#[async_trait]
impl ArchiveStore for S3Archive {
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(false),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(sdk_error("HeadBucket", e)),
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let body = out.body.collect().await.map_err(|e| ArchiverError::Service {
                    operation: "GetObject",
                    message: format!("reading s3://{bucket}/{key}: {e}"),
                    retryable: true,
                })?;
                Ok(Some(body.into_bytes()))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_error("GetObject", e)),
        }
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        match self.client.head_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(false),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(sdk_error("HeadObject", e)),
        }
    }

    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", e))?;
        Ok(())
    }

    async fn get_versioned(&self, bucket: &str, key: &str) -> Result<Option<Versioned>> {
        match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let body = out.body.collect().await.map_err(|e| ArchiverError::Service {
                    operation: "GetObject",
                    message: format!("reading s3://{bucket}/{key}: {e}"),
                    retryable: true,
                })?;
                Ok(Some(Versioned {
                    body: body.into_bytes(),
                    etag,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk_error("GetObject", e)),
        }
    }

    async fn put_if(&self, bucket: &str, key: &str, body: Bytes, condition: WriteCondition) -> Result<Option<String>> {
        let request = self.client.put_object().bucket(bucket).key(key).body(body.into());
        let request = match &condition {
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatch(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            // 412: the condition failed; 409: a concurrent conditional write
            // won; 404 (If-Match): the object is gone. The caller reads again.
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(sdk_error("PutObject", e)),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut objects = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ListObjectsV2", e))?;
            objects.extend(page.contents().iter().map(|o| ObjectInfo {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or_default(),
            }));
        }
        Ok(objects)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        match self.client.delete_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk_error("DeleteObject", e)),
        }
    }
}
