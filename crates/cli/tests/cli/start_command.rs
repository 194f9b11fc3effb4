//! `start`, `stop` and `redrive` against the local stack: the checks before
//! StartExecution, execution names that never collide, one run per group,
//! confirmation, Ctrl-C while following, and stopping a run with its lease.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::{
    Proxy, archive_bucket, assert_ok, assert_one_line_error, cli, command, get, put, run, stderr, stdout,
};
use cwl_archiver_e2e::scenario::{DAY, HOUR, create_bucket, events_between, stream_events};
use cwl_archiver_e2e::stack::Stack;
use serde_json::{Value, json};

const BUCKET: &str = "cli-archive";

async fn seed(stack: &Stack, group: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let old = events_between("old", now - 20 * DAY, now - 10 * DAY, 300);
    stack
        .emulator
        .seed_with_ingestion(group, "old", &old, now - 2 * HOUR)
        .await
        .unwrap();
    let mixed = events_between("web/mixed", now - 6 * DAY, now - 4 * HOUR, 200);
    stack
        .emulator
        .seed_with_ingestion(group, "web/mixed", &mixed, now - 2 * HOUR)
        .await
        .unwrap();
}

fn start_args<'a>(group: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "start",
        "--group",
        group,
        "--older-than",
        "3d",
        "--bucket",
        BUCKET,
        "--poll-seconds",
        "1",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_checks_before_it_starts_and_names_never_collide() {
    let stack = Stack::start(1.0).await.unwrap();
    seed(&stack, "/cli/demo").await;
    archive_bucket(&stack, BUCKET).await;

    // Pre-flight, before anything starts: exit 2, the flag and the fix.
    create_bucket(&stack, "no-policy").await;
    let o = cli(
        &stack,
        &[
            "start",
            "--group",
            "/cli/demo",
            "--older-than",
            "3d",
            "--bucket",
            "no-policy",
            "--yes",
        ],
    )
    .await;
    assert_one_line_error(
        &o,
        2,
        &[
            "--bucket",
            "has no bucket policy",
            "logs.us-east-1.amazonaws.com",
            "s3:PutObject",
        ],
    );
    stack
        .emulator
        .s3()
        .create_bucket()
        .bucket("eu-archive")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let o = cli(
        &stack,
        &[
            "start",
            "--group",
            "/cli/demo",
            "--older-than",
            "3d",
            "--bucket",
            "eu-archive",
            "--yes",
        ],
    )
    .await;
    assert_one_line_error(&o, 2, &["--bucket", "is in eu-west-1", "us-east-1"]);
    let o = cli(&stack, &start_args("/cli/nope", &["--yes"])).await;
    assert_one_line_error(&o, 2, &["--group /cli/nope", "does not exist"]);
    // Two problems: both named, one line each.
    let o = cli(
        &stack,
        &[
            "start",
            "--group",
            "/cli/nope",
            "--older-than",
            "3d",
            "--bucket",
            "no-policy",
            "--yes",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().filter(|l| l.starts_with("error: ")).count(), 2, "{err}");
    // A retention shorter than the cutoff's age.
    let now = chrono::Utc::now().timestamp_millis();
    stack
        .emulator
        .seed_with_ingestion("/cli/short", "s", &[(now - 2 * DAY, "x".to_string())], now - 2 * DAY)
        .await
        .unwrap();
    stack
        .emulator
        .logs()
        .put_retention_policy()
        .log_group_name("/cli/short")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    // Refused when asked to refuse; otherwise the run raises it (a warning).
    let o = cli(
        &stack,
        &[
            "start",
            "--group",
            "/cli/short",
            "--older-than",
            "30d",
            "--bucket",
            BUCKET,
            "--retention-conflict",
            "refuse",
            "--yes",
        ],
    )
    .await;
    assert_one_line_error(
        &o,
        2,
        &[
            "--retention-conflict",
            "keeps events 7 days",
            "raise the group's retention",
        ],
    );
    // A destructive mode without a terminal needs --yes; the input is checked first, locally.
    let o = cli(&stack, &start_args("/cli/demo", &[])).await;
    assert_one_line_error(&o, 2, &["--yes is required", "mode rebuild"]);
    let o = cli(
        &stack,
        &[
            "start",
            "--group",
            "/cli/demo",
            "--older-than",
            "6h",
            "--bucket",
            BUCKET,
        ],
    )
    .await;
    assert_one_line_error(&o, 2, &["at least 12h"]);
    assert!(
        stack
            .emulator
            .sfn()
            .list_executions()
            .state_machine_arn(&stack.state_machine_arn)
            .send()
            .await
            .unwrap()
            .executions()
            .is_empty(),
        "nothing was started"
    );

    // A plan run, the real run, and a re-run: each its own execution.
    let plan = cli(
        &stack,
        &start_args("/cli/demo", &["--mode", "plan", "--wait", "--json"]),
    )
    .await;
    assert_ok(&plan);
    let plan: Value = serde_json::from_str(&stdout(&plan)).expect("the run as JSON");
    assert_eq!(plan["status"], "SUCCEEDED");
    assert_eq!(plan["mode"], "plan");
    assert!(plan["streams"].as_array().is_some_and(|s| !s.is_empty()), "{plan}");
    let real = cli(&stack, &start_args("/cli/demo", &["--yes", "--wait"])).await;
    assert_ok(&real);
    let text = stdout(&real);
    assert!(text.contains(": SUCCEEDED"), "{text}");
    assert!(text.contains("old") && text.contains("deleted"), "{text}");
    assert_eq!(
        stream_events(&stack, "/cli/demo", "old").await,
        None,
        "the expired stream is gone"
    );
    let again = cli(&stack, &start_args("/cli/demo", &["--yes"])).await;
    assert_ok(&again);
    let names: Vec<String> = stack
        .emulator
        .sfn()
        .list_executions()
        .state_machine_arn(&stack.state_machine_arn)
        .send()
        .await
        .unwrap()
        .executions()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{names:?}");
    let pattern = regex_like(&names[0]);
    assert!(pattern, "{names:?}: cli-demo-YYYYMMDDTHHMMSSZ-hhhh");
    // Wait for the re-run to end before the stack goes.
    let arn = stdout(&again).trim().to_string();
    let watched = cli(&stack, &["watch", &arn, "--interval", "1"]).await;
    assert_ok(&watched);
}

/// `cli-demo-20261124T103712Z-beef`.
fn regex_like(name: &str) -> bool {
    let parts: Vec<&str> = name.rsplitn(3, '-').collect();
    parts.len() == 3
        && parts[2] == "cli-demo"
        && parts[1].len() == 16
        && parts[1].ends_with('Z')
        && parts[0].len() == 4
        && parts[0].chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_per_group_ctrl_c_stop_and_redrive() {
    // Exports that take a while, so a run stays in progress.
    let stack = Stack::start(30.0).await.unwrap();
    seed(&stack, "/cli/busy").await;
    archive_bucket(&stack, BUCKET).await;
    let lease_key = "cwl-archiver/cli/busy/@lease.json";

    // The lease is held: exit 3, who holds it and how to follow or stop it.
    let holder = "arn:aws:states:us-east-1:123456789012:execution:cwl-archiver:other-run";
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let lease = json!({"runId": "other-run", "executionArn": holder, "mode": "rebuild",
        "cutoff": "2026-01-01T00:00:00Z", "acquiredAt": "2026-01-01T00:00:00Z", "expiresAt": later, "released": false});
    put(&stack, BUCKET, lease_key, &lease).await;
    let o = cli(&stack, &start_args("/cli/busy", &["--yes"])).await;
    assert_one_line_error(
        &o,
        3,
        &[
            "a run of /cli/busy is in progress",
            holder,
            "cwl-archiver watch",
            "cwl-archiver stop",
        ],
    );
    // Released (or expired): the group is free.
    let mut released = lease.clone();
    released["released"] = json!(true);
    put(&stack, BUCKET, lease_key, &released).await;
    let first = cli(&stack, &start_args("/cli/busy", &["--yes"])).await;
    assert_ok(&first);
    let arn = stdout(&first).trim().to_string();
    assert!(
        stderr(&first).contains(&format!("cwl-archiver watch {arn}")),
        "{}",
        stderr(&first)
    );

    // A second start while the first runs: exit 3 naming the first.
    let second = cli(&stack, &start_args("/cli/busy", &["--yes"])).await;
    assert_one_line_error(&second, 3, &["in progress", &arn, "nothing was started"]);

    // Ctrl-C while following: the run goes on, exit 130.
    let mut cmd = command(stack.emulator.endpoint(), Some(&stack));
    cmd.args(["watch", &arn, "--interval", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let (code, err) = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (child.wait().unwrap().code(), format!("{first}\n{}", rest.join("\n")))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("the run goes on"), "{err}");
    assert!(err.contains(&format!("cwl-archiver stop {arn}")), "{err}");
    let d = stack
        .emulator
        .sfn()
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_str(), "RUNNING");

    // stop: StopExecution, then the lease this execution holds is released.
    // The lease is the run's own (overwriting it would make the run's next
    // renewal fail, as it should, and race the stop).
    let held = get(&stack, BUCKET, lease_key).await;
    assert_eq!(held["executionArn"], arn.as_str(), "{held}");
    assert_eq!(held["released"], false, "{held}");
    let stopped = cli(&stack, &["stop", &arn]).await;
    assert_ok(&stopped);
    assert!(
        stdout(&stopped).contains(&format!("stopped {arn}")),
        "{}",
        stdout(&stopped)
    );
    assert!(
        stdout(&stopped).contains("released the lease of /cli/busy"),
        "{}",
        stdout(&stopped)
    );
    let lease_now = get(&stack, BUCKET, lease_key).await;
    assert_eq!(lease_now["released"], true);
    for field in ["runId", "executionArn", "acquiredAt", "cutoff"] {
        assert_eq!(lease_now[field], held[field], "the rest of the lease is kept: {field}");
    }
    let d = stack
        .emulator
        .sfn()
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status().as_str(), "ABORTED");
    // Another run's lease is never touched.
    put(&stack, BUCKET, lease_key, &lease).await;
    let o = cli(&stack, &["stop", &arn]).await;
    assert_ok(&o);
    assert!(stdout(&o).contains("not running"), "{}", stdout(&o));
    assert!(stdout(&o).contains("not held by this execution"), "{}", stdout(&o));
    assert_eq!(get(&stack, BUCKET, lease_key).await["released"], false);

    // redrive, through a proxy where the emulator has no RedriveExecution.
    let proxy = Proxy::start(
        stack.emulator.endpoint(),
        &[("RedriveExecution", 200, json!({"redriveDate": 1.8e9}))],
    )
    .await;
    let o = run(command(&proxy.endpoint, Some(&stack)), &["redrive", &arn]).await;
    assert_ok(&o);
    assert!(stdout(&o).contains(&format!("redriven {arn}")), "{}", stdout(&o));
    assert_eq!(proxy.answered("RedriveExecution"), 1);
    let refusing = Proxy::start(
        stack.emulator.endpoint(),
        &[(
            "RedriveExecution",
            400,
            json!({"__type": "ExecutionNotRedrivable", "message": "Execution is RUNNING"}),
        )],
    )
    .await;
    let o = run(command(&refusing.endpoint, Some(&stack)), &["redrive", &arn]).await;
    assert_one_line_error(&o, 2, &["ExecutionNotRedrivable", "cwl-archiver start"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_protected_group_needs_allow_masked_archive_for_a_destructive_mode() {
    let stack = Stack::start(1.0).await.unwrap();
    seed(&stack, "/cli/masked").await;
    archive_bucket(&stack, BUCKET).await;
    let policy = json!({"Name": "p", "Version": "2021-06-01", "Statement": []}).to_string();
    let proxy = Proxy::start(
        stack.emulator.endpoint(),
        &[
            (
                "GetDataProtectionPolicy",
                200,
                json!({"logGroupIdentifier": "/cli/masked", "policyDocument": policy}),
            ),
            ("DescribeAccountPolicies", 200, json!({"accountPolicies": []})),
        ],
    )
    .await;
    let o = run(
        command(&proxy.endpoint, Some(&stack)),
        &start_args("/cli/masked", &["--yes"]),
    )
    .await;
    assert_one_line_error(
        &o,
        2,
        &[
            "--mode",
            "data protection policy (on the log group)",
            "--allow-masked-archive",
            "export-only",
        ],
    );
    assert_eq!(proxy.answered("GetDataProtectionPolicy"), 1);
    // export-only deletes nothing: no question asked of the policy.
    let o = run(
        command(&proxy.endpoint, Some(&stack)),
        &start_args("/cli/masked", &["--mode", "export-only", "--wait"]),
    )
    .await;
    assert_ok(&o);
    assert_eq!(proxy.answered("GetDataProtectionPolicy"), 1);
    // The account's policy counts too; --allow-masked-archive lets the run start.
    let account = Proxy::start(
        stack.emulator.endpoint(),
        &[
            ("GetDataProtectionPolicy", 200, json!({"logGroupIdentifier": "/cli/masked"})),
            (
                "DescribeAccountPolicies",
                200,
                json!({"accountPolicies": [{"policyName": "all", "policyType": "DATA_PROTECTION_POLICY", "scope": "ALL"}]}),
            ),
        ],
    )
    .await;
    let o = run(
        command(&account.endpoint, Some(&stack)),
        &start_args("/cli/masked", &["--yes"]),
    )
    .await;
    assert_one_line_error(&o, 2, &["for the whole account", "--allow-masked-archive"]);
    let o = run(
        command(&account.endpoint, Some(&stack)),
        &start_args("/cli/masked", &["--yes", "--allow-masked-archive", "--wait"]),
    )
    .await;
    assert_ok(&o);
}

/// On a terminal (a pseudo-terminal from `script`), a destructive mode shows
/// the plan's summary and asks; only a yes starts the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_terminal_a_destructive_mode_asks_first() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let stack = Stack::start(1.0).await.unwrap();
    seed(&stack, "/cli/asked").await;
    archive_bucket(&stack, BUCKET).await;
    let bin = env!("CARGO_BIN_EXE_cwl-archiver");
    let line = format!("{bin} start --group /cli/asked --older-than 3d --bucket {BUCKET} --poll-seconds 1");
    let ask = |answer: &'static str| {
        let cmd = command(stack.emulator.endpoint(), Some(&stack));
        let mut script = std::process::Command::new("script");
        script.args(["-q", "-e", "-c", &line, "/dev/null"]);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => script.env(k, v),
                None => script.env_remove(k),
            };
        }
        script
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = script.spawn().unwrap();
                // Answer once the question is up.
                std::thread::sleep(std::time::Duration::from_secs(4));
                use std::io::Write;
                let _ = child.stdin.take().unwrap().write_all(answer.as_bytes());
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let no = ask("n\n").await;
    let text = format!("{}{}", stdout(&no), stderr(&no));
    assert_eq!(no.status.code(), Some(2), "{text}");
    assert!(text.contains("plan of /cli/asked"), "{text}");
    assert!(text.contains("deletes 1 stream(s), rebuilds 1"), "{text}");
    assert!(text.contains("[y/N]"), "{text}");
    assert!(text.contains("not started"), "{text}");
    let none = stack
        .emulator
        .sfn()
        .list_executions()
        .state_machine_arn(&stack.state_machine_arn)
        .send()
        .await
        .unwrap();
    assert!(none.executions().is_empty());
    let yes = ask("y\n").await;
    let text = format!("{}{}", stdout(&yes), stderr(&yes));
    assert_eq!(yes.status.code(), Some(0), "{text}");
    assert!(text.contains(":execution:"), "{text}");
}
