//! What `infra/template.yaml` deploys, run on the emulator: its state-machine
//! definitions with their substitutions, the account-wide state machine over
//! several groups, and every call the functions make checked against the
//! policies of the role of the function that makes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cwl_archiver_e2e::iam::{
    Call, Deployment, KEY_ARN, Permission, Principal, SOURCE_KEY_ARN, Target, distributed_map_required, group_arn,
    integration_required, operator_required, required, required_by_runtime,
};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::{ACCOUNT_ID, LOCAL_FUNCTIONS, LOCAL_STACK_NAME, REGION, Stack, local_context};
use cwl_archiver_e2e::template::{Context, Statement, Template, glob, placeholders, render_substituted};
use serde_json::json;

const BUCKET: &str = "archive-bucket";
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn every_definition_gets_exactly_the_substitutions_it_uses() {
    let template = Template::load().unwrap();
    let machines = template.resources_of_type("AWS::Serverless::StateMachine");
    assert_eq!(machines.len(), 2, "{machines:?}");
    let ctx = local_context(&template)
        .resource(
            "ArchiveStateMachine",
            "arn:aws:states:us-east-1:123456789012:stateMachine:x",
        )
        .resource("ArchiveBucket", BUCKET);
    for machine in machines {
        let definition = template.state_machine_definition(&machine, &ctx).unwrap();
        assert!(placeholders(&definition).is_empty(), "{machine}");
        let parsed: serde_json::Value = serde_json::from_str(&definition).unwrap();
        assert!(parsed["States"].is_object(), "{machine}");
    }
    // A substitution the text does not use is refused, like a missing one.
    let subs =
        |keys: &[&str]| -> BTreeMap<String, String> { keys.iter().map(|k| (k.to_string(), "v".into())).collect() };
    let text = r#"{"a": "${One}", "b": "${Two}"}"#;
    assert_eq!(
        render_substituted(text, &subs(&["One", "Two"])).unwrap(),
        r#"{"a": "v", "b": "v"}"#
    );
    assert!(render_substituted(text, &subs(&["One"])).is_err());
    assert!(render_substituted(text, &subs(&["One", "Two", "Three"])).is_err());
    assert_eq!(
        placeholders("a ${One} b ${!Literal} c ${Two}"),
        BTreeSet::from(["One".to_string(), "Two".to_string()])
    );
}

#[test]
fn the_schedule_input_is_what_the_parent_and_each_group_accept() {
    let template = Template::load().unwrap();
    let ctx = local_context(&template).parameter("LogGroupNamePrefix", "/aws/lambda/orders-");
    let text = template
        .resolve(&template.properties("Schedule").unwrap()["Target"]["Input"], &ctx)
        .unwrap()
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
    assert_eq!(input["logGroupNamePrefix"], ctx.parameters["LogGroupNamePrefix"]);
    // What the parent hands each group: the archive settings, the group, the
    // deployment's bucket and prefix; the archiver validates it as it would.
    let mut group_input = input["archive"].clone();
    group_input["logGroupName"] = json!("/aws/lambda/orders");
    group_input["bucket"] = json!(BUCKET);
    group_input["prefix"] = json!(ctx.parameters["ArchivePrefix"]);
    let settings = archiver::domain::input::ExecutionInput::from_json(group_input)
        .unwrap()
        .validate(chrono::Utc::now())
        .unwrap();
    assert_eq!(settings.mode.as_str(), ctx.parameters["ArchiveMode"]);
}

/// Seeds a group with an expired and a mixed stream; returns the events to keep.
async fn seed(stack: &Stack, group: &str, cutoff_ms: i64) -> Vec<(i64, String)> {
    let now = chrono::Utc::now().timestamp_millis();
    let quiet = now - 3 * HOUR;
    let expired = events_between("expired", now - 30 * DAY, cutoff_ms - 1, 200);
    let mixed = events_between("mixed", now - 12 * DAY, now - 4 * HOUR, 600);
    let e = &stack.emulator;
    e.seed_with_ingestion(group, "expired", &expired, quiet).await.unwrap();
    e.seed_with_ingestion(group, "web/mixed", &mixed, quiet).await.unwrap();
    mixed.into_iter().filter(|(t, _)| *t >= cutoff_ms).collect()
}

/// A child execution of the archive state machine.
#[derive(Debug)]
struct Child {
    group: String,
    status: String,
    cause: Option<String>,
    start: (i64, u32),
    stop: Option<(i64, u32)>,
}

/// The executions of the archive state machine, oldest first.
async fn children(stack: &Stack) -> Vec<Child> {
    let sfn = stack.emulator.sfn();
    let list = sfn
        .list_executions()
        .state_machine_arn(&stack.state_machine_arn)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for e in list.executions() {
        let d = sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .unwrap();
        let input: serde_json::Value = serde_json::from_str(d.input().unwrap_or("{}")).unwrap();
        out.push(Child {
            group: input["logGroupName"].as_str().unwrap_or_default().to_string(),
            status: d.status().as_str().to_string(),
            cause: d.cause().map(str::to_string),
            start: stamp(e.start_date()),
            stop: e.stop_date().map(stamp),
        });
    }
    out.sort_by_key(|c| c.start);
    out
}

fn stamp(t: &aws_sdk_sfn::primitives::DateTime) -> (i64, u32) {
    (t.secs(), t.subsec_nanos())
}

