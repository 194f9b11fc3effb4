//! What `infra/template.yaml` deploys, run on the emulator: its state-machine
//! definitions with their substitutions, the account-wide state machine over
//! several groups, and every call the functions make checked against the
//! policies of the role of the function that makes it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use cwl_archiver_e2e::iam::{
    Call, KEY_ARN, Permission, Principal, distributed_map_required, integration_required, required, required_by_runtime,
};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::{ACCOUNT_ID, LOCAL_FUNCTIONS, LOCAL_STACK_NAME, REGION, Stack, local_context};
use cwl_archiver_e2e::template::{Context, Statement, Template, placeholders, render_substituted};
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
    let ctx = local_context(&template);
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
    // One group per DescribeLogGroups page, so the run has to follow NextToken.
    let input = json!({
        "logGroupNamePrefix": "/team-a/",
        "pageSize": 1,
        "archive": {"cutoff": cutoff, "pollSeconds": 1, "streamsPerBatch": 2}
    });
    let run = stack.run_on(&parent, "all-groups", &input, RUN_TIMEOUT).await.unwrap();
    let children = children(&stack).await;
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{children:?}");
    assert_eq!(
        run.output.as_ref().map(|o| o["groups"].clone()),
        Some(json!(2)),
        "{run:?}"
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
    // No bucket: every group fails validation in StartExport.
    let parent = stack.deploy_parent("no-such-bucket", |ctx| ctx).await.unwrap();
    let input = json!({"logGroupNamePrefix": "/jobs/", "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let run = stack.run_on(&parent, "failing", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "FAILED", "{run:?}");
    assert_eq!(run.error.as_deref(), Some("GroupsFailed"), "{run:?}");
    // Both groups had their turn, each failing on its own.
    let children = children(&stack).await;
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(
        children
            .iter()
            .all(|c| c.status == "FAILED" && c.cause.as_deref().is_some_and(|m| m.contains("no-such-bucket"))),
        "{children:?}"
    );
    assert!(stream_events(&stack, "/jobs/a", "expired").await.is_some());
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
    ctx.parameter("Encryption", "SSE-KMS")
        .parameter("LogGroupNamePattern", "/app/*")
        .resource("ArchiveBucket", BUCKET)
        .resource("ArchiveBucket.Arn", &format!("arn:aws:s3:::{BUCKET}"))
        .resource("ArchiveKey.Arn", KEY_ARN)
}

fn allowed(statements: &[Statement], permission: &Permission, keys: &HashMap<String, String>) -> bool {
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
        let ctx = iam_context(template);
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

/// Permissions a role holds for paths the scenario does not reach.
const UNREACHED: &[(&str, &str, &str)] = &[];

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

    // Nothing decorative: every action a function role grants is used.
    for (function, statements) in &policies.roles {
        for action in statements.iter().filter(|s| s.allow).flat_map(|s| &s.actions) {
            let reached = used.contains(&(function.clone(), action.clone()));
            let explained = UNREACHED.iter().any(|(f, a, _)| f == function && a == action);
            assert!(
                reached || explained,
                "{function}'s role grants {action}, which it never needed"
            );
        }
    }
}

/// Every permission the Task states and Map states of a definition need.
fn definition_needs(state: &serde_json::Value, own_arn: &str, out: &mut Vec<Permission>) {
    let object = format!("arn:aws:s3:::{BUCKET}/cwl-archiver/app/x/@runs/r/manifest.json");
    match state {
        serde_json::Value::Object(map) => {
            if map.get("Type").and_then(|t| t.as_str()) == Some("Task") {
                let resource = map["Resource"].as_str().unwrap();
                out.extend(integration_required(resource, &map["Parameters"], &object, true));
            }
            if let Some(reader) = map.get("ItemReader") {
                let resource = reader["Resource"].as_str().unwrap();
                out.extend(integration_required(resource, &reader["Parameters"], &object, true));
            }
            if map.get("Mode").and_then(|m| m.as_str()) == Some("DISTRIBUTED") {
                out.extend(distributed_map_required(own_arn));
            }
            map.values().for_each(|v| definition_needs(v, own_arn, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| definition_needs(v, own_arn, out)),
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
    for (machine, role, name) in [
        ("ArchiveStateMachine", "ArchiveStateMachineRole", "archive"),
        ("ParentStateMachine", "ParentStateMachineRole", "all-groups"),
    ] {
        let definition: serde_json::Value =
            serde_json::from_str(&template.state_machine_definition(machine, &ctx).unwrap()).unwrap();
        let statements = template.role_statements(role, &ctx).unwrap();
        let mut needed = Vec::new();
        definition_needs(&definition, &machine_arn(name), &mut needed);
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
    use cwl_archiver_e2e::iam::Target;
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
    assert!(
        statements
            .iter()
            .all(|s| !s.actions.iter().any(|a| a.starts_with("kms:")))
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
    use cwl_archiver_e2e::iam::Target;
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
