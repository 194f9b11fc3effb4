//! Faults during a run: the run completes (after Step Functions retries) with
//! nothing lost and nothing duplicated, checked event by event.

use std::time::Duration;

use cwl_archiver_e2e::emulator::{Fault, FaultKind, FaultPhase, FaultService};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::Stack;
use serde_json::json;

const GROUP: &str = "/faults/api";
const BUCKET: &str = "fault-archive";

struct Seeded {
    cutoff_ms: i64,
    cutoff: String,
    mixed: Vec<(i64, String)>,
    expired: Vec<(i64, String)>,
}

async fn seed(stack: &Stack) -> Seeded {
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(5);
    let mixed = events_between("mixed", now - 10 * DAY, now - 4 * HOUR, 2500);
    let expired = events_between("expired", now - 30 * DAY, cutoff_ms - 1, 800);
    stack
        .emulator
        .seed_with_ingestion(GROUP, "mixed", &mixed, now - 3 * HOUR)
        .await
        .unwrap();
    stack
        .emulator
        .seed_with_ingestion(GROUP, "expired", &expired, now - 3 * HOUR)
        .await
        .unwrap();
    create_bucket(stack, BUCKET).await;
    Seeded {
        cutoff_ms,
        cutoff,
        mixed,
        expired,
    }
}

async fn assert_nothing_lost_or_duplicated(stack: &Stack, seeded: &Seeded) {
    let cutoff = seeded.cutoff_ms;
    let exported = exported_events(stack, BUCKET, "cwl-archiver/faults/api/@exports/").await;
    assert_eq!(exported.get("mixed"), Some(&as_events(&seeded.mixed, |t| t < cutoff)));
    assert_eq!(exported.get("expired"), Some(&as_events(&seeded.expired, |_| true)));
    assert_eq!(
        stream_events(stack, GROUP, "mixed").await,
        Some(as_events(&seeded.mixed, |t| t >= cutoff))
    );
    assert_eq!(stream_events(stack, GROUP, "expired").await, None);
    assert_eq!(
        object_count(stack, "cwl-archiver/faults/api/@staging/").await,
        0,
        "staging objects left behind"
    );
}

async fn object_count(stack: &Stack, prefix: &str) -> i32 {
    let page = stack
        .emulator
        .s3()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    page.key_count().unwrap_or(0)
}

fn input(cutoff: &str) -> serde_json::Value {
    json!({"logGroupName": GROUP, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1})
}

/// Seeds the group, arms `fault`, runs the state machine to success, checks
/// the fault really fired, and clears it so the checks read a calm stack.
async fn run_under_fault(name: &str, fault: Fault) -> (Stack, Seeded) {
    let stack = Stack::start(1.0).await.unwrap();
    let seeded = seed(&stack).await;
    stack.emulator.inject(fault).await.unwrap();
    let run = stack
        .run(name, &input(&seeded.cutoff), Duration::from_secs(180))
        .await
        .unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let faults = stack.emulator.faults().await.unwrap();
    assert!(
        faults.iter().any(|f| f.injected > 0),
        "the fault never fired: {faults:?}"
    );
    stack.emulator.clear_faults().await.unwrap();
    (stack, seeded)
}

/// A PutLogEvents that took effect but whose answer was lost: the SDK sends
/// it again and the batch lands twice. Verification sees the duplicates and
/// the retry rebuilds the stream from the staging object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_applied_twice_is_rebuilt_without_duplicates() {
    let fault = Fault::new(FaultService::Logs, "PutLogEvents", FaultKind::Drop)
        .nth(1)
        .phase(FaultPhase::After);
    let (stack, seeded) = run_under_fault("dup", fault).await;
    assert_nothing_lost_or_duplicated(&stack, &seeded).await;
}

/// rebuild-stream dies after its side effects (the stream deleted and
/// replayed, the answer lost); Step Functions retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_crash_after_side_effects_is_retried_without_loss() {
    let fault = Fault::new(FaultService::Lambda, "rebuild-stream", FaultKind::Crash).nth(1);
    let (stack, seeded) = run_under_fault("crash", fault).await;
    assert_nothing_lost_or_duplicated(&stack, &seeded).await;
}

/// One in five CloudWatch Logs calls throttled: SDK and state machine
/// retries carry the run through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_cloudwatch_logs_calls_are_retried() {
    let fault = Fault::new(FaultService::Logs, "*", FaultKind::Throttle).rate(0.2, 7);
    let (stack, seeded) = run_under_fault("throttled", fault).await;
    assert_nothing_lost_or_duplicated(&stack, &seeded).await;
}
