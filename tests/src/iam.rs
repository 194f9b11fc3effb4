//! What each function calls, and which IAM permissions that takes.
//!
//! The Lambda host wraps every invocation's [`Clients`] in recorders, so a
//! run on the local stack leaves the list of store calls each function made.
//! [`required`] turns a call into the IAM actions and resources the SDK
//! adapter (`archiver::aws`) needs for it: that table is the one place that
//! knows how trait methods map to AWS permissions.

use std::sync::{Arc, Mutex};

use archiver::batch::LogBatch;
use archiver::error::Result;
use archiver::store::{
    ArchiveStore, EventsPage, ExportRequest, ExportStart, ExportTask, GroupInfo, LogStore, ObjectInfo, StreamInfo,
};
use archiver::workflow::Clients;
use async_trait::async_trait;
use bytes::Bytes;

use crate::stack::{ACCOUNT_ID, REGION};

/// One store call a function made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// The function (`start-export`, ...).
    pub function: String,
    /// The trait method.
    pub method: &'static str,
    /// What it was called on.
    pub target: Target,
}

/// The resource a call touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The account (export tasks).
    Account,
    /// A log group.
    Group(String),
    /// A log stream.
    Stream(String, String),
    /// A bucket.
    Bucket(String),
    /// An object.
    Object(String, String),
    /// An export task writing to `bucket/prefix` as the CloudWatch Logs service.
    Export {
        group: String,
        bucket: String,
        prefix: String,
    },
}

/// The calls of every function, shared by the host's invocations.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Call>>>);

impl Recorder {
    fn push(&self, function: &str, method: &'static str, target: Target) {
        if let Ok(mut calls) = self.0.lock() {
            calls.push(Call {
                function: function.to_string(),
                method,
                target,
            });
        }
    }

    /// Everything recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// `clients` as seen by `function`: every call is recorded, then made.
    pub fn wrap(&self, function: &str, clients: Clients) -> Clients {
        Clients {
            logs: Arc::new(RecordingLogs {
                inner: clients.logs,
                function: function.to_string(),
                recorder: self.clone(),
            }),
            archive: Arc::new(RecordingArchive {
                inner: clients.archive,
                function: function.to_string(),
                recorder: self.clone(),
            }),
        }
    }
}

/// The key ARN standing for the archive bucket's customer managed key.
pub const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/archive";

/// The principal of a permission: a function's role, or the CloudWatch Logs
/// service writing an export through the bucket policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The role of the function that made the call.
    Role,
    /// `logs.<region>.amazonaws.com`, on behalf of a log group.
    LogsService {
        /// The exported group, for `aws:SourceArn`.
        group: String,
    },
}

/// One permission a call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// Who needs it.
    pub principal: Principal,
    /// The IAM action.
    pub action: &'static str,
    /// The resource ARN.
    pub resource: String,
}

fn group_arn(group: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}")
}

