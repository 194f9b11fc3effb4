//! AWS's Step Functions limits, lowered so that a small run reaches them the
//! way a 100,000-stream group or a 5,000-group account would reach AWS's
//! (BENCHMARKS.md runs those sizes): every state payload, every execution's
//! history (Distributed Map children included: the emulator counts their
//! events against the same limit) and the Distributed Map's assembled
//! result must stay under the lowered limits, with the CloudWatch Logs quotas
//! on. Each test also shows that the designs these replaced would not: the
//! archive Map's children returned their whole state, so its assembled result
//! was at least the sum of its items; the account-wide run's inline Map took
//! 14 history events per group.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cwl_archiver_e2e::invariants::{Archive, Written, check};
use cwl_archiver_e2e::limits::{
    OLD_PARENT_EVENTS_PER_GROUP, PARENT_CHILD_EVENTS, all_figures, archive_item_events, execution_figures,
};
use cwl_archiver_e2e::scenario::*;
use cwl_archiver_e2e::stack::Stack;
use serde_json::json;

const BUCKET: &str = "limits-archive";
/// A sixteenth of AWS's 256 KiB.
const PAYLOAD_LIMIT: u64 = 16 * 1024;
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// Seeds one stream in nine expired (three events before the cutoff) and one
/// in ten mixed (two before, two after); returns what was written.
async fn seed_streams(stack: &Stack, group: &str, streams: usize, cutoff_ms: i64) -> Written {
    let now = chrono::Utc::now().timestamp_millis();
    let mut written = Written::new();
    for s in 0..streams {
        let name = format!("2026/11/{:02}/[$LATEST]{s:05x}", 1 + s % 28);
        let mut events: Vec<(i64, String)> = (0..3)
            .map(|i| (cutoff_ms - DAY + i, format!("{group} {name} old {i}")))
            .collect();
        if s % 10 == 0 {
            events.truncate(2);
            events.extend((0..2).map(|i| (cutoff_ms + HOUR + i, format!("{group} {name} kept {i}"))));
        }
        stack
            .emulator
            .seed_with_ingestion(group, &name, &events, now - 3 * HOUR)
            .await
            .unwrap();
        written.insert(name, events);
    }
    written
}

