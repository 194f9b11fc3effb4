//! The fault matrix: each case seeds a known group, runs the real state
//! machine on the strict emulator with one fault armed, and ends with the
//! invariant checker reading S3 and CloudWatch Logs directly: nothing lost,
//! nothing duplicated, no staging left. `docs/reliability.md` lists every
//! case of this file (a test below keeps the two in step).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cwl_archiver_e2e::emulator::{Fault, FaultKind, FaultPhase, FaultService};
use cwl_archiver_e2e::invariants::{self, Archive, Written};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::{Execution, Stack};
use serde_json::{Value, json};

const GROUP: &str = "/faults/api";
const BUCKET: &str = "fault-archive";
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// A seeded group: `mixed` (events on both sides of the cutoff, kept ones
/// spanning days so the replay takes several batches) and `expired`.
struct Scenario {
    stack: Stack,
    cutoff_ms: i64,
    cutoff: String,
    written: Written,
}

impl Scenario {
    /// Seeds `mixed` with `mixed_events` events and `expired` with 800.
    async fn seed(mixed_events: usize) -> Scenario {
        let stack = Stack::start(1.0).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let (cutoff_ms, cutoff) = cutoff_days_ago(5);
        let mut written = Written::new();
        written.insert(
            "mixed".into(),
            events_between("mixed", now - 10 * DAY, now - 4 * HOUR, mixed_events),
        );
        written.insert(
            "expired".into(),
            events_between("expired", now - 30 * DAY, cutoff_ms - 1, 800),
        );
        for (stream, events) in &written {
            stack
                .emulator
                .seed_with_ingestion(GROUP, stream, events, now - 3 * HOUR)
                .await
                .unwrap();
        }
        create_bucket(&stack, BUCKET).await;
        Scenario {
            stack,
            cutoff_ms,
            cutoff,
            written,
        }
    }

    fn input(&self, extra: Value) -> Value {
        let mut input = json!({"logGroupName": GROUP, "cutoff": self.cutoff, "bucket": BUCKET, "pollSeconds": 1});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        input
    }

    async fn run(&self, name: &str, extra: Value) -> Execution {
        self.stack.run(name, &self.input(extra), RUN_TIMEOUT).await.unwrap()
    }

    async fn run_to_success(&self, name: &str, extra: Value) {
        let run = self.run(name, extra).await;
        assert_eq!(
            run.status,
            "SUCCEEDED",
            "{name}: {run:?}\n{}",
            self.stack.emulator.stderr_tail()
        );
    }

    fn archive(&self) -> Archive<'static> {
        Archive {
            group: GROUP,
            bucket: BUCKET,
            cutoff_ms: self.cutoff_ms,
        }
    }

    /// The invariants, checked from S3 and CloudWatch.
    async fn assert_invariants(&self, case: &str) {
        let findings = invariants::check(&self.stack, &self.archive(), &self.written).await;
        findings.assert_clean(case);
        let kept = self.written["mixed"]
            .iter()
            .filter(|(t, _)| *t >= self.cutoff_ms)
            .count() as u64;
        assert_eq!(
            findings.in_logs, kept,
            "{case}: only the kept events stay in CloudWatch"
        );
    }

    /// The invariants over the seeded events and every event `writer` got
    /// accepted, of which there must be `at_least`.
    async fn assert_invariants_with(&mut self, case: &str, writer: &Writer, at_least: usize) {
        let accepted = writer.accepted();
        assert!(
            accepted.len() >= at_least,
            "{case}: the writer wrote {}",
            accepted.len()
        );
        self.written
            .entry(writer.stream.to_string())
            .or_default()
            .extend(accepted);
        invariants::check(&self.stack, &self.archive(), &self.written)
            .await
            .assert_clean(case);
    }

    /// Asserts that every emulator fault rule fired, then clears them.
    async fn assert_emulator_faults_fired(&self) {
        let faults = self.stack.emulator.faults().await.unwrap();
        assert!(
            !faults.is_empty() && faults.iter().all(|f| f.injected > 0),
            "a fault never fired: {faults:?}"
        );
        self.stack.emulator.clear_faults().await.unwrap();
    }

    /// Asserts that every interposed crash or hook fired, then clears them.
    fn assert_interposed_fired(&self) {
        let fired = self.stack.interposer.fired();
        assert!(!fired.is_empty() && fired.iter().all(|n| *n > 0), "{fired:?}");
        self.stack.interposer.clear();
    }
}

