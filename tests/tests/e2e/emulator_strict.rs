//! The strict local emulator behaves as AWS documents it: one test per strict
//! rule and per fault kind, through the AWS Rust SDK.
//!
//! Run: `cargo test -p cwl-archiver-e2e --test e2e emulator_strict::`
//! (needs `make venv`, or `CWL_EMULATOR_PYTHON`; `CWL_EMULATOR_LOG=1` echoes
//! the emulator's stderr).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::{ExportTaskStatusCode, InputLogEvent};
use chrono::{TimeZone, Utc};
use cwl_archiver_e2e::emulator::{Emulator, EmulatorOptions, Fault, FaultKind, FaultPhase, FaultService};
use serde_json::{Value, json};

const GROUP: &str = "/app/strict";
const STREAM: &str = "web-1";
const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

async fn start() -> Emulator {
    start_with(EmulatorOptions {
        lambda_endpoint: None,
        export_delay_seconds: 1.0,
    })
    .await
}

async fn start_with(opts: EmulatorOptions) -> Emulator {
    match Emulator::start(opts).await {
        Ok(emu) => emu,
        Err(e) => panic!("{e}"),
    }
}

async fn group_and_stream(emu: &Emulator, group: &str, stream: &str) {
    let logs = emu.logs();
    logs.create_log_group().log_group_name(group).send().await.unwrap();
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
}

fn ev(ts: i64, msg: impl Into<String>) -> InputLogEvent {
    InputLogEvent::builder().timestamp(ts).message(msg).build().unwrap()
}

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<no code>").to_string()
}

async fn put(
    client: &aws_sdk_cloudwatchlogs::Client,
    events: Vec<InputLogEvent>,
) -> Result<
    aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput,
    SdkError<aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError>,
> {
    client
        .put_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .set_log_events(Some(events))
        .send()
        .await
}

async fn put_rejected(emu: &Emulator, events: Vec<InputLogEvent>) -> String {
    match put(&emu.logs_no_retry(), events).await {
        Ok(_) => panic!("PutLogEvents accepted a batch AWS rejects"),
        Err(e) => {
            let raw = e.raw_response().map(|r| r.status().as_u16());
            assert_eq!(raw, Some(400), "{e:?}");
            assert_eq!(code(&e), "InvalidParameterException", "{e:?}");
            e.message().unwrap_or_default().to_string()
        }
    }
}

/// All events of a stream, read forward with the repeated-token end rule.
async fn read_all(
    emu: &Emulator,
    group: &str,
    stream: &str,
    start: Option<i64>,
    end: Option<i64>,
) -> (Vec<(i64, String)>, usize) {
    let logs = emu.logs();
    let mut token: Option<String> = None;
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let resp = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_start_time(start)
            .set_end_time(end)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        let events = resp.events();
        assert!(events.len() <= 10_000);
        out.extend(
            events
                .iter()
                .map(|e| (e.timestamp().unwrap(), e.message().unwrap().to_string())),
        );
        let next = resp.next_forward_token().unwrap().to_string();
        if token.as_deref() == Some(next.as_str()) {
            return (out, pages);
        }
        assert!(pages < 100, "GetLogEvents never signalled the end");
        token = Some(next);
    }
}

