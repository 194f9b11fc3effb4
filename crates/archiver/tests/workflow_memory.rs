//! The workflow steps against the in-memory stores (`archiver::store::memory`),
//! which enforce the same AWS rules as the strict emulator.
//!
//! The scan and rebuild steps are driven only through their public entry
//! points and the request/response types of `archiver::workflow`.

use archiver::ErrorName;
use archiver::LogEvent;
use archiver::domain::export_format::read_export_object;
use archiver::domain::input::floor_to_hour;
use archiver::domain::layout::GroupLayout;
use archiver::domain::window::{Checkpoint, ExportRecord, ExportWindow};
use archiver::store::ExportStatus;
use archiver::store::memory::{ExportPlan, MemoryAws};
use archiver::workflow::{
    BatchSummary, ExportState, ManifestBatch, RunState, StartRequest, check_export, start_export,
};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

const GROUP: &str = "/app/api";
const BUCKET: &str = "archive-bucket";
const PREFIX: &str = "cwl-archiver";
const HOUR: i64 = 3_600_000;

/// A fixed execution start, so the cutoff is known: one day back, floored to the hour.
struct Run {
    start: DateTime<Utc>,
    cutoff_ms: i64,
}

impl Run {
    fn now() -> Run {
        let start = Utc::now();
        let cutoff_ms = floor_to_hour(start - Duration::days(1)).timestamp_millis();
        Run { start, cutoff_ms }
    }

    fn request(&self, input: Value) -> StartRequest {
        StartRequest {
            input,
            execution_start_time: Some(self.start.to_rfc3339_opts(SecondsFormat::Millis, true)),
            execution_id: None,
            execution_name: Some(format!("run-{}", self.start.timestamp_millis())),
        }
    }

    fn input(&self) -> Value {
        json!({
            "logGroupName": GROUP,
            "olderThanDays": 1,
            "bucket": BUCKET,
            "pollSeconds": 1,
            "quietMinutes": 0,
        })
    }
}

fn layout() -> GroupLayout {
    GroupLayout::new(PREFIX, GROUP)
}

/// A bucket and a group with one stream holding an event on each side of the cutoff.
fn stores(run: &Run) -> MemoryAws {
    let aws = MemoryAws::new();
    aws.archive.create_bucket(BUCKET);
    aws.logs.seed(
        GROUP,
        "web-1",
        [
            LogEvent::new(run.cutoff_ms - HOUR, "old"),
            LogEvent::new(run.cutoff_ms + HOUR, "new"),
        ],
        Some(run.cutoff_ms + 2 * HOUR),
    );
    aws
}

fn put_checkpoint(aws: &MemoryAws, exported_until_ms: i64) {
    let mut checkpoint = Checkpoint {
        log_group_name: GROUP.into(),
        ..Checkpoint::default()
    };
    checkpoint.advance(ExportRecord {
        task_id: "earlier".into(),
        from_ms: 0,
        until_ms: exported_until_ms,
        started_at_ms: exported_until_ms + 13 * HOUR,
        destination_prefix: "somewhere".into(),
        objects: 1,
        bytes: 1,
    });
    let body = serde_json::to_vec(&checkpoint).unwrap();
    aws.archive.insert(BUCKET, &layout().checkpoint(), body);
}

fn checkpoint(aws: &MemoryAws) -> Option<Checkpoint> {
    let bytes = aws.archive.object(BUCKET, &layout().checkpoint())?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn assert_no_export_task(aws: &MemoryAws) {
    assert!(aws.logs.export_tasks().is_empty());
    assert_eq!(aws.control().calls("CreateExportTask"), 0);
}

async fn started(aws: &MemoryAws, run: &Run) -> RunState {
    let state = start_export(run.request(run.input()), &aws.clients()).await.unwrap();
    assert!(
        matches!(state.export, ExportState::Started { .. }),
        "{:?}",
        state.export
    );
    state
}

// ---------------------------------------------------------------------------
// start-export
// ---------------------------------------------------------------------------

#[tokio::test]
async fn without_a_checkpoint_the_window_starts_at_the_beginning_of_time() {
    let run = Run::now();
    let aws = stores(&run);
    let state = started(&aws, &run).await;
    let ExportState::Started { task_id, window, .. } = state.export else {
        unreachable!()
    };
    // From 0, not from the group's creation: events may predate their group.
    assert_eq!(
        window,
        ExportWindow {
            from_ms: 0,
            until_ms: run.cutoff_ms
        }
    );
    let tasks = aws.logs.export_tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_id, task_id);
    assert_eq!(
        (tasks[0].request.from_ms, tasks[0].request.to_ms),
        (0, run.cutoff_ms - 1)
    );
    assert_eq!(tasks[0].request.bucket, BUCKET);
    assert_eq!(tasks[0].request.prefix, layout().export_prefix(run.cutoff_ms));
}