/// Every event older than the cutoff archived, nothing lost or doubled, no
/// staging left; and every stream handled: the expired ones gone, the mixed
/// ones holding exactly their kept events.
async fn assert_handled(stack: &Stack, group: &str, written: &Written, cutoff_ms: i64) {
    let archive = Archive {
        group,
        bucket: BUCKET,
        cutoff_ms,
    };
    check(stack, &archive, written).await.assert_clean(group);
    let stored = stack.emulator.stored_events(group).await.unwrap();
    for (stream, events) in written {
        let kept: Vec<(i64, String)> = events.iter().filter(|(t, _)| *t >= cutoff_ms).cloned().collect();
        let now: Vec<(i64, String)> = stored
            .get(stream)
            .map(|events| events.iter().map(|e| (e.timestamp, e.message.clone())).collect())
            .unwrap_or_default();
        if kept.is_empty() {
            assert!(!stored.contains_key(stream), "{group} {stream} was not deleted");
        } else {
            assert_eq!(now, kept, "{group} {stream}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_in_many_map_items_stays_within_lowered_limits() {
    const STREAMS: usize = 300;
    const PER_BATCH: u64 = 5;
    const HISTORY_LIMIT: u64 = 200;
    let started = Instant::now();
    let stack = Stack::start(0.2).await.unwrap();
    // Quotas on, ten times AWS's, so that 270 deletes take seconds; the run
    // paces its deletes at the scaled DeleteLogStream quota.
    stack.emulator.set_quota_scale(10.0).await.unwrap();
    stack
        .emulator
        .set_sfn_limits(Some(PAYLOAD_LIMIT), Some(HISTORY_LIMIT))
        .await
        .unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(3);
    let group = "/limits/many-items";
    let written = seed_streams(&stack, group, STREAMS, cutoff_ms).await;
    create_bucket(&stack, BUCKET).await;
    let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1,
        "streamsPerBatch": PER_BATCH, "deletesPerSecond": 50});
    let run = stack.run("many-items", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let output = run.output.unwrap();
    assert_eq!(output["totals"]["streams"]["deleted"], json!(270), "{output}");
    assert_eq!(output["totals"]["streams"]["rebuilt"], json!(30), "{output}");
    assert_handled(&stack, group, &written, cutoff_ms).await;

    // The execution and every Lambda payload within the lowered limits.
    let figures = all_figures(&stack, &stack.state_machine_arn).await.unwrap();
    assert_eq!(figures.len(), 1);
    let execution = &figures[0];
    let lambda = stack.interposer.largest_payload();
    assert!(execution.events < HISTORY_LIMIT, "{execution:?}");
    assert!((execution.largest_payload as u64) < PAYLOAD_LIMIT, "{execution:?}");
    assert!((lambda as u64) < PAYLOAD_LIMIT, "largest Lambda payload {lambda}");
    // Each Map item's history: one scan and one rebuild per item.
    let items = (STREAMS as u64).div_ceil(PER_BATCH);
    let invocations = stack.interposer.invocations("scan-stream") + stack.interposer.invocations("rebuild-stream");
    assert_eq!(invocations, 2 * items, "one scan and one rebuild per item");
    assert!(archive_item_events(2) < HISTORY_LIMIT);

    // The former design: each item's output was its whole state (run and
    // batch at least), so the Map's assembled result was at least this.
    let history = stack
        .history(&format!(
            "{}:many-items",
            stack.state_machine_arn.replace(":stateMachine:", ":execution:")
        ))
        .await
        .unwrap();
    let run_state = history
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .find(|d| d.name() == "PruneStreams")
        .and_then(|d| d.input())
        .map(|i| {
            serde_json::from_str::<serde_json::Value>(i).unwrap()["run"]
                .to_string()
                .len()
        })
        .unwrap();
    let old_result = items * run_state as u64;
    assert!(
        old_result > PAYLOAD_LIMIT,
        "the limit would not have caught the former design ({old_result} bytes)"
    );
    eprintln!(
        "many items: {items} items, {} history events, largest state {} B, Lambda {lambda} B, former assembled result >= {old_result} B, {:.1} s",
        execution.events,
        execution.largest_payload,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_groups_through_the_parent_stay_within_lowered_limits() {
    const GROUPS: usize = 60;
    const HISTORY_LIMIT: u64 = 300;
    let started = Instant::now();
    let stack = Stack::start(0.0).await.unwrap();
    // Quotas on, ten times AWS's: a group run reads a few events per stream,
    // and at AWS's 10 GetLogEvents a second sixty of them back to back would
    // mostly measure the SDK's backoff.
    stack.emulator.set_quota_scale(10.0).await.unwrap();
    stack
        .emulator
        .set_sfn_limits(Some(PAYLOAD_LIMIT), Some(HISTORY_LIMIT))
        .await
        .unwrap();
    let (cutoff_ms, cutoff) = cutoff_days_ago(3);
    let mut written = BTreeMap::new();
    for g in 0..GROUPS {
        let group = format!("/limits/g{g:02}");
        // Two streams a group: one expired, one mixed.
        let streams = seed_streams(&stack, &group, 2, cutoff_ms).await;
        written.insert(group, streams);
    }
    create_bucket(&stack, BUCKET).await;
    let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.unwrap();
    // No listing time at all: one DescribeLogGroups page per invocation, so
    // the listing goes on across invocations (two pages of 50).
    let input = json!({"logGroupNamePrefix": "/limits/", "invocationSeconds": 0,
        "archive": {"cutoff": cutoff, "pollSeconds": 1}});
    let run = stack.run_on(&parent, "sixty", &input, RUN_TIMEOUT).await.unwrap();
    assert_eq!(run.status, "SUCCEEDED", "{run:?}");
    let output = run.output.unwrap();
    assert_eq!(
        (&output["groups"], &output["succeeded"], &output["failed"]),
        (&json!(GROUPS), &json!(GROUPS), &json!(0)),
        "{output}"
    );
    for (group, streams) in &written {
        assert_handled(&stack, group, streams, cutoff_ms).await;
    }

    // The parent's history does not grow with the groups; the former inline
    // Map's would have passed the limit.
    let parent_run = execution_figures(
        &stack,
        &format!("{}:sixty", parent.replace(":stateMachine:", ":execution:")),
    )
    .await
    .unwrap();
    assert!(parent_run.events < 60, "{parent_run:?}");
    const { assert!(OLD_PARENT_EVENTS_PER_GROUP * GROUPS as u64 > HISTORY_LIMIT) };
    const { assert!(PARENT_CHILD_EVENTS < HISTORY_LIMIT) };
    let listed = stack
        .history(&parent_run.arn)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .filter(|d| d.name() == "ListGroups")
        .count();
    assert_eq!(listed, 2, "the listing went on in a second invocation");
    // Every group's run, and every payload, within the limits.
    let archive_runs = all_figures(&stack, &stack.state_machine_arn).await.unwrap();
    assert_eq!(archive_runs.len(), GROUPS);
    let largest_history = archive_runs.iter().map(|f| f.events).max().unwrap();
    let largest_state = archive_runs
        .iter()
        .map(|f| f.largest_payload)
        .chain([parent_run.largest_payload])
        .max()
        .unwrap();
    let lambda = stack.interposer.largest_payload();
    assert!(largest_history < HISTORY_LIMIT, "{largest_history}");
    assert!((largest_state as u64) < PAYLOAD_LIMIT, "{largest_state}");
    assert!((lambda as u64) < PAYLOAD_LIMIT, "{lambda}");
    eprintln!(
        "sixty groups: parent {} events, group runs at most {largest_history} events, largest state {largest_state} B, Lambda {lambda} B, {:.1} s",
        parent_run.events,
        started.elapsed().as_secs_f64()
    );
}
