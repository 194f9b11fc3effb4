//! Every way a command can fail reaching AWS ends in one line on stderr:
//! the error code, what it means here, the fix; never Rust `Debug`
//! formatting; `--debug` adds the detail. A refused connection fails in
//! seconds.

use std::time::{Duration, Instant};

use crate::common::{archive_bucket, assert_one_line_error, cli, command, run, stderr};
use cwl_archiver_e2e::scenario::{HOUR, cutoff_days_ago, events_between};
use cwl_archiver_e2e::stack::Stack;

const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:cwl-archiver:nope";

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn without_a_stack_region_credentials_profile_and_connection_fail_in_one_line() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());

    // No region.
    let mut cmd = command(&endpoint, None);
    cmd.env_remove("AWS_REGION");
    let o = run(cmd, &["watch", EXECUTION]).await;
    assert_one_line_error(&o, 2, &["no AWS region", "--region", "AWS_DEFAULT_REGION"]);

    // No credentials (and no instance metadata to find them in).
    let mut cmd = command(&endpoint, None);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let o = run(cmd, &["runs", "--group", "/g", "--bucket", "bkt"]).await;
    assert_one_line_error(&o, 2, &["no AWS credentials", "AWS_ACCESS_KEY_ID", "--profile"]);

    // An unknown profile, even with credentials in the environment.
    let o = run(command(&endpoint, None), &["--profile", "nosuch", "watch", EXECUTION]).await;
    assert_one_line_error(&o, 2, &["--profile nosuch", "no such profile"]);
    let mut cmd = command(&endpoint, None);
    cmd.env("AWS_PROFILE", "nosuch");
    let o = run(cmd, &["report", EXECUTION]).await;
    assert_one_line_error(&o, 2, &["--profile nosuch"]);
    // A profile that exists is fine (it fails later, on the connection).
    let home = tempdir("profile");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(home.join(".aws/config"), "[profile ops]\nregion = us-east-1\n").unwrap();
    let mut cmd = command(&endpoint, None);
    cmd.env("HOME", &home);
    let o = run(cmd, &["--profile", "ops", "watch", EXECUTION]).await;
    assert_one_line_error(&o, 1, &["connection refused"]);

    // A refused connection: in seconds (3 attempts, not the Lambdas' 8), with the fix.
    let started = Instant::now();
    let o = run(command(&endpoint, None), &["watch", EXECUTION]).await;
    let took = started.elapsed();
    assert_one_line_error(
        &o,
        1,
        &[
            "DescribeExecution",
            "connection refused",
            &endpoint,
            "--endpoint-url",
            "make stack-up",
        ],
    );
    assert!(took < Duration::from_secs(10), "a refused connection took {took:?}");
    for args in [
        vec!["plan", "--group", "/g", "--older-than", "30d"],
        vec![
            "restore",
            "--group",
            "/g",
            "--bucket",
            "bkt",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
        vec!["runs", "--group", "/g", "--bucket", "bkt"],
        vec!["stop", EXECUTION],
    ] {
        let o = run(command(&endpoint, None), &args).await;
        assert_one_line_error(&o, 1, &["connection refused"]);
    }

    // --debug adds the detail, on a line of its own.
    let o = run(command(&endpoint, None), &["--debug", "watch", EXECUTION]).await;
    let err = stderr(&o);
    assert!(
        err.lines().next().is_some_and(|l| l.contains("connection refused")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("debug: ")), "{err}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("cwl-archiver-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn against_the_stack_unknown_things_fail_in_one_line_with_the_flag() {
    let stack = Stack::start(1.0).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let events = events_between("s", now - 20 * 24 * HOUR, now - 10 * 24 * HOUR, 20);
    stack
        .emulator
        .seed_with_ingestion("/err/app", "s", &events, now - 3 * HOUR)
        .await
        .unwrap();
    archive_bucket(&stack, "err-archive").await;
    let (_, cutoff) = cutoff_days_ago(3);
    let start = |bucket: &str, extra: &[&str]| {
        let mut args = vec![
            "start", "--group", "/err/app", "--cutoff", &cutoff, "--bucket", bucket, "--yes",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let go = |args: Vec<String>| crate::common::cli_owned(&stack, args);

    // A wrong state machine ARN.
    let o = go(start(
        "err-archive",
        &[
            "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:nope",
        ],
    ))
    .await;
    assert_one_line_error(
        &o,
        2,
        &["--state-machine-arn", "StateMachineDoesNotExist", "stateMachine:nope"],
    );

    // An unknown execution, for every command that takes one.
    for args in [
        vec!["watch", EXECUTION],
        vec!["report", EXECUTION],
        vec!["stop", EXECUTION],
    ] {
        let o = cli(&stack, &args).await;
        assert_one_line_error(&o, 2, &["ExecutionDoesNotExist", EXECUTION]);
    }
    // Not an ARN at all: refused before any call.
    let o = cli(&stack, &["watch", "not-an-arn"]).await;
    assert_one_line_error(&o, 2, &["is not an execution ARN"]);

    // A missing bucket, for start, restore, runs and plan.
    let o = go(start("no-such-bucket", &[])).await;
    assert_one_line_error(&o, 2, &["--bucket", "no bucket no-such-bucket"]);
    let o = cli(
        &stack,
        &[
            "restore",
            "--group",
            "/err/app",
            "--bucket",
            "no-such-bucket",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
    )
    .await;
    assert_one_line_error(&o, 2, &["--bucket no-such-bucket", "NoSuchBucket"]);
    let o = cli(&stack, &["runs", "--group", "/err/app", "--bucket", "no-such-bucket"]).await;
    assert_one_line_error(&o, 2, &["NoSuchBucket"]);
    let o = cli(
        &stack,
        &[
            "plan",
            "--group",
            "/err/app",
            "--older-than",
            "3d",
            "--bucket",
            "no-such-bucket",
        ],
    )
    .await;
    assert_one_line_error(&o, 2, &["NoSuchBucket"]);

    // A missing group.
    let o = cli(&stack, &["plan", "--group", "/err/nope", "--older-than", "3d"]).await;
    assert_one_line_error(&o, 2, &["--group /err/nope", "does not exist", "--region"]);

    // Runs of an unknown state machine.
    let o = cli(
        &stack,
        &[
            "runs",
            "--group",
            "/err/app",
            "--state-machine-arn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:nope",
        ],
    )
    .await;
    assert_one_line_error(&o, 2, &["--state-machine-arn", "StateMachineDoesNotExist"]);

    // Redrive where the endpoint has none (the emulator): one line, exit 2.
    let o = cli(&stack, &["redrive", EXECUTION]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_one_line_error(&o, 2, &[EXECUTION]);
}