#[tokio::test]
async fn with_a_checkpoint_the_window_starts_where_the_last_export_ended() {
    let run = Run::now();
    let aws = stores(&run);
    let previous = run.cutoff_ms - 24 * HOUR;
    put_checkpoint(&aws, previous);
    let state = started(&aws, &run).await;
    let ExportState::Started { window, .. } = state.export else {
        unreachable!()
    };
    assert_eq!(window.from_ms, previous);
    assert_eq!(aws.logs.export_tasks()[0].request.from_ms, previous);
}

#[tokio::test]
async fn a_checkpoint_at_the_cutoff_leaves_nothing_to_export() {
    let run = Run::now();
    let aws = stores(&run);
    put_checkpoint(&aws, run.cutoff_ms);
    let state = start_export(run.request(run.input()), &aws.clients()).await.unwrap();
    assert_eq!(state.export, ExportState::NothingToExport);
    assert_no_export_task(&aws);
}

#[tokio::test]
async fn a_busy_export_slot_makes_the_run_wait() {
    let run = Run::now();
    let aws = stores(&run);
    let other = aws.logs.occupy_export_slot();
    let state = start_export(run.request(run.input()), &aws.clients()).await.unwrap();
    assert_eq!(
        state.export,
        ExportState::Busy {
            active_task_id: Some(other)
        }
    );
    assert_eq!(aws.logs.export_tasks().len(), 1, "no task of ours");
    assert_eq!(aws.control().calls("CreateExportTask"), 0);
}

#[tokio::test]
async fn bad_input_is_reported_whole_and_touches_nothing() {
    let run = Run::now();
    let aws = stores(&run);
    let input = json!({"olderThanDays": 0, "bucket": "Not_A_Bucket", "mode": "wipe"});
    let err = start_export(run.request(input), &aws.clients()).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    let text = err.to_string();
    for field in ["logGroupName", "olderThanDays", "bucket", "mode"] {
        assert!(text.contains(field), "{field} missing from: {text}");
    }
    assert_eq!(aws.control().total_calls(), 0, "{:?}", aws.control().all_calls());

    // A well-formed input naming a group that does not exist: looked up, nothing written.
    let mut input = run.input();
    input["logGroupName"] = json!("/no/such/group");
    let err = start_export(run.request(input), &aws.clients()).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(err.to_string().contains("logGroupName"), "{err}");
    assert_no_export_task(&aws);
    assert_eq!(aws.control().calls("PutObject"), 0);
}

// ---------------------------------------------------------------------------
// check-export
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_running_export_is_polled_again_until_it_completes() {
    let run = Run::now();
    let aws = stores(&run);
    aws.logs.set_export_plan(ExportPlan {
        running_polls: 2,
        outcome: ExportStatus::Completed,
        ..ExportPlan::default()
    });
    let state = started(&aws, &run).await;
    for _ in 0..2 {
        let polled = check_export(state.clone(), &aws.clients()).await.unwrap();
        assert_eq!(polled, state, "unchanged while RUNNING");
        assert!(checkpoint(&aws).is_none());
    }
    let done = check_export(state, &aws.clients()).await.unwrap();
    assert!(matches!(done.export, ExportState::Ready { .. }), "{:?}", done.export);
    // One look-up for an active task by start-export, then three polls.
    assert_eq!(aws.control().calls("DescribeExportTasks"), 1 + 3);
}

#[tokio::test]
async fn a_failed_or_cancelled_export_stops_the_run_and_records_nothing() {
    for outcome in [ExportStatus::Failed, ExportStatus::Cancelled] {
        let run = Run::now();
        let aws = stores(&run);
        aws.logs.set_export_plan(ExportPlan {
            running_polls: 0,
            outcome,
            ..ExportPlan::default()
        });
        let state = started(&aws, &run).await;
        let err = check_export(state.clone(), &aws.clients()).await.unwrap_err();
        assert_eq!(err.name(), ErrorName::ExportFailed, "{outcome:?}");
        assert!(
            err.to_string().contains(&format!("{outcome:?}").to_uppercase()),
            "{err}"
        );
        assert!(checkpoint(&aws).is_none(), "checkpoint advanced after {outcome:?}");
        let run_root = layout().run_root(&state.settings.run_id);
        assert!(
            aws.archive.keys(BUCKET, &run_root).is_empty(),
            "manifest written after {outcome:?}"
        );
        assert_eq!(aws.logs.events(GROUP, "web-1").unwrap().len(), 2, "nothing deleted");
    }
}

