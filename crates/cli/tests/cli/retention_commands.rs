//! Retention mode and the retention guard end to end: the real state
//! machine on the strict emulator (which refuses invalid retention values,
//! hides events past a group's retention from reads and exports, and keeps
//! them stored until the expiry delay passes), checked by reading S3 and the
//! emulator's own store, and `cwl-archiver retention` putting the previous
//! retention back.

use std::time::Duration;

use crate::common::{archive_bucket, assert_ok, cli, stderr, stdout};
use cwl_archiver_e2e::invariants::{self, Archive, Written};
use cwl_archiver_e2e::scenario::{DAY, HOUR, cutoff_days_ago, events_between};
use cwl_archiver_e2e::stack::Stack;
use serde_json::json;

const BUCKET: &str = "retention-archive";
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

async fn retention_of(stack: &Stack, group: &str) -> Option<i32> {
    let out = stack
        .emulator
        .logs()
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap();
    out.log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .and_then(|g| g.retention_in_days())
}

async fn set_retention(stack: &Stack, group: &str, days: i32) {
    stack
        .emulator
        .logs()
        .put_retention_policy()
        .log_group_name(group)
        .retention_in_days(days)
        .send()
        .await
        .unwrap();
}

/// Data from 399 to 20 days old (inside the group's 400-day retention),
/// mixed streams still being written, a 30-day cutoff in retention mode:
/// nothing is replayed, the group's
/// retention becomes 60 days, every event older than the cutoff is in the
/// archive, every event older than the retention is gone from reads, and
/// the previous retention is put back by the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_mode_archives_at_thirty_days_without_replaying() {
    let stack = Stack::start(1.0).await.unwrap();
    let group = "/retention/payments";
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(30);
    let mut written = Written::new();
    let plan: [(&str, i64, i64, usize); 4] = [
        ("old", now - 399 * DAY, now - 200 * DAY, 150),
        ("web-1", now - 399 * DAY, now - 4 * HOUR, 900),
        ("web-2", now - 120 * DAY, now - 4 * HOUR, 600),
        ("recent", now - 20 * DAY, now - 4 * HOUR, 200),
    ];
    for (stream, from, to, count) in plan {
        let events = events_between(stream, from, to, count);
        stack
            .emulator
            .seed_with_ingestion(group, stream, &events, now - 3 * HOUR)
            .await
            .unwrap();
        written.insert(stream.to_string(), events);
    }
    archive_bucket(&stack, BUCKET).await;
    set_retention(&stack, group, 400).await;
    stack.emulator.reset_calls().await.unwrap();

    let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1,
        "mode": "retention"});
    let run = stack.run("retention-30d", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let output = run.output.unwrap();
    assert_eq!(output["totals"]["streams"]["retained"], 2, "{output}");
    assert_eq!(output["totals"]["streams"]["deleted"], 1, "{output}");
    assert_eq!(output["totals"]["eventsReplayed"], 0, "{output}");
    let calls = stack.emulator.calls().await.unwrap();
    assert_eq!(calls.get("logs.PutLogEvents"), None, "nothing re-ingested: {calls:?}");
    // 30 days + 14 of slack: the smallest valid retention is 60.
    assert_eq!(retention_of(&stack, group).await, Some(60));

    // Every event older than the cutoff is archived once, every kept event
    // is in CloudWatch Logs (the checker counts what the emulator stores,
    // past retention or not).
    let archive = Archive {
        group,
        bucket: BUCKET,
        cutoff_ms,
    };
    let findings = invariants::check(&stack, &archive, &written).await;
    assert!(
        findings.lost.is_empty()
            && findings.not_exported.is_empty()
            && findings.duplicated_in_export.is_empty()
            && findings.duplicated_in_logs.is_empty(),
        "{findings:#?}"
    );
    // Reads no longer return events past the 60-day retention.
    let page = stack
        .emulator
        .logs()
        .get_log_events()
        .log_group_name(group)
        .log_stream_name("web-1")
        .start_from_head(true)
        .limit(1)
        .send()
        .await
        .unwrap();
    let oldest = page.events()[0].timestamp().unwrap();
    assert!(oldest >= now - 60 * DAY, "{oldest}");

    // The CLI shows and puts back the previous retention (400 days keeps
    // far more than the archive needs).
    let shown = cli(&stack, &["retention", "show", "--group", group, "--bucket", BUCKET]).await;
    assert_ok(&shown);
    assert!(
        stdout(&shown).contains("400 days before the archiver"),
        "{}",
        stdout(&shown)
    );
    let restored = cli(&stack, &["retention", "restore", "--group", group, "--bucket", BUCKET]).await;
    assert_ok(&restored);
    assert!(stdout(&restored).contains("back to 400 days"), "{}", stdout(&restored));
    assert_eq!(retention_of(&stack, group).await, Some(400));
}

