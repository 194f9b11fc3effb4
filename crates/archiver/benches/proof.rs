//! What the per-event completeness proof costs (`make bench`, BENCHMARKS.md
//! section 4).
//!
//! Before a stream loses its events older than the cutoff, the archiver
//! reads the ones that may have been ingested too late for the export that
//! covers them (docs/safety.md, "The window"): with the export started at
//! `S`, events with a timestamp in `[S - 12 h - 1 h - 14 days, cutoff)`.
//! This runs the same group twice through the whole workflow on the
//! in-memory stores, which count every call:
//!
//! - **proof**: the run starts 7 days after the cutoff, so 7.5 days of
//!   events older than the cutoff must be read;
//! - **no proof**: the same cutoff, the run starts 15 days after it, so no
//!   event older than the cutoff can have arrived after the export and
//!   nothing is read for the proof.
//!
//! Everything else (streams deleted, events kept and replayed) is the same,
//! so the difference in calls is what the proof costs. Reading the proof
//! range takes one GetLogEvents page per 10,000 events (or 1 MB) of each
//! deleted stream's range (the "minimum" column); for an expired stream the
//! same read also looks for kept events, which the run without the proof
//! does with a read of its own, so the proof can cost less than its pages.
//! A third run repeats the first with 1% of the proof range's
//! events ingested after the export started and left out of it, to show
//! what supplementing them costs in S3 calls.

use std::collections::BTreeMap;

use archiver::LogEvent;
use archiver::domain::batch::EVENT_OVERHEAD_BYTES;
use archiver::store::ExportStatus;
use archiver::store::memory::{ExportPlan, MemoryAws, PAGE_MAX_BYTES, PAGE_MAX_EVENTS};
use archiver::workflow::StartRequest;
use archiver::workflow::local::{Execution, run_execution};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

const GROUP: &str = "/bench/proof";
const BUCKET: &str = "bench-archive";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// The cutoff of every run (on the hour).
const CUTOFF: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;
/// How far back the streams' history goes from the cutoff.
const HISTORY: i64 = 23 * DAY;

/// The shape of the benchmark's group.
#[derive(Clone, Copy)]
struct Shape {
    expired: usize,
    mixed: usize,
    /// Seconds between two events of a stream.
    every_seconds: i64,
}

/// What one run cost, from the stores' call counters.
#[derive(Default)]
struct Cost {
    calls: BTreeMap<String, u64>,
    deleted: u64,
    supplemented: u64,
}

impl Cost {
    fn get(&self, op: &str) -> u64 {
        self.calls.get(op).copied().unwrap_or(0)
    }
}

fn message(stream: usize, i: i64) -> String {
    format!(
        "{stream:03} {i:08} GET /api/orders/{} 200 12ms user-agent=curl/8.5 trace=1-{i:x}-{stream:x}",
        i % 997
    )
}

/// Writes the group: each stream one event every `every_seconds`, from
/// `CUTOFF - HISTORY` to a day before the cutoff (expired) or to six days
/// after it (mixed: the same kept events, from 3 to 6 days after the
/// cutoff, in every run), each day's events ingested at the end of that day.
/// With `late_ingested_at`, one event in a hundred of the proof range is
/// ingested then instead. Returns the proof range's events and bytes.
fn seed(aws: &MemoryAws, shape: Shape, now: i64, proof_from: i64, late_ingested_at: Option<i64>) -> (u64, u64) {
    aws.logs.create_group_with(GROUP, CUTOFF - 400 * DAY, None);
    let step = shape.every_seconds * 1000;
    let (mut proof_events, mut proof_pages) = (0u64, 0u64);
    for stream in 0..shape.expired + shape.mixed {
        let name = format!("s-{stream:03}");
        let end = if stream < shape.expired {
            CUTOFF - DAY
        } else {
            CUTOFF + 6 * DAY
        };
        let (mut events_in_range, mut bytes_in_range) = (0u64, 0u64);
        let mut day_start = CUTOFF - HISTORY;
        let mut i = 0i64;
        while day_start <= end {
            let day_end = (day_start + DAY).min(end + 1);
            let (mut on_time, mut late) = (Vec::new(), Vec::new());
            let mut t = day_start;
            while t < day_end {
                // A mixed stream's kept events start 3 days after the cutoff,
                // so a run 15 days after it can still replay every one
                // (PutLogEvents takes events up to 14 days old).
                if (CUTOFF..CUTOFF + 3 * DAY).contains(&t) {
                    t += step;
                    i += 1;
                    continue;
                }
                let text = message(stream, i);
                if (proof_from..CUTOFF).contains(&t) {
                    events_in_range += 1;
                    bytes_in_range += (text.len() + EVENT_OVERHEAD_BYTES) as u64;
                }
                let event = LogEvent::new(t, text);
                // PutLogEvents takes an event up to 14 days after its time.
                match late_ingested_at {
                    Some(at) if (proof_from..CUTOFF).contains(&t) && i % 100 == 7 && at - t < 14 * DAY => {
                        late.push(event)
                    }
                    _ => on_time.push(event),
                }
                t += step;
                i += 1;
            }
            aws.logs.seed(GROUP, &name, on_time, Some(day_end.min(now)));
            if let Some(at) = late_ingested_at.filter(|_| !late.is_empty()) {
                aws.logs.seed(GROUP, &name, late, Some(at));
            }
            day_start += DAY;
        }
        proof_events += events_in_range;
        proof_pages += events_in_range
            .div_ceil(PAGE_MAX_EVENTS as u64)
            .max(bytes_in_range.div_ceil(PAGE_MAX_BYTES as u64));
    }
    (proof_events, proof_pages)
}

