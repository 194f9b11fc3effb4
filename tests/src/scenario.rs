//! Seeding a realistic log group and checking, event by event, what is in
//! S3 and CloudWatch afterwards. The checks read the services directly,
//! never the run report.

use std::collections::BTreeMap;

use archiver::LogEvent;
use archiver::domain::export_format::{parse_export_key, read_export_object};
use archiver::workflow::{Clients, ReadLimits, ReadProgress, read_events};
use chrono::{DurationRound, Utc};

use crate::stack::Stack;

/// Milliseconds in an hour.
pub const HOUR: i64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY: i64 = 24 * HOUR;

/// A cutoff `days` before now, on the hour, as ms and RFC 3339.
pub fn cutoff_days_ago(days: i64) -> (i64, String) {
    let t = (Utc::now() - chrono::Duration::days(days))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap_or_else(|_| Utc::now());
    (
        t.timestamp_millis(),
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// `count` events spread evenly over `[from_ms, to_ms]` with varied messages:
/// plain, JSON, multi-line and non-ASCII.
pub fn events_between(stream: &str, from_ms: i64, to_ms: i64, count: usize) -> Vec<(i64, String)> {
    let step = if count > 1 {
        (to_ms - from_ms) / (count as i64 - 1)
    } else {
        0
    };
    (0..count)
        .map(|i| {
            let ts = from_ms + step * i as i64;
            let message = match i % 5 {
                0 => format!("{stream} event {i} GET /api/orders 200 12ms"),
                1 => format!("{{\"level\":\"info\",\"stream\":\"{stream}\",\"seq\":{i}}}"),
                2 => format!("{stream} event {i} Traceback (most recent call last):\n  File \"app.py\", line {i}\nValueError: boom"),
                3 => format!("{stream} événement {i} — ünïcödé ✓ 日本語"),
                _ => format!("{stream} event {i}"),
            };
            (ts, message)
        })
        .collect()
}

/// Every event of a stream as CloudWatch returns it, oldest first; `None` if the stream is gone.
pub async fn stream_events(stack: &Stack, group: &str, stream: &str) -> Option<Vec<LogEvent>> {
    events_in(&stack.clients(), group, stream).await
}

/// Every event of a stream through `clients`, oldest first; `None` if the
/// stream does not exist.
pub async fn events_in(clients: &Clients, group: &str, stream: &str) -> Option<Vec<LogEvent>> {
    let mut events = Vec::new();
    let progress = read_events(
        clients.logs.as_ref(),
        group,
        stream,
        0,
        None,
        None,
        ReadLimits::UNBOUNDED,
        |e| {
            events.push(e);
            Ok(())
        },
    )
    .await
    .expect("GetLogEvents");
    (progress != ReadProgress::StreamMissing).then_some(events)
}

/// Every exported event under the group's export prefix, by stream, sorted by time.
pub async fn exported_events(stack: &Stack, bucket: &str, exports_prefix: &str) -> BTreeMap<String, Vec<LogEvent>> {
    let s3 = stack.emulator.s3();
    let mut by_stream: BTreeMap<String, Vec<LogEvent>> = BTreeMap::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(exports_prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("ListObjectsV2");
        for object in page.contents() {
            let key = object.key().unwrap_or_default();
            // key = {exports_prefix}dt=YYYY-MM-DD/{taskId}/{stream}/000000.gz
            let Some(rest) = key.strip_prefix(exports_prefix) else {
                continue;
            };
            let Some((dt, _)) = rest.split_once('/') else { continue };
            let Some(parsed) = parse_export_key(&format!("{exports_prefix}{dt}"), key) else {
                continue;
            };
            let body = s3.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
            let bytes = body.body.collect().await.expect("body").into_bytes();
            let events = read_export_object(&bytes).expect("export object parses");
            by_stream.entry(parsed.stream).or_default().extend(events);
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    for events in by_stream.values_mut() {
        events.sort_by(|a, b| (a.timestamp, &a.message).cmp(&(b.timestamp, &b.message)));
    }
    by_stream
}

/// Seeded events as [`LogEvent`]s, filtered.
pub fn as_events(seeded: &[(i64, String)], keep: impl Fn(i64) -> bool) -> Vec<LogEvent> {
    let mut events: Vec<LogEvent> = seeded
        .iter()
        .filter(|(t, _)| keep(*t))
        .map(|(t, m)| LogEvent::new(*t, m.clone()))
        .collect();
    events.sort_by(|a, b| (a.timestamp, &a.message).cmp(&(b.timestamp, &b.message)));
    events
}

/// Creates the bucket.
pub async fn create_bucket(stack: &Stack, bucket: &str) {
    stack
        .emulator
        .s3()
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket");
}

/// Every object key in the bucket under `prefix` (all of them for `""`).
pub async fn object_keys(stack: &Stack, bucket: &str, prefix: &str) -> Vec<String> {
    let s3 = stack.emulator.s3();
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("ListObjectsV2");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    keys
}

/// The full run report (with per-stream outcomes) that a run's output points to.
pub async fn full_report(stack: &Stack, output: &serde_json::Value) -> serde_json::Value {
    let bucket = output["reportBucket"].as_str().expect("reportBucket");
    let key = output["reportKey"].as_str().expect("reportKey");
    stack.read_json(bucket, key).await.expect("the run report")
}

/// The outcome of `stream` in a full report: (action, reason).
pub fn outcome_of(report: &serde_json::Value, stream: &str) -> Option<(String, Option<String>)> {
    report["outcomes"]
        .as_array()?
        .iter()
        .find(|o| o["stream"] == stream)
        .map(|o| {
            (
                o["action"].as_str().unwrap_or_default().to_string(),
                o["reason"].as_str().map(str::to_string),
            )
        })
}

/// The whole history of an execution of the archive state machine, by name.
pub async fn execution_history(stack: &Stack, execution_name: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
    let arn = format!(
        "{}:{execution_name}",
        stack.state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    );
    stack.history(&arn).await.expect("GetExecutionHistory")
}

/// The names of the states an execution entered, in order, from its history.
pub async fn entered_states(stack: &Stack, execution_name: &str) -> Vec<String> {
    execution_history(stack, execution_name)
        .await
        .iter()
        .filter_map(|e| e.state_entered_event_details().map(|d| d.name().to_string()))
        .collect()
}
