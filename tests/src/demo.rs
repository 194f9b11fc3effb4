//! The demo: a realistic log group archived by the real state machine on the
//! local stack, with a before/after count per stream.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::scenario::{DAY, HOUR, create_bucket, cutoff_days_ago, events_between, exported_events, stream_events};
use crate::stack::Stack;

/// The demo's log group.
pub const DEMO_GROUP: &str = "/demo/checkout-service";
/// The demo's archive bucket.
pub const DEMO_BUCKET: &str = "cwl-archiver-demo";

/// What the demo seeded, by stream.
pub struct DemoGroup {
    /// The cutoff (RFC 3339).
    pub cutoff: String,
    /// Seeded events per stream.
    pub streams: BTreeMap<String, Vec<(i64, String)>>,
}

/// Seeds the demo group: expired, mixed, fresh, active and empty streams.
pub async fn seed_demo(stack: &Stack) -> Result<DemoGroup, String> {
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(7);
    let quiet = now - 3 * HOUR;
    let mut streams = BTreeMap::new();
    let plan: [(&str, i64, i64, usize, bool); 7] = [
        (
            "2026/10/01/[$LATEST]expired-a",
            now - 60 * DAY,
            cutoff_ms - HOUR,
            4_000,
            false,
        ),
        (
            "2026/10/02/[$LATEST]expired-b",
            now - 45 * DAY,
            cutoff_ms - 1,
            2_500,
            false,
        ),
        ("web-1/mixed", now - 12 * DAY, now - 5 * HOUR, 6_000, false),
        ("web-2/mixed", now - 9 * DAY, now - 4 * HOUR, 3_000, false),
        ("worker/fresh", cutoff_ms, now - 4 * HOUR, 1_500, false),
        ("worker/active", now - 10 * DAY, now - 60_000, 1_000, true),
        ("batch/empty", 0, 0, 0, false),
    ];
    for (name, from, to, count, active) in plan {
        let events = if count == 0 {
            Vec::new()
        } else {
            events_between(name, from, to, count)
        };
        let result = if active {
            // Written 40 minutes ago: DescribeLogStreams (30 minutes stale on
            // the stack, as on AWS) shows it, inside the 60-minute quiet period.
            stack
                .emulator
                .seed_with_ingestion(DEMO_GROUP, name, &events, now - 40 * 60_000)
                .await
        } else {
            stack
                .emulator
                .seed_with_ingestion(DEMO_GROUP, name, &events, quiet)
                .await
        };
        result.map_err(|e| format!("seeding {name}: {e}"))?;
        streams.insert(name.to_string(), events);
    }
    create_bucket(stack, DEMO_BUCKET).await;
    Ok(DemoGroup { cutoff, streams })
}

/// The execution input of the demo run.
pub fn demo_input(cutoff: &str) -> Value {
    json!({"logGroupName": DEMO_GROUP, "cutoff": cutoff, "bucket": DEMO_BUCKET, "pollSeconds": 1, "streamsPerBatch": 3})
}

/// The second group of the demo, archived in retention mode.
pub const DEMO_RETENTION_GROUP: &str = "/demo/audit-service";

/// Seeds the retention group: a year of audit events, streams still being
/// written, one that stopped long ago.
pub async fn seed_retention_demo(stack: &Stack) -> Result<DemoGroup, String> {
    let now = chrono::Utc::now().timestamp_millis();
    let (_, cutoff) = cutoff_days_ago(30);
    let mut streams = BTreeMap::new();
    let plan: [(&str, i64, i64, usize); 3] = [
        ("audit/2025", now - 380 * DAY, now - 200 * DAY, 3_000),
        ("audit/api", now - 300 * DAY, now - 4 * HOUR, 6_000),
        ("audit/jobs", now - 90 * DAY, now - 4 * HOUR, 2_000),
    ];
    for (name, from, to, count) in plan {
        let events = events_between(name, from, to, count);
        stack
            .emulator
            .seed_with_ingestion(DEMO_RETENTION_GROUP, name, &events, now - 3 * HOUR)
            .await
            .map_err(|e| format!("seeding {name}: {e}"))?;
        streams.insert(name.to_string(), events);
    }
    Ok(DemoGroup { cutoff, streams })
}

