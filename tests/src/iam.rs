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

/// The key ARN standing for the customer managed key a source log group is
/// encrypted with (any key of the account; the group's own choice).
pub const SOURCE_KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/source-group";

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
    /// Condition keys of the request besides the usual ones (for example
    /// `kms:ViaService` when CloudWatch Logs uses a key for the caller).
    pub context: Vec<(&'static str, String)>,
}

impl Permission {
    /// A permission of the caller's role, with no extra condition keys.
    pub fn role(action: &'static str, resource: impl Into<String>) -> Permission {
        Permission {
            principal: Principal::Role,
            action,
            resource: resource.into(),
            context: Vec::new(),
        }
    }

    /// A KMS action CloudWatch Logs performs with the caller's permissions on
    /// the key of an encrypted log group (`kms:ViaService`), with the group in
    /// the encryption context.
    pub fn via_logs(action: &'static str, group: &str) -> Permission {
        Permission {
            context: vec![
                ("kms:ViaService", format!("logs.{REGION}.amazonaws.com")),
                ("kms:EncryptionContext:aws:logs:arn", group_arn(group)),
            ],
            ..Permission::role(action, SOURCE_KEY_ARN)
        }
    }
}

/// The ARN of a log group.
pub fn group_arn(group: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}")
}

/// The permissions a call needs. With `kms` the archive bucket is encrypted
/// by its customer managed key and the source log groups by theirs (the most
/// permissions); without, by S3 and by CloudWatch Logs.
pub fn required(call: &Call, kms: bool) -> Vec<Permission> {
    let role = |action: &'static str, resource: String| Permission::role(action, resource);
    // CloudWatch Logs uses an encrypted group's key on the caller's behalf.
    let source_key = |actions: &[&'static str], group: &str| -> Vec<Permission> {
        if kms {
            actions.iter().map(|a| Permission::via_logs(a, group)).collect()
        } else {
            Vec::new()
        }
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
        (Target::Account, "list_groups_page") => vec![role("logs:DescribeLogGroups", "*".into())],
        (Target::Group(g), "group_tags") => vec![role("logs:ListTagsForResource", group_arn(g))],
        (Target::Account, "describe_export_task" | "active_export_task") => {
            vec![role("logs:DescribeExportTasks", "*".into())]
        }
        (Target::Group(g), "list_streams_page") => vec![role("logs:DescribeLogStreams", group_arn(g))],
        (Target::Stream(g, _), "describe_stream") => vec![role("logs:DescribeLogStreams", group_arn(g))],
        (Target::Stream(g, _), "create_stream") => vec![role("logs:CreateLogStream", group_arn(g))],
        (Target::Stream(g, _), "delete_stream") => vec![role("logs:DeleteLogStream", group_arn(g))],
        (Target::Stream(g, s), "get_events_page") => {
            let mut needed = vec![role("logs:GetLogEvents", format!("{}:log-stream:{s}", group_arn(g)))];
            needed.extend(source_key(&["kms:Decrypt"], g));
            needed
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
            let mut needed = vec![role("logs:PutLogEvents", format!("{}:log-stream:{s}", group_arn(g)))];
            needed.extend(source_key(&["kms:GenerateDataKey", "kms:Encrypt"], g));
            needed
        }
        (Target::Export { group, bucket, prefix }, "create_export_task") => {
            let service = |action: &'static str, resource: String| Permission {
                principal: Principal::LogsService { group: group.clone() },
                ..Permission::role(action, resource)
            };
            // The service writes a test object first, then the export objects.
            let write_test = object_arn(bucket, &format!("{prefix}/aws-logs-write-test"));
            let mut needed = vec![
                role("logs:CreateExportTask", group_arn(group)),
                // CreateExportTask also checks that its caller may write the
                // destination: without it, the task fails to start.
                role("s3:PutObject", write_test.clone()),
                service("s3:GetBucketAcl", bucket_arn(bucket)),
                service("s3:PutObject", write_test),
            ];
            if kms {
                needed.push(role("kms:GenerateDataKey", KEY_ARN.into()));
                needed.push(service("kms:GenerateDataKey", KEY_ARN.into()));
            }
            // The export reads the group's events through CloudWatch Logs.
            needed.extend(source_key(&["kms:Decrypt"], group));
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
        .map(|action| Permission::role(action, stream.clone()))
        .collect()
}

/// The permissions one Task state (or a Map's ItemReader or ResultWriter)
/// needs from the role of its state machine `own_arn`, after the
/// definition's substitutions: `resource` is the integration ARN and
/// `parameters` its `Parameters`. `object` stands for an object the
/// ItemReader reads or the ResultWriter writes (its key is only known at run
/// time), in a bucket encrypted with the archive key if `kms`.
pub fn integration_required(
    resource: &str,
    parameters: &serde_json::Value,
    own_arn: &str,
    object: &str,
    kms: bool,
) -> Vec<Permission> {
    let role = |action: &'static str, resource: String| Permission::role(action, resource);
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
        // A Distributed Map's ResultWriter writes its manifest and result
        // files, as multipart uploads when they are large.
        "arn:aws:states:::s3:putObject" => {
            let mut needed = vec![
                role("s3:PutObject", object.to_string()),
                role("s3:ListMultipartUploadParts", object.to_string()),
                role("s3:AbortMultipartUpload", object.to_string()),
            ];
            if kms {
                needed.push(role("kms:GenerateDataKey", KEY_ARN.into()));
                needed.push(role("kms:Decrypt", KEY_ARN.into()));
            }
            needed
        }
        // Whether another execution of the same state machine still runs.
        "arn:aws:states:::aws-sdk:sfn:describeExecution" => {
            let execution = format!("{}:holder-1", own_arn.replace(":stateMachine:", ":execution:"));
            vec![role("states:DescribeExecution", execution)]
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
/// the state machine `own_arn`, and, when a failed run is redriven, to
/// redrive its Map Run's failed children (`execution:NAME/MAP-RUN-LABEL:ID`,
/// AWS's "IAM permission to redrive a Map Run").
pub fn distributed_map_required(own_arn: &str) -> Vec<Permission> {
    let executions = format!("{}/map-run:child-1", own_arn.replace(":stateMachine:", ":execution:"));
    [
        ("states:StartExecution", own_arn.to_string()),
        ("states:DescribeExecution", executions.clone()),
        ("states:StopExecution", executions.clone()),
        ("states:RedriveExecution", executions),
    ]
    .into_iter()
    .map(|(action, resource)| Permission::role(action, resource))
    .collect()
}

/// A deployment the operator works against, for [`operator_required`].
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The stack name (state machines `<stack>-archive`, `<stack>-all-groups`).
    pub stack: String,
    /// The archive bucket.
    pub bucket: String,
    /// `ArchivePrefix`.
    pub prefix: String,
    /// A log group of `LogGroupNamePattern`.
    pub group: String,
    /// The archive bucket under SSE-KMS, the group under a customer managed key.
    pub kms: bool,
}

/// What each CLI command (and the docs' look-up of the stack outputs) needs
/// from the operator's own credentials: (command, permission). The published
/// operator policy must allow all of it and grant nothing else.
pub fn operator_required(d: &Deployment) -> Vec<(&'static str, Permission)> {
    fn p(action: &'static str, resource: impl Into<String>) -> Permission {
        Permission::role(action, resource)
    }
    let machine = |name: &str| format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{}-{name}", d.stack);
    let execution = |name: &str| {
        format!(
            "arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{}-{name}:run-1",
            d.stack
        )
    };
    let child = format!(
        "arn:aws:states:{REGION}:{ACCOUNT_ID}:execution:{}-archive/map-run:child-1",
        d.stack
    );
    let map_run = format!(
        "arn:aws:states:{REGION}:{ACCOUNT_ID}:mapRun:{}-archive/map-run:1",
        d.stack
    );
    let bucket = format!("arn:aws:s3:::{}", d.bucket);
    let root = format!("{}/{}", d.prefix, d.group.trim_start_matches('/'));
    let object = |rest: &str| format!("arn:aws:s3:::{}/{root}/{rest}", d.bucket);
    let stream = format!("{}:log-stream:web-1", group_arn(&d.group));
    let read_objects = |keys: &[&str]| -> Vec<Permission> {
        let mut needed = vec![p("s3:ListBucket", bucket.clone())];
        needed.extend(keys.iter().map(|k| p("s3:GetObject", object(k))));
        if d.kms {
            needed.push(p("kms:Decrypt", KEY_ARN));
        }
        needed
    };
    let via_logs = |actions: &[&'static str]| -> Vec<Permission> {
        if d.kms {
            actions.iter().map(|a| Permission::via_logs(a, &d.group)).collect()
        } else {
            Vec::new()
        }
    };
    let mut out: Vec<(&'static str, Permission)> = Vec::new();
    let mut add = |command: &'static str, needed: Vec<Permission>| {
        out.extend(needed.into_iter().map(|perm| (command, perm)));
    };
    add(
        "docs: stack outputs",
        vec![p(
            "cloudformation:DescribeStacks",
            format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{}/0a1b2c3d",
                d.stack
            ),
        )],
    );
    let mut plan = vec![
        p("logs:DescribeLogGroups", "*"),
        p("logs:DescribeLogStreams", group_arn(&d.group)),
        p("logs:GetLogEvents", stream.clone()),
    ];
    plan.extend(via_logs(&["kms:Decrypt"]));
    plan.extend(read_objects(&["@checkpoint.json"]));
    add("plan", plan);
    let mut start = vec![
        p("states:DescribeStateMachine", machine("archive")),
        p("states:StartExecution", machine("archive")),
        p("states:StartExecution", machine("all-groups")),
        p("logs:DescribeLogGroups", "*"),
        p("logs:GetDataProtectionPolicy", group_arn(&d.group)),
        p("logs:DescribeAccountPolicies", "*"),
        p("s3:GetBucketLocation", bucket.clone()),
        p("s3:GetBucketPolicy", bucket.clone()),
    ];
    start.extend(read_objects(&["@lease.json"]));
    add("start", start);
    let mut watch = vec![
        p("states:DescribeExecution", execution("archive")),
        p("states:GetExecutionHistory", execution("archive")),
        p("states:ListMapRuns", execution("archive")),
        p("states:DescribeMapRun", map_run),
        p("states:DescribeExecution", child.clone()),
        p("states:GetExecutionHistory", child),
        p("states:DescribeExecution", execution("all-groups")),
        p("states:GetExecutionHistory", execution("all-groups")),
    ];
    watch.extend(read_objects(&[
        "@runs/run-1/outcomes/000001.json",
        "@runs/run-1/report.json",
    ]));
    add("watch", watch);
    let mut report = vec![p("states:DescribeExecution", execution("archive"))];
    report.extend(read_objects(&["@runs/run-1/report.json"]));
    add("report", report);
    let mut runs = vec![
        p("states:ListExecutions", machine("archive")),
        p("states:ListExecutions", machine("all-groups")),
    ];
    runs.extend(read_objects(&["@runs/run-1/report.json"]));
    add("runs", runs);
    let mut stop = vec![
        p("states:DescribeExecution", execution("archive")),
        p("states:StopExecution", execution("archive")),
        p("states:StopExecution", execution("all-groups")),
        // The stopped run's lease, released with If-Match.
        p("s3:PutObject", object("@lease.json")),
    ];
    stop.extend(read_objects(&["@lease.json"]));
    if d.kms {
        stop.push(p("kms:GenerateDataKey", KEY_ARN));
    }
    add("stop", stop);
    add(
        "redrive",
        vec![
            p("states:RedriveExecution", execution("archive")),
            p("states:RedriveExecution", execution("all-groups")),
        ],
    );
    let mut restore = read_objects(&["@checkpoint.json", "@exports/dt=2026-01-01/task/web-1/000000.gz"]);
    restore.extend([
        p("logs:DescribeLogGroups", "*"),
        p("logs:CreateLogStream", group_arn(&d.group)),
        p("logs:GetLogEvents", stream.clone()),
        p("logs:PutLogEvents", stream),
    ]);
    restore.extend(via_logs(&["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]));
    add("restore --into-group", restore);
    let mut retention = vec![
        p("logs:DescribeLogGroups", "*"),
        p("logs:PutRetentionPolicy", group_arn(&d.group)),
        p("logs:DeleteRetentionPolicy", group_arn(&d.group)),
        // The record of the replaced retention goes once it is put back.
        p("s3:DeleteObject", object("@retention.json")),
    ];
    retention.extend(read_objects(&["@retention.json", "@checkpoint.json"]));
    add("retention show, retention restore", retention);
    out
}
