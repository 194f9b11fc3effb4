//! The archive state machine end to end on the strict emulator, with the
//! real handlers behind the Lambda Invoke API. Every test checks events in
//! S3 and CloudWatch, not return values.

use std::time::Duration;

use cwl_archiver_e2e::emulator::{Fault, FaultKind, FaultService};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::Stack;
use serde_json::json;

const GROUP: &str = "/app/orders-api";
const BUCKET: &str = "archive-bucket";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

struct Seeded {
    cutoff_ms: i64,
    cutoff: String,
    expired: Vec<(i64, String)>,
    mixed: Vec<(i64, String)>,
    fresh: Vec<(i64, String)>,
    active: Vec<(i64, String)>,
}

async fn seed_group(stack: &Stack) -> Seeded {
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let quiet = now - 3 * HOUR;
    let e = &stack.emulator;
    let expired = events_between("expired", now - 40 * DAY, cutoff_ms - 1, 1200);
    let mut mixed = events_between("mixed", now - 20 * DAY, now - 4 * HOUR, 3000);
    // The boundary: one millisecond either side of the cutoff, and on it.
    for t in [cutoff_ms - 1, cutoff_ms, cutoff_ms + 1] {
        mixed.push((t, format!("boundary event at {t}")));
    }
    mixed.sort();
    let fresh = events_between("fresh", cutoff_ms, now - 4 * HOUR, 500);
    let active = events_between("active", now - 10 * DAY, now - 60_000, 400);
    e.seed_with_ingestion(GROUP, "expired", &expired, quiet).await.unwrap();
    e.seed_with_ingestion(GROUP, "2026/11/01/[$LATEST]mixed", &mixed, quiet)
        .await
        .unwrap();
    e.seed_with_ingestion(GROUP, "fresh", &fresh, quiet).await.unwrap();
    e.seed(GROUP, "active", &active).await.unwrap();
    e.seed_with_ingestion(GROUP, "empty", &[], quiet).await.unwrap();
    create_bucket(stack, BUCKET).await;
    Seeded {
        cutoff_ms,
        cutoff,
        expired,
        mixed,
        fresh,
        active,
    }
}

fn input(cutoff: &str) -> serde_json::Value {
    json!({"logGroupName": GROUP, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1, "streamsPerBatch": 2})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_group_is_archived_and_every_kept_event_survives() {
    let stack = Stack::start(2.0).await.unwrap();
    let seeded = seed_group(&stack).await;
    let cutoff = seeded.cutoff_ms;

    let run = stack.run("first", &input(&seeded.cutoff), RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    // Every event older than the cutoff is in the export exactly once.
    let exported = exported_events(&stack, BUCKET, "cwl-archiver/app/orders-api/@exports/").await;
    assert_eq!(
        exported.get("expired"),
        Some(&as_events(&seeded.expired, |t| t < cutoff))
    );
    assert_eq!(
        exported.get("2026/11/01/[$LATEST]mixed"),
        Some(&as_events(&seeded.mixed, |t| t < cutoff))
    );
    assert_eq!(exported.get("active"), Some(&as_events(&seeded.active, |t| t < cutoff)));
    assert_eq!(exported.get("fresh"), None, "fresh has nothing before the cutoff");

    // Every event at or after the cutoff is in CloudWatch exactly once, in order.
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await,
        None,
        "expired stream deleted"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "2026/11/01/[$LATEST]mixed").await,
        Some(as_events(&seeded.mixed, |t| t >= cutoff))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "fresh").await,
        Some(as_events(&seeded.fresh, |_| true))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "active").await,
        Some(as_events(&seeded.active, |_| true)),
        "active stream untouched"
    );
    assert_eq!(stream_events(&stack, GROUP, "empty").await, Some(vec![]));

    let output = run.output.expect("report");
    assert_eq!(output["totals"]["streams"]["deleted"], 1, "{output}");
    assert_eq!(output["totals"]["streams"]["rebuilt"], 1, "{output}");
    assert_eq!(
        output["totals"]["eventsReplayed"],
        seeded.mixed.iter().filter(|(t, _)| *t >= cutoff).count()
    );

    // No staging object is left behind.
    let staging = stack
        .emulator
        .s3()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("cwl-archiver/app/orders-api/@staging/")
        .send()
        .await
        .unwrap();
    assert_eq!(staging.key_count(), Some(0));

    // The same input again: nothing new exported, nothing deleted or duplicated.
    let again = stack.run("second", &input(&seeded.cutoff), RUN_TIMEOUT).await.unwrap();
    assert_eq!(again.status, "SUCCEEDED", "{again:?}");
    assert_eq!(
        exported_events(&stack, BUCKET, "cwl-archiver/app/orders-api/@exports/").await,
        exported
    );
    assert_eq!(
        stream_events(&stack, GROUP, "2026/11/01/[$LATEST]mixed").await,
        Some(as_events(&seeded.mixed, |t| t >= cutoff))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "active").await,
        Some(as_events(&seeded.active, |_| true))
    );
}