/// Runs the default scenario with an emulator fault armed for the whole run.
async fn under_emulator_fault(case: &str, fault: Fault) {
    let scenario = Scenario::seed(2500).await;
    scenario.stack.emulator.inject(fault).await.unwrap();
    scenario.run_to_success(case, json!({})).await;
    scenario.assert_emulator_faults_fired().await;
    scenario.assert_invariants(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_throttled_20_percent() {
    let fault = Fault::new(FaultService::Logs, "*", FaultKind::Throttle).rate(0.2, 7);
    under_emulator_fault("logs_throttled_20_percent", fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_unavailable_20_percent() {
    let fault = Fault::new(FaultService::Logs, "*", FaultKind::Unavailable).rate(0.2, 11);
    under_emulator_fault("logs_unavailable_20_percent", fault).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_connections_dropped_10_percent() {
    let fault = Fault::new(FaultService::Logs, "*", FaultKind::Drop).rate(0.1, 13);
    under_emulator_fault("logs_connections_dropped_10_percent", fault).await;
}

/// S3 answers SlowDown to a third of the writes (staging segments,
/// markers, checkpoint, manifest, outcomes). Only writes: the emulator's own
/// Step Functions engine reads the manifest through the same S3, without
/// the retries AWS applies there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_writes_throttled_30_percent() {
    let fault = Fault::new(FaultService::S3, "PutObject", FaultKind::Throttle).rate(0.3, 17);
    under_emulator_fault("s3_writes_throttled_30_percent", fault).await;
}

/// A PutLogEvents that took effect but whose answer was lost: the SDK sends
/// it again and the batch lands twice. Verification sees the duplicates and
/// the replay starts over on a clean stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_batch_applied_twice() {
    let fault = Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop)
        .nth(2)
        .phase(FaultPhase::After);
    under_emulator_fault("replay_batch_applied_twice", fault).await;
}

/// CreateExportTask took effect but its answer was lost; the SDK's second
/// try meets the account's one-task limit. The run adopts its own task
/// instead of exporting the window twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_task_created_twice() {
    let fault = Fault::new(FaultService::Logs, "CreateExportTask", FaultKind::Drop)
        .nth(1)
        .phase(FaultPhase::After);
    under_emulator_fault("export_task_created_twice", fault).await;
}

/// Another export task holds the account's slot for a while: the run waits
/// in Wait states (no Lambda sleeps) and exports once the slot is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_slot_busy_for_many_polls() {
    let scenario = Scenario::seed(2500).await;
    scenario.stack.emulator.occupy_export_slot(8.0).await.unwrap();
    scenario
        .run_to_success("export_slot_busy_for_many_polls", json!({}))
        .await;
    let states = entered_states(&scenario.stack, "export_slot_busy_for_many_polls").await;
    let waits = states.iter().filter(|s| *s == "WaitForExportSlot").count();
    assert!(waits >= 3, "the slot was busy for several polls: {states:?}");
    scenario.assert_invariants("export_slot_busy_for_many_polls").await;
}

