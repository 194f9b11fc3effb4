//! The safety protocol against the in-memory stores: whole executions run
//! in process (`archiver::workflow::local`), with faults, writers, late
//! events, stale stream metadata and concurrent runs, each ending with a
//! checker that reads the stores directly (never the run's report) and
//! parses the archive itself:
//!
//! 1. every event older than the cutoff is in the archive, exactly once;
//! 2. every event is still in CloudWatch Logs, or older than the cutoff and
//!    in the archive;
//! 3. no event is in CloudWatch Logs more often than it was written;
//! 4. no staging is left behind.
//!
//! `docs/reliability.md` names, for each mechanism, the mutation that
//! disables it and the test here that then fails.

use std::collections::BTreeMap;
use std::io::Read;

use archiver::LogEvent;
use archiver::domain::layout::GroupLayout;
use archiver::store::memory::{ExportPlan, FaultKind, MemoryAws};
use archiver::workflow::local::{Execution, run_execution, run_map_item};
use archiver::workflow::{
    BatchRequest, BatchSummary, Clients, ExportState, ManifestBatch, RebuildRequest, RunState, ScanResult,
    StartRequest, check_export, rebuild_batch, report_run, scan_batch, start_export,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

const GROUP: &str = "/safety/api";
const BUCKET: &str = "safety-archive";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// The clock of every scenario: runs start here (on the hour, so cutoffs
/// from `olderThanDays` are exact).
const NOW: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;

/// A group, the events written to it, and the stores.
struct World {
    aws: MemoryAws,
    written: BTreeMap<String, Vec<(i64, String)>>,
    runs: u32,
}

impl World {
    fn new() -> World {
        let aws = MemoryAws::new();
        aws.control().set_now_ms(NOW);
        aws.archive.create_bucket(BUCKET);
        aws.logs.create_group_with(GROUP, NOW - 400 * DAY, None);
        World {
            aws,
            written: BTreeMap::new(),
            runs: 0,
        }
    }

    /// Writes `count` events spread over `[from, to]`, ingested at `ingested`.
    fn write(&mut self, stream: &str, from: i64, to: i64, count: i64, ingested: i64) {
        let step = if count > 1 { (to - from) / (count - 1) } else { 0 };
        let n = self.written.get(stream).map_or(0, Vec::len);
        let events: Vec<(i64, String)> = (0..count)
            .map(|i| (from + i * step, format!("{stream} event {}", n as i64 + i)))
            .collect();
        self.write_events(stream, &events, ingested);
    }

    fn write_events(&mut self, stream: &str, events: &[(i64, String)], ingested: i64) {
        self.aws.logs.seed(
            GROUP,
            stream,
            events.iter().map(|(t, m)| LogEvent::new(*t, m.clone())),
            Some(ingested),
        );
        self.written
            .entry(stream.to_string())
            .or_default()
            .extend(events.iter().cloned());
    }

    /// A realistic group: expired, mixed, fresh and empty streams, written
    /// long before the run (ingested as they happened).
    fn seed_group(&mut self, expired: usize, mixed: usize, fresh: usize, cutoff: i64) {
        for i in 0..expired {
            self.write(
                &format!("expired-{i:02}"),
                cutoff - 20 * DAY,
                cutoff - 2 * DAY,
                30,
                cutoff - DAY,
            );
        }
        for i in 0..mixed {
            let name = format!("mixed-{i:02}");
            self.write(&name, cutoff - 5 * DAY, cutoff - HOUR, 40, cutoff);
            self.write(&name, cutoff, NOW - 6 * HOUR, 40, NOW - 5 * HOUR);
        }
        for i in 0..fresh {
            self.write(
                &format!("fresh-{i:02}"),
                cutoff + HOUR,
                NOW - 6 * HOUR,
                20,
                NOW - 5 * HOUR,
            );
        }
    }

    fn request(&mut self, input: Value) -> StartRequest {
        self.runs += 1;
        let mut full = json!({
            "logGroupName": GROUP,
            "bucket": BUCKET,
            "pollSeconds": 1,
            "streamsPerBatch": 4,
            "deletesPerSecond": 1000,
        });
        if let (Some(full), Some(extra)) = (full.as_object_mut(), input.as_object()) {
            full.extend(extra.clone());
        }
        let start = DateTime::<Utc>::from_timestamp_millis(self.aws.control().now_ms()).unwrap();
        StartRequest {
            input: full,
            execution_start_time: Some(start.to_rfc3339_opts(SecondsFormat::Millis, true)),
            execution_id: None,
            execution_name: Some(format!("run-{}", self.runs)),
        }
    }

    async fn execute(&mut self, input: Value) -> Execution {
        let request = self.request(input);
        run_execution(request, &self.aws.clients()).await
    }

    async fn succeed(&mut self, input: Value) -> archiver::workflow::RunReport {
        match self.execute(input).await {
            Execution::Succeeded(report) => report,
            other => panic!("the run did not succeed: {other:?}"),
        }
    }

    /// The four promises, read from the stores.
    fn check(&self, cutoff: i64) -> Findings {
        let archive = self.archived();
        let mut findings = Findings::default();
        let layout = GroupLayout::new("cwl-archiver", GROUP);
        findings.staging_left = self.aws.archive.keys(BUCKET, &layout.staging_root());
        for (stream, written) in &self.written {
            let in_logs = self.aws.logs.events(GROUP, stream).unwrap_or_default();
            let logs = counts(in_logs.iter().map(|e| (e.timestamp, e.message.as_str())));
            let export = counts(archive.get(stream).into_iter().flatten().map(|(t, m)| (*t, m.as_str())));
            let want = counts(written.iter().map(|(t, m)| (*t, m.as_str())));
            for (&(t, m), &n) in &want {
                let l = logs.get(&(t, m)).copied().unwrap_or(0);
                let x = export.get(&(t, m)).copied().unwrap_or(0);
                if t < cutoff && x < n {
                    findings.not_exported.push(format!("{stream}: {t} {m}"));
                }
                if t >= cutoff && l < n {
                    findings.not_kept.push(format!("{stream}: {t} {m}"));
                }
                if l.max(x) < n {
                    findings.lost.push(format!("{stream}: {t} {m}"));
                }
                if l > n {
                    findings.duplicated.push(format!("{stream} (logs): {t} {m}"));
                }
                if x > n {
                    findings.duplicated.push(format!("{stream} (archive): {t} {m}"));
                }
            }
            for (&(t, m), _) in logs.iter().filter(|(k, _)| !want.contains_key(*k)) {
                findings.duplicated.push(format!("{stream} (never written): {t} {m}"));
            }
        }
        findings
    }

    /// Every archived event by stream, parsed here from the gzip lines
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ message` (the scenarios write single-line
    /// messages), not by the product's reader.
    fn archived(&self) -> BTreeMap<String, Vec<(i64, String)>> {
        let root = "cwl-archiver/safety/api/@exports/";
        let mut by_stream: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for key in self.aws.archive.keys(BUCKET, root) {
            // dt=DAY/TASK/STREAM.../FILE.gz
            let rest = &key[root.len()..];
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.len() < 4 || !parts[parts.len() - 1].ends_with(".gz") {
                continue;
            }
            let stream = parts[2..parts.len() - 1].join("/");
            let body = self.aws.archive.object(BUCKET, &key).unwrap();
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(body.as_ref())
                .read_to_string(&mut text)
                .unwrap();
            for line in text.lines() {
                let (stamp, message) = line.split_once(' ').unwrap();
                let t = DateTime::parse_from_rfc3339(stamp).unwrap().timestamp_millis();
                by_stream
                    .entry(stream.clone())
                    .or_default()
                    .push((t, message.to_string()));
            }
        }
        by_stream
    }
}

fn counts<'a>(events: impl Iterator<Item = (i64, &'a str)>) -> BTreeMap<(i64, &'a str), u64> {
    let mut map = BTreeMap::new();
    for e in events {
        *map.entry(e).or_default() += 1;
    }
    map
}

#[derive(Debug, Default)]
struct Findings {
    /// In neither CloudWatch Logs nor the archive.
    lost: Vec<String>,
    /// At or after the cutoff, yet not in CloudWatch Logs.
    not_kept: Vec<String>,
    /// Older than the cutoff, yet not in the archive.
    not_exported: Vec<String>,
    duplicated: Vec<String>,
    staging_left: Vec<String>,
}

impl Findings {
    /// Every event is in CloudWatch Logs or the archive, none twice: what
    /// holds between runs whatever their cutoffs.
    fn assert_nothing_lost(&self, case: &str) {
        assert!(
            self.lost.is_empty() && self.duplicated.is_empty() && self.staging_left.is_empty(),
            "{case}: {self:#?}"
        );
    }

    fn assert_clean(&self, case: &str) {
        assert!(
            self.lost.is_empty()
                && self.not_kept.is_empty()
                && self.not_exported.is_empty()
                && self.duplicated.is_empty()
                && self.staging_left.is_empty(),
            "{case}: {self:#?}"
        );
    }
}

fn cutoff_days(days: i64) -> i64 {
    NOW - days * DAY
}

fn streams(aws: &MemoryAws) -> Vec<String> {
    aws.logs.stream_names(GROUP)
}

fn action_of(report: &archiver::workflow::RunReport, stream: &str, aws: &MemoryAws) -> Option<String> {
    let body = aws.archive.object(&report.report_bucket, &report.report_key)?;
    let full: Value = serde_json::from_slice(&body).ok()?;
    full["outcomes"]
        .as_array()?
        .iter()
        .find(|o| o["stream"] == stream)
        .and_then(|o| o["action"].as_str().map(str::to_string))
}

// ---------------------------------------------------------------------------
// The baseline: many streams of every class, several Map items
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_group_of_every_class_is_archived_across_many_map_items() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(12, 6, 4, cutoff);
    let report = world.succeed(json!({"olderThanDays": 3})).await;
    assert_eq!(report.totals.streams.get("deleted"), Some(&12), "{:?}", report.totals);
    assert_eq!(report.totals.streams.get("rebuilt"), Some(&6), "{:?}", report.totals);
    world.check(cutoff).assert_clean("baseline");
    let left = streams(&world.aws);
    assert_eq!(left.len(), 10, "{left:?}");
}

#[tokio::test]
async fn a_cutoff_older_than_the_replay_floor_rebuilds_streams_whose_kept_events_are_recent() {
    // A 30-day cutoff: PutLogEvents no longer takes events as old as the
    // cutoff, but these streams hold none between it and the last week, so
    // every kept event can be replayed and nothing needs an older export.
    let mut world = World::new();
    let cutoff = cutoff_days(30);
    for i in 0..3 {
        let name = format!("mixed-{i}");
        world.write(&name, cutoff - 10 * DAY, cutoff - DAY, 20, cutoff);
        world.write(&name, NOW - 6 * DAY, NOW - 6 * HOUR, 20, NOW - 5 * HOUR);
    }
    world.write("expired", cutoff - 10 * DAY, cutoff - DAY, 20, cutoff);
    let report = world.succeed(json!({"olderThanDays": 30, "mode": "rebuild"})).await;
    assert_eq!(report.totals.streams.get("rebuilt"), Some(&3), "{:?}", report.totals);
    assert_eq!(report.totals.streams.get("deleted"), Some(&1), "{:?}", report.totals);
    world.check(cutoff).assert_clean("old cutoff, recent kept events");
}

#[tokio::test]
async fn a_writer_event_too_old_to_replay_and_not_exported_stops_the_delete() {
    // A 30-day cutoff; after the scan a writer sends an event 13 days and a
    // few hours old: past the replay floor (14 days less a day's margin) and
    // newer than the cutoff, so no export holds it and it cannot be replayed.
    let mut world = World::new();
    let cutoff = cutoff_days(30);
    world.write("mixed", cutoff - 10 * DAY, cutoff - DAY, 20, cutoff);
    world.write("mixed", NOW - 6 * DAY, NOW - 6 * HOUR, 20, NOW - 5 * HOUR);
    let clients = world.aws.clients();
    let run = ready_run(&mut world, json!({"olderThanDays": 30, "mode": "rebuild"}), &clients).await;
    let batches = manifest_batches(&run, &clients).await;
    let mut failed = 0;
    for batch in batches {
        let scan = scan_once(&run, &batch, &clients).await;
        world.write_events("mixed", &[(NOW - 13 * DAY - 6 * HOUR, "late writer".into())], NOW);
        let outcome = rebuild_once(&run, batch, scan, &clients).await;
        assert!(outcome.resume.is_none());
        failed += outcome.failed;
    }
    assert_eq!(failed, 1, "the stream must not be deleted");
    let findings = world.check(cutoff);
    assert!(
        findings.lost.is_empty() && findings.duplicated.is_empty(),
        "{findings:#?}"
    );
    assert!(
        world.aws.logs.events(GROUP, "mixed").unwrap().len() == 41,
        "the stream is whole"
    );
}

// ---------------------------------------------------------------------------
// One run per group
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_second_run_of_a_busy_group_ends_busy_and_touches_nothing() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(6, 3, 1, cutoff);
    let clients = world.aws.clients();
    let first = start_export(world.request(json!({"olderThanDays": 3})), &clients)
        .await
        .unwrap();
    assert!(
        matches!(first.export, ExportState::Started { .. }),
        "{:?}",
        first.export
    );
    let calls_before = world.aws.control().all_calls();
    for extra in [json!({"olderThanDays": 3}), json!({"olderThanDays": 2})] {
        let second = world.execute(extra).await;
        let Execution::GroupBusy(busy) = second else {
            panic!("not busy: {second:?}");
        };
        let ExportState::GroupBusy { held_by } = busy.export else {
            unreachable!()
        };
        assert_eq!(held_by.run_id, "run-1");
    }
    let calls_after = world.aws.control().all_calls();
    for op in ["CreateExportTask", "DeleteLogStream", "PutLogEvents", "CreateLogStream"] {
        assert_eq!(calls_before.get(op), calls_after.get(op), "{op} called by a busy run");
    }
    // The first run finishes; then the group is free again.
    let mut run = first;
    while !matches!(run.export, ExportState::Ready { .. }) {
        run = check_export(run, &clients).await.unwrap();
    }
    drive_items(&run, &clients).await;
    report_run(run, &clients).await.unwrap();
    world.check(cutoff).assert_clean("busy");
    let again = world.execute(json!({"olderThanDays": 3})).await;
    assert!(matches!(again, Execution::Succeeded(_)), "{again:?}");
    world.check(cutoff).assert_clean("after the busy run");
}

async fn drive_items(run: &RunState, clients: &Clients) {
    for batch in manifest_batches(run, clients).await {
        run_map_item(run, batch, clients).await.unwrap();
    }
}

/// Starts a run and polls its export until the manifest is ready.
async fn ready_run(world: &mut World, input: Value, clients: &Clients) -> RunState {
    let mut run = start_export(world.request(input), clients).await.unwrap();
    while !matches!(run.export, ExportState::Ready { .. }) {
        run = check_export(run, clients).await.unwrap();
    }
    run
}

/// The Map items of a ready run's manifest.
async fn manifest_batches(run: &RunState, clients: &Clients) -> Vec<ManifestBatch> {
    let ExportState::Ready { manifest, .. } = &run.export else {
        panic!("not ready")
    };
    let body = clients
        .archive
        .get(&manifest.bucket, &manifest.key)
        .await
        .unwrap()
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// rebuild-stream's first invocation for a scanned batch.
async fn rebuild_once(run: &RunState, batch: ManifestBatch, scan: ScanResult, clients: &Clients) -> BatchSummary {
    rebuild_batch(
        RebuildRequest {
            run: run.clone(),
            batch,
            scan,
            rebuild: None,
        },
        clients,
    )
    .await
    .unwrap()
}

/// scan-stream's first invocation for a batch.
async fn scan_once(run: &RunState, batch: &ManifestBatch, clients: &Clients) -> ScanResult {
    scan_batch(
        BatchRequest {
            run: run.clone(),
            batch: batch.clone(),
            scan: None,
        },
        clients,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_lapsed_lease_is_taken_over_and_a_released_one_at_once() {
    let mut world = World::new();
    world.seed_group(2, 1, 0, cutoff_days(3));
    let clients = world.aws.clients();
    // A run that died holding the lease (never released it), after its export.
    let mut dead = start_export(world.request(json!({"olderThanDays": 3})), &clients)
        .await
        .unwrap();
    while !matches!(dead.export, ExportState::Ready { .. }) {
        dead = check_export(dead, &clients).await.unwrap();
    }
    assert!(matches!(
        world.execute(json!({"olderThanDays": 3})).await,
        Execution::GroupBusy(_)
    ));
    // Two hours later the lease has lapsed.
    world.aws.control().advance_ms(2 * HOUR);
    let taken = world.execute(json!({"olderThanDays": 3})).await;
    assert!(matches!(taken, Execution::Succeeded(_)), "{taken:?}");
    // That run released the lease at its end: the next one starts at once.
    let next = world.execute(json!({"olderThanDays": 3, "mode": "expired-only"})).await;
    assert!(matches!(next, Execution::Succeeded(_)), "{next:?}");
}

// ---------------------------------------------------------------------------
// Late events: the per-event proof
// ---------------------------------------------------------------------------

#[tokio::test]
async fn events_too_recent_for_the_export_are_supplemented_before_the_delete() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(4, 2, 0, cutoff);
    // Old events ingested 6 hours before the run: AWS may take 12 hours to
    // make them exportable, and this export misses them.
    world.write("expired-00", cutoff - 2 * DAY, cutoff - DAY, 5, NOW - 6 * HOUR);
    world.write("mixed-00", cutoff - 2 * DAY, cutoff - DAY, 5, NOW - 6 * HOUR);
    world.aws.logs.set_export_plan(ExportPlan {
        unavailable_ms: 12 * HOUR,
        ..ExportPlan::default()
    });
    let report = world.succeed(json!({"olderThanDays": 3})).await;
    let body = world
        .aws
        .archive
        .object(&report.report_bucket, &report.report_key)
        .unwrap();
    assert_eq!(
        report.totals.events_supplemented,
        10,
        "{:?}",
        String::from_utf8_lossy(&body)
    );
    world.check(cutoff).assert_clean("late for the export");
}

#[tokio::test]
async fn an_old_event_written_after_the_listing_is_archived_before_its_stream_goes() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(3, 2, 0, cutoff);
    let clients = world.aws.clients();
    let run = ready_run(&mut world, json!({"olderThanDays": 3}), &clients).await;
    // A writer sends events stamped days ago, after the export and listing.
    world.write("expired-01", cutoff - 3 * DAY, cutoff - 3 * DAY, 2, NOW);
    world.write("mixed-01", cutoff - 4 * DAY, cutoff - 4 * DAY, 2, NOW);
    // And one between the cutoff and the scan's position, after the scan.
    let batches = manifest_batches(&run, &clients).await;
    for batch in batches {
        let scan = scan_once(&run, &batch, &clients).await;
        if batch.streams.iter().any(|s| s.stream == "mixed-00") {
            world.write("mixed-00", cutoff + HOUR, cutoff + HOUR, 3, NOW);
        }
        let mut rebuild = None;
        loop {
            let summary = rebuild_batch(
                RebuildRequest {
                    run: run.clone(),
                    batch: batch.clone(),
                    scan: scan.clone(),
                    rebuild,
                },
                &clients,
            )
            .await
            .unwrap();
            if summary.resume.is_none() {
                break;
            }
            rebuild = Some(summary);
        }
    }
    let report = report_run(run, &clients).await.unwrap();
    assert!(report.totals.events_supplemented >= 4, "{:?}", report.totals);
    world.check(cutoff).assert_clean("written after the listing");
}

// ---------------------------------------------------------------------------
// Re-runs with later cutoffs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_rerun_with_a_later_cutoff_finishes_a_failed_rebuild_and_archives_its_events() {
    let mut world = World::new();
    let first_cutoff = cutoff_days(4);
    world.seed_group(3, 3, 1, first_cutoff);
    // The first run deletes a mixed stream, then CreateLogStream keeps failing.
    for n in 1..=7 {
        world
            .aws
            .control()
            .fail_nth("CreateLogStream", n, FaultKind::ServiceUnavailable);
    }
    let first = world.execute(json!({"olderThanDays": 4})).await;
    let Execution::Failed(error) = first else {
        panic!("the first run did not fail: {first:?}");
    };
    assert_eq!(error.name().as_str(), "StreamsFailed", "{error}");
    world.aws.control().clear_faults();
    let layout = GroupLayout::new("cwl-archiver", GROUP);
    let markers: Vec<String> = world
        .aws
        .archive
        .keys(BUCKET, &layout.staging_root())
        .into_iter()
        .filter(|k| k.ends_with(":rebuilding"))
        .collect();
    assert_eq!(markers.len(), 1, "the failed stream's marker stays: {markers:?}");

    // A day later, a run with a later cutoff finishes it under its own cutoff.
    world.aws.control().advance_ms(DAY);
    let report = world.succeed(json!({"olderThanDays": 4})).await;
    assert_eq!(report.totals.streams.get("finished"), Some(&1), "{:?}", report.totals);
    world.check(0).assert_nothing_lost("after the finishing run");
    // The next run archives the finished stream's events up to its cutoff.
    world.aws.control().advance_ms(HOUR);
    world.succeed(json!({"olderThanDays": 4})).await;
    world
        .check(NOW + DAY + HOUR - 4 * DAY)
        .assert_clean("after the next run");
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_retried_delete_leaves_a_stream_its_writer_recreated() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(3, 0, 0, cutoff);
    let clients = world.aws.clients();
    let run = ready_run(&mut world, json!({"olderThanDays": 3, "streamsPerBatch": 10}), &clients).await;
    let batch = manifest_batches(&run, &clients).await.remove(0);
    let scan = scan_once(&run, &batch, &clients).await;
    let request = RebuildRequest {
        run: run.clone(),
        batch,
        scan,
        rebuild: None,
    };
    // The second delete takes effect, then the invocation dies.
    world
        .aws
        .control()
        .fail_nth_after("DeleteLogStream", 2, FaultKind::ServiceUnavailable);
    assert!(rebuild_batch(request.clone(), &clients).await.is_err());
    // Its writer recreates the stream and writes into it.
    world.aws.control().advance_ms(1_000);
    world.write("expired-01", NOW, NOW + 10, 4, NOW + 1_000);
    let summary = rebuild_batch(request, &clients).await.unwrap();
    assert_eq!(summary.failed, 0);
    let report = report_run(run, &clients).await.unwrap();
    assert_eq!(action_of(&report, "expired-00", &world.aws).as_deref(), Some("deleted"));
    assert_eq!(action_of(&report, "expired-01", &world.aws).as_deref(), Some("left"));
    assert_eq!(action_of(&report, "expired-02", &world.aws).as_deref(), Some("deleted"));
    assert_eq!(world.aws.logs.events(GROUP, "expired-01").map(|e| e.len()), Some(4));
    world.check(cutoff).assert_clean("recreated after the delete");
}

#[tokio::test]
async fn a_replay_applied_twice_is_rebuilt_clean() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(1, 2, 0, cutoff);
    world
        .aws
        .control()
        .fail_nth_after("PutLogEvents", 1, FaultKind::AppliedTwice);
    let report = world.succeed(json!({"olderThanDays": 3})).await;
    assert_eq!(world.aws.control().injected("PutLogEvents"), 1);
    assert_eq!(report.totals.streams.get("rebuilt"), Some(&2));
    world.check(cutoff).assert_clean("applied twice");
}

#[tokio::test]
async fn a_replay_restart_stages_what_a_writer_added_before_deleting_again() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(0, 1, 0, cutoff);
    world
        .aws
        .control()
        .fail_nth_after("PutLogEvents", 1, FaultKind::AppliedTwice);
    // Right after the first replay batch (applied twice), the stream's
    // writer sends events: the restart must not delete them unstaged.
    let late: Vec<(i64, String)> = (0..3).map(|i| (NOW - HOUR + i, format!("writer {i}"))).collect();
    let logs = world.aws.logs.clone();
    let events = late.clone();
    world.aws.control().after_nth("PutLogEvents", 1, move || {
        logs.seed(
            GROUP,
            "mixed-00",
            events.iter().map(|(t, m)| LogEvent::new(*t, m.clone())),
            Some(NOW),
        )
    });
    world.written.entry("mixed-00".into()).or_default().extend(late);
    world.succeed(json!({"olderThanDays": 3})).await;
    world.check(cutoff).assert_clean("restart with a writer");
}

#[tokio::test]
async fn a_crash_after_every_destructive_call_is_recovered_by_the_retry() {
    for (operation, nth) in [
        ("DeleteLogStream", 1),
        ("DeleteLogStream", 3),
        ("CreateLogStream", 1),
        ("PutLogEvents", 1),
    ] {
        let mut world = World::new();
        let cutoff = cutoff_days(3);
        world.seed_group(2, 2, 1, cutoff);
        world
            .aws
            .control()
            .fail_nth_after(operation, nth, FaultKind::ServiceUnavailable);
        world.succeed(json!({"olderThanDays": 3})).await;
        assert_eq!(world.aws.control().injected(operation), 1, "{operation} {nth}");
        world
            .check(cutoff)
            .assert_clean(&format!("crash after {operation} #{nth}"));
    }
}

// ---------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_writer_back_on_an_expired_stream_keeps_its_stream() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(2, 0, 0, cutoff);
    let clients = world.aws.clients();
    let run = ready_run(&mut world, json!({"olderThanDays": 3}), &clients).await;
    let batch = manifest_batches(&run, &clients).await.remove(0);
    let scan = scan_once(&run, &batch, &clients).await;
    // After the scan classified it expired, its writer wakes up.
    world.write("expired-00", NOW, NOW, 3, NOW);
    rebuild_once(&run, batch, scan, &clients).await;
    let report = report_run(run, &clients).await.unwrap();
    assert_eq!(action_of(&report, "expired-00", &world.aws).as_deref(), Some("skipped"));
    assert_eq!(action_of(&report, "expired-01", &world.aws).as_deref(), Some("deleted"));
    world.check(cutoff).assert_clean("writer back on an expired stream");
}

#[tokio::test]
async fn stale_stream_metadata_never_decides_a_delete() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(3, 2, 1, cutoff);
    // DescribeLogStreams shows what was ingested two hours ago at best.
    world.aws.logs.set_metadata_lag_ms(Some(2 * HOUR));
    // A stream whose kept events arrived within the lag looks expired.
    world.write("expired-02", cutoff + HOUR, NOW - 2 * HOUR, 5, NOW - HOUR);
    // A stream created within the lag does not show its events at all.
    world.write("new-old", cutoff - DAY, cutoff - DAY, 2, NOW - 30 * 60_000);
    let report = world.succeed(json!({"olderThanDays": 3, "quietMinutes": 0})).await;
    // Its metadata makes it a delete candidate; the read right before the
    // delete finds the kept events and leaves it whole.
    assert_eq!(action_of(&report, "expired-02", &world.aws).as_deref(), Some("skipped"));
    assert_eq!(action_of(&report, "expired-00", &world.aws).as_deref(), Some("deleted"));
    world.check(cutoff).assert_clean("stale metadata");
    // Once the metadata shows them, the next run rebuilds it.
    world.aws.logs.set_metadata_lag_ms(None);
    let report = world.succeed(json!({"olderThanDays": 3, "quietMinutes": 0})).await;
    assert_eq!(action_of(&report, "expired-02", &world.aws).as_deref(), Some("rebuilt"));
    world.check(cutoff).assert_clean("stale metadata, the next run");
}

// ---------------------------------------------------------------------------
// The export itself
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_export_without_objects_for_events_it_must_hold_stops_the_run() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    world.seed_group(3, 1, 0, cutoff);
    // The export misses everything ingested in the last 5 days: events
    // ingested long enough before it must be there.
    world.aws.logs.set_export_plan(ExportPlan {
        unavailable_ms: 30 * DAY,
        ..ExportPlan::default()
    });
    let failed = world.execute(json!({"olderThanDays": 3})).await;
    let Execution::Failed(error) = failed else {
        panic!("not failed: {failed:?}");
    };
    assert_eq!(error.name().as_str(), "ExportIncomplete", "{error}");
    assert_eq!(world.aws.control().calls("DeleteLogStream"), 0);
    let layout = GroupLayout::new("cwl-archiver", GROUP);
    assert!(world.aws.archive.object(BUCKET, &layout.checkpoint()).is_none());
    world.check(0).assert_clean("incomplete export");
}

// ---------------------------------------------------------------------------
// Data protection
// ---------------------------------------------------------------------------

/// Whether a plain GetLogEvents of `stream` (no `unmask`) shows asterisks.
async fn stream_reads_masked(world: &World, stream: &str) -> bool {
    use archiver::store::{EventsQuery, LogStore};
    let page = world
        .aws
        .logs
        .get_events_page(EventsQuery {
            group: GROUP,
            stream,
            start_ms: 0,
            end_ms: None,
            token: None,
            limit: None,
            unmask: false,
        })
        .await
        .unwrap()
        .unwrap_or_default();
    page.events.iter().any(|e| e.event.message.contains("******"))
}

#[tokio::test]
async fn a_data_protected_group_is_never_replayed_masked() {
    let mut world = World::new();
    let cutoff = cutoff_days(3);
    // The policy predates every event: CloudWatch Logs masks only events
    // ingested after it.
    world.aws.control().set_now_ms(cutoff - 10 * DAY);
    world.aws.logs.set_data_protection(GROUP, Some("secret"));
    world.aws.control().set_now_ms(NOW);
    world.write("mixed", cutoff - 2 * DAY, cutoff - DAY, 5, cutoff);
    world.write("mixed", cutoff + HOUR, NOW - 6 * HOUR, 5, NOW - 5 * HOUR);
    world.write_events(
        "mixed",
        &[(cutoff + 2 * HOUR, "token secret here".into())],
        NOW - 5 * HOUR,
    );
    world.write("expired", cutoff - 2 * DAY, cutoff - DAY, 5, cutoff);
    assert!(
        stream_reads_masked(&world, "mixed").await,
        "the scenario needs the kept event masked to a reader"
    );
    // Without allowMaskedArchive nothing is pruned.
    let report = world.succeed(json!({"olderThanDays": 3})).await;
    assert_eq!(report.totals.streams.get("skipped"), Some(&2), "{:?}", report.totals);
    assert_eq!(world.aws.control().calls("DeleteLogStream"), 0);
    // With it, the kept events are read unmasked and replayed as written.
    world.aws.control().advance_ms(HOUR);
    let report = world
        .succeed(json!({"olderThanDays": 3, "allowMaskedArchive": true}))
        .await;
    assert_eq!(report.totals.streams.get("rebuilt"), Some(&1), "{:?}", report.totals);
    let kept = world.aws.logs.events(GROUP, "mixed").unwrap();
    assert!(kept.iter().any(|e| e.message == "token secret here"), "{kept:?}");
    assert!(kept.iter().all(|e| !e.message.contains("******")), "{kept:?}");
}
