//! `plan`, `watch`, `report`, `runs` and `restore` against the local stack:
//! each command's output is checked against what is really in CloudWatch
//! and S3.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::common::{archive_bucket, assert_ok, assert_one_line_error, cli, stderr, stdout};
use archiver::LogEvent;
use cwl_archiver_e2e::scenario::{
    DAY, HOUR, as_events, cutoff_days_ago, events_between, exported_events, stream_events,
};
use cwl_archiver_e2e::stack::Stack;
use serde_json::Value;

const GROUP: &str = "/ops/orders";
const BUCKET: &str = "ops-archive";

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
    // Written 40 minutes ago: DescribeLogStreams (30 minutes stale on the
    // stack, as on AWS) shows it, inside the 60-minute quiet period.
    let active = events_between("active", now - 9 * DAY, now - 60_000, 80);
    stack
        .emulator
        .seed_with_ingestion(GROUP, "active", &active, now - 40 * 60_000)
        .await
        .unwrap();
    streams.insert("active", active);
    // Written just now: the listing does not show its events yet.
    let just_written = events_between("just-written", now - 9 * DAY, now - 60_000, 20);
    stack.emulator.seed(GROUP, "just-written", &just_written).await.unwrap();
    streams.insert("just-written", just_written);
    archive_bucket(stack, BUCKET).await;
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

