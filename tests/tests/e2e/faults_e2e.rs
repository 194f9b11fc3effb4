//! The fault matrix: each case seeds a known group, runs the real state
//! machine on the strict emulator (quotas on, stream metadata 30 minutes
//! stale) with one fault, writer or concurrent run armed, and ends with the
//! invariant checker reading S3 and CloudWatch Logs directly: nothing lost,
//! nothing duplicated (in CloudWatch Logs or across the archive), no staging
//! left. `docs/reliability.md` lists every case of this file (a test below
//! keeps the two in step).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cwl_archiver_e2e::emulator::{Fault, FaultKind, FaultPhase, FaultService};
use cwl_archiver_e2e::iam::Target;
use cwl_archiver_e2e::invariants::{self, Archive, Written};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::{Execution, Stack};
use serde_json::{Value, json};

const GROUP: &str = "/faults/api";
const BUCKET: &str = "fault-archive";
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Expired streams of the default scenario.
const EXPIRED: usize = 12;
/// Streams per Map item: the default scenario makes five items.
const PER_BATCH: i64 = 4;

/// A seeded group: `mixed` (events on both sides of the cutoff, kept ones
/// spanning days so the replay takes several batches), twelve expired
/// streams, three small mixed ones and two fresh ones, in five Map items.
struct Scenario {
    stack: Stack,
    cutoff_ms: i64,
    cutoff: String,
    written: Written,
}

impl Scenario {
    /// Seeds the group with `mixed_events` events in `mixed`.
    async fn seed(mixed_events: usize) -> Scenario {
        // DescribeLogStreams lags what the streams hold by 30 minutes, as
        // on AWS (the stack's default).
        let stack = Stack::start(1.0).await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let (cutoff_ms, cutoff) = cutoff_days_ago(5);
        let mut scenario = Scenario {
            stack,
            cutoff_ms,
            cutoff,
            written: Written::new(),
        };
        let recent = now - 3 * HOUR;
        scenario
            .seed_stream(
                "mixed",
                events_between("mixed", now - 10 * DAY, now - 4 * HOUR, mixed_events),
                recent,
            )
            .await;
        for i in 0..EXPIRED {
            let name = format!("expired-{i:02}");
            let events = events_between(&name, now - 30 * DAY, cutoff_ms - 1, 60);
            // Ingested long before the run, as old events are.
            scenario.seed_stream(&name, events, cutoff_ms - DAY).await;
        }
        for i in 0..3 {
            let name = format!("small-{i}");
            let events = events_between(&name, now - 8 * DAY, now - 4 * HOUR, 40);
            scenario.seed_stream(&name, events, recent).await;
        }
        for i in 0..2 {
            let name = format!("fresh-{i}");
            let events = events_between(&name, cutoff_ms + HOUR, now - 4 * HOUR, 30);
            scenario.seed_stream(&name, events, recent).await;
        }
        create_bucket(&scenario.stack, BUCKET).await;
        scenario
    }

    async fn seed_stream(&mut self, stream: &str, events: Vec<(i64, String)>, ingested: i64) {
        self.stack
            .emulator
            .seed_with_ingestion(GROUP, stream, &events, ingested)
            .await
            .unwrap();
        self.written.entry(stream.to_string()).or_default().extend(events);
    }

    fn input(&self, extra: Value) -> Value {
        let mut input = json!({"logGroupName": GROUP, "cutoff": self.cutoff, "bucket": BUCKET,
            "pollSeconds": 1, "streamsPerBatch": PER_BATCH});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        input
    }

    async fn run(&self, name: &str, extra: Value) -> Execution {
        self.stack.run(name, &self.input(extra), RUN_TIMEOUT).await.unwrap()
    }

    async fn run_to_success(&self, name: &str, extra: Value) -> Execution {
        let run = self.run(name, extra).await;
        assert_eq!(
            run.status,
            "SUCCEEDED",
            "{name}: {run:?}\n{}",
            self.stack.emulator.stderr_tail()
        );
        run
    }

