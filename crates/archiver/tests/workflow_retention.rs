//! The retention hand-off and the retention guard against the in-memory
//! stores (whose CloudWatch Logs accepts only AWS's retention values and
//! hides events past a group's retention from reads and exports).

use std::collections::BTreeMap;

use archiver::LogEvent;
use archiver::domain::layout::GroupLayout;
use archiver::domain::retention::RetentionRecord;
use archiver::store::ExportStatus;
use archiver::store::memory::{ExportPlan, MemoryAws};
use archiver::workflow::local::{Execution, run_execution};
use archiver::workflow::retention::{Restored, restore_previous};
use archiver::workflow::{RunReport, StartRequest};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

const GROUP: &str = "/retention/api";
const BUCKET: &str = "retention-archive";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_800_000_000_000;

struct World {
    aws: MemoryAws,
    written: BTreeMap<String, Vec<(i64, String)>>,
    runs: u32,
}

impl World {
    fn new(retention: Option<i32>) -> World {
        let aws = MemoryAws::new();
        aws.control().set_now_ms(NOW);
        aws.archive.create_bucket(BUCKET);
        aws.logs.create_group_with(GROUP, NOW - 500 * DAY, retention);
        World {
            aws,
            written: BTreeMap::new(),
            runs: 0,
        }
    }

    /// Events every `step` from `from` to `to`, each ingested a minute after its time.
    fn write(&mut self, stream: &str, from: i64, to: i64, step: i64) {
        let mut t = from;
        while t <= to {
            let message = format!("{stream} at {t}");
            self.aws
                .logs
                .seed(GROUP, stream, [LogEvent::new(t, message.clone())], Some(t + 60_000));
            self.written.entry(stream.to_string()).or_default().push((t, message));
            t += step;
        }
    }

    fn layout(&self) -> GroupLayout {
        GroupLayout::new("cwl-archiver", GROUP)
    }

    async fn execute(&mut self, input: Value) -> Execution {
        self.runs += 1;
        let mut full = json!({"logGroupName": GROUP, "bucket": BUCKET, "pollSeconds": 1, "quietMinutes": 0});
        if let (Some(full), Some(extra)) = (full.as_object_mut(), input.as_object()) {
            full.extend(extra.clone());
        }
        let start = DateTime::<Utc>::from_timestamp_millis(self.aws.control().now_ms()).unwrap();
        let request = StartRequest {
            input: full,
            execution_start_time: Some(start.to_rfc3339_opts(SecondsFormat::Millis, true)),
            execution_id: None,
            execution_name: Some(format!("run-{}", self.runs)),
        };
        run_execution(request, &self.aws.clients()).await
    }

    async fn succeed(&mut self, input: Value) -> RunReport {
        match self.execute(input).await {
            Execution::Succeeded(report) => report,
            other => panic!("not succeeded: {other:?}"),
        }
    }

    async fn retention(&self) -> Option<i32> {
        use archiver::store::LogStore;
        self.aws
            .logs
            .describe_group(GROUP)
            .await
            .unwrap()
            .unwrap()
            .retention_in_days
    }

    fn record(&self) -> Option<RetentionRecord> {
        let body = self.aws.archive.object(BUCKET, &self.layout().retention_record())?;
        Some(serde_json::from_slice(&body).unwrap())
    }