/// Runs the group once, started at `now`, and counts its calls.
async fn run(shape: Shape, now: i64, late: bool) -> (Cost, u64, u64) {
    let aws = MemoryAws::new();
    aws.control().set_now_ms(now);
    aws.archive.create_bucket(BUCKET);
    // The proof range of an export started at `now`.
    let proof_from = now - 13 * HOUR - 14 * DAY;
    let late_at = late.then_some(now - 6 * HOUR);
    let (proof_events, proof_pages) = seed(&aws, shape, now, proof_from.max(CUTOFF - HISTORY), late_at);
    if late {
        // The export leaves out what was ingested in the 12 hours before it.
        aws.logs.set_export_plan(ExportPlan {
            running_polls: 0,
            outcome: ExportStatus::Completed,
            unavailable_ms: 12 * HOUR,
        });
    }
    aws.control().reset_calls();
    let start = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    let cutoff = DateTime::<Utc>::from_timestamp_millis(CUTOFF).unwrap_or_default();
    let request = StartRequest {
        input: json!({
            "logGroupName": GROUP,
            "bucket": BUCKET,
            "mode": "rebuild",
            "cutoff": cutoff.to_rfc3339_opts(SecondsFormat::Millis, true),
            "pollSeconds": 1,
            "streamsPerBatch": 20,
            "deletesPerSecond": 1000,
        }),
        execution_start_time: Some(start.to_rfc3339_opts(SecondsFormat::Millis, true)),
        execution_id: None,
        execution_name: Some("bench".into()),
    };
    let report = match run_execution(request, &aws.clients()).await {
        Execution::Succeeded(report) => report,
        other => panic!("the benchmark's run did not succeed: {other:?}"),
    };
    let cost = Cost {
        calls: aws.control().all_calls(),
        deleted: report.totals.streams.get("deleted").copied().unwrap_or(0)
            + report.totals.streams.get("rebuilt").copied().unwrap_or(0),
        supplemented: report.totals.events_supplemented,
    };
    (cost, proof_events, proof_pages)
}

/// One row of the table: the run with the proof against the run without.
fn row(shape: Shape, label: &str, with: &Cost, without: &Cost, proof_events: u64, minimum: u64) {
    let extra = with.get("GetLogEvents").saturating_sub(without.get("GetLogEvents"));
    let s3 = |c: &Cost| c.get("GetObject") + c.get("ListObjectsV2") + c.get("PutObject");
    println!(
        "| {} | {} ({} expired + {} mixed){label} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
        DAY / (shape.every_seconds * 1000),
        shape.expired + shape.mixed,
        shape.expired,
        shape.mixed,
        proof_events,
        with.get("GetLogEvents"),
        without.get("GetLogEvents"),
        extra,
        minimum,
        extra as f64 / minimum.max(1) as f64,
        extra as f64 / with.deleted.max(1) as f64,
        s3(with),
        s3(without),
        with.supplemented,
    );
}

#[tokio::main]
async fn main() {
    println!(
        "| events per stream-day | streams | events in the proof range | GetLogEvents with proof | without | the proof's calls | minimum (pages) | ratio | per deleted stream | S3 GET+LIST+PUT with proof | without | supplemented |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for every_seconds in [600, 30] {
        let shape = Shape {
            expired: 40,
            mixed: 10,
            every_seconds,
        };
        let (with, proof_events, minimum) = run(shape, CUTOFF + 7 * DAY, false).await;
        let (without, _, _) = run(shape, CUTOFF + 15 * DAY, false).await;
        assert_eq!(with.deleted, without.deleted, "both runs delete the same streams");
        assert_eq!(
            with.get("PutLogEvents"),
            without.get("PutLogEvents"),
            "both runs replay the same kept events"
        );
        row(shape, "", &with, &without, proof_events, minimum);
        if every_seconds == 600 {
            let (late, _, _) = run(shape, CUTOFF + 7 * DAY, true).await;
            row(shape, ", 1% ingested late", &late, &without, proof_events, minimum);
        }
    }
}
