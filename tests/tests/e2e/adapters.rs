//! The SDK adapters of the archiver (`archiver::store::aws`) against the strict
//! emulator: paging, batch limits, retries under throttling, ranged reads.
//!
//! Run: `cargo test -p cwl-archiver-e2e --test e2e adapters::`
//! (needs `make venv`, or `CWL_EMULATOR_PYTHON`).

use archiver::LogEvent;
use archiver::domain::batch::{
    BatchError, EVENT_OVERHEAD_BYTES, LogBatch, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS,
};
use archiver::store::aws::{CloudWatchLogs, S3Archive, retry_config};
use archiver::store::{ArchiveStore, LogStore};
use archiver::workflow::{ReadLimits, ReadProgress, read_events};
use chrono::Utc;
use cwl_archiver_e2e::emulator::{Emulator, EmulatorOptions, Fault, FaultKind, FaultService, FaultStatus};

const GROUP: &str = "/app/adapters";
const STREAM: &str = "web-1";
const BUCKET: &str = "adapter-bucket";

struct Adapters {
    emu: Emulator,
    logs: CloudWatchLogs,
    s3: S3Archive,
}

/// The emulator, and the adapters built with the archiver's own retry policy.
async fn start() -> Adapters {
    let emu = match Emulator::start(EmulatorOptions::default()).await {
        Ok(emu) => emu,
        Err(e) => panic!("{e}"),
    };
    let config = emu.sdk_config().into_builder().retry_config(retry_config()).build();
    let logs = CloudWatchLogs::from_config(&config);
    let s3 = S3Archive::from_config(&config);
    Adapters { emu, logs, s3 }
}

/// The group, and the stream created through the adapter (a second create says it exists).
async fn group_and_stream(a: &Adapters) {
    a.emu
        .logs()
        .create_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .unwrap();
    assert!(a.logs.create_stream(GROUP, STREAM).await.unwrap());
    assert!(!a.logs.create_stream(GROUP, STREAM).await.unwrap());
}

/// Reads `[start, ∞)` of the stream with the workflow's reader, pausing every
/// `pause_every` events and resuming from the returned token.
async fn read_stream(logs: &CloudWatchLogs, pause_every: Option<u64>, page_size: Option<i32>) -> Vec<LogEvent> {
    let mut out = Vec::new();
    let mut resume = None;
    loop {
        let limits = ReadLimits {
            max_events: pause_every,
            page_size,
        };
        let progress = read_events(logs, GROUP, STREAM, 0, None, resume.take(), limits, |e| {
            out.push(e);
            Ok(())
        })
        .await
        .unwrap();
        match progress {
            ReadProgress::Finished { .. } => return out,
            ReadProgress::Paused { token, .. } => resume = Some(token),
            ReadProgress::StreamMissing => panic!("the stream is missing"),
        }
    }
}