/// Runs the whole demo: the checkout group rebuilt at a 7-day cutoff, the
/// audit group handed to its retention at a 30-day one, and what each cost.
pub async fn run_demo() -> Result<String, String> {
    let stack = Stack::start(3.0).await.map_err(|e| e.to_string())?;
    let demo = seed_demo(&stack).await?;
    let mut out = String::new();
    out.push_str(&format!("local stack: {}\n", stack.emulator.endpoint()));
    out.push_str(&format!(
        "\n== mode rebuild: {DEMO_GROUP}, {} streams, {} events; archiving events before {} ==\n\n",
        demo.streams.len(),
        demo.streams.values().map(Vec::len).sum::<usize>(),
        demo.cutoff
    ));
    let report = run_group(&stack, DEMO_GROUP, &demo, demo_input(&demo.cutoff), &mut out).await?;
    cost_line(&report, &mut out);

    let audit = seed_retention_demo(&stack).await?;
    out.push_str(&format!(
        "\n== mode retention: {DEMO_RETENTION_GROUP}, {} streams, {} events; archiving events before {} ==\n\n",
        audit.streams.len(),
        audit.streams.values().map(Vec::len).sum::<usize>(),
        audit.cutoff
    ));
    let input = json!({"logGroupName": DEMO_RETENTION_GROUP, "cutoff": audit.cutoff, "bucket": DEMO_BUCKET,
        "pollSeconds": 1, "mode": "retention"});
    let report = run_group(&stack, DEMO_RETENTION_GROUP, &audit, input, &mut out).await?;
    cost_line(&report, &mut out);
    for change in report["retention"]["changes"].as_array().into_iter().flatten() {
        let days = |v: &Value| v.as_i64().map_or("none".to_string(), |d| format!("{d} days"));
        out.push_str(&format!(
            "retention: {} -> {} ({}): CloudWatch Logs now expires the archived events of the retained streams itself\n",
            days(&change["from"]),
            days(&change["to"]),
            change["reason"].as_str().unwrap_or_default()
        ));
    }
    Ok(out)
}

/// What a run's re-ingestion cost.
fn cost_line(report: &Value, out: &mut String) {
    let totals = &report["totals"];
    out.push_str(&format!(
        "\ncost: {} event(s), {} byte(s) re-ingested, est. ${:.6}; export {} object(s), {} byte(s)\n",
        totals["eventsReplayed"],
        totals["bytesReplayed"],
        totals["estimatedReingestionUsd"].as_f64().unwrap_or_default(),
        totals["exportObjects"],
        totals["exportBytes"]
    ));
}

/// Runs one group, renders its table and returns the report.
async fn run_group(
    stack: &Stack,
    group: &str,
    demo: &DemoGroup,
    input: Value,
    out: &mut String,
) -> Result<Value, String> {
    let name = format!("demo-{}", archiver::domain::input::group_name_token(group));
    let execution = stack
        .run(&name, &input, Duration::from_secs(300))
        .await
        .map_err(|e| e.to_string())?;
    if execution.status != "SUCCEEDED" {
        return Err(format!(
            "the execution ended {}: {:?} {:?}",
            execution.status, execution.error, execution.cause
        ));
    }
    let report = execution.output.unwrap_or(Value::Null);
    let full = stack
        .emulator
        .s3()
        .get_object()
        .bucket(DEMO_BUCKET)
        .key(report["reportKey"].as_str().unwrap_or_default())
        .send()
        .await
        .map_err(|e| format!("reading the report: {e}"))?;
    let full: Value = serde_json::from_slice(&full.body.collect().await.map_err(|e| e.to_string())?.into_bytes())
        .map_err(|e| e.to_string())?;
    let actions: BTreeMap<String, (String, String)> = full["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["stream"].as_str().unwrap_or_default().to_string(),
                (
                    o["action"].as_str().unwrap_or_default().to_string(),
                    o["reason"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    let exports = format!("cwl-archiver/{}/@exports/", group.trim_start_matches('/'));
    let exported = exported_events(stack, DEMO_BUCKET, &exports).await;
    out.push_str(&format!(
        "{:<32} {:>8} {:>9} {:>8}  {}\n",
        "stream", "before", "in S3", "after", "action"
    ));
    for (stream, events) in &demo.streams {
        let after = stream_events(stack, group, stream).await;
        let (action, reason) = actions.get(stream).cloned().unwrap_or_else(|| {
            (
                "untouched".into(),
                "the listing shows nothing older than the cutoff".into(),
            )
        });
        out.push_str(&format!(
            "{:<32} {:>8} {:>9} {:>8}  {}{}\n",
            stream,
            events.len(),
            exported.get(stream).map_or(0, Vec::len),
            after.map_or("gone".to_string(), |a| a.len().to_string()),
            action,
            if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            }
        ));
    }
    out.push_str(&format!(
        "\nreport s3://{DEMO_BUCKET}/{}: {}\n",
        report["reportKey"].as_str().unwrap_or_default(),
        report["totals"]["streams"]
    ));
    Ok(report)
}