#[tokio::test]
async fn a_completed_export_advances_the_checkpoint_and_writes_the_manifest() {
    let run = Run::now();
    let aws = stores(&run);
    aws.logs
        .seed(GROUP, "web-2", [LogEvent::new(run.cutoff_ms - 2 * HOUR, "old")], None);
    aws.logs
        .seed(GROUP, "fresh", [LogEvent::new(run.cutoff_ms, "at the cutoff")], None);
    let state = started(&aws, &run).await;
    let ExportState::Started { ref task_id, .. } = state.export else {
        unreachable!()
    };
    let task_id = task_id.clone();
    let done = check_export(state, &aws.clients()).await.unwrap();
    let ExportState::Ready {
        export: Some(export),
        manifest,
        ..
    } = done.export
    else {
        panic!("not ready: {:?}", done.export);
    };
    assert_eq!(export.task_id, task_id);
    assert_eq!(export.objects, 2, "web-1 and web-2 have events before the cutoff");
    assert!(export.bytes > 0);

    let checkpoint = checkpoint(&aws).expect("checkpoint written");
    assert_eq!(checkpoint.exported_until_ms, run.cutoff_ms);
    assert_eq!(checkpoint.exports.len(), 1);
    let record = &checkpoint.exports[0];
    assert_eq!((record.task_id.as_str(), record.objects), (task_id.as_str(), 2));
    assert_eq!(record.bytes, export.bytes);

    assert_eq!((manifest.streams, manifest.streams_in_group), (2, 3));
    let body = aws.archive.object(BUCKET, &manifest.key).expect("manifest written");
    let batches: Vec<ManifestBatch> = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = batches
        .iter()
        .flat_map(|b| b.streams.iter().map(|s| s.stream.as_str()))
        .collect();
    assert_eq!(names, vec!["web-1", "web-2"]);
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.streams)
            .all(|s| s.in_export == Some(true))
    );
}

// ---------------------------------------------------------------------------
// One whole run: start, check, scan, rebuild
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_run_archives_old_events_deletes_expired_streams_and_keeps_every_newer_event() {
    let run = Run::now();
    let aws = MemoryAws::new();
    aws.archive.create_bucket(BUCKET);
    let ingested = Some(run.cutoff_ms + 12 * HOUR);
    let old = |n: i64| (0..n).map(|i| LogEvent::new(run.cutoff_ms - 5 * HOUR + i * 1_000, format!("old {i}")));
    let new = |n: i64| (0..n).map(|i| LogEvent::new(run.cutoff_ms + i * 1_000, format!("new {i}")));
    aws.logs.seed(GROUP, "mixed", old(30).chain(new(20)), ingested);
    aws.logs.seed(GROUP, "expired", old(40), ingested);
    aws.logs.seed(GROUP, "fresh", new(10), ingested);

    let state = started(&aws, &run).await;
    let state = check_export(state, &aws.clients()).await.unwrap();
    let ExportState::Ready {
        export: Some(export),
        manifest,
        ..
    } = &state.export
    else {
        panic!("not ready: {:?}", state.export);
    };
    let body = aws.archive.object(BUCKET, &manifest.key).unwrap();
    let batches: Vec<ManifestBatch> = serde_json::from_slice(&body).unwrap();
    for batch in batches {
        let (summary, _) = run_map_item(&state, batch, &aws).await;
        assert_eq!(summary.failed, 0);
    }

    // S3 holds every old event, once.
    let exported = |stream: &str| {
        let key = format!("{}/{}/{stream}/000000.gz", export.destination_prefix, export.task_id);
        aws.archive
            .object(BUCKET, &key)
            .map(|gz| read_export_object(&gz).unwrap())
    };
    assert_eq!(exported("mixed").map(|e| e.len()), Some(30));
    assert_eq!(exported("expired"), Some(old(40).collect()));
    assert_eq!(exported("fresh"), None);

    // CloudWatch holds every newer event, once, and nothing older.
    assert_eq!(aws.logs.events(GROUP, "mixed"), Some(new(20).collect()));
    assert_eq!(aws.logs.events(GROUP, "expired"), None);
    assert_eq!(aws.logs.events(GROUP, "fresh"), Some(new(10).collect()));
    assert_eq!(aws.logs.stream_names(GROUP), vec!["fresh", "mixed"]);
    assert!(
        aws.archive.keys(BUCKET, &layout().staging_root()).is_empty(),
        "staging left behind"
    );
    assert_eq!(aws.control().calls("PutLogEvents"), 1);
}