/// The permissions a call needs, with the archive bucket encrypted by a
/// customer managed key (`kms` true) or by S3.
pub fn required(call: &Call, kms: bool) -> Vec<Permission> {
    let role = |action: &'static str, resource: String| Permission {
        principal: Principal::Role,
        action,
        resource,
    };
    let key = |actions: &[&'static str]| -> Vec<Permission> {
        if kms {
            actions.iter().map(|a| role(a, KEY_ARN.to_string())).collect()
        } else {
            Vec::new()
        }
    };
    let bucket_arn = |b: &str| format!("arn:aws:s3:::{b}");
    let object_arn = |b: &str, k: &str| format!("arn:aws:s3:::{b}/{k}");
    match (&call.target, call.method) {
        // No resource-level permissions for these two.
        (Target::Group(_), "describe_group") => vec![role("logs:DescribeLogGroups", "*".into())],
        (Target::Account, "describe_export_task" | "active_export_task") => {
            vec![role("logs:DescribeExportTasks", "*".into())]
        }
        (Target::Group(g), "list_streams_page") => vec![role("logs:DescribeLogStreams", group_arn(g))],
        (Target::Stream(g, _), "describe_stream") => vec![role("logs:DescribeLogStreams", group_arn(g))],
        (Target::Stream(g, _), "create_stream") => vec![role("logs:CreateLogStream", group_arn(g))],
        (Target::Stream(g, _), "delete_stream") => vec![role("logs:DeleteLogStream", group_arn(g))],
        (Target::Stream(g, s), "get_events_page") => {
            vec![role("logs:GetLogEvents", format!("{}:log-stream:{s}", group_arn(g)))]
        }
        (Target::Stream(g, s), "put_events") => {
            vec![role("logs:PutLogEvents", format!("{}:log-stream:{s}", group_arn(g)))]
        }
        (Target::Export { group, bucket, prefix }, "create_export_task") => {
            let service = |action: &'static str, resource: String| Permission {
                principal: Principal::LogsService { group: group.clone() },
                action,
                resource,
            };
            let mut needed = vec![
                role("logs:CreateExportTask", group_arn(group)),
                service("s3:GetBucketAcl", bucket_arn(bucket)),
                // The service writes a test object first, then the export objects.
                service(
                    "s3:PutObject",
                    object_arn(bucket, &format!("{prefix}/aws-logs-write-test")),
                ),
            ];
            if kms {
                needed.push(service("kms:GenerateDataKey", KEY_ARN.into()));
            }
            needed
        }
        // HeadBucket is authorized by s3:ListBucket.
        (Target::Bucket(b), "bucket_exists" | "list") => vec![role("s3:ListBucket", bucket_arn(b))],
        // A GetObject or HeadObject of a missing key answers 404 (which the
        // adapter reads as "absent") only with s3:ListBucket; 403 otherwise.
        (Target::Object(b, k), "get" | "exists") => {
            let mut needed = vec![
                role("s3:GetObject", object_arn(b, k)),
                role("s3:ListBucket", bucket_arn(b)),
            ];
            needed.extend(key(&["kms:Decrypt"]));
            needed
        }
        (Target::Object(b, k), "put") => {
            let mut needed = vec![role("s3:PutObject", object_arn(b, k))];
            needed.extend(key(&["kms:GenerateDataKey"]));
            needed
        }
        (Target::Object(b, k), "delete") => vec![role("s3:DeleteObject", object_arn(b, k))],
        // A started multipart upload may have to be aborted, and completing
        // one under SSE-KMS decrypts the parts' data keys.
        (Target::Object(b, k), "start_upload") => {
            let mut needed = vec![
                role("s3:PutObject", object_arn(b, k)),
                role("s3:AbortMultipartUpload", object_arn(b, k)),
            ];
            needed.extend(key(&["kms:GenerateDataKey", "kms:Decrypt"]));
            needed
        }
        (Target::Object(b, k), "upload_part" | "complete_upload") => {
            let mut needed = vec![role("s3:PutObject", object_arn(b, k))];
            needed.extend(key(&["kms:GenerateDataKey", "kms:Decrypt"]));
            needed
        }
        (Target::Object(b, k), "abort_upload") => vec![role("s3:AbortMultipartUpload", object_arn(b, k))],
        (target, method) => panic!("no IAM mapping for {method} on {target:?}: add it to iam::required"),
    }
}

/// What the Lambda runtime itself does with a function's role: write the
/// function's logs into its log group (`/aws/lambda/<stack>-<function>`).
pub fn required_by_runtime(stack_name: &str, function: &str) -> Vec<Permission> {
    let stream = format!(
        "{}:log-stream:2026/01/01/[$LATEST]0123456789abcdef",
        group_arn(&format!("/aws/lambda/{stack_name}-{function}"))
    );
    ["logs:CreateLogStream", "logs:PutLogEvents"]
        .into_iter()
        .map(|action| Permission {
            principal: Principal::Role,
            action,
            resource: stream.clone(),
        })
        .collect()
}

/// The permissions one Task state (or Map ItemReader) needs from its state
/// machine's role, after the definition's substitutions: `resource` is the
/// integration ARN and `parameters` its `Parameters`. `object` stands for an
/// object the ItemReader reads (its key is only known at run time), in a
/// bucket encrypted with the archive key if `kms`.
pub fn integration_required(
    resource: &str,
    parameters: &serde_json::Value,
    object: &str,
    kms: bool,
) -> Vec<Permission> {
    let role = |action: &'static str, resource: String| Permission {
        principal: Principal::Role,
        action,
        resource,
    };
    let param = |name: &str| parameters[name].as_str().unwrap_or_default().to_string();
    match resource {
        "arn:aws:states:::lambda:invoke" => vec![role("lambda:InvokeFunction", param("FunctionName"))],
        "arn:aws:states:::s3:getObject" => {
            let mut needed = vec![role("s3:GetObject", object.to_string())];
            if kms {
                needed.push(role("kms:Decrypt", KEY_ARN.into()));
            }
            needed
        }
        "arn:aws:states:::aws-sdk:cloudwatchlogs:describeLogGroups" => {
            vec![role("logs:DescribeLogGroups", "*".into())]
        }
        // Only the group's ARN is known at run time; any selected group will do.
        "arn:aws:states:::aws-sdk:cloudwatchlogs:listTagsForResource" => {
            vec![role("logs:ListTagsForResource", group_arn("/app/selected"))]
        }
        // .sync waits through a managed EventBridge rule and may stop the child.
        "arn:aws:states:::states:startExecution.sync:2" => {
            let machine = param("StateMachineArn");
            let executions = format!("{}:child-1", machine.replace(":stateMachine:", ":execution:"));
            let rule = format!(
                "arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
            );
            vec![
                role("states:StartExecution", machine),
                role("states:DescribeExecution", executions.clone()),
                role("states:StopExecution", executions),
                role("events:PutTargets", rule.clone()),
                role("events:PutRule", rule.clone()),
                role("events:DescribeRule", rule),
            ]
        }
        other => panic!("no IAM mapping for the integration {other}: add it to iam::integration_required"),
    }
}