fn row(plan: &Value, name: &str) -> Value {
    plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stream"] == name)
        .unwrap_or_else(|| panic!("{name} in {plan}"))
        .clone()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_counts_what_a_run_would_do_within_the_quota_and_writes_nothing() {
    let stack = Stack::start(1.0).await.unwrap();
    let s = seed(&stack).await;
    let c = s.cutoff_ms;
    stack.emulator.reset_calls().await.unwrap();

    // --cutoff takes a bare date; --older-than durations; the same flags as start.
    let plan_args = ["plan", "--group", GROUP, "--cutoff", &s.cutoff, "--exact"];
    let json = cli(&stack, &[&plan_args[..], &["--json"]].concat()).await;
    assert_ok(&json);
    let plan: Value = serde_json::from_str(&crate::common::stdout(&json)).expect("plan JSON");
    let expired = &s.streams["expired"];
    assert_eq!(row(&plan, "expired")["class"], "expired");
    assert_eq!(row(&plan, "expired")["action"], "delete");
    assert_eq!(row(&plan, "expired")["delete"]["events"], count(expired, |_| true));
    assert_eq!(row(&plan, "expired")["delete"]["bytes"], bytes(expired, |_| true));
    let mixed = &s.streams["web/mixed"];
    assert_eq!(row(&plan, "web/mixed")["class"], "mixed");
    assert_eq!(row(&plan, "web/mixed")["action"], "rebuild");
    assert_eq!(row(&plan, "web/mixed")["export"]["events"], count(mixed, |t| t < c));
    assert_eq!(row(&plan, "web/mixed")["replay"]["events"], count(mixed, |t| t >= c));
    assert_eq!(row(&plan, "web/mixed")["replay"]["bytes"], bytes(mixed, |t| t >= c));
    assert_eq!(row(&plan, "fresh")["class"], "fresh");
    assert_eq!(row(&plan, "active")["class"], "skip");
    assert_eq!(
        row(&plan, "active")["reason"],
        "received events within the quiet period"
    );
    assert_eq!(row(&plan, "just-written")["class"], "unlisted");
    assert_eq!(row(&plan, "just-written")["action"], "none");
    let reingested = bytes(mixed, |t| t >= c) + 26 * count(mixed, |t| t >= c);
    assert_eq!(plan["totals"]["reingestedBytes"], reingested);
    assert_eq!(plan["checkpointRead"], false);
    assert!(plan["bytesBasis"].as_str().unwrap().contains("counted"));

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
        line("active").ends_with("received events within the quiet period"),
        "{text}"
    );
    assert!(text.contains("(mode rebuild, cutoff "), "{text}");
    assert!(
        text.contains("give --bucket to leave out what earlier runs exported"),
        "{text}"
    );
    assert!(text.contains("re-ingestion of rebuilds:"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour when stdout is not a terminal");

    // Without --exact: estimates from the group's storedBytes, labelled, never a stream's.
    let estimated = cli(&stack, &["plan", "--group", GROUP, "--older-than", "7d", "--json"]).await;
    assert_ok(&estimated);
    let estimated: Value = serde_json::from_str(&stdout(&estimated)).unwrap();
    assert_eq!(row(&estimated, "expired")["export"]["estimated"], true);
    assert!(
        estimated["bytesBasis"]
            .as_str()
            .unwrap()
            .contains("storedBytes (DescribeLogGroups)")
    );
    assert_eq!(row(&estimated, "web/mixed")["replay"]["estimated"], false);

    // --mode: what that mode would do.
    let expired_only = cli(
        &stack,
        &[
            "plan",
            "--group",
            GROUP,
            "--cutoff",
            &s.cutoff,
            "--mode",
            "expired-only",
            "--json",
        ],
    )
    .await;
    let expired_only: Value = serde_json::from_str(&stdout(&expired_only)).unwrap();
    assert_eq!(row(&expired_only, "web/mixed")["action"], "none");
    assert_eq!(row(&expired_only, "expired")["action"], "delete");

    // Read-only: nothing was written, deleted or exported.
    let calls = stack.emulator.calls().await.unwrap();
    for op in [
        "logs.PutLogEvents",
        "logs.DeleteLogStream",
        "logs.CreateLogStream",
        "logs.CreateExportTask",
        "s3.PutObject",
    ] {
        assert_eq!(calls.get(op).copied().unwrap_or(0), 0, "{op} called: {calls:?}");
    }
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await.map(|e| e.len()),
        Some(400)
    );

    // Within the quota: GetLogEvents calls never beat --reads-per-second.
    stack.emulator.reset_calls().await.unwrap();
    let started = Instant::now();
    let paced = cli(
        &stack,
        &[
            "plan",
            "--group",
            GROUP,
            "--cutoff",
            &s.cutoff,
            "--exact",
            "--reads-per-second",
            "4",
        ],
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    assert_ok(&paced);
    let reads = stack.emulator.calls().await.unwrap()["logs.GetLogEvents"];
    assert!(reads >= 6, "{reads}");
    assert!(
        took >= (reads - 1) as f64 / 4.0,
        "{reads} reads in {took:.1}s at 4 per second"
    );

    // Bad input: exit 2 with the fix.
    let bad = cli(&stack, &["plan", "--group", GROUP, "--older-than", "a week"]).await;
    assert_one_line_error(&bad, 2, &["--older-than", "30d, 2w or 36h"]);
    let missing = cli(&stack, &["plan", "--group", "/nope", "--older-than", "7d"]).await;
    assert_one_line_error(&missing, 2, &["does not exist", "--region"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_watch_report_and_restore_round_trip() {
    let stack = Stack::start(2.0).await.unwrap();
    let s = seed(&stack).await;
    let c = s.cutoff_ms;
    let earlier = c - DAY;

    // An export-only run a day earlier: the checkpoint then covers [0, c - 1 day).
    let first = cli(
        &stack,
        &[
            "start",
            "--group",
            GROUP,
            "--cutoff",
            &iso(earlier),
            "--bucket",
            BUCKET,
            "--mode",
            "export-only",
            "--poll-seconds",
            "1",
            "--wait",
            "--json",
        ],
    )
    .await;
    assert_ok(&first);
    let first: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(first["status"], "SUCCEEDED");

    // plan --bucket honours the checkpoint: what was exported is not counted again.
    let plan = cli(
        &stack,
        &[
            "plan", "--group", GROUP, "--cutoff", &s.cutoff, "--bucket", BUCKET, "--exact", "--json",
        ],
    )
    .await;
    assert_ok(&plan);
    let plan: Value = serde_json::from_str(&stdout(&plan)).unwrap();
    assert_eq!(plan["checkpointRead"], true);
    let expired = &s.streams["expired"];
    assert_eq!(
        row(&plan, "expired")["export"]["events"],
        count(expired, |t| t >= earlier && t < c)
    );
    assert_eq!(row(&plan, "expired")["delete"]["events"], count(expired, |t| t < c));

    // The real run, followed by watch: progress on stderr, the run on stdout.
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
            "--yes",
        ],
    )
    .await;
    assert_ok(&started);
    let arn = stdout(&started).trim().to_string();
    let watched = cli(&stack, &["watch", &arn, "--interval", "1", "--limit", "1"]).await;
    assert_ok(&watched);
    let (out, err) = (stdout(&watched), stderr(&watched));
    assert!(err.contains("export running"), "{err}");
    assert!(err.contains("elapsed"), "{err}");
    assert!(err.contains("execution SUCCEEDED"), "{err}");
    // Totals first, then the summary by action, then the first streams.
    let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle} in\n{out}"));
    assert!(
        at(": SUCCEEDED") < at("streams:    3 (deleted 1, rebuilt 1, skipped 1)"),
        "{out}"
    );
    assert!(at("replayed:") < at("by action"), "{out}");
    assert!(
        at("by action") < at("streams (first 1 of 3; --all for every row"),
        "{out}"
    );
    let kept = count(&s.streams["web/mixed"], |t| t >= c);
    assert!(out.contains(&format!("replayed:   {kept} event(s)")), "{out}");
    let all = cli(&stack, &["report", &arn, "--all"]).await;
    assert_ok(&all);
    let words = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    let all = stdout(&all);
    assert_eq!(words(&all, "expired"), "expired deleted 0 0 B");
    assert!(
        words(&all, "web/mixed").starts_with(&format!("web/mixed rebuilt {kept} ")),
        "{all}"
    );
    assert!(
        words(&all, "active").ends_with("received events within the quiet period"),
        "{all}"
    );

    // --json: one shape for watch and report.
    let watch_json = cli(&stack, &["watch", &arn, "--json"]).await;
    let report_json = cli(&stack, &["report", &arn, "--json"]).await;
    assert_ok(&report_json);
    let w: Value = serde_json::from_str(&stdout(&watch_json)).unwrap();
    let r: Value = serde_json::from_str(&stdout(&report_json)).unwrap();
    assert_eq!(w, r);
    for key in [
        "status",
        "executionArn",
        "runId",
        "logGroupName",
        "mode",
        "cutoff",
        "report",
        "totals",
        "streams",
    ] {
        assert!(r.get(key).is_some(), "{key} in {r}");
    }
    assert_eq!(r["streams"].as_array().map(Vec::len), Some(3));
    assert_eq!(r["totals"]["eventsReplayed"], kept);
    // From the report object: the same run.
    let url = r["report"].as_str().unwrap().to_string();
    let from_s3 = cli(&stack, &["report", &url, "--json"]).await;
    let from_s3: Value = serde_json::from_str(&stdout(&from_s3)).unwrap();
    assert_eq!(from_s3["streams"], r["streams"]);
    assert_eq!(from_s3["totals"], r["totals"]);
    let no_bucket = cli(&stack, &["report", "some/key.json"]).await;
    assert_one_line_error(&no_bucket, 2, &["needs --bucket"]);

    // runs: newest first, with status, mode, cutoff and totals.
    let runs = cli(&stack, &["runs", "--group", GROUP, "--bucket", BUCKET, "--json"]).await;
    assert_ok(&runs);
    let runs: Value = serde_json::from_str(&stdout(&runs)).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["executionArn"], arn.as_str());
    assert_eq!(runs[0]["mode"], "rebuild");
    assert_eq!(runs[0]["status"], "SUCCEEDED");
    assert_eq!(runs[0]["totals"]["eventsReplayed"], kept);
    assert_eq!(runs[1]["mode"], "export-only");
    assert!(
        runs[1]["cutoff"].as_str().unwrap().starts_with(&iso(earlier)[..13]),
        "{runs:?}"
    );
    let text = cli(&stack, &["runs", "--group", GROUP]).await;
    assert_ok(&text);
    assert!(
        stdout(&text)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("SUCCEEDED") && l.contains("rebuild"))
    );
    // report --latest: the newest run.
    let latest = cli(
        &stack,
        &["report", "--latest", "--group", GROUP, "--bucket", BUCKET, "--json"],
    )
    .await;
    assert_ok(&latest);
    let latest: Value = serde_json::from_str(&stdout(&latest)).unwrap();
    assert_eq!(latest["executionArn"], arn.as_str());

    // restore: exactly the exported events, multi-line and non-ASCII included.
    let exported = exported_events(&stack, BUCKET, "cwl-archiver/ops/orders/@exports/").await;
    let window = ["--from", "2000-01-01", "--to", &iso(c)];
    let restore = |extra: &[&str]| -> Vec<String> {
        [&["restore", "--group", GROUP, "--bucket", BUCKET][..], &window, extra]
            .concat()
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let all = crate::common::cli_owned(&stack, restore(&[])).await;
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

    // An unknown stream is an error naming the streams the export has.
    let unknown = crate::common::cli_owned(&stack, restore(&["--stream", "web/mixd"])).await;
    assert_one_line_error(
        &unknown,
        2,
        &["no stream \"web/mixd\"", "active, expired, just-written, web/mixed"],
    );

    // Re-ingestion, twice: the second run writes nothing again.
    stack
        .emulator
        .logs()
        .create_log_group()
        .log_group_name("/ops/restored")
        .send()
        .await
        .unwrap();
    let into = restore(&["--into-group", "/ops/restored", "--into-stream", "back"]);
    let once = crate::common::cli_owned(&stack, into.clone()).await;
    assert_ok(&once);
    let back = stream_events(&stack, "/ops/restored", "back")
        .await
        .expect("stream created");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        back.iter().all(|e| e.timestamp > now - 14 * DAY),
        "nothing older than 14 days is sent"
    );
    assert!(!back.is_empty());
    assert!(
        stdout(&once).contains(&format!("re-ingested {} event(s) into /ops/restored", back.len())),
        "{}",
        stdout(&once)
    );
    let twice = crate::common::cli_owned(&stack, into).await;
    assert_ok(&twice);
    assert!(stdout(&twice).contains("re-ingested 0 event(s)"), "{}", stdout(&twice));
    assert!(
        stdout(&twice).contains(&format!(
            "not re-ingested: {} event(s) the target holds already",
            back.len()
        )),
        "{}",
        stdout(&twice)
    );
    let back_again = stream_events(&stack, "/ops/restored", "back").await.unwrap();
    assert_eq!(back_again.len(), back.len(), "restore twice writes every event once");

    let bad = cli(
        &stack,
        &[
            "restore", "--group", GROUP, "--bucket", BUCKET, "--from", "x", "--to", "y",
        ],
    )
    .await;
    assert_one_line_error(&bad, 2, &["write an RFC 3339 time"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_exits_non_zero_with_the_error_and_cause_of_a_failed_execution() {
    let stack = Stack::start(1.0).await.unwrap();
    archive_bucket(&stack, BUCKET).await;
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
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("execution FAILED: InvalidInput"), "{err}");
    assert!(last.contains("does not exist in this account and region"), "{err}");
    assert!(stdout(&watched).contains(": FAILED"), "{}", stdout(&watched));
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