    fn archive(&self, cutoff_ms: i64) -> Archive<'static> {
        Archive {
            group: GROUP,
            bucket: BUCKET,
            cutoff_ms,
        }
    }

    /// The invariants at the scenario's cutoff, checked from S3 and CloudWatch.
    async fn assert_invariants(&self, case: &str) {
        self.assert_invariants_at(case, self.cutoff_ms).await;
    }

    async fn assert_invariants_at(&self, case: &str, cutoff_ms: i64) {
        let findings = invariants::check(&self.stack, &self.archive(cutoff_ms), &self.written).await;
        findings.assert_clean(case);
        let kept = self.written.values().flatten().filter(|(t, _)| *t >= cutoff_ms).count() as u64;
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
        invariants::check(&self.stack, &self.archive(self.cutoff_ms), &self.written)
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

    async fn report(&self, run: &Execution) -> Value {
        full_report(&self.stack, run.output.as_ref().expect("output")).await
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
/// markers, lease, checkpoint, manifest, plans, progress, outcomes). Only
/// writes: the emulator's own Step Functions engine reads the manifest
/// through the same S3, without the retries AWS applies there.
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

/// The export misses everything ingested in the 12 hours before it (AWS:
/// data can take that long to become exportable): the old events of the
/// mixed and small streams, ingested 3 hours before the run, are read back
/// and archived as supplements before their streams are rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_misses_recently_ingested_events() {
    let scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .emulator
        .configure(json!({"exportAvailabilityLagSeconds": 12 * 3600}))
        .await
        .unwrap();
    let run = scenario
        .run_to_success("export_misses_recently_ingested_events", json!({}))
        .await;
    let output = run.output.as_ref().unwrap();
    assert!(
        output["totals"]["eventsSupplemented"].as_u64().unwrap_or(0) > 1000,
        "{output}"
    );
    scenario
        .assert_invariants("export_misses_recently_ingested_events")
        .await;
}

/// rebuild-stream dies right after `operation` on the mixed stream took
/// effect (the `nth` such call); Step Functions retries the invocation with
/// the same input.
async fn rebuild_crash_retried(case: &str, operation: &str, nth: u64) {
    let scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .interposer
        .crash_after_on("rebuild-stream", operation, "mixed", nth, 1);
    scenario.run_to_success(case, json!({})).await;
    scenario.assert_interposed_fired();
    scenario.assert_invariants(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_delete_retried() {
    rebuild_crash_retried("rebuild_crash_after_delete_retried", "DeleteLogStream", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_create_retried() {
    rebuild_crash_retried("rebuild_crash_after_create_retried", "CreateLogStream", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_mid_replay_retried() {
    rebuild_crash_retried("rebuild_crash_mid_replay_retried", "PutLogEvents", 2).await;
}

/// The marker keys of the group's staging area.
async fn markers(scenario: &Scenario) -> Vec<String> {
    object_keys(&scenario.stack, BUCKET, "cwl-archiver/faults/api/@staging/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(":rebuilding"))
        .collect()
}

/// rebuild-stream dies at points of the mixed stream's rebuild (operation,
/// nth call, times) on every attempt, so its Map item fails and the
/// execution fails with the stream reported; once the fault is gone, a
/// second execution (a re-run, same cutoff) finishes the stream from the
/// first run's staging.
async fn rebuild_crash_then_rerun(case: &str, crashes: &[(&str, u64, u64)]) {
    let scenario = Scenario::seed(2500).await;
    for (operation, nth, times) in crashes {
        scenario
            .stack
            .interposer
            .crash_after_on("rebuild-stream", operation, "mixed", *nth, *times);
    }
    let first_name = format!("{case}-1");
    let first = scenario.run(&first_name, json!({})).await;
    assert_eq!(first.status, "FAILED", "{first:?}");
    assert_eq!(first.error.as_deref(), Some("StreamsFailed"), "{first:?}");
    scenario.assert_interposed_fired();
    let key = format!("cwl-archiver/faults/api/@runs/{first_name}/report.json");
    let report = full_report(&scenario.stack, &json!({"reportBucket": BUCKET, "reportKey": key})).await;
    assert_eq!(
        outcome_of(&report, "mixed").map(|o| o.0).as_deref(),
        Some("failed"),
        "{report}"
    );
    let left = markers(&scenario).await;
    assert!(
        !left.is_empty() && left.iter().all(|k| k.contains(&format!("/@staging/{first_name}/"))),
        "{case}: the markers stay until their streams are finished: {left:?}"
    );
    let second = scenario.run_to_success(&format!("{case}-2"), json!({})).await;
    let second_report = scenario.report(&second).await;
    assert!(
        second_report["totals"]["streams"]["finished"].as_u64().unwrap_or(0) >= 1,
        "{second_report}"
    );
    scenario.assert_invariants(case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_delete_then_rerun() {
    // A retry never deletes the gone stream again: it keeps dying at the create.
    let crashes = [("DeleteLogStream", 1, 1), ("CreateLogStream", 1, 100)];
    rebuild_crash_then_rerun("rebuild_crash_after_delete_then_rerun", &crashes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_create_then_rerun() {
    rebuild_crash_then_rerun("rebuild_crash_after_create_then_rerun", &[("CreateLogStream", 1, 100)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_mid_replay_then_rerun() {
    rebuild_crash_then_rerun("rebuild_crash_mid_replay_then_rerun", &[("PutLogEvents", 2, 100)]).await;
}

/// The first run fails with a rebuild interrupted after its delete; the
/// re-run a day later uses a later cutoff. It finishes the stream under the
/// first run's cutoff (not its own), and the run after it archives the
/// events between the two cutoffs (they reached CloudWatch Logs again too
/// late for the second export, so they are proven and supplemented).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerun_with_a_later_cutoff_after_a_failed_run() {
    let case = "rerun_with_a_later_cutoff_after_a_failed_run";
    let mut scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .interposer
        .crash_after_on("rebuild-stream", "CreateLogStream", "mixed", 1, 100);
    let first = scenario.run(&format!("{case}-1"), json!({})).await;
    assert_eq!(first.status, "FAILED", "{first:?}");
    scenario.assert_interposed_fired();
    assert!(!markers(&scenario).await.is_empty());

    let (later_ms, later) = cutoff_days_ago(4);
    let second = scenario
        .run_to_success(&format!("{case}-2"), json!({"cutoff": later}))
        .await;
    let report = scenario.report(&second).await;
    assert!(
        report["totals"]["streams"]["finished"].as_u64().unwrap_or(0) >= 1,
        "{report}"
    );
    assert!(markers(&scenario).await.is_empty(), "finished");
    // Between the runs nothing is lost, whatever the cutoff.
    // The next run archives what lies between the two cutoffs. It comes
    // hours later on AWS: by then DescribeLogStreams shows the finished
    // stream's events (here the metadata lag is switched off), and its quiet
    // period is off because the finishing rebuild just wrote them.
    scenario.stack.emulator.set_metadata_lag(None).await.unwrap();
    scenario.cutoff = later.clone();
    scenario
        .run_to_success(&format!("{case}-3"), json!({"cutoff": later, "quietMinutes": 0}))
        .await;
    scenario.cutoff_ms = later_ms;
    scenario.assert_invariants(case).await;
}

/// Two executions for the group started at once with the same cutoff (a
/// console re-run during a scheduled one): one takes the group's lease, the
/// other ends as GROUP_BUSY having touched nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_executions_started_at_once() {
    two_executions_at_once("two_executions_started_at_once", None).await;
}

/// The same with different cutoffs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_executions_with_different_cutoffs_at_once() {
    let (_, later) = cutoff_days_ago(4);
    two_executions_at_once("two_executions_with_different_cutoffs_at_once", Some(later)).await;
}

async fn two_executions_at_once(case: &str, second_cutoff: Option<String>) {
    let scenario = Scenario::seed(2500).await;
    let second_input = match &second_cutoff {
        Some(cutoff) => json!({"cutoff": cutoff}),
        None => json!({}),
    };
    let (name_a, name_b) = (format!("{case}-a"), format!("{case}-b"));
    let (a, b) = tokio::join!(scenario.run(&name_a, json!({})), scenario.run(&name_b, second_input));
    for run in [&a, &b] {
        assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    }
    let busy: Vec<&Execution> = [&a, &b]
        .into_iter()
        .filter(|r| r.output.as_ref().is_some_and(|o| o["status"] == "GROUP_BUSY"))
        .collect();
    assert_eq!(busy.len(), 1, "exactly one run ends busy: {a:?} {b:?}");
    let winner = if busy[0].output == a.output { &b } else { &a };
    let cutoff_ms = chrono::DateTime::parse_from_rfc3339(winner.output.as_ref().unwrap()["cutoff"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    // One export task, one set of archived events.
    scenario.assert_invariants_at(case, cutoff_ms).await;
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
        let now = chrono::Utc::now().timestamp_millis();
        self.write_at(label, count, create, now).await;
    }

    /// Writes `count` events stamped `at`.
    async fn write_at(&self, label: &str, count: usize, create: bool, at: i64) {
        if create {
            let _ = self
                .logs
                .create_log_stream()
                .log_group_name(GROUP)
                .log_stream_name(self.stream)
                .send()
                .await;
        }
        let events: Vec<(i64, String)> = (0..count).map(|i| (at, format!("{label} event {i}"))).collect();
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

/// Every DeleteLogStream rebuild-stream sent directly followed, in the same
/// invocation, a GetLogEvents of the same stream: the window in which a
/// writer's appended event can be lost is that one round trip. Returns the
/// longest interval from the read's answer to the delete's answer.
fn assert_every_delete_follows_a_read_of_its_stream(scenario: &Scenario) -> Duration {
    let timeline = scenario.stack.interposer.timeline();
    let mut longest = Duration::ZERO;
    let mut deletes = 0;
    for (at, call) in timeline.iter().enumerate() {
        if call.function != "rebuild-stream" || call.operation != "DeleteLogStream" {
            continue;
        }
        deletes += 1;
        let previous = timeline[..at]
            .iter()
            .rev()
            .find(|c| c.invocation == call.invocation)
            .expect("a call before the delete");
        assert_eq!(
            (previous.operation.as_str(), &previous.target),
            ("GetLogEvents", &call.target),
            "the delete of {:?} did not directly follow a read of it",
            call.target
        );
        assert!(matches!(call.target, Target::Stream(..)));
        longest = longest.max(call.answered - previous.answered);
    }
    assert!(deletes > 0, "no delete");
    longest
}

/// Every delete follows a read of its stream directly, and the window is
/// one API round trip (asserted structurally, measured and printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_delete_follows_the_confirmation_read_within_one_round_trip() {
    let scenario = Scenario::seed(2500).await;
    scenario
        .run_to_success(
            "the_delete_follows_the_confirmation_read_within_one_round_trip",
            json!({}),
        )
        .await;
    let longest = assert_every_delete_follows_a_read_of_its_stream(&scenario);
    eprintln!("longest interval from the confirmation read's answer to the delete's answer: {longest:?}");
    scenario
        .assert_invariants("the_delete_follows_the_confirmation_read_within_one_round_trip")
        .await;
}

/// A writer appends to the mixed stream right after scan-stream staged it:
/// the confirmation read before the delete stages what arrived.
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
    let longest = assert_every_delete_follows_a_read_of_its_stream(&scenario);
    eprintln!("confirmation read to delete (the window a writer can still lose events in): {longest:?}");
    scenario
        .assert_invariants_with("writer_appends_after_scan", &writer, 25)
        .await;
}

/// After the scan, a writer inserts events stamped between the cutoff and
/// the scan's position (behind it) and events older than the cutoff: the
/// confirmation read stages the first and archives the second (a
/// supplement) before the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_inserts_past_events_after_the_scan() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    let (cutoff, now) = (scenario.cutoff_ms, chrono::Utc::now().timestamp_millis());
    scenario
        .stack
        .interposer
        .hook_after("scan-stream", "PutObject", 1, move || {
            let w = w.clone();
            async move {
                w.write_at("behind the scan", 5, false, cutoff + HOUR).await;
                w.write_at(
                    "older than the cutoff",
                    5,
                    false,
                    (cutoff - 2 * DAY).max(now - 13 * DAY),
                )
                .await;
            }
        });
    let run = scenario
        .run_to_success("writer_inserts_past_events_after_the_scan", json!({}))
        .await;
    scenario.assert_interposed_fired();
    assert!(
        run.output.as_ref().unwrap()["totals"]["eventsSupplemented"]
            .as_u64()
            .unwrap_or(0)
            >= 5,
        "{run:?}"
    );
    scenario
        .assert_invariants_with("writer_inserts_past_events_after_the_scan", &writer, 10)
        .await;
}

/// After the scan classified an expired stream, its writer wakes up: the
/// read right before the delete finds the new events and leaves the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_back_on_an_expired_stream_after_the_scan() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "expired-03");
    let w = writer.clone();
    // Right after the first Map item (expired-00 to -03) saved its plans.
    scenario
        .stack
        .interposer
        .hook_after_on("scan-stream", "PutObject", "/plans/000000.json", 1, move || {
            let w = w.clone();
            async move { w.write("back", 10, false).await }
        });
    let run = scenario
        .run_to_success("writer_back_on_an_expired_stream_after_the_scan", json!({}))
        .await;
    scenario.assert_interposed_fired();
    let report = scenario.report(&run).await;
    assert_eq!(
        outcome_of(&report, "expired-03").map(|o| o.0).as_deref(),
        Some("skipped"),
        "{report}"
    );
    scenario
        .assert_invariants_with("writer_back_on_an_expired_stream_after_the_scan", &writer, 10)
        .await;
}

/// rebuild-stream dies right after deleting an expired stream; before the
/// retry, the stream's writer recreates it and writes. The retry sees a
/// stream created after its delete began and leaves it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_recreates_an_expired_stream_before_a_retried_delete() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "expired-00");
    let w = writer.clone();
    let interposer = &scenario.stack.interposer;
    interposer.hook_after_on("rebuild-stream", "DeleteLogStream", "expired-00", 1, move || {
        let w = w.clone();
        async move { w.write("recreated", 8, true).await }
    });
    interposer.crash_after_on("rebuild-stream", "DeleteLogStream", "expired-00", 1, 1);
    scenario
        .run_to_success("writer_recreates_an_expired_stream_before_a_retried_delete", json!({}))
        .await;
    scenario.assert_interposed_fired();
    scenario
        .assert_invariants_with("writer_recreates_an_expired_stream_before_a_retried_delete", &writer, 8)
        .await;
}

/// The writer recreates the mixed stream right after rebuild-stream deleted
/// it and writes into it: the rebuild keeps that stream and replays beside
/// its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_recreates_stream_after_delete() {
    let mut scenario = Scenario::seed(2500).await;
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    scenario
        .stack
        .interposer
        .hook_after_on("rebuild-stream", "DeleteLogStream", "mixed", 1, move || {
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

/// A replay batch lands twice and, right after it, a writer adds events to
/// the rebuilt stream: the replay restart stages the writer's events before
/// it deletes the stream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_restart_keeps_a_writers_events() {
    let mut scenario = Scenario::seed(2500).await;
    scenario
        .stack
        .emulator
        .inject(
            Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop)
                .nth(1)
                .phase(FaultPhase::After),
        )
        .await
        .unwrap();
    let writer = Writer::new(&scenario.stack, "mixed");
    let w = writer.clone();
    scenario
        .stack
        .interposer
        .hook_after_on("rebuild-stream", "PutLogEvents", "mixed", 1, move || {
            let w = w.clone();
            async move { w.write("during the replay", 12, false).await }
        });
    // One Map item at a time, in name order: the first replay batch of the
    // run (the one the emulator applies twice) is the mixed stream's.
    scenario
        .run_to_success(
            "replay_restart_keeps_a_writers_events",
            json!({"mapConcurrency": 1, "streamsPerBatch": 20}),
        )
        .await;
    scenario.assert_emulator_faults_fired().await;
    scenario.assert_interposed_fired();
    scenario
        .assert_invariants_with("replay_restart_keeps_a_writers_events", &writer, 12)
        .await;
}

/// A writer keeps appending to a stream during the whole run: with the
/// default quiet period the stream is skipped as active and every event
/// the writer got accepted is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_active_during_run() {
    let mut scenario = Scenario::seed(2500).await;
    // A writer that has been writing for longer than DescribeLogStreams'
    // lag: its recent ingestion shows in the metadata. (With the stack's
    // 30-minute lag the writer here, minutes old, is invisible, the stream
    // looks quiet and whether the rebuild's read-and-delete falls between
    // two of its writes is a matter of timing: `writer_appends_after_scan`
    // and the other writer cases run with the stale metadata.)
    scenario.stack.emulator.set_metadata_lag(None).await.unwrap();
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
    // The run must start after the writer's first accepted event, or the
    // stream is legitimately quiet when described (a loaded CI machine can
    // take longer than any fixed sleep to answer the first PutLogEvents).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while writer.accepted().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer got no event accepted in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = scenario.run("writer_active_during_run", json!({})).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    background.await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let report = full_report(&scenario.stack, run.output.as_ref().unwrap()).await;
    let (action, reason) = outcome_of(&report, "mixed").expect("an outcome for the written stream");
    assert_eq!(action, "skipped", "{reason:?}");
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("quiet period")),
        "{reason:?}"
    );
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
    assert!(cases.len() >= 25, "{cases:?}");
    let missing: Vec<_> = cases.iter().filter(|c| !doc.contains(&format!("`{c}`"))).collect();
    assert!(missing.is_empty(), "docs/reliability.md lacks {missing:?}");
}