    /// Every written event is in CloudWatch Logs or the archive; every event
    /// older than `cutoff` is in the archive; none is twice in either.
    fn assert_nothing_lost(&self, cutoff: i64) {
        let archived: BTreeMap<String, Vec<LogEvent>> = self
            .aws
            .archive
            .keys(BUCKET, "cwl-archiver/retention/api/@exports/")
            .iter()
            .filter_map(|key| {
                let parsed =
                    archiver::domain::export_format::parse_export_key(&key[..key.find("/dt=").unwrap() + 14], key)?;
                let body = self.aws.archive.object(BUCKET, key)?;
                Some((
                    parsed.stream,
                    archiver::domain::export_format::read_export_object(&body).unwrap(),
                ))
            })
            .fold(BTreeMap::new(), |mut all, (stream, events)| {
                all.entry(stream).or_insert_with(Vec::new).extend(events);
                all
            });
        // What CloudWatch Logs still stores, past retention or not.
        for (stream, written) in &self.written {
            let stored = self.aws.logs.events(GROUP, stream).unwrap_or_default();
            let in_archive = archived.get(stream).cloned().unwrap_or_default();
            for (t, m) in written {
                let event = LogEvent::new(*t, m.clone());
                let logs = stored.iter().filter(|e| **e == event).count();
                let archive = in_archive.iter().filter(|e| **e == event).count();
                assert!(logs <= 1 && archive <= 1, "{stream} {t}: twice");
                if *t < cutoff {
                    assert_eq!(archive, 1, "{stream} {t}: older than the cutoff, not archived");
                } else {
                    assert_eq!(logs, 1, "{stream} {t}: kept, yet not in CloudWatch Logs");
                }
            }
        }
    }
}

#[tokio::test]
async fn retention_mode_hands_the_archived_events_to_the_groups_retention() {
    let mut world = World::new(None);
    // Data from 400 to 20 days old, and streams still being written.
    world.write("old", NOW - 400 * DAY, NOW - 200 * DAY, 5 * DAY);
    world.write("web-1", NOW - 400 * DAY, NOW - HOUR, 3 * DAY);
    world.write("web-2", NOW - 100 * DAY, NOW - 2 * HOUR, DAY);
    world.write("recent", NOW - 20 * DAY, NOW - HOUR, DAY);
    let cutoff = NOW - 30 * DAY;
    let report = world.succeed(json!({"olderThanDays": 30, "mode": "retention"})).await;

    // The smallest valid retention of at least 30 days + the 14-day slack.
    assert_eq!(world.retention().await, Some(60));
    assert_eq!(report.totals.streams.get("deleted"), Some(&1), "{:?}", report.totals);
    assert_eq!(report.totals.streams.get("retained"), Some(&2), "{:?}", report.totals);
    assert_eq!(report.totals.events_replayed, 0);
    assert_eq!(world.aws.control().calls("PutLogEvents"), 0, "nothing re-ingested");
    let record = world.record().unwrap();
    assert_eq!(
        (
            record.previous_retention_days,
            record.set_retention_days,
            record.reason.as_str()
        ),
        (None, Some(60), "hand-off")
    );
    assert_eq!(report.retention.changes.len(), 1, "{:?}", report.retention);
    world.assert_nothing_lost(cutoff);
    // CloudWatch Logs no longer serves events past the new retention.
    use archiver::store::LogStore;
    let oldest_readable = world
        .aws
        .logs
        .get_events_page(archiver::store::EventsQuery {
            group: GROUP,
            stream: "web-1",
            start_ms: 0,
            end_ms: None,
            token: None,
            limit: Some(1),
            unmask: false,
        })
        .await
        .unwrap()
        .unwrap()
        .events[0]
        .event
        .timestamp;
    assert!(oldest_readable >= NOW - 60 * DAY, "{oldest_readable}");
}

#[tokio::test]
async fn retention_mode_needs_a_cutoff_the_export_is_sure_to_hold() {
    let mut world = World::new(None);
    world.write("web", NOW - 40 * DAY, NOW - HOUR, DAY);
    let refused = world.execute(json!({"olderThanDays": 7, "mode": "retention"})).await;
    let Execution::Failed(error) = refused else {
        panic!("accepted: {refused:?}");
    };
    assert!(error.to_string().contains("olderThanDays"), "{error}");
    assert_eq!(world.aws.control().total_calls(), 0);
}