fn fault<'a>(faults: &'a [FaultStatus], operation: &str) -> &'a FaultStatus {
    faults
        .iter()
        .find(|f| f.operation == operation)
        .unwrap_or_else(|| panic!("no fault rule for {operation}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_50000_events_returns_each_once_in_order() {
    let a = start().await;
    let t0 = Utc::now().timestamp_millis() - 3 * 24 * 3_600_000;
    // Three events per millisecond: the order among equal timestamps is the order of writing.
    let seeded: Vec<(i64, String)> = (0..50_000i64).map(|i| (t0 + i / 3, format!("event {i:05}"))).collect();
    a.emu.seed(GROUP, STREAM, &seeded).await.unwrap();
    let expected: Vec<LogEvent> = seeded.iter().map(|(t, m)| LogEvent::new(*t, m.clone())).collect();

    a.emu.reset_calls().await.unwrap();
    let whole = read_stream(&a.logs, None, None).await;
    assert_eq!(whole.len(), 50_000);
    assert!(whole == expected, "events differ from the seeded ones");
    // Five full pages and the call whose token comes back unchanged.
    let calls = a.emu.calls().await.unwrap();
    assert_eq!(calls.get("logs.GetLogEvents"), Some(&6), "{calls:?}");

    // Across invocations: pauses at page boundaries, resumed from the token.
    let resumed = read_stream(&a.logs, Some(12_345), Some(4_000)).await;
    assert!(resumed == expected, "a resumed read lost or repeated events");
}

/// 10,000 events, exactly 1,048,576 bytes, first and last exactly 24 h apart,
/// within the 14 days PutLogEvents accepts.
fn largest_batch() -> Vec<LogEvent> {
    let first = Utc::now().timestamp_millis() - 2 * MAX_BATCH_SPAN_MS;
    let count = MAX_BATCH_EVENTS as i64;
    let filler = 78;
    let rest = MAX_BATCH_BYTES - MAX_BATCH_EVENTS * EVENT_OVERHEAD_BYTES - (MAX_BATCH_EVENTS - 1) * filler;
    (0..count)
        .map(|i| {
            let len = if i == count - 1 { rest } else { filler };
            let t = first + i * MAX_BATCH_SPAN_MS / (count - 1);
            LogEvent::new(t, format!("{i:05}{}", "z".repeat(len - 5)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_at_the_limits_is_accepted_and_one_past_them_cannot_be_built() {
    let a = start().await;
    group_and_stream(&a).await;
    let events = largest_batch();
    let batch = LogBatch::new(events.clone()).unwrap();
    assert_eq!(batch.len(), MAX_BATCH_EVENTS);
    assert_eq!(batch.byte_size(), MAX_BATCH_BYTES);
    assert_eq!(batch.last_timestamp() - batch.first_timestamp(), MAX_BATCH_SPAN_MS);
    a.logs.put_events(GROUP, STREAM, &batch).await.unwrap();
    assert!(
        read_stream(&a.logs, None, None).await == events,
        "the stored batch differs"
    );

    let mut one_more = events.clone();
    one_more.push(LogEvent::new(batch.last_timestamp(), ""));
    assert!(matches!(LogBatch::new(one_more), Err(BatchError::TooManyEvents { .. })));
    let mut one_byte_more = events.clone();
    one_byte_more[0].message.push('!');
    assert!(matches!(
        LogBatch::new(one_byte_more),
        Err(BatchError::TooManyBytes { .. })
    ));
    let mut one_ms_wider = events.clone();
    one_ms_wider[0].timestamp -= 1;
    assert!(matches!(
        LogBatch::new(one_ms_wider),
        Err(BatchError::SpanTooLong { .. })
    ));
    let mut misordered = events;
    misordered.swap(0, 1);
    assert!(matches!(LogBatch::new(misordered), Err(BatchError::OutOfOrder { .. })));
    assert_eq!(LogBatch::new(Vec::new()), Err(BatchError::Empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_calls_are_retried_until_they_succeed() {
    let a = start().await;
    group_and_stream(&a).await;
    a.emu.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    for (service, operation) in [
        (FaultService::Logs, "PutLogEvents"),
        (FaultService::Logs, "GetLogEvents"),
        (FaultService::S3, "PutObject"),
    ] {
        a.emu
            .inject(Fault::new(service, operation, FaultKind::Throttle).times(2))
            .await
            .unwrap();
    }

    let now = Utc::now().timestamp_millis();
    let events = vec![
        LogEvent::new(now - 2_000, "first"),
        LogEvent::new(now - 1_000, "second"),
    ];
    a.logs
        .put_events(GROUP, STREAM, &LogBatch::new(events.clone()).unwrap())
        .await
        .unwrap();
    assert!(
        read_stream(&a.logs, None, None).await == events,
        "the events did not arrive once"
    );
    a.s3.put(BUCKET, "k", b"body".to_vec().into()).await.unwrap();
    assert_eq!(a.s3.get(BUCKET, "k").await.unwrap().as_deref(), Some(&b"body"[..]));

    let faults = a.emu.faults().await.unwrap();
    for operation in ["PutLogEvents", "GetLogEvents", "PutObject"] {
        let rule = fault(&faults, operation);
        assert_eq!(rule.injected, 2, "{operation}: {rule:?}");
        assert!(rule.matched >= 3, "{operation} was not tried again: {rule:?}");
    }
    let calls = a.emu.calls().await.unwrap();
    assert_eq!(
        calls.get("logs.PutLogEvents"),
        Some(&3),
        "one batch, two throttled attempts: {calls:?}"
    );
}