/// rebuild-stream dies right after `operation` took effect (the `nth` such
/// call); Step Functions retries the invocation with the same input.
async fn rebuild_crash_retried(case: &str, operation: &str, nth: u64) {
    let scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .interposer
        .crash_after("rebuild-stream", operation, nth, 1);
    scenario.run_to_success(case, json!({})).await;
    scenario.assert_interposed_fired();
    scenario.assert_invariants(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_delete_retried() {
    // The first DeleteLogStream is the expired stream's; the second, the mixed one's.
    rebuild_crash_retried("rebuild_crash_after_delete_retried", "DeleteLogStream", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_create_retried() {
    rebuild_crash_retried("rebuild_crash_after_create_retried", "CreateLogStream", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_mid_replay_retried() {
    rebuild_crash_retried("rebuild_crash_mid_replay_retried", "PutLogEvents", 2).await;
}

/// rebuild-stream dies at the same point on every attempt, so the batch
/// fails and the execution fails with the stream reported; once the fault
/// is gone, a second execution (a re-run) finishes the stream from its
/// staging segments.
async fn rebuild_crash_then_rerun(case: &str, operation: &str, nth: u64) {
    let scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .interposer
        .crash_after("rebuild-stream", operation, nth, 100);
    // One page per invocation: the expired stream's delete ends the first
    // rebuild invocation, so its outcome survives the mixed stream's failure.
    let first = scenario.run(&format!("{case}-1"), json!({"invocationPages": 1})).await;
    assert_eq!(first.status, "FAILED", "{first:?}");
    assert_eq!(first.error.as_deref(), Some("StreamsFailed"), "{first:?}");
    scenario.assert_interposed_fired();
    let run_id = archiver::domain::input::format_run_id(scenario.cutoff_ms);
    let key = format!("cwl-archiver/faults/api/@runs/{run_id}/report.json");
    let body = scenario
        .stack
        .emulator
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(
        outcome_of(&report, "expired").map(|o| o.0).as_deref(),
        Some("deleted"),
        "{report}"
    );
    assert_eq!(
        outcome_of(&report, "mixed").map(|o| o.0).as_deref(),
        Some("failed"),
        "{report}"
    );
    let root = "cwl-archiver/faults/api/@staging/";
    assert!(
        object_keys(&scenario.stack, BUCKET, &format!("{root}mixed:rebuilding"))
            .await
            .len()
            == 1,
        "{case}: the marker stays until the stream is finished"
    );
    scenario.run_to_success(&format!("{case}-2"), json!({})).await;
    scenario.assert_invariants(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_delete_then_rerun() {
    rebuild_crash_then_rerun("rebuild_crash_after_delete_then_rerun", "DeleteLogStream", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_create_then_rerun() {
    rebuild_crash_then_rerun("rebuild_crash_after_create_then_rerun", "CreateLogStream", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_mid_replay_then_rerun() {
    rebuild_crash_then_rerun("rebuild_crash_mid_replay_then_rerun", "PutLogEvents", 2).await;
}

/// scan-stream dies halfway through staging the mixed stream (after its
/// second staging read); the retry stages it again from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_crash_mid_staging_retried() {
    let scenario = Scenario::seed(40_000).await;
    // The first GetLogEvents of a stream classifies it; the next ones stage it.
    scenario
        .stack
        .interposer
        .crash_after("scan-stream", "GetLogEvents", 3, 1);
    scenario
        .run_to_success("scan_crash_mid_staging_retried", json!({}))
        .await;
    scenario.assert_interposed_fired();
    scenario.assert_invariants("scan_crash_mid_staging_retried").await;
}

/// A stream far larger than one invocation's budget (here 2 API pages):
/// scan and replay hand back continuations and the state machine loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_stream_finished_across_invocations() {
    let scenario = Scenario::seed(40_000).await;
    scenario
        .run_to_success("huge_stream_finished_across_invocations", json!({"invocationPages": 2}))
        .await;
    let interposer = &scenario.stack.interposer;
    assert!(interposer.invocations("scan-stream") >= 2, "the scan continued");
    assert!(interposer.invocations("rebuild-stream") >= 3, "the rebuild continued");
    scenario
        .assert_invariants("huge_stream_finished_across_invocations")
        .await;
}

/// Events a writer sends with PutLogEvents, recorded once accepted.
#[derive(Clone)]
struct Writer {
    logs: aws_sdk_cloudwatchlogs::Client,
    stream: &'static str,
    accepted: Arc<Mutex<Vec<(i64, String)>>>,
}

impl Writer {
    fn new(stack: &Stack, stream: &'static str) -> Writer {
        Writer {
            logs: stack.emulator.logs(),
            stream,
            accepted: Arc::default(),
        }
    }

    /// Writes `count` events stamped now; creates the stream first when asked.
    async fn write(&self, label: &str, count: usize, create: bool) {
        if create {
            let _ = self
                .logs
                .create_log_stream()
                .log_group_name(GROUP)
                .log_stream_name(self.stream)
                .send()
                .await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<(i64, String)> = (0..count).map(|i| (now, format!("{label} event {i}"))).collect();
        let input = events.iter().map(|(t, m)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(*t)
                .message(m)
                .build()
                .unwrap()
        });
        let sent = self
            .logs
            .put_log_events()
            .log_group_name(GROUP)
            .log_stream_name(self.stream)
            .set_log_events(Some(input.collect()))
            .send()
            .await;
        if sent.is_ok() {
            self.accepted.lock().unwrap().extend(events);
        }
    }

    fn accepted(&self) -> Vec<(i64, String)> {
        self.accepted.lock().unwrap().clone()
    }
}

/// A writer appends to the mixed stream right after scan-stream staged it:
/// rebuild-stream stages what arrived since the scan before the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_appends_after_scan() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    scenario
        .stack
        .interposer
        .hook_after("scan-stream", "PutObject", 1, move || {
            let w = w.clone();
            async move { w.write("late", 25, false).await }
        });
    scenario.run_to_success("writer_appends_after_scan", json!({})).await;
    scenario.assert_interposed_fired();
    // The window that remains: from the catch-up read's answer to the
    // DeleteLogStream's answer (the mixed stream's delete is the second).
    let timeline = scenario.stack.interposer.timeline();
    let rebuild: Vec<_> = timeline.iter().filter(|(_, f, _)| f == "rebuild-stream").collect();
    let delete = rebuild
        .iter()
        .filter(|(_, _, op)| op == "DeleteLogStream")
        .nth(1)
        .unwrap();
    let read = rebuild
        .iter()
        .rev()
        .find(|(at, _, op)| op == "GetLogEvents" && at < &delete.0)
        .unwrap();
    eprintln!(
        "catch-up read to delete (the window a writer can still lose events in): {:?}",
        delete.0 - read.0
    );
    scenario
        .assert_invariants_with("writer_appends_after_scan", &writer, 25)
        .await;
}

/// The writer recreates the stream right after rebuild-stream deleted it and
/// writes into it: the rebuild keeps that stream and replays beside its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_recreates_stream_after_delete() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    // The first DeleteLogStream is the expired stream's; the second, the mixed one's.
    scenario
        .stack
        .interposer
        .hook_after("rebuild-stream", "DeleteLogStream", 2, move || {
            let w = w.clone();
            async move { w.write("recreated", 30, true).await }
        });
    scenario
        .run_to_success("writer_recreates_stream_after_delete", json!({}))
        .await;
    scenario.assert_interposed_fired();
    scenario
        .assert_invariants_with("writer_recreates_stream_after_delete", &writer, 30)
        .await;
}

/// A writer keeps appending to a stream during the whole run: with the
/// default quiet period the stream is skipped as active and every event
/// the writer got accepted is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_active_during_run() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let background = tokio::spawn(async move {
        let mut round = 0;
        while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
            w.write(&format!("live {round}"), 5, false).await;
            round += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = scenario.run("writer_active_during_run", json!({})).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    background.await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let report = full_report(&scenario.stack, run.output.as_ref().unwrap()).await;
    assert_eq!(outcome_of(&report, "mixed").map(|o| o.0), Some("skipped".to_string()));
    scenario
        .assert_invariants_with("writer_active_during_run", &writer, 10)
        .await;
}

/// `docs/reliability.md` has a row for every case in this file.
#[test]
fn reliability_doc_lists_every_case() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/reliability.md")).expect("docs/reliability.md");
    let source = include_str!("faults_e2e.rs");
    let mut lines = source.lines();
    let mut cases = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with("#[tokio::test") {
            let name = lines
                .find_map(|l| l.strip_prefix("async fn "))
                .and_then(|l| l.split('(').next());
            cases.extend(name);
        }
    }
    assert!(cases.len() >= 15, "{cases:?}");
    let missing: Vec<_> = cases.iter().filter(|c| !doc.contains(&format!("`{c}`"))).collect();
    assert!(missing.is_empty(), "docs/reliability.md lacks {missing:?}");
}