#[tokio::test]
async fn the_guard_protects_unexported_events_when_the_export_fails_and_relaxes_after() {
    let mut world = World::new(Some(7));
    world.write("web", NOW - 20 * DAY, NOW - HOUR, 6 * HOUR);
    world.aws.logs.set_export_plan(ExportPlan {
        outcome: ExportStatus::Failed,
        ..ExportPlan::default()
    });
    let failed = world.execute(json!({"olderThanDays": 3})).await;
    assert!(
        matches!(failed, Execution::Failed(ref e) if e.name().as_str() == "ExportFailed"),
        "{failed:?}"
    );
    // Nothing is exported yet: no event may expire.
    assert_eq!(world.retention().await, None);
    let record = world.record().unwrap();
    assert_eq!(
        (record.previous_retention_days, record.reason.as_str()),
        (Some(7), "guard")
    );

    // The next run exports; the guard's raise comes down to the shortest
    // retention that keeps what is not exported yet (3 days + 14 of slack).
    world.aws.logs.set_export_plan(ExportPlan::default());
    world.aws.control().advance_ms(HOUR);
    let report = world.succeed(json!({"olderThanDays": 3})).await;
    assert_eq!(world.retention().await, Some(30));
    assert_eq!(
        report.retention.changes.last().map(|c| c.reason.as_str()),
        Some("relaxed"),
        "{:?}",
        report.retention
    );
    assert_eq!(world.record().unwrap().previous_retention_days, Some(7));
}

#[tokio::test]
async fn a_retention_shorter_than_the_cutoff_is_a_conflict_raised_or_refused() {
    let mut world = World::new(Some(7));
    world.write("web", NOW - 60 * DAY, NOW - HOUR, DAY);
    let refused = world
        .execute(json!({"olderThanDays": 30, "retentionConflict": "refuse"}))
        .await;
    let Execution::Failed(error) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert_eq!(error.name().as_str(), "RetentionConflict");
    let text = error.to_string();
    assert!(text.contains(GROUP) && text.contains("7 days"), "{text}");
    assert_eq!(world.retention().await, Some(7), "untouched");
    assert!(world.aws.logs.export_tasks().is_empty(), "nothing exported");
    assert!(world.record().is_none());

    // Raised by default, and reported.
    let report = world.succeed(json!({"olderThanDays": 30})).await;
    let first = &report.retention.changes[0];
    assert_eq!((first.from, first.to, first.reason.as_str()), (Some(7), None, "guard"));
    assert_eq!(world.retention().await, Some(60), "the export covers what was at risk");
}

#[tokio::test]
async fn the_previous_retention_is_put_back_only_when_it_is_safe() {
    let mut world = World::new(Some(400));
    world.write("web", NOW - 300 * DAY, NOW - HOUR, 2 * DAY);
    world.succeed(json!({"olderThanDays": 30, "mode": "retention"})).await;
    assert_eq!(world.retention().await, Some(60));
    let layout = world.layout();
    let clients = world.aws.clients();
    let restored = restore_previous(&clients, &layout, BUCKET, GROUP, 14, false)
        .await
        .unwrap();
    assert!(
        matches!(restored, Restored::Restored(ref c) if c.to == Some(400)),
        "{restored:?}"
    );
    assert_eq!(world.retention().await, Some(400));
    assert!(world.record().is_none());
    assert_eq!(
        restore_previous(&clients, &layout, BUCKET, GROUP, 14, false)
            .await
            .unwrap(),
        Restored::NothingRecorded
    );

    // A previous retention shorter than what the archive needs is refused.
    let mut short = World::new(Some(3));
    short.write("web", NOW - 100 * DAY, NOW - HOUR, 2 * DAY);
    short.succeed(json!({"olderThanDays": 30, "mode": "retention"})).await;
    let clients = short.aws.clients();
    let refused = restore_previous(&clients, &short.layout(), BUCKET, GROUP, 14, false).await;
    assert!(
        matches!(refused, Err(ref e) if e.name().as_str() == "RetentionConflict"),
        "{refused:?}"
    );
    assert_eq!(short.retention().await, Some(60));
    restore_previous(&clients, &short.layout(), BUCKET, GROUP, 14, true)
        .await
        .unwrap();
    assert_eq!(short.retention().await, Some(3));
}