// ---------------------------------------------------------------------------
// PutLogEvents
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_rejects_an_empty_batch() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    put_rejected(&emu, vec![]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_rejects_10001_events_and_accepts_10000() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let t = now_ms() - 3_600_000;
    let batch = |n: i64| (0..n).map(|i| ev(t + i, "x")).collect::<Vec<_>>();
    put_rejected(&emu, batch(10_001)).await;
    put(&emu.logs_no_retry(), batch(10_000)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_byte_limit_counts_26_bytes_per_event() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let t = now_ms() - 3_600_000;
    // 4 * (262_118 + 26) = 1_048_576 bytes exactly; 'é' is 2 UTF-8 bytes.
    let msg = "é".repeat(131_059);
    assert_eq!(msg.len(), 262_118);
    let batch = |extra: &str| {
        (0..4)
            .map(|i| {
                let m = if i == 3 { format!("{msg}{extra}") } else { msg.clone() };
                ev(t + i, m)
            })
            .collect::<Vec<_>>()
    };
    let message = put_rejected(&emu, batch("!")).await;
    assert!(message.contains("1048577"), "{message}");
    put(&emu.logs_no_retry(), batch("")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_rejects_a_span_over_24_hours() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let first = now_ms() - 2 * DAY_MS;
    let message = put_rejected(&emu, vec![ev(first, "a"), ev(first + DAY_MS + 1, "b")]).await;
    assert!(message.contains("24 hours"), "{message}");
    put(&emu.logs_no_retry(), vec![ev(first, "a"), ev(first + DAY_MS, "b")])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_rejects_events_out_of_order() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let t = now_ms() - 60_000;
    let message = put_rejected(&emu, vec![ev(t, "a"), ev(t + 2, "b"), ev(t + 1, "c")]).await;
    assert!(message.contains("chronological"), "{message}");
    // Equal timestamps are in order.
    put(&emu.logs_no_retry(), vec![ev(t, "a"), ev(t, "b")]).await.unwrap();
    // Nothing of the rejected batch was stored.
    let (events, _) = read_all(&emu, GROUP, STREAM, None, None).await;
    assert_eq!(events.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn put_log_events_reports_too_old_expired_and_too_new_events() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let logs = emu.logs_no_retry();
    let now = now_ms();
    let old = now - 15 * DAY_MS;
    let out = put(&logs, vec![ev(old, "old-1"), ev(old + 1, "old-2")]).await.unwrap();
    let info = out.rejected_log_events_info().expect("rejectedLogEventsInfo");
    assert_eq!(info.too_old_log_event_end_index(), Some(2)); // exclusive end
    assert_eq!(info.too_new_log_event_start_index(), None);

    let out = put(&logs, vec![ev(now - 1000, "ok"), ev(now + 3 * 3_600_000, "new")])
        .await
        .unwrap();
    let info = out.rejected_log_events_info().expect("too new");
    assert_eq!(info.too_new_log_event_start_index(), Some(1)); // inclusive start
    assert_eq!(info.too_old_log_event_end_index(), None);

    emu.logs()
        .put_retention_policy()
        .log_group_name(GROUP)
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    let out = put(
        &logs,
        vec![
            ev(now - 2 * DAY_MS, "expired"),
            ev(now - 2 * DAY_MS + 5, "also expired"),
        ],
    )
    .await
    .unwrap();
    let info = out.rejected_log_events_info().expect("expired");
    assert_eq!(info.expired_log_event_end_index(), Some(2));

    // Only the in-range event was stored; the stream's statistics follow it.
    let (events, _) = read_all(&emu, GROUP, STREAM, None, None).await;
    assert_eq!(events, vec![(now - 1000, "ok".to_string())]);
    let streams = emu
        .logs()
        .describe_log_streams()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    let s = &streams.log_streams()[0];
    assert_eq!(s.first_event_timestamp(), Some(now - 1000));
    assert_eq!(s.last_event_timestamp(), Some(now - 1000));
    assert!(s.last_ingestion_time().unwrap() >= now - 5_000);
}

// ---------------------------------------------------------------------------
// GetLogEvents
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn get_log_events_start_inclusive_end_exclusive() {
    let emu = start().await;
    let t = 1_700_000_000_000;
    let events: Vec<(i64, String)> = (0..5).map(|i| (t + i, format!("e{i}"))).collect();
    emu.seed(GROUP, STREAM, &events).await.unwrap();
    let (got, _) = read_all(&emu, GROUP, STREAM, Some(t + 1), Some(t + 3)).await;
    assert_eq!(got, events[1..3].to_vec());
    // Without startFromHead and a token, the page holds the newest events.
    let resp = emu
        .logs()
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .end_time(t + 4)
        .limit(2)
        .send()
        .await
        .unwrap();
    let ts: Vec<i64> = resp.events().iter().map(|e| e.timestamp().unwrap()).collect();
    assert_eq!(ts, vec![t + 2, t + 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_log_events_pages_25000_events_and_ends_on_the_repeated_token() {
    let emu = start().await;
    let t = 1_700_000_000_000;
    let events: Vec<(i64, String)> = (0..25_000).map(|i| (t + i, format!("m{i}"))).collect();
    emu.seed(GROUP, STREAM, &events).await.unwrap();
    let (got, pages) = read_all(&emu, GROUP, STREAM, None, None).await;
    assert_eq!(got.len(), 25_000);
    assert_eq!(got, events);
    // 10,000 + 10,000 + 5,000, then one empty page returning the same token.
    assert_eq!(pages, 4);

    // The end token stays valid: new events appear after it.
    let logs = emu.logs();
    let first = logs
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .start_from_head(true)
        .start_time(t + 24_990)
        .send()
        .await
        .unwrap();
    assert_eq!(first.events().len(), 10);
    let token = first.next_forward_token().unwrap().to_string();
    emu.seed(GROUP, STREAM, &[(t + 30_000, "late".to_string())])
        .await
        .unwrap();
    let next = logs
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .start_from_head(true)
        .start_time(t + 24_990)
        .next_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.events().len(), 1);
    assert_ne!(next.next_forward_token(), Some(token.as_str()));

    // A garbage token is rejected like AWS does.
    let err = logs
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}

#[tokio::test(flavor = "multi_thread")]
async fn get_log_events_pages_are_at_most_1_mb() {
    let emu = start().await;
    let t = 1_700_000_000_000;
    let msg = "x".repeat(3_974); // 4,000 bytes with the 26-byte overhead
    let events: Vec<(i64, String)> = (0..600).map(|i| (t + i, msg.clone())).collect();
    emu.seed(GROUP, "big", &events).await.unwrap();
    let resp = emu
        .logs()
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name("big")
        .start_from_head(true)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.events().len(), 1_048_576 / 4_000);
    let (got, pages) = read_all(&emu, GROUP, "big", None, None).await;
    assert_eq!(got.len(), 600);
    assert_eq!(pages, 4);
}

// ---------------------------------------------------------------------------
// Export tasks
// ---------------------------------------------------------------------------

async fn bucket(emu: &Emulator, name: &str) {
    emu.s3().create_bucket().bucket(name).send().await.unwrap();
}

async fn export(
    emu: &Emulator,
    group: &str,
    from: i64,
    to: i64,
    bucket: &str,
    prefix: &str,
) -> Result<String, SdkError<aws_sdk_cloudwatchlogs::operation::create_export_task::CreateExportTaskError>> {
    emu.logs_no_retry()
        .create_export_task()
        .log_group_name(group)
        .from(from)
        .to(to)
        .destination(bucket)
        .destination_prefix(prefix)
        .send()
        .await
        .map(|o| o.task_id().unwrap().to_string())
}

async fn task_status(emu: &Emulator, task_id: &str) -> ExportTaskStatusCode {
    let out = emu
        .logs()
        .describe_export_tasks()
        .task_id(task_id)
        .send()
        .await
        .unwrap();
    out.export_tasks()[0].status().unwrap().code().unwrap().clone()
}

async fn wait_final(emu: &Emulator, task_id: &str) -> ExportTaskStatusCode {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = task_status(emu, task_id).await;
        if !matches!(code, ExportTaskStatusCode::Pending | ExportTaskStatusCode::Running) {
            return code;
        }
        assert!(Instant::now() < deadline, "export task never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn keys(emu: &Emulator, bucket: &str) -> Vec<String> {
    let out = emu.s3().list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = out.contents().iter().map(|o| o.key().unwrap().to_string()).collect();
    keys.sort();
    keys
}

async fn gunzip_object(emu: &Emulator, bucket: &str, key: &str) -> String {
    let out = emu.s3().get_object().bucket(bucket).key(key).send().await.unwrap();
    let bytes = out.body.collect().await.unwrap().into_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn export_line(ts: i64, msg: &str) -> String {
    let dt = Utc.timestamp_millis_opt(ts).unwrap();
    format!("{} {msg}", dt.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

#[tokio::test(flavor = "multi_thread")]
async fn export_task_runs_then_completes_and_allows_one_active_task() {
    let emu = start_with(EmulatorOptions {
        lambda_endpoint: None,
        export_delay_seconds: 1.5,
    })
    .await;
    bucket(&emu, "archive-bucket").await;
    emu.seed(GROUP, STREAM, &[(1_700_000_000_000, "a".into())])
        .await
        .unwrap();

    // Validation: a missing bucket, a missing group.
    let err = export(&emu, GROUP, 0, 1, "no-such-bucket", "p").await.unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = export(&emu, "/no/such/group", 0, 1, "archive-bucket", "p")
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");

    let created = Instant::now();
    let task = export(&emu, GROUP, 0, 1_800_000_000_000, "archive-bucket", "p")
        .await
        .unwrap();
    let status = task_status(&emu, &task).await;
    assert!(
        matches!(status, ExportTaskStatusCode::Pending | ExportTaskStatusCode::Running),
        "{status:?}"
    );

    let err = export(&emu, GROUP, 0, 1, "archive-bucket", "p2").await.unwrap_err();
    assert_eq!(code(&err), "LimitExceededException");
    assert_eq!(err.message(), Some("Resource limit exceeded."));

    // DescribeExportTasks filters by status.
    let running = emu
        .logs()
        .describe_export_tasks()
        .status_code(ExportTaskStatusCode::Completed)
        .send()
        .await
        .unwrap();
    assert!(running.export_tasks().is_empty());

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(task_status(&emu, &task).await, ExportTaskStatusCode::Running);

    let done = wait_final(&emu, &task).await;
    assert_eq!(done, ExportTaskStatusCode::Completed);
    assert!(created.elapsed() >= Duration::from_millis(1_400));
    let described = emu
        .logs()
        .describe_export_tasks()
        .status_code(ExportTaskStatusCode::Completed)
        .send()
        .await
        .unwrap();
    assert_eq!(described.export_tasks().len(), 1);
    let info = described.export_tasks()[0].execution_info().unwrap();
    assert!(info.completion_time().unwrap() >= info.creation_time().unwrap() + 1_500);

    // The slot is free again; cancelling works on an active task only.
    let second = export(&emu, GROUP, 0, 1, "archive-bucket", "p2").await.unwrap();
    emu.logs().cancel_export_task().task_id(&second).send().await.unwrap();
    assert_eq!(task_status(&emu, &second).await, ExportTaskStatusCode::Cancelled);
    let err = emu
        .logs()
        .cancel_export_task()
        .task_id(&second)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidOperationException");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_every_event_in_the_inclusive_range_with_milliseconds() {
    let emu = start_with(EmulatorOptions {
        lambda_endpoint: None,
        export_delay_seconds: 0.3,
    })
    .await;
    bucket(&emu, "archive-bucket").await;
    let base = 1_700_000_000_000;
    // Distinct milliseconds, including .000 and .999.
    let events: Vec<(i64, String)> = (0..25_000)
        .map(|i| (base + i * 1_000 + (i % 1_000), format!("event {i} ü")))
        .collect();
    let stream = "app/web-1";
    emu.seed(GROUP, stream, &events).await.unwrap();
    // A stream with events only outside the range gets no object.
    emu.seed(
        GROUP,
        "quiet",
        &[(base - 10, "before".into()), (base + 30_000_000, "after".into())],
    )
    .await
    .unwrap();

    let from = events[100].0;
    let to = events[24_000].0; // inclusive
    let task = export(&emu, GROUP, from, to, "archive-bucket", "exports")
        .await
        .unwrap();
    assert_eq!(wait_final(&emu, &task).await, ExportTaskStatusCode::Completed);
    let object = format!("exports/{task}/{stream}/000000.gz");
    let mut expected_keys = vec!["exports/aws-logs-write-test".to_string(), object.clone()];
    expected_keys.sort();
    assert_eq!(keys(&emu, "archive-bucket").await, expected_keys);
    let text = gunzip_object(&emu, "archive-bucket", &object).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 23_901);
    let expected: Vec<String> = events[100..=24_000].iter().map(|(ts, m)| export_line(*ts, m)).collect();
    assert_eq!(lines, expected);
    assert!(lines[0].contains(".100Z event 100 "), "{}", lines[0]);

    // No prefix: no leading slash.
    let task2 = export(&emu, GROUP, from, from, "archive-bucket", "").await.unwrap();
    assert_eq!(wait_final(&emu, &task2).await, ExportTaskStatusCode::Completed);
    let all = keys(&emu, "archive-bucket").await;
    assert!(all.contains(&"aws-logs-write-test".to_string()), "{all:?}");
    let single = format!("{task2}/{stream}/000000.gz");
    assert!(all.contains(&single), "{all:?}");
    assert_eq!(
        gunzip_object(&emu, "archive-bucket", &single).await,
        format!("{}\n", export_line(events[100].0, &events[100].1))
    );
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn fault_throttle_nth_fails_only_that_call_and_standard_retry_recovers() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let t = now_ms();
    emu.inject(Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Throttle))
        .await
        .unwrap();
    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Throttle).nth(2))
        .await
        .unwrap();
    let no_retry = emu.logs_no_retry();
    put(&no_retry, vec![ev(t, "1")]).await.unwrap();
    let err = put(&no_retry, vec![ev(t, "2")]).await.unwrap_err();
    assert_eq!(code(&err), "ThrottlingException");
    assert_eq!(err.message(), Some("Rate exceeded"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    put(&no_retry, vec![ev(t, "3")]).await.unwrap();

    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Throttle).nth(1))
        .await
        .unwrap();
    emu.reset_calls().await.unwrap();
    put(&emu.logs(), vec![ev(t, "4")]).await.unwrap();
    assert_eq!(emu.calls().await.unwrap()["logs.PutLogEvents"], 2);
    let faults = emu.faults().await.unwrap();
    assert_eq!((faults[0].matched, faults[0].injected), (2, 1));

    let (events, _) = read_all(&emu, GROUP, STREAM, None, None).await;
    let msgs: Vec<&str> = events.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(msgs, vec!["1", "3", "4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_throttle_rate_is_deterministic_with_a_seed() {
    let emu = start().await;
    // 45 DescribeLogGroups in a burst: the 5 TPS quota would add throttles of its own.
    emu.set_quotas_enabled(false).await.unwrap();
    let logs = emu.logs_no_retry();
    let mut patterns = Vec::new();
    for _ in 0..2 {
        emu.clear_faults().await.unwrap();
        emu.inject(Fault::new(FaultService::Logs, "DescribeLogGroups", FaultKind::Throttle).rate(0.4, 7))
            .await
            .unwrap();
        let mut pattern = Vec::new();
        for _ in 0..20 {
            match logs.describe_log_groups().send().await {
                Ok(_) => pattern.push(false),
                Err(e) => {
                    assert_eq!(code(&e), "ThrottlingException");
                    pattern.push(true)
                }
            }
        }
        let failed = pattern.iter().filter(|f| **f).count() as u64;
        assert!((1..20).contains(&failed), "{pattern:?}");
        assert_eq!(emu.faults().await.unwrap()[0].injected, failed);
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);

    // `times` caps the injections.
    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::Logs, "*", FaultKind::Throttle).times(2))
        .await
        .unwrap();
    let mut failures = 0;
    for _ in 0..5 {
        if logs.describe_log_groups().send().await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_throttle_s3_is_slow_down() {
    let emu = start().await;
    bucket(&emu, "b-throttle").await;
    emu.inject(Fault::new(FaultService::S3, "PutObject", FaultKind::Throttle).nth(1))
        .await
        .unwrap();
    let err = emu
        .s3_no_retry()
        .put_object()
        .bucket("b-throttle")
        .key("k")
        .body(b"v".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SlowDown");
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::S3, "PutObject", FaultKind::Throttle).nth(1))
        .await
        .unwrap();
    emu.s3()
        .put_object()
        .bucket("b-throttle")
        .key("k")
        .body(b"v".to_vec().into())
        .send()
        .await
        .unwrap();
    let calls = emu.calls().await.unwrap();
    assert_eq!(calls["s3.PutObject"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_unavailable_is_a_503() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    bucket(&emu, "b-unavail").await;
    emu.inject(Fault::new(
        FaultService::Logs,
        "DescribeLogStreams",
        FaultKind::Unavailable,
    ))
    .await
    .unwrap();
    emu.inject(Fault::new(FaultService::S3, "HeadObject", FaultKind::Unavailable))
        .await
        .unwrap();
    let err = emu
        .logs_no_retry()
        .describe_log_streams()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ServiceUnavailableException");
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    let err = emu
        .s3_no_retry()
        .head_object()
        .bucket("b-unavail")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    let err = emu
        .s3_no_retry()
        .get_object()
        .bucket("b-unavail")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey", "other operations are untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_drop_closes_the_connection_before_or_after_the_backend() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    let t = now_ms();
    let no_retry = emu.logs_no_retry();

    emu.inject(Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop).nth(1))
        .await
        .unwrap();
    let err = put(&no_retry, vec![ev(t, "before")]).await.unwrap_err();
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "expected a connection error, got {err:?}"
    );
    assert!(read_all(&emu, GROUP, STREAM, None, None).await.0.is_empty());

    emu.clear_faults().await.unwrap();
    emu.inject(
        Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop)
            .nth(1)
            .phase(FaultPhase::After),
    )
    .await
    .unwrap();
    let err = put(&no_retry, vec![ev(t, "after")]).await.unwrap_err();
    assert!(
        matches!(err, SdkError::DispatchFailure(_)),
        "expected a connection error, got {err:?}"
    );
    let (events, _) = read_all(&emu, GROUP, STREAM, None, None).await;
    assert_eq!(events, vec![(t, "after".to_string())], "the backend applied it");

    // The SDK's standard retry treats the dropped connection as transient.
    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop).nth(1))
        .await
        .unwrap();
    put(&emu.logs(), vec![ev(t + 1, "retried")]).await.unwrap();
    assert_eq!(read_all(&emu, GROUP, STREAM, None, None).await.0.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_export_failed_and_cancelled_write_nothing() {
    let emu = start_with(EmulatorOptions {
        lambda_endpoint: None,
        export_delay_seconds: 0.3,
    })
    .await;
    bucket(&emu, "b-export").await;
    emu.seed(GROUP, STREAM, &[(1_700_000_000_000, "a".into())])
        .await
        .unwrap();
    for (kind, expected, prefix) in [
        (FaultKind::ExportFailed, ExportTaskStatusCode::Failed, "f"),
        (FaultKind::ExportCancelled, ExportTaskStatusCode::Cancelled, "c"),
    ] {
        emu.clear_faults().await.unwrap();
        emu.inject(Fault::new(FaultService::Logs, "CreateExportTask", kind))
            .await
            .unwrap();
        let task = export(&emu, GROUP, 0, 1_800_000_000_000, "b-export", prefix)
            .await
            .unwrap();
        let status = task_status(&emu, &task).await;
        assert!(matches!(
            status,
            ExportTaskStatusCode::Pending | ExportTaskStatusCode::Running
        ));
        assert_eq!(wait_final(&emu, &task).await, expected);
        let written: Vec<String> = keys(&emu, "b-export")
            .await
            .into_iter()
            .filter(|k| k.contains(&task))
            .collect();
        assert!(written.is_empty(), "{written:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn occupy_export_slot_blocks_until_the_other_task_completes() {
    let emu = start().await;
    bucket(&emu, "b-slot").await;
    emu.seed(GROUP, STREAM, &[(1_700_000_000_000, "a".into())])
        .await
        .unwrap();
    let other = emu.occupy_export_slot(1.5).await.unwrap();
    let started = Instant::now();
    let running = emu
        .logs()
        .describe_export_tasks()
        .status_code(ExportTaskStatusCode::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(running.export_tasks().len(), 1);
    assert_eq!(running.export_tasks()[0].task_id(), Some(other.as_str()));
    assert_ne!(running.export_tasks()[0].log_group_name(), Some(GROUP));

    let err = export(&emu, GROUP, 0, 1, "b-slot", "x").await.unwrap_err();
    assert_eq!(code(&err), "LimitExceededException");
    loop {
        match export(&emu, GROUP, 0, 1, "b-slot", "x").await {
            Ok(_) => break,
            Err(e) => assert_eq!(code(&e), "LimitExceededException"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1_300));
    assert_eq!(task_status(&emu, &other).await, ExportTaskStatusCode::Completed);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_counter_counts_every_request_by_service_and_operation() {
    let emu = start().await;
    group_and_stream(&emu, GROUP, STREAM).await;
    bucket(&emu, "b-calls").await;
    emu.reset_calls().await.unwrap();
    let t = now_ms();
    for i in 0..3 {
        put(&emu.logs(), vec![ev(t + i, "x")]).await.unwrap();
    }
    emu.s3()
        .put_object()
        .bucket("b-calls")
        .key("a/b")
        .body(b"v".to_vec().into())
        .send()
        .await
        .unwrap();
    emu.s3().list_objects_v2().bucket("b-calls").send().await.unwrap();
    let calls = emu.calls().await.unwrap();
    let expected: BTreeMap<String, u64> = [("logs.PutLogEvents", 3), ("s3.ListObjectsV2", 1), ("s3.PutObject", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(calls, expected);
    emu.reset_calls().await.unwrap();
    assert!(emu.calls().await.unwrap().is_empty());
}

/// One page of a group's streams ordered by name.
async fn stream_page(
    emu: &Emulator,
    prefix: Option<&str>,
    descending: bool,
    token: Option<String>,
) -> (Vec<String>, Option<String>) {
    let out = emu
        .logs()
        .describe_log_streams()
        .log_group_name(GROUP)
        .set_log_stream_name_prefix(prefix.map(str::to_string))
        .descending(descending)
        .limit(50)
        .set_next_token(token)
        .send()
        .await
        .unwrap();
    let names = out
        .log_streams()
        .iter()
        .map(|s| s.log_stream_name().unwrap().to_string())
        .collect();
    (names, out.next_token().map(str::to_string))
}

async fn all_streams(emu: &Emulator, prefix: Option<&str>, descending: bool) -> Vec<String> {
    let (mut names, mut token) = stream_page(emu, prefix, descending, None).await;
    while token.is_some() {
        let (more, next) = stream_page(emu, prefix, descending, token).await;
        names.extend(more);
        token = next;
    }
    names
}

/// The emulator describes only the page's streams when listing by name
/// (tests/emulator/speedups.py): every stream is listed once, in order, both
/// ways, under a prefix, and across a delete of the stream a token names.
#[tokio::test(flavor = "multi_thread")]
async fn stream_listings_by_name_page_through_every_stream() {
    let emu = start().await;
    let mut names: Vec<String> = (0..120).map(|i| format!("s-{i:03}")).collect();
    names.push("t-0".into());
    for name in &names {
        emu.seed(GROUP, name, &[(now_ms(), "x".into())]).await.unwrap();
    }
    assert_eq!(all_streams(&emu, None, false).await, names);
    let mut reversed = names.clone();
    reversed.reverse();
    assert_eq!(all_streams(&emu, None, true).await, reversed);
    let under: Vec<String> = names.iter().filter(|n| n.starts_with("s-1")).cloned().collect();
    assert_eq!(all_streams(&emu, Some("s-1"), false).await, under);

    let (first, token) = stream_page(&emu, None, false, None).await;
    assert_eq!(first, names[..50]);
    emu.logs()
        .delete_log_stream()
        .log_group_name(GROUP)
        .log_stream_name(&names[49])
        .send()
        .await
        .unwrap();
    let (second, _) = stream_page(&emu, None, false, token).await;
    assert_eq!(second, names[50..100]);
}

/// Every key and common prefix of a listing, page by page with `page` keys a page.
async fn list_all(
    emu: &Emulator,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    page: i32,
) -> (Vec<String>, Vec<String>) {
    let mut pages = emu
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_string))
        .max_keys(page)
        .into_paginator()
        .send();
    let (mut keys, mut prefixes) = (Vec::new(), Vec::new());
    while let Some(out) = pages.next().await {
        let out = out.unwrap();
        keys.extend(out.contents().iter().map(|o| o.key().unwrap().to_string()));
        prefixes.extend(out.common_prefixes().iter().map(|p| p.prefix().unwrap().to_string()));
    }
    (keys, prefixes)
}

/// The emulator indexes key names to list a prefix without walking the
/// bucket (tests/emulator/speedups.py): listings must still match the
/// bucket's contents after every kind of write, including the writes that
/// land while a listing is paged.
#[tokio::test(flavor = "multi_thread")]
async fn prefix_listings_follow_puts_overwrites_and_deletes() {
    let emu = start().await;
    bucket(&emu, "b-index").await;
    let s3 = emu.s3();
    let put = |key: String| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket("b-index")
                .key(key)
                .body(b"v".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    };
    let mut model = std::collections::BTreeSet::new();
    // Listed once before most writes: the index is built then kept up to date.
    put("run/a/0".into()).await;
    model.insert("run/a/0".to_string());
    assert_eq!(list_all(&emu, "b-index", "run/", None, 1000).await.0, vec!["run/a/0"]);
    for i in 0..30 {
        for key in [
            format!("run/a/{i:02}"),
            format!("run/b/{i:02}/x"),
            format!("runner/{i:02}"),
        ] {
            put(key.clone()).await;
            model.insert(key);
        }
    }
    put("run/a/05".into()).await; // an overwrite adds no name
    for i in (0..30).step_by(3) {
        let key = format!("run/a/{i:02}");
        s3.delete_object().bucket("b-index").key(&key).send().await.unwrap();
        model.remove(&key);
    }
    s3.delete_object()
        .bucket("b-index")
        .key("run/a/missing")
        .send()
        .await
        .unwrap();
    let under = |prefix: &str| {
        model
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };

    for (prefix, page) in [("run/", 7), ("run/a/", 4), ("run", 1000), ("runner/1", 2), ("none/", 5)] {
        let (keys, prefixes) = list_all(&emu, "b-index", prefix, None, page).await;
        assert_eq!(keys, under(prefix), "prefix {prefix}, {page} a page");
        assert!(prefixes.is_empty());
    }
    let (keys, prefixes) = list_all(&emu, "b-index", "run/", Some("/"), 1000).await;
    assert!(keys.is_empty());
    assert_eq!(prefixes, vec!["run/a/", "run/b/"]);
    let (keys, prefixes) = list_all(&emu, "b-index", "run/b/", Some("/"), 3).await;
    assert!(keys.is_empty());
    assert_eq!(prefixes.len(), 30);
    // The whole bucket (no prefix) is moto's own listing.
    let (keys, _) = list_all(&emu, "b-index", "", None, 1000).await;
    assert_eq!(keys, model.iter().cloned().collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// Lambda forwarding through Step Functions
// ---------------------------------------------------------------------------

type Invocations = Arc<Mutex<Vec<(String, Value)>>>;

/// A tiny Lambda Invoke API: `echo` answers `{"ok":true,"input":...}`,
/// `fails` answers an unhandled error `{"errorType":"X","errorMessage":"m"}`.
async fn lambda_endpoint() -> (String, Invocations) {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::routing::post;

    let calls: Invocations = Arc::default();
    async fn invoke(State(calls): State<Invocations>, Path(name): Path<String>, body: String) -> (HeaderMap, String) {
        let input: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        calls.lock().unwrap().push((name.clone(), input.clone()));
        let mut headers = HeaderMap::new();
        if name == "fails" {
            headers.insert("X-Amz-Function-Error", "Unhandled".parse().unwrap());
            return (headers, json!({"errorType": "X", "errorMessage": "m"}).to_string());
        }
        (headers, json!({"ok": true, "input": input}).to_string())
    }
    let app = axum::Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .with_state(Arc::clone(&calls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

async fn run_state_machine(
    emu: &Emulator,
    name: &str,
    definition: Value,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let sfn = emu.sfn();
    let arn = sfn
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/cwl-archiver")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();
    let exec = sfn
        .start_execution()
        .state_machine_arn(arn)
        .input(json!({"group": "/g"}).to_string())
        .send()
        .await
        .unwrap()
        .execution_arn()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = sfn.describe_execution().execution_arn(&exec).send().await.unwrap();
        if out.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            return out;
        }
        assert!(Instant::now() < deadline, "execution {name} never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn invoke_task(function: &str, error: &str, plain_arn: bool) -> Value {
    let mut task = if plain_arn {
        json!({
            "Type": "Task",
            "Resource": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        })
    } else {
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function, "Payload.$": "$"},
            "OutputPath": "$.Payload",
        })
    };
    task["Retry"] = json!([{"ErrorEquals": [error], "MaxAttempts": 1, "IntervalSeconds": 1}]);
    task["Catch"] = json!([{"ErrorEquals": [error], "ResultPath": "$.error", "Next": "Caught"}]);
    task["End"] = json!(true);
    json!({
        "StartAt": "Invoke",
        "States": {
            "Invoke": task,
            "Caught": {"Type": "Pass", "End": true},
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_invocations_are_forwarded_and_errors_map_to_state_errors() {
    let (endpoint, calls) = lambda_endpoint().await;
    let emu = start_with(EmulatorOptions {
        lambda_endpoint: Some(endpoint),
        export_delay_seconds: 1.0,
    })
    .await;

    // Success, both resource styles.
    for (name, plain) in [("ok-integration", false), ("ok-plain", true)] {
        let out = run_state_machine(&emu, name, invoke_task("echo", "X", plain)).await;
        assert_eq!(out.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded);
        let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
        assert_eq!(output, json!({"ok": true, "input": {"group": "/g"}}), "{name}");
    }
    // Unhandled error "X": Retry (one more attempt) and Catch match ErrorEquals ["X"].
    for (name, plain) in [("x-integration", false), ("x-plain", true)] {
        calls.lock().unwrap().clear();
        let out = run_state_machine(&emu, name, invoke_task("fails", "X", plain)).await;
        assert_eq!(out.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded, "{name}");
        let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
        assert_eq!(output["error"]["Error"], "X", "{name}: {output}");
        assert_eq!(calls.lock().unwrap().len(), 2, "{name}: one retry");
    }

    // crash (phase after by default): the handler runs, then the state sees Runtime.ExitError.
    calls.lock().unwrap().clear();
    emu.inject(Fault::new(FaultService::Lambda, "echo", FaultKind::Crash))
        .await
        .unwrap();
    let out = run_state_machine(&emu, "crash-after", invoke_task("echo", "Runtime.ExitError", false)).await;
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(output["error"]["Error"], "Runtime.ExitError", "{output}");
    // Both attempts (first try and one retry) reached the handler.
    assert_eq!(calls.lock().unwrap().len(), 2);

    // crash before: the handler never runs.
    emu.clear_faults().await.unwrap();
    calls.lock().unwrap().clear();
    emu.inject(Fault::new(FaultService::Lambda, "echo", FaultKind::Crash).phase(FaultPhase::Before))
        .await
        .unwrap();
    let out = run_state_machine(&emu, "crash-before", invoke_task("echo", "Runtime.ExitError", false)).await;
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(output["error"]["Error"], "Runtime.ExitError", "{output}");
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(emu.calls().await.unwrap()["lambda.Invoke"], 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_without_endpoint_fails_loudly() {
    let emu = start().await;
    let definition = json!({
        "StartAt": "Invoke",
        "States": {"Invoke": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "echo", "Payload.$": "$"},
            "End": true
        }}
    });
    let out = run_state_machine(&emu, "no-endpoint", definition).await;
    assert_eq!(out.status(), &aws_sdk_sfn::types::ExecutionStatus::Failed);
    assert_eq!(out.error(), Some("Lambda.ServiceException"));
    assert!(
        out.cause().unwrap_or_default().contains("not reachable"),
        "{:?}",
        out.cause()
    );
}

// ---------------------------------------------------------------------------
// The process itself
// ---------------------------------------------------------------------------

#[test]
fn a_port_in_use_is_a_clear_error_with_exit_code_2() {
    let python = cwl_archiver_e2e::emulator::python_path();
    if !python.exists() {
        panic!("the emulator's Python environment is missing: run `make venv`");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = std::process::Command::new(python)
        .arg(cwl_archiver_e2e::emulator::script_path())
        .args(["--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_seed_of_100000_events() {
    let emu = start().await;
    assert_eq!(emu.health().await.unwrap()["status"], "ok");
    let t = now_ms() - 90 * DAY_MS;
    // Seeded out of order: the stream is kept sorted.
    let events: Vec<(i64, String)> = (0..100_000)
        .rev()
        .map(|i| (t + i * 60_000, format!("line {i}")))
        .collect();
    let started = Instant::now();
    emu.seed_with_ingestion(GROUP, STREAM, &events, t + 5).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let streams = emu
        .logs()
        .describe_log_streams()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    let s = &streams.log_streams()[0];
    assert_eq!(s.first_event_timestamp(), Some(t));
    assert_eq!(s.last_event_timestamp(), Some(t + 99_999 * 60_000));
    assert_eq!(s.last_ingestion_time(), Some(t + 5));
    let first = emu
        .logs()
        .get_log_events()
        .log_group_name(GROUP)
        .log_stream_name(STREAM)
        .start_from_head(true)
        .limit(2)
        .send()
        .await
        .unwrap();
    let msgs: Vec<&str> = first.events().iter().map(|e| e.message().unwrap()).collect();
    assert_eq!(msgs, vec!["line 0", "line 1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn execution_start_time_is_an_aws_timestamp_string() {
    let emu = start().await;
    let definition = json!({
        "StartAt": "P",
        "States": {"P": {
            "Type": "Pass",
            "Parameters": {"start.$": "$$.Execution.StartTime"},
            "End": true
        }}
    });
    let out = run_state_machine(&emu, "start-time", definition).await;
    assert_eq!(out.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded);
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    let start = output["start"].as_str().unwrap();
    // e.g. 2024-01-01T00:00:00.123Z
    assert_eq!(start.len(), 24, "{start}");
    assert!(start.ends_with('Z'), "{start}");
    let parsed = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    assert!((Utc::now().timestamp_millis() - parsed.timestamp_millis()).abs() < 60_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_unavailable_and_throttle_faults_surface_as_state_errors() {
    let (endpoint, calls) = lambda_endpoint().await;
    let emu = start_with(EmulatorOptions {
        lambda_endpoint: Some(endpoint),
        export_delay_seconds: 1.0,
    })
    .await;
    // lambda:invoke integration: a Lambda API error becomes `Lambda.<ErrorCode>`.
    emu.inject(Fault::new(FaultService::Lambda, "echo", FaultKind::Unavailable).nth(1))
        .await
        .unwrap();
    let out = run_state_machine(
        &emu,
        "unavailable-integration",
        invoke_task("echo", "Lambda.ServiceException", false),
    )
    .await;
    assert_eq!(out.status(), &aws_sdk_sfn::types::ExecutionStatus::Succeeded);
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(output, json!({"ok": true, "input": {"group": "/g"}}), "retried");
    assert_eq!(calls.lock().unwrap().len(), 1, "the failed call never ran");

    emu.clear_faults().await.unwrap();
    emu.inject(Fault::new(FaultService::Lambda, "echo", FaultKind::Throttle))
        .await
        .unwrap();
    let out = run_state_machine(
        &emu,
        "throttle-integration",
        invoke_task("echo", "Lambda.TooManyRequestsException", false),
    )
    .await;
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(output["error"]["Error"], "Lambda.TooManyRequestsException", "{output}");

    // A plain function ARN resource: the same `Lambda.<ErrorCode>` names (moto
    // alone says `Exception`; the emulator patches it).
    let out = run_state_machine(
        &emu,
        "throttle-plain",
        invoke_task("echo", "Lambda.TooManyRequestsException", true),
    )
    .await;
    let output: Value = serde_json::from_str(out.output().unwrap()).unwrap();
    assert_eq!(output["error"]["Error"], "Lambda.TooManyRequestsException", "{output}");
}