/// What a Distributed Map needs: to run its items as child executions of
/// the state machine `own_arn`.
pub fn distributed_map_required(own_arn: &str) -> Vec<Permission> {
    let executions = format!("{}/map-run:child-1", own_arn.replace(":stateMachine:", ":execution:"));
    [
        ("states:StartExecution", own_arn.to_string()),
        ("states:DescribeExecution", executions.clone()),
        ("states:StopExecution", executions),
    ]
    .into_iter()
    .map(|(action, resource)| Permission {
        principal: Principal::Role,
        action,
        resource,
    })
    .collect()
}

struct RecordingLogs {
    inner: Arc<dyn LogStore>,
    function: String,
    recorder: Recorder,
}

impl RecordingLogs {
    fn note(&self, method: &'static str, target: Target) {
        self.recorder.push(&self.function, method, target);
    }
}

fn stream(group: &str, stream: &str) -> Target {
    Target::Stream(group.to_string(), stream.to_string())
}

#[async_trait]
impl LogStore for RecordingLogs {
    async fn describe_group(&self, group: &str) -> Result<Option<GroupInfo>> {
        self.note("describe_group", Target::Group(group.into()));
        self.inner.describe_group(group).await
    }
    async fn list_streams_page(&self, group: &str, token: Option<&str>) -> Result<(Vec<StreamInfo>, Option<String>)> {
        self.note("list_streams_page", Target::Group(group.into()));
        self.inner.list_streams_page(group, token).await
    }
    async fn describe_stream(&self, group: &str, name: &str) -> Result<Option<StreamInfo>> {
        self.note("describe_stream", stream(group, name));
        self.inner.describe_stream(group, name).await
    }
    async fn get_events_page(
        &self,
        group: &str,
        name: &str,
        start_ms: i64,
        end_ms: Option<i64>,
        token: Option<&str>,
        limit: Option<i32>,
    ) -> Result<Option<EventsPage>> {
        self.note("get_events_page", stream(group, name));
        self.inner
            .get_events_page(group, name, start_ms, end_ms, token, limit)
            .await
    }
    async fn put_events(&self, group: &str, name: &str, batch: &LogBatch) -> Result<()> {
        self.note("put_events", stream(group, name));
        self.inner.put_events(group, name, batch).await
    }
    async fn create_stream(&self, group: &str, name: &str) -> Result<bool> {
        self.note("create_stream", stream(group, name));
        self.inner.create_stream(group, name).await
    }
    async fn delete_stream(&self, group: &str, name: &str) -> Result<bool> {
        self.note("delete_stream", stream(group, name));
        self.inner.delete_stream(group, name).await
    }
    async fn create_export_task(&self, request: &ExportRequest) -> Result<ExportStart> {
        self.note(
            "create_export_task",
            Target::Export {
                group: request.log_group_name.clone(),
                bucket: request.bucket.clone(),
                prefix: request.prefix.clone(),
            },
        );
        self.inner.create_export_task(request).await
    }
    async fn describe_export_task(&self, task_id: &str) -> Result<Option<ExportTask>> {
        self.note("describe_export_task", Target::Account);
        self.inner.describe_export_task(task_id).await
    }
    async fn active_export_task(&self) -> Result<Option<ExportTask>> {
        self.note("active_export_task", Target::Account);
        self.inner.active_export_task().await
    }
}

struct RecordingArchive {
    inner: Arc<dyn ArchiveStore>,
    function: String,
    recorder: Recorder,
}

impl RecordingArchive {
    fn note(&self, method: &'static str, bucket: &str, key: Option<&str>) {
        let target = match key {
            Some(key) => Target::Object(bucket.into(), key.into()),
            None => Target::Bucket(bucket.into()),
        };
        self.recorder.push(&self.function, method, target);
    }
}

#[async_trait]
impl ArchiveStore for RecordingArchive {
    async fn bucket_exists(&self, bucket: &str) -> Result<bool> {
        self.note("bucket_exists", bucket, None);
        self.inner.bucket_exists(bucket).await
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>> {
        self.note("get", bucket, Some(key));
        self.inner.get(bucket, key).await
    }
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool> {
        self.note("exists", bucket, Some(key));
        self.inner.exists(bucket, key).await
    }
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<()> {
        self.note("put", bucket, Some(key));
        self.inner.put(bucket, key, body).await
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.note("list", bucket, None);
        self.inner.list(bucket, prefix).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.note("delete", bucket, Some(key));
        self.inner.delete(bucket, key).await
    }
}