/// The account-wide run's summary object named by its output (or cause).
async fn parent_summary(stack: &Stack, run_id: &str) -> serde_json::Value {
    let key = archiver::workflow::groups::ParentLayout::new("cwl-archiver").summary(run_id);
    stack.read_json(BUCKET, &key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parent_archives_every_group_with_the_prefix_one_at_a_time() {
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let selected = ["/team-a/orders", "/team-a/payments"];
    let mut kept = BTreeMap::new();
    for group in selected {
        kept.insert(group, seed(&stack, group, cutoff_ms).await);
    }
    let other = "/team-b/search";
    seed(&stack, other, cutoff_ms).await;
    create_bucket(&stack, BUCKET).await;

    let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.unwrap();
    let input = json!({
        "logGroupNamePrefix": "/team-a/",
        "archive": {"cutoff": cutoff, "pollSeconds": 1, "streamsPerBatch": 2}
    });
    let run = stack.run_on(&parent, "all-groups", &input, RUN_TIMEOUT).await.unwrap();
    let children = children(&stack).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{children:?}");
    let output = run.output.clone().unwrap();
    assert_eq!(
        (
            &output["groups"],
            &output["succeeded"],
            &output["busy"],
            &output["failed"]
        ),
        (&json!(2), &json!(2), &json!(0), &json!(0)),
        "{output}"
    );
    // One child execution per selected group, never two at once.
    let groups: Vec<&str> = children.iter().map(|c| c.group.as_str()).collect();
    assert_eq!(groups, selected, "{children:?}");
    assert!(children.iter().all(|c| c.status == "SUCCEEDED"), "{children:?}");
    assert!(
        children[0].stop.is_some_and(|stop| stop <= children[1].start),
        "children overlapped: {children:?}"
    );

    for group in selected {
        assert_eq!(stream_events(&stack, group, "expired").await, None, "{group}");
        assert_eq!(
            stream_events(&stack, group, "web/mixed").await,
            Some(as_events(&kept[group], |_| true)),
            "{group}"
        );
        let path = group.trim_start_matches('/');
        let exports = object_keys(&stack, BUCKET, &format!("cwl-archiver/{path}/@exports/")).await;
        assert!(!exports.is_empty(), "{group} exported nothing");
    }
    // Outside the prefix: untouched, nothing written.
    assert!(stream_events(&stack, other, "expired").await.is_some());
    assert!(object_keys(&stack, BUCKET, "cwl-archiver/team-b/").await.is_empty());
    // The per-group results are where the output says, and the lease is let go.
    let layout = archiver::workflow::groups::ParentLayout::new("cwl-archiver");
    let results = output["results"]["key"].as_str().unwrap();
    assert!(
        results.starts_with(&format!("{}/", layout.results("all-groups"))),
        "{results}"
    );
    let manifest = stack.read_json(BUCKET, results).await.unwrap();
    assert_eq!(
        manifest["ResultFiles"]["SUCCEEDED"].as_array().map(Vec::len),
        Some(1),
        "{manifest}"
    );
    let lease = stack.read_json(BUCKET, &layout.lease()).await.unwrap();
    assert_eq!(lease["released"], json!(true), "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parent_with_a_tag_filter_skips_untagged_groups() {
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let tagged = "/svc/tagged";
    let untagged = "/svc/untagged";
    let kept = seed(&stack, tagged, cutoff_ms).await;
    seed(&stack, untagged, cutoff_ms).await;
    let logs = stack.emulator.logs();
    let arn = format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{tagged}");
    logs.tag_resource()
        .resource_arn(arn)
        .tags("archive", "yes")
        .send()
        .await
        .unwrap();
    create_bucket(&stack, BUCKET).await;

    let parent = stack
        .deploy_parent(BUCKET, |ctx| {
            ctx.parameter("LogGroupTagKey", "archive")
                .parameter("LogGroupTagValue", "yes")
        })
        .await
        .unwrap();
    let input = json!({"logGroupNamePrefix": "/svc/", "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let run = stack.run_on(&parent, "tagged", &input, RUN_TIMEOUT).await.unwrap();
    let children = children(&stack).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{children:?}");
    let groups: Vec<&str> = children.iter().map(|c| c.group.as_str()).collect();
    assert_eq!(groups, [tagged], "{children:?}");
    assert_eq!(stream_events(&stack, tagged, "expired").await, None);
    assert_eq!(
        stream_events(&stack, tagged, "web/mixed").await,
        Some(as_events(&kept, |_| true))
    );
    assert!(stream_events(&stack, untagged, "expired").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parent_fails_when_a_group_fails_and_goes_on_with_the_others() {
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    seed(&stack, "/jobs/a", cutoff_ms).await;
    seed(&stack, "/jobs/b", cutoff_ms).await;
    // Settings no group run accepts: every group fails validation in StartExport.
    create_bucket(&stack, BUCKET).await;
    let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.unwrap();
    let input = json!({"logGroupNamePrefix": "/jobs/", "archive": {"cutoff": cutoff, "pollSeconds": 1,
        "streamsPerBatch": 9999}});
    let run = stack.run_on(&parent, "failing", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert_eq!(run.error.as_deref(), Some("GroupsFailed"), "{run:?}");
    // Both groups had their turn, each failing on its own.
    let children = children(&stack).await;
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(
        children
            .iter()
            .all(|c| c.status == "FAILED" && c.cause.as_deref().is_some_and(|m| m.contains("streamsPerBatch"))),
        "{children:?}"
    );
    assert!(stream_events(&stack, "/jobs/a", "expired").await.is_some());

    // docs/deploy.md: the cause names the failed groups and the summary,
    // which has every failed group with its error and cause.
    let cause = run.cause.unwrap_or_default();
    assert!(
        cause.contains("2 of 2 groups failed") && cause.contains("/jobs/a (InvalidInput)"),
        "{cause}"
    );
    let summary_key = archiver::workflow::groups::ParentLayout::new("cwl-archiver").summary("failing");
    assert!(cause.contains(&summary_key), "{cause}");
    let summary = parent_summary(&stack, "failing").await;
    let mut failed: Vec<String> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["error"], json!("InvalidInput"), "{f}");
            assert!(
                f["cause"].as_str().is_some_and(|c| c.contains("streamsPerBatch")),
                "{f}"
            );
            assert!(
                f["executionArn"].as_str().is_some_and(|a| a.contains(":execution:")),
                "{f}"
            );
            f["logGroupName"].as_str().unwrap().to_string()
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["/jobs/a", "/jobs/b"]);
    assert_eq!((&summary["succeeded"], &summary["failed"]), (&json!(0), &json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_parent_runs_started_at_once_never_overlap() {
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    seed(&stack, "/batch/a", cutoff_ms).await;
    seed(&stack, "/batch/b", cutoff_ms).await;
    create_bucket(&stack, BUCKET).await;
    let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.unwrap();
    let input = json!({"logGroupNamePrefix": "/batch/", "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let (first, second) = tokio::join!(
        stack.start_on(&parent, "at-once-1", &input),
        stack.start_on(&parent, "at-once-2", &input)
    );
    let runs = [first.unwrap(), second.unwrap()];
    let mut ended = Vec::new();
    for arn in &runs {
        ended.push(stack.wait_for(arn, RUN_TIMEOUT).await.unwrap());
    }
    let busy: Vec<usize> = (0..2)
        .filter(|&i| ended[i].output.as_ref().is_some_and(|o| o["status"] == "PARENT_BUSY"))
        .collect();
    assert_eq!(busy.len(), 1, "exactly one run ends PARENT_BUSY: {ended:?}");
    let (busy, worked) = (busy[0], 1 - busy[0]);
    assert_eq!(ended[busy].status, "SUCCEEDED", "{ended:?}");
    assert_eq!(ended[worked].status, "SUCCEEDED", "{ended:?}");
    assert_eq!(
        ended[worked].output.as_ref().unwrap()["succeeded"],
        json!(2),
        "{ended:?}"
    );
    // The busy run started no group: its history has no Map state, and
    // every archive execution belongs to the other.
    let history = stack.history(&runs[busy]).await.unwrap();
    assert!(
        !history.iter().any(|e| e.map_run_started_event_details().is_some()),
        "the busy run started a Map"
    );
    assert_eq!(
        ended[busy].output.as_ref().unwrap()["heldBy"]["runId"],
        json!(format!("at-once-{}", worked + 1))
    );
    // It asked Step Functions whether the holder still ran, and it did.
    let entered: Vec<&str> = history
        .iter()
        .filter_map(|e| e.state_entered_event_details().map(|d| d.name()))
        .collect();
    assert!(
        entered.ends_with(&["HolderRunning", "HolderAlive?", "ParentBusy"]),
        "{entered:?}"
    );
    assert_eq!(children(&stack).await.len(), 2);

    // A run that ended without letting the lease go (stopped, say) leaves it
    // behind: the next run asks Step Functions, finds it ended, takes over.
    let layout = archiver::workflow::groups::ParentLayout::new("cwl-archiver");
    let now = chrono::Utc::now().timestamp_millis();
    let stale = json!({
        "runId": format!("at-once-{}", worked + 1),
        "executionArn": runs[worked],
        "mode": "all-groups", "cutoff": "",
        "acquiredAt": archiver::domain::lease::rfc3339(now - DAY),
        "expiresAt": archiver::domain::lease::rfc3339(now + 300 * DAY),
        "released": false
    });
    put_json(&stack, &layout.lease(), &stale).await;
    let again = stack
        .run_on(&parent, "after-a-stop", &input, RUN_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(again.status, "SUCCEEDED", "{again:?}");
    assert_eq!(again.output.as_ref().unwrap()["groups"], json!(2), "{again:?}");
}

async fn put_json(stack: &Stack, key: &str, value: &serde_json::Value) {
    stack
        .emulator
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(value.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parent_leaves_out_the_stacks_own_groups_and_a_busy_group_is_no_failure() {
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    // The stack's own function and state machine groups, under the prefix.
    let own = cwl_archiver_e2e::stack::own_log_groups();
    assert_eq!(own.len(), 6, "{own:?}");
    for group in own.iter().filter(|g| g.starts_with("/aws/lambda/")) {
        seed(&stack, group, cutoff_ms).await;
    }
    seed(&stack, "/aws/lambda/orders", cutoff_ms).await;
    seed(&stack, "/aws/lambda/held", cutoff_ms).await;
    create_bucket(&stack, BUCKET).await;
    // Another run holds /aws/lambda/held.
    let now = chrono::Utc::now().timestamp_millis();
    let lease = json!({
        "runId": "someone-else", "mode": "rebuild", "cutoff": cutoff,
        "acquiredAt": archiver::domain::lease::rfc3339(now),
        "expiresAt": archiver::domain::lease::rfc3339(now + HOUR),
        "released": false
    });
    put_json(&stack, "cwl-archiver/aws/lambda/held/@lease.json", &lease).await;
    let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.unwrap();
    let input = json!({"logGroupNamePrefix": "/aws/lambda/", "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let run = stack.run_on(&parent, "own", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let output = run.output.unwrap();
    assert_eq!(
        (
            &output["groups"],
            &output["succeeded"],
            &output["busy"],
            &output["failed"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(0)),
        "{output}"
    );
    let mut groups: Vec<String> = children(&stack).await.into_iter().map(|c| c.group).collect();
    groups.sort();
    assert_eq!(groups, ["/aws/lambda/held", "/aws/lambda/orders"]);
    assert_eq!(
        parent_summary(&stack, "own").await["busyGroups"],
        json!(["/aws/lambda/held"])
    );
    for group in own.iter().filter(|g| g.starts_with("/aws/lambda/")) {
        assert!(stream_events(&stack, group, "expired").await.is_some(), "{group}");
    }
    assert!(stream_events(&stack, "/aws/lambda/held", "expired").await.is_some());
    assert_eq!(stream_events(&stack, "/aws/lambda/orders", "expired").await, None);
}

/// The template resolved for an IAM check: the created bucket under SSE-KMS
/// (the most permissions), log groups limited to `/app/*`.
fn iam_context(template: &Template) -> Context {
    let ctx = LOCAL_FUNCTIONS
        .iter()
        .fold(template.context(LOCAL_STACK_NAME), |ctx, (logical, name)| {
            ctx.resource(
                &format!("{}.Arn", logical.replace("Function", "Logs")),
                &format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/{LOCAL_STACK_NAME}-{name}:*"),
            )
        });
    cwl_archiver_e2e::stack::with_log_group_names(template, ctx)
        .parameter("Encryption", "SSE-KMS")
        .parameter("LogGroupNamePattern", "/app/*")
        .resource("ArchiveBucket", BUCKET)
        .resource("ArchiveBucket.Arn", &format!("arn:aws:s3:::{BUCKET}"))
        .resource("ArchiveKey.Arn", KEY_ARN)
}

/// Whether the statements allow a permission: an Allow covers it and no
/// Deny does. The permission's own condition keys join `keys`.
fn allowed(statements: &[Statement], permission: &Permission, keys: &HashMap<String, String>) -> bool {
    let mut keys = keys.clone();
    keys.extend(permission.context.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let keys = &keys;
    let covers = |allow: bool| {
        statements
            .iter()
            .filter(|s| s.allow == allow)
            .any(|s| s.covers(permission.action, &permission.resource, keys))
    };
    covers(true) && !covers(false)
}

/// Which role, bucket or key policy statements decide a permission.
struct Policies {
    roles: BTreeMap<String, Vec<Statement>>,
    bucket: Vec<Statement>,
    key: Vec<Statement>,
}

impl Policies {
    fn of(template: &Template) -> Policies {
        Self::with(template, iam_context(template))
    }

    fn with(template: &Template, ctx: Context) -> Policies {
        let roles = LOCAL_FUNCTIONS
            .iter()
            .map(|(logical, name)| {
                let role = logical.replace("Function", "Role");
                (name.to_string(), template.role_statements(&role, &ctx).unwrap())
            })
            .collect();
        let logs_only = |statements: Vec<Statement>| -> Vec<Statement> {
            let service = format!("logs.{REGION}.amazonaws.com");
            // The TLS-only Deny applies to every principal; SDK calls use TLS.
            statements
                .into_iter()
                .filter(|s| s.services.contains(&service) || !s.allow)
                .collect()
        };
        Policies {
            roles,
            bucket: logs_only(template.bucket_policy_statements("ArchiveBucketPolicy", &ctx).unwrap()),
            key: logs_only(template.key_policy_statements("ArchiveKey", &ctx).unwrap()),
        }
    }

    fn allows(&self, function: &str, permission: &Permission) -> bool {
        match &permission.principal {
            Principal::Role => {
                let keys = HashMap::from([("aws:SecureTransport".to_string(), "true".to_string())]);
                allowed(&self.roles[function], permission, &keys)
            }
            Principal::LogsService { group } => {
                let keys = HashMap::from([
                    ("aws:SourceAccount".to_string(), ACCOUNT_ID.to_string()),
                    (
                        "aws:SourceArn".to_string(),
                        format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}:*"),
                    ),
                    ("aws:SecureTransport".to_string(), "true".to_string()),
                ]);
                let statements = if permission.action.starts_with("kms:") {
                    &self.key
                } else {
                    &self.bucket
                };
                allowed(statements, permission, &keys)
            }
        }
    }
}

/// Permissions a role holds for paths the scenario does not reach, each
/// with the test that does reach it: (function, action, where).
const UNREACHED: &[(&str, &str, &str)] = &[
    (
        "check-export",
        "logs:GetLogEvents",
        "reads a stream when the export wrote no object at all (workflow_safety: \
         an_export_without_objects_for_events_it_must_hold_stops_the_run)",
    ),
    (
        "check-export",
        "logs:DeleteRetentionPolicy",
        "the failure path's retention guard lifting the retention of a group nothing is exported of yet \
         (workflow_retention: the_guard_protects_unexported_events_when_the_export_fails_and_relaxes_after); \
         start-export's guard does it first in the scenario",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_call_is_allowed_by_the_role_of_the_function_that_makes_it() {
    let template = Template::load().unwrap();
    let policies = Policies::of(&template);

    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let group = "/app/orders-api";
    seed(&stack, group, cutoff_ms).await;
    create_bucket(&stack, BUCKET).await;
    let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1});
    let run = stack.run("iam", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    // A second run finds the checkpoint and nothing new.
    let again = stack.run("iam-again", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(again.status, "SUCCEEDED", "{again:?}");
    // A data-protected group, archived although its export is masked: its
    // kept events are read with unmask (logs:Unmask).
    let protected = "/app/payments";
    seed(&stack, protected, cutoff_ms).await;
    let mask_emails = json!({
        "Name": "mask-emails",
        "Version": "2021-06-01",
        "Statement": [
            {"Sid": "audit", "DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
             "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"Sid": "mask", "DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/EmailAddress"],
             "Operation": {"Deidentify": {"MaskConfig": {}}}}
        ]
    });
    stack
        .emulator
        .logs()
        .put_data_protection_policy()
        .log_group_identifier(protected)
        .policy_document(mask_emails.to_string())
        .send()
        .await
        .unwrap();
    let masked = json!({"logGroupName": protected, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1,
        "allowMaskedArchive": true});
    let run = stack.run("iam-masked", &masked, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    // A group whose retention (1 day) would expire events no export holds:
    // the guard lifts it before the export (start-export) and brings it
    // down to what still protects them after (check-export); the second
    // run finds it lowered again and raises it (start-export).
    let short = "/app/audit";
    seed(&stack, short, cutoff_ms).await;
    let logs = stack.emulator.logs();
    for name in ["iam-retention", "iam-retention-again"] {
        logs.put_retention_policy()
            .log_group_name(short)
            .retention_in_days(1)
            .send()
            .await
            .unwrap();
        let guarded = json!({"logGroupName": short, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1});
        let run = stack.run(name, &guarded, RUN_TIMEOUT).await.unwrap();
        assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    }

    let calls: BTreeSet<Call> = stack.interposer.recorded().into_iter().collect();
    let functions: BTreeSet<&str> = calls.iter().map(|c| c.function.as_str()).collect();
    assert_eq!(functions.len(), 4, "every function ran: {functions:?}");

    let mut denied = Vec::new();
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    let needed = calls
        .iter()
        .flat_map(|call| {
            required(call, true)
                .into_iter()
                .map(|p| (call.function.clone(), call.method, p))
        })
        .chain(functions.iter().flat_map(|f| {
            required_by_runtime(LOCAL_STACK_NAME, f)
                .into_iter()
                .map(|p| (f.to_string(), "(runtime logs)", p))
        }));
    for (function, method, permission) in needed {
        if !policies.allows(&function, &permission) {
            denied.push(format!("{function} {method} -> {permission:?}"));
        }
        if permission.principal == Principal::Role {
            used.insert((function, permission.action.to_string()));
        }
    }
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));

    // Nothing decorative: every action a function role grants is used (a
    // granted `kms:GenerateDataKey*` is used by a kms:GenerateDataKey).
    for (function, statements) in &policies.roles {
        for action in statements.iter().filter(|s| s.allow).flat_map(|s| &s.actions) {
            let granted = action.to_ascii_lowercase();
            let reached = used
                .iter()
                .any(|(f, a)| f == function && glob(&granted, &a.to_ascii_lowercase()));
            let explained = UNREACHED.iter().any(|(f, a, _)| f == function && a == action);
            assert!(
                reached || explained,
                "{function}'s role grants {action}, which it never needed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_account_wide_listing_is_allowed_by_the_check_export_role() {
    // With a tag filter: list-groups reads every group's tags.
    let template = Template::load().unwrap();
    let tagged = |ctx: Context| {
        ctx.parameter("LogGroupTagKey", "archive")
            .parameter("LogGroupTagValue", "yes")
    };
    let policies = Policies::with(&template, tagged(iam_context(&template)));
    let stack = Stack::start(1.0).await.unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    seed(&stack, "/app/tagged", cutoff_ms).await;
    seed(&stack, "/app/untagged", cutoff_ms).await;
    stack
        .emulator
        .logs()
        .tag_resource()
        .resource_arn(group_arn("/app/tagged"))
        .tags("archive", "yes")
        .send()
        .await
        .unwrap();
    create_bucket(&stack, BUCKET).await;
    let parent = stack.deploy_parent(BUCKET, tagged).await.unwrap();
    let input = json!({"logGroupNamePrefix": "/app/", "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let run = stack.run_on(&parent, "iam-all", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    assert_eq!(run.output.unwrap()["succeeded"], json!(1));

    let calls: BTreeSet<Call> = stack.interposer.recorded().into_iter().collect();
    let listing: BTreeSet<&str> = calls
        .iter()
        .filter(|c| c.function == "check-export")
        .map(|c| c.method)
        .collect();
    assert!(
        listing.contains("list_groups_page") && listing.contains("group_tags"),
        "{listing:?}"
    );
    let denied: Vec<String> = calls
        .iter()
        .flat_map(|call| required(call, true).into_iter().map(move |p| (call, p)))
        .filter(|(call, p)| !policies.allows(&call.function, p))
        .map(|(call, p)| format!("{} {} -> {p:?}", call.function, call.method))
        .collect();
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
    // Without a tag filter check-export reads no tags.
    let plain = Policies::of(&template);
    let tags = Permission::role("logs:ListTagsForResource", group_arn("/app/tagged"));
    assert!(!plain.allows("check-export", &tags));
    assert!(policies.allows("check-export", &tags));
}

/// Every permission the Task states and Map states of a definition need.
/// `object` stands for what a Map reads and writes in S3 (the manifest of a
/// group run, the group list and results of an account-wide run).
fn definition_needs(state: &serde_json::Value, own_arn: &str, object: &str, out: &mut Vec<Permission>) {
    match state {
        serde_json::Value::Object(map) => {
            if map.get("Type").and_then(|t| t.as_str()) == Some("Task") {
                let resource = map["Resource"].as_str().unwrap();
                out.extend(integration_required(
                    resource,
                    &map["Parameters"],
                    own_arn,
                    object,
                    true,
                ));
            }
            for io in ["ItemReader", "ResultWriter"] {
                if let Some(reader) = map.get(io) {
                    let resource = reader["Resource"].as_str().unwrap();
                    out.extend(integration_required(
                        resource,
                        &reader["Parameters"],
                        own_arn,
                        object,
                        true,
                    ));
                }
            }
            if map.get("Mode").and_then(|m| m.as_str()) == Some("DISTRIBUTED") {
                out.extend(distributed_map_required(own_arn));
            }
            map.values().for_each(|v| definition_needs(v, own_arn, object, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| definition_needs(v, own_arn, object, out)),
        _ => {}
    }
}

#[test]
fn every_state_machine_integration_is_allowed_by_its_role() {
    let template = Template::load().unwrap();
    let machine_arn =
        |name: &str| format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{LOCAL_STACK_NAME}-{name}");
    // With a tag filter, so that its ListTagsForResource is checked too.
    let ctx = LOCAL_FUNCTIONS
        .iter()
        .fold(iam_context(&template), |ctx, (logical, name)| {
            ctx.resource(&format!("{logical}.Arn"), &cwl_archiver_e2e::stack::function_arn(name))
        })
        .parameter("LogGroupTagKey", "archive")
        .parameter("LogGroupTagValue", "yes")
        .resource("ArchiveStateMachine", &machine_arn("archive"))
        .resource("ParentStateMachine", &machine_arn("all-groups"));
    let manifest = format!("arn:aws:s3:::{BUCKET}/cwl-archiver/app/x/@runs/r/manifest.json");
    let groups = format!("arn:aws:s3:::{BUCKET}/cwl-archiver/@parent/runs/r/groups.json");
    for (machine, role, name, object) in [
        ("ArchiveStateMachine", "ArchiveStateMachineRole", "archive", &manifest),
        ("ParentStateMachine", "ParentStateMachineRole", "all-groups", &groups),
    ] {
        let definition: serde_json::Value =
            serde_json::from_str(&template.state_machine_definition(machine, &ctx).unwrap()).unwrap();
        let statements = template.role_statements(role, &ctx).unwrap();
        let mut needed = Vec::new();
        definition_needs(&definition, &machine_arn(name), object, &mut needed);
        let keys = HashMap::new();
        let denied: Vec<_> = needed.iter().filter(|p| !allowed(&statements, p, &keys)).collect();
        assert!(denied.is_empty(), "{role} denies {denied:#?}");
        // Every other grant is needed by a state, except log delivery and
        // X-Ray, which the Logging and Tracing properties use.
        for statement in statements.iter().filter(|s| s.allow) {
            if matches!(statement.sid.as_deref(), Some("LogDelivery" | "Tracing")) {
                continue;
            }
            for action in &statement.actions {
                assert!(
                    needed.iter().any(|p| p.action == action),
                    "{role} grants {action}, which no state of {machine} needs"
                );
            }
        }
    }
}

#[test]
fn an_existing_bucket_replaces_the_created_one_in_every_role() {
    let template = Template::load().unwrap();
    let ctx = iam_context(&template).parameter("ExistingBucketName", "their-bucket");
    let checkpoint = |bucket: &str| Call {
        function: "start-export".into(),
        method: "get",
        target: Target::Object(bucket.into(), "cwl-archiver/app/x/@checkpoint.json".into()),
    };
    let statements = template.role_statements("StartExportRole", &ctx).unwrap();
    let keys = HashMap::new();
    // No created bucket, so no key either: S3 permissions only.
    let ok = |call: &Call| required(call, false).iter().all(|p| allowed(&statements, p, &keys));
    assert!(ok(&checkpoint("their-bucket")));
    assert!(!ok(&checkpoint(BUCKET)));
    // Only the source groups' keys, through CloudWatch Logs.
    assert!(
        statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("kms:")))
            .all(|s| s
                .condition
                .as_ref()
                .is_some_and(|c| c.to_string().contains("kms:ViaService"))),
        "{statements:#?}"
    );
}

#[test]
fn a_missing_permission_is_caught() {
    let template = Template::load().unwrap();
    let policies = Policies::of(&template);
    let call = |function: &str, method: &'static str, target| Call {
        function: function.into(),
        method,
        target,
    };
    // scan-stream may not delete streams; rebuild-stream may.
    let delete = |f| call(f, "delete_stream", Target::Stream("/app/x".into(), "s".into()));
    let denied = |c: &Call| required(c, true).iter().any(|p| !policies.allows(&c.function, p));
    assert!(denied(&delete("scan-stream")));
    assert!(!denied(&delete("rebuild-stream")));
    // Outside LogGroupNamePattern (/app/*) nothing is allowed.
    let outside = call(
        "rebuild-stream",
        "delete_stream",
        Target::Stream("/other/x".into(), "s".into()),
    );
    assert!(denied(&outside));
    // Outside the archive prefix neither.
    let stray = call(
        "check-export",
        "put",
        Target::Object(BUCKET.into(), "elsewhere/x".into()),
    );
    assert!(denied(&stray));
}

// ------------------------------------------------------------------ the rules
// that failed in a first real deploy (issue 14), checked on the template.

/// A role's statements, resolved with [`iam_context`].
fn role(template: &Template, logical: &str) -> Vec<Statement> {
    template.role_statements(logical, &iam_context(template)).unwrap()
}

#[test]
fn the_export_caller_can_write_the_export_prefix() {
    use archiver::domain::layout::GroupLayout;
    let template = Template::load().unwrap();
    let statements = role(&template, "StartExportRole");
    let keys = HashMap::new();
    // Where the product exports to, as CreateExportTask's destinationPrefix.
    let layout = GroupLayout::new("cwl-archiver", "/app/orders-api");
    let prefix = layout.export_prefix(1_767_225_600_000);
    let call = Call {
        function: "start-export".into(),
        method: "create_export_task",
        target: Target::Export {
            group: "/app/orders-api".into(),
            bucket: BUCKET.into(),
            prefix: prefix.clone(),
        },
    };
    let needed: Vec<Permission> = required(&call, true)
        .into_iter()
        .filter(|p| p.principal == Principal::Role)
        .collect();
    let write = format!("arn:aws:s3:::{BUCKET}/{prefix}/aws-logs-write-test");
    assert!(needed.iter().any(|p| p.action == "s3:PutObject" && p.resource == write));
    assert!(
        needed
            .iter()
            .any(|p| p.action == "kms:GenerateDataKey" && p.resource == KEY_ARN)
    );
    let denied: Vec<_> = needed.iter().filter(|p| !allowed(&statements, p, &keys)).collect();
    assert!(denied.is_empty(), "start-export may not {denied:#?}");
    // Only the exports: the checkpoint, leases and staging stay out of its reach.
    for key in [
        layout.checkpoint(),
        format!("{}x:000001.jsonl.gz", layout.staging_root()),
    ] {
        let stray = Permission::role("s3:PutObject", format!("arn:aws:s3:::{BUCKET}/{key}"));
        assert!(!allowed(&statements, &stray, &keys), "start-export may write {key}");
    }
}

/// What the CloudFormation handlers of AWS::KMS::Key call on the key
/// (create, read, update, delete; kms:CreateKey and kms:ListKeys act on no key,
/// so no key policy grants them), from the resource type's schema.
const KEY_HANDLER_ACTIONS: &[&str] = &[
    "kms:EnableKeyRotation",
    "kms:DisableKey",
    "kms:TagResource",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListResourceTags",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:PutKeyPolicy",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
    "kms:ScheduleKeyDeletion",
];

/// What AWS::KMS::Alias's handlers call; KMS authorizes them on the alias
/// and on the key, so the key policy must allow them.
const ALIAS_HANDLER_ACTIONS: &[&str] = &["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"];

#[test]
fn every_alias_has_its_kms_actions() {
    let template = Template::load().unwrap();
    let ctx = iam_context(&template);
    let aliases = template.resources_of_type("AWS::KMS::Alias");
    assert!(!aliases.is_empty());
    let root = format!("arn:aws:iam::{ACCOUNT_ID}:root");
    for alias in aliases {
        let target = &template.properties(&alias).unwrap()["TargetKeyId"];
        let key = target["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{alias}: TargetKeyId is not a Ref to a key: {target}"));
        let statements = template.key_policy_statements(key, &ctx).unwrap();
        let account: Vec<&Statement> = statements
            .iter()
            .filter(|s| s.allow && s.principals.contains(&root))
            .collect();
        let missing: Vec<&&str> = KEY_HANDLER_ACTIONS
            .iter()
            .chain(ALIAS_HANDLER_ACTIONS)
            .filter(|action| !account.iter().any(|s| s.covers(action, "*", &HashMap::new())))
            .collect();
        assert!(
            missing.is_empty(),
            "{key}'s policy does not let the account {missing:?}: {alias} (or the key) could be created but not deleted, or neither"
        );
    }
}

#[test]
fn kms_encrypted_source_groups_are_used_through_cloudwatch_logs_only() {
    let template = Template::load().unwrap();
    let keys = HashMap::new();
    for (logical, actions) in [
        ("StartExportRole", &["kms:Decrypt"][..]),
        ("CheckExportRole", &["kms:Decrypt"][..]),
        ("ScanStreamRole", &["kms:Decrypt"][..]),
        (
            "RebuildStreamRole",
            &["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"][..],
        ),
    ] {
        let statements = role(&template, logical);
        for action in actions {
            let inside = Permission::via_logs(action, "/app/orders-api");
            assert!(
                allowed(&statements, &inside, &keys),
                "{logical} cannot {action} a group key"
            );
            // Not for a group outside LogGroupNamePattern, nor directly.
            let outside = Permission::via_logs(action, "/other/x");
            assert!(
                !allowed(&statements, &outside, &keys),
                "{logical} {action} outside the pattern"
            );
            let direct = Permission::role(action, SOURCE_KEY_ARN);
            assert!(
                !allowed(&statements, &direct, &keys),
                "{logical} {action} not through logs"
            );
        }
    }
}

#[test]
fn the_lifecycle_moves_only_exports_and_removes_expired_delete_markers() {
    use archiver::domain::layout::GroupLayout;
    let template = Template::load().unwrap();
    let rules = |ctx: &Context| -> Vec<serde_json::Value> {
        let config = template
            .resolved_property("ArchiveBucket", "LifecycleConfiguration", ctx)
            .unwrap()
            .unwrap();
        config["Rules"].as_array().unwrap().clone()
    };
    let transitions = |rules: &[serde_json::Value]| -> Vec<String> {
        rules
            .iter()
            .filter(|r| r.get("Transitions").is_some() || r.get("Transition").is_some())
            .map(|r| r["Prefix"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let ctx = iam_context(&template);
    let default_rules = rules(&ctx);
    assert!(transitions(&default_rules).is_empty(), "{default_rules:#?}");
    assert!(
        default_rules
            .iter()
            .any(|r| r["Status"] == "Enabled" && r["ExpiredObjectDeleteMarker"] == json!(true)),
        "expired delete markers are never removed: {default_rules:#?}"
    );

    let ctx = ctx
        .parameter("GlacierTransitionDays", "90")
        .parameter("GlacierStorageClass", "DEEP_ARCHIVE")
        .parameter("GlacierLogGroups", "/app/orders-api,app/payments");
    let prefixes = transitions(&rules(&ctx));
    let orders = GroupLayout::new("cwl-archiver", "/app/orders-api");
    let payments = GroupLayout::new("cwl-archiver", "app/payments");
    assert_eq!(prefixes, [orders.exports_root(), payments.exports_root()]);
    // A transition rule with a blank or a catch-all prefix would move
    // everything: every prefix ends in /@exports/.
    assert!(
        prefixes
            .iter()
            .all(|p| p.ends_with("/@exports/") && p.len() > "/@exports/".len())
    );
    let moved = |key: &str| prefixes.iter().any(|p| key.starts_with(p.as_str()));
    // The exports move ...
    assert!(moved(&format!("{}/task-1/web-1/000000.gz", orders.export_prefix(0))));
    // ... what the archiver reads back never does.
    for layout in [&orders, &payments] {
        let root = layout.checkpoint().trim_end_matches("@checkpoint.json").to_string();
        for key in [
            layout.checkpoint(),
            format!("{root}@lease.json"),
            format!("{}web-1:000001.jsonl.gz", layout.staging_root()),
            format!("{}run-1/web-1:rebuilding", layout.staging_root()),
            layout.manifest("run-1"),
            layout.report("run-1"),
        ] {
            assert!(!moved(&key), "{key} would leave S3 Standard");
        }
    }
}

#[test]
fn the_functions_never_touch_the_stacks_own_log_groups() {
    let template = Template::load().unwrap();
    // No default pattern, and none starting with a wildcard.
    let pattern = template.parameter("LogGroupNamePattern").unwrap();
    assert!(pattern.get("Default").is_none(), "{pattern}");
    // Nor a default selection for the schedule: /aws/lambda/ would select
    // the stack's own function groups, and every scheduled run would fail.
    let prefix = template.parameter("LogGroupNamePrefix").unwrap();
    assert!(prefix.get("Default").is_none(), "{prefix}");
    let allowed_pattern = pattern["AllowedPattern"].as_str().unwrap();
    let first_class = &allowed_pattern[..=allowed_pattern.find(']').unwrap()];
    assert!(
        !first_class.contains('*'),
        "a pattern may start with *: {allowed_pattern}"
    );

    // Even with a pattern that covers them, every group the stack creates is
    // out of reach of the destructive actions.
    let ctx = iam_context(&template).parameter("LogGroupNamePattern", "/aws/*");
    let own: Vec<String> = template
        .resources_of_type("AWS::Logs::LogGroup")
        .iter()
        .map(|g| {
            let name = template.resolved_property(g, "LogGroupName", &ctx).unwrap().unwrap();
            name.as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(own.len(), 6, "{own:?}");
    let destructive = [
        ("logs:DeleteLogStream", true),
        ("logs:CreateExportTask", false),
        ("logs:PutRetentionPolicy", false),
        ("logs:DeleteRetentionPolicy", false),
    ];
    let keys = HashMap::new();
    let mut policies: Vec<(String, Vec<Statement>)> = LOCAL_FUNCTIONS
        .iter()
        .map(|(logical, _)| {
            let role = logical.replace("Function", "Role");
            let statements = template.role_statements(&role, &ctx).unwrap();
            (role, statements)
        })
        .collect();
    policies.push((
        "OperatorPolicy".into(),
        template.managed_policy_statements("OperatorPolicy", &ctx).unwrap(),
    ));
    for (name, statements) in &policies {
        for group in &own {
            for (action, on_streams) in destructive {
                let arn = if on_streams {
                    group_arn(group)
                } else {
                    format!("{}:*", group_arn(group))
                };
                for resource in [group_arn(group), arn] {
                    let p = Permission::role(action, resource);
                    assert!(!allowed(statements, &p, &keys), "{name} may {action} on {group}");
                }
            }
        }
        // The pattern's other groups are still reachable where granted.
        if name == "RebuildStreamRole" {
            let other = Permission::role("logs:DeleteLogStream", group_arn("/aws/lambda/orders-api"));
            assert!(allowed(statements, &other, &keys));
        }
    }
}

fn operator_deployment(kms: bool) -> Deployment {
    Deployment {
        stack: LOCAL_STACK_NAME.into(),
        bucket: BUCKET.into(),
        prefix: "cwl-archiver".into(),
        group: "/app/orders-api".into(),
        kms,
    }
}

#[test]
fn the_operator_can_run_every_command_and_nothing_more() {
    let template = Template::load().unwrap();
    let ctx = iam_context(&template);
    let statements = template.managed_policy_statements("OperatorPolicy", &ctx).unwrap();
    let keys = HashMap::new();
    let needed = operator_required(&operator_deployment(true));
    let denied: Vec<_> = needed.iter().filter(|(_, p)| !allowed(&statements, p, &keys)).collect();
    assert!(denied.is_empty(), "the operator policy denies {denied:#?}");
    for action in statements.iter().filter(|s| s.allow).flat_map(|s| &s.actions) {
        let granted = action.to_ascii_lowercase();
        assert!(
            needed
                .iter()
                .any(|(_, p)| glob(&granted, &p.action.to_ascii_lowercase())),
            "the operator policy grants {action}, which no command needs"
        );
    }
    // Deleting and exporting log data, and writing the archive, are the state
    // machines' work, never the operator's.
    let group = group_arn("/app/orders-api");
    for (action, resource) in [
        ("logs:DeleteLogStream", group.clone()),
        ("logs:CreateExportTask", group.clone()),
        ("logs:DeleteLogGroup", group),
        (
            "s3:PutObject",
            format!("arn:aws:s3:::{BUCKET}/cwl-archiver/app/orders-api/@checkpoint.json"),
        ),
        (
            "s3:DeleteObject",
            format!("arn:aws:s3:::{BUCKET}/cwl-archiver/app/orders-api/@checkpoint.json"),
        ),
        (
            "states:StartExecution",
            format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:other"),
        ),
    ] {
        assert!(
            !allowed(&statements, &Permission::role(action, resource.clone()), &keys),
            "the operator may {action} {resource}"
        );
    }
}

/// `docs/operator-policy.json` with its placeholders filled from `ctx`.
fn published_operator_policy(ctx: &Context) -> serde_json::Value {
    let path = cwl_archiver_e2e::stack::workspace_root().join("docs/operator-policy.json");
    let text = std::fs::read_to_string(path).unwrap();
    let filled = [
        ("${Region}", REGION.to_string()),
        ("${AccountId}", ACCOUNT_ID.to_string()),
        ("${StackName}", ctx.stack_name.clone()),
        ("${ArchiveBucketName}", ctx.resources["ArchiveBucket"].clone()),
        ("${ArchivePrefix}", ctx.parameters["ArchivePrefix"].clone()),
        ("${LogGroupNamePattern}", ctx.parameters["LogGroupNamePattern"].clone()),
        ("${ArchiveKeyArn}", ctx.resources["ArchiveKey.Arn"].clone()),
    ]
    .iter()
    .fold(text, |text, (placeholder, value)| text.replace(placeholder, value));
    assert!(
        !filled.contains("${"),
        "an unknown placeholder in docs/operator-policy.json"
    );
    serde_json::from_str(&filled).unwrap()
}

#[test]
fn the_published_operator_policy_is_the_templates() {
    let template = Template::load().unwrap();
    let document = |ctx: &Context| -> serde_json::Value {
        template
            .resolved_property("OperatorPolicy", "PolicyDocument", ctx)
            .unwrap()
            .unwrap()
    };
    let kms = iam_context(&template);
    assert_eq!(published_operator_policy(&kms), document(&kms));
    // With SSE-S3 the template drops the archive key's statement, and that
    // is the only difference (docs/deploy.md says to drop it).
    let s3 = kms.clone().parameter("Encryption", "SSE-S3");
    let mut published = published_operator_policy(&s3);
    published["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Sid"] != "ArchiveKey");
    assert_eq!(published, document(&s3));
}

/// The metric names the code emits: the fixed ones of `run_metrics` and
/// `Streams<Action>` for every stream action the workflow writes.
fn emitted_metrics() -> BTreeSet<String> {
    let root = cwl_archiver_e2e::stack::workspace_root().join("crates/archiver/src/workflow");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
    let quoted_after = |text: &str, marker: &str| -> Vec<String> {
        text.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &text[at + marker.len()..];
                let start = rest.find('"')? + 1;
                let end = start + rest[start..].find('"')?;
                Some(rest[start..end].to_string())
            })
            .collect()
    };
    let metrics = read("metrics.rs");
    let code = &metrics[..metrics.find("#[cfg(test)]").unwrap_or(metrics.len())];
    let mut names: BTreeSet<String> = quoted_after(code, ".add(").into_iter().collect();
    names.retain(|n| !n.contains('{'));
    let actions: BTreeSet<String> = archiver::workflow::STREAM_ACTIONS
        .iter()
        .map(|a| a.to_string())
        .collect();
    let camel = |a: &str| -> String {
        a.split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    };
    names.extend(actions.iter().map(|a| format!("Streams{}", camel(a))));
    names
}

#[test]
fn the_dashboard_shows_only_metrics_the_code_emits() {
    let template = Template::load().unwrap();
    let ctx = iam_context(&template)
        .resource(
            "ArchiveStateMachine",
            &format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:cwl-archiver-archive"),
        )
        .resource(
            "ParentStateMachine",
            &format!("arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:cwl-archiver-all-groups"),
        );
    let body = template
        .resolved_property("Dashboard", "DashboardBody", &ctx)
        .unwrap()
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(body.as_str().unwrap()).expect("the dashboard body is JSON");
    let emitted = emitted_metrics();
    assert!(
        emitted.contains("BytesExported") && emitted.contains("StreamsFailed"),
        "{emitted:?}"
    );

    let mut shown = BTreeSet::new();
    let mut expressions = Vec::new();
    for widget in body["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().into_iter().flatten() {
            let metric = metric.as_array().unwrap();
            match metric.first() {
                Some(serde_json::Value::String(namespace)) => {
                    let name = metric[1].as_str().unwrap();
                    match namespace.as_str() {
                        "CwlArchiver" => shown.insert(name.to_string()),
                        "AWS/States" => {
                            assert_eq!(name, "ExecutionsFailed");
                            true
                        }
                        other => panic!("a metric of {other}"),
                    };
                }
                Some(serde_json::Value::Object(options)) => {
                    let expression = options["expression"].as_str().unwrap().to_string();
                    if let Some(search) = expression.strip_prefix("SEARCH(") {
                        assert!(search.starts_with("'{CwlArchiver,LogGroup} "), "{expression}");
                        let name = search.split("MetricName=\"").nth(1).unwrap().split('"').next().unwrap();
                        shown.insert(name.to_string());
                    }
                    expressions.push(expression);
                }
                other => panic!("an unexpected metric row {other:?}"),
            }
        }
    }
    let unknown: Vec<_> = shown.difference(&emitted).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard shows metrics nothing emits: {unknown:?}"
    );
    for wanted in [
        "BytesExported",
        "StreamsDeleted",
        "StreamsRebuilt",
        "EventsReplayed",
        "BytesReingested",
        "StreamsFailed",
    ] {
        assert!(shown.contains(wanted), "the dashboard lacks {wanted}");
    }
    assert!(
        expressions.iter().any(|e| e == "reingested / 1000000000 * 0.5"),
        "no re-ingestion cost: {expressions:?}"
    );
}

#[test]
fn make_deploy_always_passes_the_built_architecture_and_installs_only_sam() {
    let root = cwl_archiver_e2e::stack::workspace_root();
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let deploy = makefile
        .lines()
        .find(|l| l.starts_with("deploy:"))
        .expect("a deploy target");
    assert!(
        !deploy.contains("lint-tools") && !deploy.contains("CHECKOV"),
        "deploy installs lint tools: {deploy}"
    );
    // A saved samconfig.toml's overrides are kept, its Architecture replaced.
    let dir = std::env::temp_dir().join(format!("cwl-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("samconfig.toml");
    std::fs::write(
        &config,
        "version = 0.1\n[default.deploy.parameters]\nparameter_overrides = [\n  \"Architecture=arm64\",\n  \"LogGroupNamePattern=/aws/lambda/*\",\n  \"ScheduleExpression=cron(0 3 ? * SUN *)\",\n]\n",
    )
    .unwrap();
    // make deploy runs it with the SAM CLI's Python (tomlkit), which may not
    // be installed yet when the tests run alone; Python 3.11+ has tomllib.
    let sam_python = root.join(".venv-sam/bin/python");
    let python = if sam_python.exists() {
        sam_python
    } else {
        "python3".into()
    };
    let out = std::process::Command::new(python)
        .arg(root.join("infra/deploy_overrides.py"))
        .arg(&config)
        .arg("x86_64")
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        r#"'LogGroupNamePattern="/aws/lambda/*"' 'ScheduleExpression="cron(0 3 ? * SUN *)"' 'Architecture="x86_64"'"#
    );
    std::fs::remove_dir_all(&dir).ok();
}