const CHECKPOINT: &str = "cwl-archiver/app/orders-api/@checkpoint.json";
const EXPORTS: &str = "cwl-archiver/app/orders-api/@exports/";

/// Every seeded stream still holds every seeded event.
async fn assert_all_intact(stack: &Stack, seeded: &Seeded) {
    for (stream, events) in [
        ("expired", &seeded.expired),
        ("2026/11/01/[$LATEST]mixed", &seeded.mixed),
        ("fresh", &seeded.fresh),
        ("active", &seeded.active),
    ] {
        assert_eq!(
            stream_events(stack, GROUP, stream).await,
            Some(as_events(events, |_| true)),
            "{stream} intact"
        );
    }
    assert_eq!(stream_events(stack, GROUP, "empty").await, Some(vec![]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waits_for_another_export_task_then_completes() {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed_group(&stack).await;
    let cutoff = seeded.cutoff_ms;
    stack.emulator.occupy_export_slot(4.0).await.unwrap();
    stack.emulator.reset_calls().await.unwrap();

    let run = stack.run("busy", &input(&seeded.cutoff), RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    // The run went round the wait loop at least once before it could export.
    let states = entered_states(&stack, "busy").await;
    let waits = states.iter().filter(|s| *s == "WaitForExportSlot").count();
    assert!(waits >= 1, "WaitForExportSlot never entered: {states:?}");
    let starts = states.iter().filter(|s| *s == "StartExport").count();
    assert_eq!(starts, waits + 1, "{states:?}");

    let exported = exported_events(&stack, BUCKET, EXPORTS).await;
    assert_eq!(
        exported.get("expired"),
        Some(&as_events(&seeded.expired, |t| t < cutoff))
    );
    assert_eq!(
        exported.get("2026/11/01/[$LATEST]mixed"),
        Some(&as_events(&seeded.mixed, |t| t < cutoff))
    );
    assert_eq!(exported.get("active"), Some(&as_events(&seeded.active, |t| t < cutoff)));
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await,
        None,
        "expired stream deleted"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "2026/11/01/[$LATEST]mixed").await,
        Some(as_events(&seeded.mixed, |t| t >= cutoff))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "active").await,
        Some(as_events(&seeded.active, |_| true))
    );
    let output = run.output.expect("report");
    assert_eq!(output["totals"]["streams"]["deleted"], 1, "{output}");
    assert_eq!(output["totals"]["streams"]["rebuilt"], 1, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_export_fails_the_run_and_touches_nothing() {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed_group(&stack).await;

    for (name, kind) in [
        ("failed", FaultKind::ExportFailed),
        ("cancelled", FaultKind::ExportCancelled),
    ] {
        stack.emulator.clear_faults().await.unwrap();
        stack
            .emulator
            .inject(Fault::new(FaultService::Logs, "CreateExportTask", kind))
            .await
            .unwrap();

        let run = stack.run(name, &input(&seeded.cutoff), RUN_TIMEOUT).await.unwrap();
        assert_eq!(run.status, "FAILED", "{name}: {run:?}");
        assert_eq!(run.error.as_deref(), Some("ExportFailed"), "{name}: {run:?}");

        assert_all_intact(&stack, &seeded).await;
        assert!(
            object_keys(&stack, BUCKET, CHECKPOINT).await.is_empty(),
            "{name}: checkpoint written"
        );
        assert!(
            object_keys(&stack, BUCKET, "cwl-archiver/app/orders-api/@staging/")
                .await
                .is_empty(),
            "{name}: staging written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plan_mode_changes_nothing_but_the_report() {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed_group(&stack).await;
    let mut plan = input(&seeded.cutoff);
    plan["mode"] = json!("plan");

    let run = stack.run("plan", &plan, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    assert_all_intact(&stack, &seeded).await;
    let keys = object_keys(&stack, BUCKET, "").await;
    assert!(!keys.is_empty(), "no report written");
    for key in &keys {
        assert!(
            key.starts_with("cwl-archiver/app/orders-api/@runs/"),
            "plan mode wrote {key}: {keys:?}"
        );
    }
    let output = run.output.expect("report");
    let report = full_report(&stack, &output).await;
    assert_eq!(output["totals"]["streams"]["would-delete"], 1, "{report}");
    assert_eq!(output["totals"]["streams"]["would-rebuild"], 1, "{report}");
    assert!(output["totals"]["streams"].get("deleted").is_none(), "{output}");
    assert!(output["totals"]["streams"].get("rebuilt").is_none(), "{output}");
    assert_eq!(
        outcome_of(&report, "expired").map(|o| o.0).as_deref(),
        Some("would-delete"),
        "{report}"
    );
    assert_eq!(
        outcome_of(&report, "2026/11/01/[$LATEST]mixed").map(|o| o.0).as_deref(),
        Some("would-rebuild"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_fail_at_validation_naming_the_field() {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed_group(&stack).await;
    let base = json!({"logGroupName": GROUP, "olderThanDays": 7, "bucket": BUCKET, "pollSeconds": 1});
    let with = |field: &str, value: Option<serde_json::Value>| {
        let mut v = base.clone();
        match value {
            Some(value) => v[field] = value,
            None => {
                v.as_object_mut().unwrap().remove(field);
            }
        }
        v
    };
    let cases = [
        ("no-group", with("logGroupName", None), "logGroupName"),
        ("zero-days", with("olderThanDays", Some(json!(0))), "olderThanDays"),
        ("negative-days", with("olderThanDays", Some(json!(-2))), "olderThanDays"),
        ("bad-mode", with("mode", Some(json!("nuke"))), "mode"),
        ("no-bucket", with("bucket", None), "bucket"),
        (
            "unknown-group",
            with("logGroupName", Some(json!("/app/does-not-exist"))),
            "logGroupName",
        ),
        (
            "unknown-bucket",
            with("bucket", Some(json!("no-such-archive-bucket"))),
            "bucket",
        ),
    ];
    for (name, input, field) in cases {
        let run = stack.run(name, &input, RUN_TIMEOUT).await.unwrap();
        assert_eq!(run.status, "FAILED", "{name}: {run:?}");
        assert_eq!(run.error.as_deref(), Some("InvalidInput"), "{name}: {run:?}");
        let cause = run.cause.clone().unwrap_or_default();
        assert!(cause.contains(field), "{name}: cause does not name {field}: {cause}");
    }
    assert_all_intact(&stack, &seeded).await;
    assert_eq!(object_keys(&stack, BUCKET, "").await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_events_older_than_14_days_are_skipped() {
    let stack = Stack::start(1.0).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(20);
    let events = events_between("old", now - 40 * DAY, now - 3 * HOUR, 1000);
    assert!(
        events.iter().any(|(t, _)| *t >= cutoff_ms && *t < now - 14 * DAY),
        "some kept events are older than 14 days"
    );
    stack
        .emulator
        .seed_with_ingestion(GROUP, "old", &events, now - 3 * HOUR)
        .await
        .unwrap();
    create_bucket(&stack, BUCKET).await;

    let run = stack.run("old", &input(&cutoff), RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    assert_eq!(
        stream_events(&stack, GROUP, "old").await,
        Some(as_events(&events, |_| true))
    );
    let exported = exported_events(&stack, BUCKET, EXPORTS).await;
    assert_eq!(exported.get("old"), Some(&as_events(&events, |t| t < cutoff_ms)));
    let output = run.output.expect("report");
    assert_eq!(output["totals"]["streams"]["skipped"], 1, "{output}");
    assert_eq!(output["totals"]["eventsReplayed"], 0, "{output}");
    let report = full_report(&stack, &output).await;
    let (action, reason) = outcome_of(&report, "old").expect("outcome of old");
    assert_eq!(action, "skipped", "{report}");
    assert!(reason.as_deref().unwrap_or_default().contains("14"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recently_written_streams_are_skipped() {
    let stack = Stack::start(1.0).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let events = events_between("live", now - 12 * DAY, now - 4 * HOUR, 600);
    assert!(events.iter().any(|(t, _)| *t < cutoff_ms) && events.iter().any(|(t, _)| *t >= cutoff_ms));
    // Written 40 minutes ago: DescribeLogStreams (30 minutes stale) shows
    // it, inside the 60-minute quiet period.
    stack
        .emulator
        .seed_with_ingestion(GROUP, "live", &events, now - 40 * 60_000)
        .await
        .unwrap();
    // Written just now: DescribeLogStreams does not show its events yet.
    let just_written = events_between("just-written", now - 12 * DAY, now - 4 * HOUR, 300);
    stack.emulator.seed(GROUP, "just-written", &just_written).await.unwrap();
    let expired = events_between("expired", now - 30 * DAY, cutoff_ms - 1, 200);
    stack
        .emulator
        .seed_with_ingestion(GROUP, "expired", &expired, now - 3 * HOUR)
        .await
        .unwrap();
    create_bucket(&stack, BUCKET).await;

    let run = stack.run("live", &input(&cutoff), RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    assert_eq!(
        stream_events(&stack, GROUP, "live").await,
        Some(as_events(&events, |_| true)),
        "live stream untouched"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "just-written").await,
        Some(as_events(&just_written, |_| true)),
        "a stream whose metadata does not show its events yet is untouched"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await,
        None,
        "the quiet expired stream is still deleted"
    );
    let output = run.output.expect("report");
    assert_eq!(output["totals"]["streams"]["skipped"], 1, "{output}");
    assert_eq!(output["totals"]["streams"]["deleted"], 1, "{output}");
    let report = full_report(&stack, &output).await;
    let (action, reason) = outcome_of(&report, "live").expect("outcome of live");
    assert_eq!(action, "skipped", "{report}");
    assert!(
        reason.as_deref().unwrap_or_default().contains("quiet period"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_only_mode_leaves_mixed_streams_whole() {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed_group(&stack).await;
    let cutoff = seeded.cutoff_ms;
    let mut expired_only = input(&seeded.cutoff);
    expired_only["mode"] = json!("expired-only");

    let run = stack.run("expired-only", &expired_only, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}\n{}", stack.emulator.stderr_tail());

    let exported = exported_events(&stack, BUCKET, EXPORTS).await;
    assert_eq!(
        exported.get("expired"),
        Some(&as_events(&seeded.expired, |t| t < cutoff))
    );
    assert_eq!(
        exported.get("2026/11/01/[$LATEST]mixed"),
        Some(&as_events(&seeded.mixed, |t| t < cutoff))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "expired").await,
        None,
        "expired stream deleted"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "2026/11/01/[$LATEST]mixed").await,
        Some(as_events(&seeded.mixed, |_| true)),
        "mixed stream whole"
    );
    assert_eq!(
        stream_events(&stack, GROUP, "fresh").await,
        Some(as_events(&seeded.fresh, |_| true))
    );
    assert_eq!(
        stream_events(&stack, GROUP, "active").await,
        Some(as_events(&seeded.active, |_| true))
    );
    let output = run.output.expect("report");
    assert_eq!(output["totals"]["streams"]["deleted"], 1, "{output}");
    assert!(output["totals"]["streams"].get("rebuilt").is_none(), "{output}");
    assert_eq!(output["totals"]["eventsReplayed"], 0, "{output}");
    let report = full_report(&stack, &output).await;
    assert_eq!(
        outcome_of(&report, "2026/11/01/[$LATEST]mixed").map(|o| o.0).as_deref(),
        Some("skipped"),
        "{report}"
    );
    assert!(
        object_keys(&stack, BUCKET, "cwl-archiver/app/orders-api/@staging/")
            .await
            .is_empty()
    );
}

/// A group with more streams than one invocation lists (one DescribeLogStreams
/// page per invocation here): check-export hands back LISTING and the state
/// machine calls it again at once, without a Wait, until the manifest is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_streams_are_listed_across_invocations() {
    let stack = Stack::start(1.0).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(3);
    let mut expired = Vec::new();
    for i in 0..120 {
        let name = format!("worker-{i:03}");
        let events = events_between(&name, cutoff_ms - 2 * DAY, cutoff_ms - HOUR, 3);
        stack
            .emulator
            .seed_with_ingestion(GROUP, &name, &events, now - 3 * HOUR)
            .await
            .unwrap();
        expired.push((name, events));
    }
    create_bucket(&stack, BUCKET).await;
    let mut input = input(&cutoff);
    input["invocationPages"] = json!(1);
    input["deletesPerSecond"] = json!(1000);
    let run = stack.run("listing", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");

    let states = entered_states(&stack, "listing").await;
    let checks = states.iter().filter(|s| *s == "CheckExport").count();
    let waits = states.iter().filter(|s| *s == "WaitForExport").count();
    assert!(
        checks >= waits + 3,
        "three listing pages, each a CheckExport without a wait: {states:?}"
    );
    let exported = exported_events(&stack, BUCKET, EXPORTS).await;
    for (name, events) in &expired {
        assert_eq!(
            exported.get(name),
            Some(&as_events(events, |_| true)),
            "{name} exported"
        );
        assert_eq!(stream_events(&stack, GROUP, name).await, None, "{name} deleted");
    }
}
