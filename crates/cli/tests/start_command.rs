//! `cwl-archiver start --wait` against the local stack: the run happens and
//! the events end up where they belong.

use cwl_archiver_e2e::scenario::{DAY, HOUR, create_bucket, cutoff_days_ago, events_between, stream_events};
use cwl_archiver_e2e::stack::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_wait_archives_the_group_and_prints_the_report() {
    let stack = Stack::start(1.0).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, _) = cutoff_days_ago(3);
    let old = events_between("old", now - 20 * DAY, now - 10 * DAY, 300);
    stack
        .emulator
        .seed_with_ingestion("/cli/demo", "old", &old, now - 2 * HOUR)
        .await
        .unwrap();
    create_bucket(&stack, "cli-archive").await;
    assert!(old.iter().all(|(t, _)| *t < cutoff_ms));

    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cwl-archiver"));
        cmd.args([
            "start",
            "--group",
            "/cli/demo",
            "--older-than",
            "3d",
            "--bucket",
            "cli-archive",
            "--poll-seconds",
            "1",
        ])
        .args(extra)
        .args([
            "--state-machine-arn",
            &stack.state_machine_arn,
            "--endpoint-url",
            stack.emulator.endpoint(),
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
        cmd
    };
    let output = tokio::task::spawn_blocking({
        let mut cmd = run(&["--wait", "--json"]);
        move || cmd.output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report is JSON");
    assert_eq!(report["totals"]["streams"]["deleted"], 1, "{report}");
    assert_eq!(stream_events(&stack, "/cli/demo", "old").await, None);

    // The same run again is refused by name, before anything happens.
    let again = tokio::task::spawn_blocking({
        let mut cmd = run(&[]);
        move || cmd.output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("ExecutionAlreadyExists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Bad input is refused locally with the field named.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_cwl-archiver"))
        .args([
            "start",
            "--group",
            "/cli/demo",
            "--older-than",
            "0",
            "--bucket",
            "cli-archive",
            "--state-machine-arn",
            "arn:x",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("olderThanDays"));
}