async fn run_map_item(run: &RunState, batch: ManifestBatch, aws: &MemoryAws) -> (BatchSummary, u32) {
    let item = archiver::workflow::local::run_map_item(run, batch, &aws.clients())
        .await
        .unwrap();
    (item.summary, item.scan_invocations + item.rebuild_invocations)
}

#[tokio::test]
async fn a_stream_larger_than_a_segment_and_the_budget_is_finished_by_continuations() {
    let run = Run::now();
    let aws = MemoryAws::new();
    aws.archive.create_bucket(BUCKET);
    let kept: Vec<LogEvent> = (0..120_000)
        .map(|i| LogEvent::new(run.cutoff_ms + i / 3, format!("kept {i} ünï\nline two")))
        .collect();
    let old = (0..10).map(|i| LogEvent::new(run.cutoff_ms - HOUR + i, format!("old {i}")));
    aws.logs
        .seed(GROUP, "big", old.chain(kept.clone()), Some(run.cutoff_ms + 12 * HOUR));

    let mut input = run.input();
    input["invocationPages"] = json!(3);
    let state = start_export(run.request(input), &aws.clients()).await.unwrap();
    let state = check_export(state, &aws.clients()).await.unwrap();
    let ExportState::Ready { manifest, .. } = &state.export else {
        panic!("not ready: {:?}", state.export);
    };
    let body = aws.archive.object(BUCKET, &manifest.key).unwrap();
    let batches: Vec<ManifestBatch> = serde_json::from_slice(&body).unwrap();
    let (summary, invocations) = run_map_item(&state, batches[0].clone(), &aws).await;

    assert_eq!(summary.failed, 0);
    assert!(invocations >= 8, "continuations: {invocations} invocations");
    assert_eq!(aws.logs.events(GROUP, "big"), Some(kept));
    let staging = layout().staging_root();
    assert!(aws.archive.keys(BUCKET, &staging).is_empty(), "staging removed");
}

#[tokio::test]
async fn a_group_with_more_streams_than_one_invocation_lists_is_listed_across_invocations() {
    let run = Run::now();
    let aws = MemoryAws::new();
    aws.archive.create_bucket(BUCKET);
    let ingested = Some(run.cutoff_ms + 12 * HOUR);
    for i in 0..180 {
        // Two in three streams hold an old event; the rest only newer ones.
        let t = if i % 3 == 2 {
            run.cutoff_ms + HOUR
        } else {
            run.cutoff_ms - HOUR
        };
        aws.logs.seed(
            GROUP,
            &format!("s{i:03}"),
            [LogEvent::new(t, format!("e{i}"))],
            ingested,
        );
    }
    let mut input = run.input();
    input["invocationPages"] = json!(1);
    let mut state = start_export(run.request(input), &aws.clients()).await.unwrap();
    let mut listings = 0;
    let manifest = loop {
        state = check_export(state, &aws.clients()).await.unwrap();
        match &state.export {
            ExportState::Listing { .. } => listings += 1,
            ExportState::Ready { manifest, .. } => break manifest.clone(),
            _ => {}
        }
    };
    // 180 streams at 50 a page, one page per invocation.
    assert_eq!(listings, 3);
    assert_eq!((manifest.streams_in_group, manifest.streams), (180, 120));
    let body = aws.archive.object(BUCKET, &manifest.key).unwrap();
    let batches: Vec<ManifestBatch> = serde_json::from_slice(&body).unwrap();
    let listed: Vec<String> = batches
        .iter()
        .flat_map(|b| &b.streams)
        .map(|s| s.stream.clone())
        .collect();
    let expected: Vec<String> = (0..180).filter(|i| i % 3 != 2).map(|i| format!("s{i:03}")).collect();
    assert_eq!(listed, expected);
    assert!(
        batches
            .iter()
            .flat_map(|b| &b.streams)
            .all(|s| s.in_export == Some(true))
    );
    let parts = format!("{}/streams/", layout().run_root(&state.settings.run_id));
    assert!(aws.archive.keys(BUCKET, &parts).is_empty(), "listing parts removed");
}