/// A group keeps events 3 days; the first run's export fails. The guard
/// has already lifted the retention (nothing is exported yet, so no event
/// may expire) and keeps it lifted through the failure; restoring the old
/// value is refused while it would expire unexported events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guard_keeps_unexported_events_through_a_failed_export() {
    let stack = Stack::start(1.0).await.unwrap();
    let group = "/retention/audit";
    let now = chrono::Utc::now().timestamp_millis();
    let events = events_between("audit", now - 2 * DAY, now - 4 * HOUR, 300);
    stack
        .emulator
        .seed_with_ingestion(group, "audit", &events, now - 3 * HOUR)
        .await
        .unwrap();
    archive_bucket(&stack, BUCKET).await;
    set_retention(&stack, group, 3).await;
    stack
        .emulator
        .inject(cwl_archiver_e2e::emulator::Fault::new(
            cwl_archiver_e2e::emulator::FaultService::Logs,
            "CreateExportTask",
            cwl_archiver_e2e::emulator::FaultKind::ExportFailed,
        ))
        .await
        .unwrap();
    let (_, cutoff) = cutoff_days_ago(1);
    let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1});
    let run = stack.run("guarded", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.error.as_deref(), Some("ExportFailed"), "{run:?}");
    assert_eq!(
        retention_of(&stack, group).await,
        None,
        "lifted while nothing is exported"
    );
    let stored = stack.emulator.stored_stream_events(group, "audit").await.unwrap();
    assert_eq!(stored.len(), 300, "nothing deleted");

    let refused = cli(&stack, &["retention", "restore", "--group", group, "--bucket", BUCKET]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("3 days"), "{}", stderr(&refused));
    assert_eq!(retention_of(&stack, group).await, None);
}

/// A retention shorter than the cutoff, with `retentionConflict: refuse`:
/// the run fails naming the group and touches nothing; by default the run
/// raises it and says so in its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shorter_retention_is_refused_or_raised_and_reported() {
    let stack = Stack::start(1.0).await.unwrap();
    let group = "/retention/short";
    let now = chrono::Utc::now().timestamp_millis();
    let events = events_between("web", now - 40 * DAY, now - 4 * HOUR, 400);
    stack
        .emulator
        .seed_with_ingestion(group, "web", &events, now - 3 * HOUR)
        .await
        .unwrap();
    archive_bucket(&stack, BUCKET).await;
    set_retention(&stack, group, 7).await;
    let (_, cutoff) = cutoff_days_ago(20);
    let refuse = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1,
        "retentionConflict": "refuse"});
    let run = stack.run("refused", &refuse, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.error.as_deref(), Some("RetentionConflict"), "{run:?}");
    assert!(run.cause.unwrap_or_default().contains(group));
    assert_eq!(retention_of(&stack, group).await, Some(7), "untouched");
    let raise = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1});
    let run = stack.run("raised", &raise, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let output = run.output.unwrap();
    let changes = output["retention"]["changes"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        changes.first().map(|c| c["reason"].clone()),
        Some(json!("guard")),
        "{output}"
    );
    assert_eq!(output["retention"]["atStart"], 7, "{output}");
    // After the export the raise comes down to what the archive needs:
    // 20 days + 14 of slack, as the smallest valid value.
    assert_eq!(retention_of(&stack, group).await, Some(60));
}
