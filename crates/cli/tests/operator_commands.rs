//! `plan`, `watch`, `report` and `restore` against the local stack: each
//! command's output is checked against what is really in CloudWatch and S3.

use std::collections::BTreeMap;
use std::process::Output;

use archiver::LogEvent;
use cwl_archiver_e2e::scenario::{
    DAY, HOUR, as_events, create_bucket, cutoff_days_ago, events_between, exported_events, stream_events,
};
use cwl_archiver_e2e::stack::Stack;
use serde_json::Value;

const GROUP: &str = "/ops/orders";
const BUCKET: &str = "ops-archive";

/// Runs the CLI against the stack, off the async runtime.
async fn cli(stack: &Stack, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cwl-archiver"));
    cmd.args(args)
        .args(["--endpoint-url", stack.emulator.endpoint()])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("CWL_ARCHIVER_STATE_MACHINE_ARN", &stack.state_machine_arn)
        .env_remove("AWS_PROFILE");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

struct Seeded {
    cutoff_ms: i64,
    cutoff: String,
    streams: BTreeMap<&'static str, Vec<(i64, String)>>,
}

async fn seed(stack: &Stack) -> Seeded {
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let quiet = now - 3 * HOUR;
    let mut streams = BTreeMap::new();
    streams.insert("expired", events_between("expired", now - 30 * DAY, cutoff_ms - 1, 400));
    streams.insert(
        "web/mixed",
        events_between("web/mixed", now - 12 * DAY, now - 4 * HOUR, 600),
    );
    streams.insert("fresh", events_between("fresh", cutoff_ms, now - 4 * HOUR, 50));
    for (name, events) in &streams {
        stack
            .emulator
            .seed_with_ingestion(GROUP, name, events, quiet)
            .await
            .unwrap();
    }
    let active = events_between("active", now - 9 * DAY, now - 60_000, 80);
    stack.emulator.seed(GROUP, "active", &active).await.unwrap();
    streams.insert("active", active);
    create_bucket(stack, BUCKET).await;
    Seeded {
        cutoff_ms,
        cutoff,
        streams,
    }
}

fn count(events: &[(i64, String)], keep: impl Fn(i64) -> bool) -> u64 {
    events.iter().filter(|(t, _)| keep(*t)).count() as u64
}

fn bytes(events: &[(i64, String)], keep: impl Fn(i64) -> bool) -> u64 {
    events
        .iter()
        .filter(|(t, _)| keep(*t))
        .map(|(_, m)| m.len() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_counts_what_a_run_would_do_and_writes_nothing() {
    let stack = Stack::start(1.0).await.unwrap();
    let s = seed(&stack).await;
    let c = s.cutoff_ms;
    stack.emulator.reset_calls().await.unwrap();

    let plan_args = ["plan", "--group", GROUP, "--cutoff", &s.cutoff, "--exact"];
    let json = cli(&stack, &[&plan_args[..], &["--json"]].concat()).await;
    assert_ok(&json);
    let plan: Value = serde_json::from_str(&stdout(&json)).expect("plan JSON");
    let row = |name: &str| {
        plan["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["stream"] == name)
            .unwrap_or_else(|| panic!("{name} in {plan}"))
            .clone()
    };
    let expired = &s.streams["expired"];
    assert_eq!(row("expired")["class"], "expired");
    assert_eq!(row("expired")["action"], "delete");
    assert_eq!(row("expired")["delete"]["events"], count(expired, |_| true));
    assert_eq!(row("expired")["delete"]["bytes"], bytes(expired, |_| true));
    let mixed = &s.streams["web/mixed"];
    assert_eq!(row("web/mixed")["class"], "mixed");
    assert_eq!(row("web/mixed")["action"], "rebuild");
    assert_eq!(row("web/mixed")["export"]["events"], count(mixed, |t| t < c));
    assert_eq!(row("web/mixed")["replay"]["events"], count(mixed, |t| t >= c));
    assert_eq!(row("web/mixed")["replay"]["bytes"], bytes(mixed, |t| t >= c));
    assert_eq!(row("fresh")["class"], "fresh");
    assert_eq!(row("active")["class"], "skip");
    assert_eq!(row("active")["reason"], "received events within the quiet period");
    let reingested = bytes(mixed, |t| t >= c) + 26 * count(mixed, |t| t >= c);
    assert_eq!(plan["totals"]["reingestedBytes"], reingested);
    let usd = plan["totals"]["reingestionUsd"].as_f64().unwrap();
    assert!((usd - reingested as f64 / 1e9 * 0.5).abs() < 1e-12, "{usd}");

    let table = cli(&stack, &plan_args).await;
    assert_ok(&table);
    let text = stdout(&table);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("expired").starts_with("expired expired delete 400 "), "{text}");
    assert!(
        line("web/mixed").contains(&format!(" {} ", count(mixed, |t| t >= c))),
        "{text}"
    );
    assert!(
        line("active").ends_with("received events within the quiet period"),
        "{text}"
    );
    assert!(text.contains("re-ingestion of rebuilds:"), "{text}");
    assert!(text.contains("per month at $0.0300/GB-month"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour when stdout is not a terminal");

    // Read-only: nothing was written, deleted or exported.
    let calls = stack.emulator.calls().await.unwrap();
    for op in [
        "PutLogEvents",
        "DeleteLogStream",
        "CreateLogStream",
        "CreateExportTask",
        "PutObject",
    ] {
        assert_eq!(calls.get(op).copied().unwrap_or(0), 0, "{op} called: {calls:?}");
    }
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await.map(|e| e.len()),
        Some(400)
    );

    // Bad input: exit 2 with the fix.
    let bad = cli(&stack, &["plan", "--group", GROUP, "--older-than", "a week"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("give whole days"), "{}", stderr(&bad));
    let missing = cli(&stack, &["plan", "--group", "/nope", "--older-than", "7d"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("check the name and the region"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_report_and_restore_round_trip() {
    let stack = Stack::start(2.0).await.unwrap();
    let s = seed(&stack).await;
    let c = s.cutoff_ms;

    let started = cli(
        &stack,
        &[
            "start",
            "--group",
            GROUP,
            "--cutoff",
            &s.cutoff,
            "--bucket",
            BUCKET,
            "--poll-seconds",
            "1",
        ],
    )
    .await;
    assert_ok(&started);
    let arn = stdout(&started).trim().to_string();
    assert!(arn.contains(":execution:"), "{arn}");

    // watch: progress lines on stderr (not a terminal), the report on stdout.
    let watched = cli(&stack, &["watch", &arn, "--interval", "1"]).await;
    assert_ok(&watched);
    let (out, err) = (stdout(&watched), stderr(&watched));
    assert!(err.contains("export running"), "{err}");
    assert!(err.contains("execution SUCCEEDED"), "{err}");
    let words = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    let kept = count(&s.streams["web/mixed"], |t| t >= c);
    assert_eq!(words(&out, "expired"), "expired deleted 0 0 B");
    assert!(
        words(&out, "web/mixed").starts_with(&format!("web/mixed rebuilt {kept} ")),
        "{out}"
    );
    assert!(
        words(&out, "active").ends_with("skipped 0 0 B received events within the quiet period"),
        "{out}"
    );
    assert!(
        out.contains("streams:          deleted 1, rebuilt 1, skipped 1"),
        "{out}"
    );

    // report, from the execution and from S3: the same table.
    let from_arn = cli(&stack, &["report", &arn]).await;
    assert_ok(&from_arn);
    assert_eq!(stdout(&from_arn), out);
    let key_line = out.lines().find(|l| l.starts_with("report:")).unwrap();
    let s3_url = key_line.trim_start_matches("report:").trim();
    assert_eq!(
        s3_url,
        format!("s3://{BUCKET}/cwl-archiver/ops/orders/@runs/{}/report.json", run_id(c))
    );
    let from_s3 = cli(&stack, &["report", s3_url]).await;
    assert_eq!(stdout(&from_s3), out);
    let json = cli(&stack, &["report", s3_url, "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&json)).expect("report JSON");
    assert_eq!(report["totals"]["eventsReplayed"], kept);
    assert_eq!(report["outcomes"].as_array().map(Vec::len), Some(3));
    let no_bucket = cli(&stack, &["report", "some/key.json"]).await;
    assert_eq!(no_bucket.status.code(), Some(2));
    assert!(stderr(&no_bucket).contains("needs --bucket"));

    // restore: exactly the exported events, multi-line and non-ASCII included.
    let exported = exported_events(&stack, BUCKET, "cwl-archiver/ops/orders/@exports/").await;
    let window = [
        "--from",
        "2000-01-01",
        "--to",
        &chrono::DateTime::from_timestamp_millis(c).unwrap().to_rfc3339(),
    ];
    let all = cli(
        &stack,
        &[&["restore", "--group", GROUP, "--bucket", BUCKET][..], &window].concat(),
    )
    .await;
    assert_ok(&all);
    let restored = parse_lines(&stdout(&all));
    assert_eq!(restored, exported);
    for name in ["expired", "web/mixed", "active"] {
        assert_eq!(
            restored.get(name),
            Some(&as_events(&s.streams[name], |t| t < c)),
            "{name}"
        );
    }
    assert!(restored["web/mixed"].iter().any(|e| e.message.contains('\n')));
    assert!(restored["web/mixed"].iter().any(|e| e.message.contains("日本語")));

    // One stream, a narrower window.
    let (from, to) = (c - 3 * DAY, c - 2 * DAY);
    let iso = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339();
    let narrow = cli(
        &stack,
        &[
            "restore",
            "--group",
            GROUP,
            "--bucket",
            BUCKET,
            "--stream",
            "web/mixed",
            "--from",
            &iso(from),
            "--to",
            &iso(to),
        ],
    )
    .await;
    assert_ok(&narrow);
    let narrow = parse_lines(&stdout(&narrow));
    assert_eq!(narrow.len(), 1);
    assert_eq!(
        narrow["web/mixed"],
        as_events(&s.streams["web/mixed"], |t| t >= from && t < to)
    );

    // Re-ingestion: events within 14 days go back, older ones are counted, not dropped.
    stack
        .emulator
        .logs()
        .create_log_group()
        .log_group_name("/ops/restored")
        .send()
        .await
        .unwrap();
    let into = cli(
        &stack,
        &[
            &["restore", "--group", GROUP, "--bucket", BUCKET][..],
            &window,
            &["--into-group", "/ops/restored", "--into-stream", "back"],
        ]
        .concat(),
    )
    .await;
    assert_ok(&into);
    let now = chrono::Utc::now().timestamp_millis();
    let mut all_old: Vec<LogEvent> = exported.values().flatten().cloned().collect();
    all_old.sort_by(|a, b| (a.timestamp, &a.message).cmp(&(b.timestamp, &b.message)));
    let mut back = stream_events(&stack, "/ops/restored", "back")
        .await
        .expect("stream created");
    back.sort_by(|a, b| (a.timestamp, &a.message).cmp(&(b.timestamp, &b.message)));
    // What went back is exactly the exported events younger than 14 days.
    let floor = back.first().expect("some events are young enough").timestamp;
    assert!(floor > now - 14 * DAY, "nothing older than 14 days is sent");
    assert_eq!(
        back,
        all_old
            .iter()
            .filter(|e| e.timestamp >= floor)
            .cloned()
            .collect::<Vec<_>>()
    );
    let refused = all_old.len() - back.len();
    assert!(refused > 0);
    let text = stdout(&into);
    assert!(
        text.contains(&format!("re-ingested {} event(s) into /ops/restored", back.len())),
        "{text}"
    );
    assert!(
        text.contains(&format!("not re-ingested: {refused} event(s) older than 14 days")),
        "{text}"
    );

    let bad = cli(
        &stack,
        &[
            "restore", "--group", GROUP, "--bucket", BUCKET, "--from", "x", "--to", "y",
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("write an RFC 3339 time"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_exits_non_zero_with_the_error_and_cause_of_a_failed_execution() {
    let stack = Stack::start(1.0).await.unwrap();
    create_bucket(&stack, BUCKET).await;
    let (_, cutoff) = cutoff_days_ago(3);
    let input = serde_json::json!({"logGroupName": "/ops/missing", "cutoff": cutoff, "bucket": BUCKET});
    let started = stack
        .emulator
        .sfn()
        .start_execution()
        .state_machine_arn(&stack.state_machine_arn)
        .name("missing-group")
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    let watched = cli(&stack, &["watch", started.execution_arn(), "--interval", "1"]).await;
    assert_eq!(watched.status.code(), Some(1), "{}", stderr(&watched));
    let err = stderr(&watched);
    assert!(err.contains("execution FAILED: InvalidInput"), "{err}");
    assert!(err.contains("does not exist in this account and region"), "{err}");
    let bad = cli(&stack, &["watch", "not-an-arn"]).await;
    assert_eq!(bad.status.code(), Some(2));
}

fn run_id(cutoff_ms: i64) -> String {
    archiver::domain::input::format_run_id(cutoff_ms)
}

/// JSON lines of `restore`, by stream, sorted as the scenario helpers sort.
fn parse_lines(text: &str) -> BTreeMap<String, Vec<LogEvent>> {
    let mut by_stream: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        by_stream
            .entry(v["stream"].as_str().unwrap().to_string())
            .or_default()
            .push(LogEvent::new(
                v["timestamp"].as_i64().unwrap(),
                v["message"].as_str().unwrap(),
            ));
    }
    for events in by_stream.values_mut() {
        events.sort_by(|a, b| (a.timestamp, &a.message).cmp(&(b.timestamp, &b.message)));
    }
    by_stream
}
