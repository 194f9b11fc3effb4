//! What each function calls, and which IAM permissions that takes.
//!
//! The Lambda host wraps every invocation's clients in the interposer
//! ([`crate::interpose`]), so a run on the local stack leaves the list of
//! store calls each function made.
//! [`required`] turns a call into the IAM actions and resources the SDK
//! adapter (`archiver::store::aws`) needs for it: that table is the one place that
//! knows how trait methods map to AWS permissions.

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
        // unmask=true also needs logs:Unmask on the group.
        (Target::Stream(g, s), "get_events_page_unmasked") => vec![
            role("logs:GetLogEvents", format!("{}:log-stream:{s}", group_arn(g))),
            role("logs:Unmask", group_arn(g)),
        ],
        // GetDataProtectionPolicy is authorized on the group, the account's
        // policies (DescribeAccountPolicies) on "*".
        (Target::Group(g), "data_protection") => vec![
            role("logs:GetDataProtectionPolicy", group_arn(g)),
            role("logs:DescribeAccountPolicies", "*".into()),
        ],
        (Target::Group(g), "put_retention") => vec![role("logs:PutRetentionPolicy", group_arn(g))],
        (Target::Group(g), "delete_retention") => vec![role("logs:DeleteRetentionPolicy", group_arn(g))],
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
