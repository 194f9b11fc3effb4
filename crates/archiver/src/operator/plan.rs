//! What a run started now would do to each stream of a group, and what it
//! would cost and save: read-only (DescribeLogGroups, DescribeLogStreams,
//! GetLogEvents), for `cwl-archiver plan`.
//!
//! Streams are classified by [`crate::domain::classify::classify`] with the same
//! inputs scan-stream uses, assuming the run's export starts now and covers
//! everything older than the cutoff. The events a rebuild would replay are
//! always counted exactly, since they are what costs money; the events to
//! export and delete are counted exactly only on request (reading every old
//! event is slow for large groups) and otherwise estimated from
//! DescribeLogStreams' `storedBytes`, flagged as estimates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::batch::EVENT_OVERHEAD_BYTES;
use crate::domain::classify::{ClassifyContext, StreamClass, classify};
use crate::domain::input::{ExecutionInput, RunSettings};
use crate::error::{ArchiverError, Result};
use crate::store::{LogStore, StreamInfo};
use crate::workflow::{ReadLimits, ReadProgress, read_events};

/// Default storage price of CloudWatch Logs, USD per GB-month.
pub const DEFAULT_STORAGE_USD_PER_GB_MONTH: f64 = 0.03;
/// Default ingestion price of CloudWatch Logs, USD per GB (what a replay costs).
pub const DEFAULT_INGESTION_USD_PER_GB: f64 = crate::workflow::INGESTION_USD_PER_GB;

const BYTES_PER_GB: f64 = 1e9;

/// What to plan, and with which prices.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// The log group.
    pub log_group_name: String,
    /// Archive events older than this many days (or give `cutoff`).
    pub older_than_days: Option<i64>,
    /// An explicit RFC 3339 cutoff.
    pub cutoff: Option<String>,
    /// Quiet period in minutes (default as in the execution input).
    pub quiet_minutes: Option<i64>,
    /// Count the events to export and delete by reading them, instead of estimating.
    pub exact: bool,
    /// Prices for the cost estimates.
    pub prices: Prices,
}

/// CloudWatch Logs prices used for the estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    /// Ingestion, USD per GB.
    pub ingestion_usd_per_gb: f64,
    /// Storage, USD per GB-month.
    pub storage_usd_per_gb_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            ingestion_usd_per_gb: DEFAULT_INGESTION_USD_PER_GB,
            storage_usd_per_gb_month: DEFAULT_STORAGE_USD_PER_GB_MONTH,
        }
    }
}

impl PlanRequest {
    /// The run settings a plan classifies with: the execution input's rules
    /// (cutoff at least 12 h old, floored to the hour, ...), mode `plan`.
    pub fn settings(&self, now: DateTime<Utc>) -> Result<RunSettings> {
        let input = ExecutionInput {
            log_group_name: Some(self.log_group_name.clone()),
            older_than_days: self.older_than_days,
            cutoff: self.cutoff.clone(),
            // A plan writes nothing; the bucket is never used but the input requires one.
            bucket: Some("plan-writes-nothing".into()),
            mode: Some("plan".into()),
            quiet_minutes: self.quiet_minutes,
            ..ExecutionInput::default()
        };
        input.validate(now)
    }
}

/// An amount of events and bytes; `estimated` when it was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    /// Events, when counted (`None` for an estimate).
    pub events: Option<u64>,
    /// Message bytes (counted), or stored bytes (estimated).
    pub bytes: u64,
    /// Whether `bytes` is an estimate from `storedBytes`.
    pub estimated: bool,
}

impl Amount {
    fn counted(events: u64, bytes: u64) -> Self {
        Self {
            events: Some(events),
            bytes,
            estimated: false,
        }
    }

    fn estimate(bytes: u64) -> Self {
        Self {
            events: None,
            bytes,
            estimated: true,
        }
    }

    fn add(&mut self, other: &Amount) {
        // One uncounted part makes the sum uncounted.
        self.events = self.events.zip(other.events).map(|(a, b)| a + b);
        self.bytes += other.bytes;
        self.estimated |= other.estimated;
    }
}

/// The plan of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamPlanRow {
    /// The stream.
    pub stream: String,
    /// `expired`, `mixed`, `fresh`, `empty`, `skip` or `gone`.
    pub class: String,
    /// Why a stream is skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `delete`, `rebuild` or `none`.
    pub action: String,
    /// Events older than the cutoff, which the run's export writes to S3.
    pub export: Amount,
    /// Events removed from CloudWatch (the exported ones of deleted and rebuilt streams).
    pub delete: Amount,
    /// Events a rebuild re-ingests (always counted).
    pub replay: Amount,
}

/// Totals of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanTotals {
    /// Streams per class.
    pub streams: BTreeMap<String, u64>,
    /// Everything exported.
    pub export: Amount,
    /// Everything removed from CloudWatch.
    pub delete: Amount,
    /// Everything replayed.
    pub replay: Amount,
    /// Bytes re-ingested as billed: message bytes plus 26 per event.
    pub reingested_bytes: u64,
    /// Estimated cost of the re-ingestion, USD.
    pub reingestion_usd: f64,
    /// Estimated storage no longer paid for each month, USD. CloudWatch bills
    /// storage on compressed bytes, so from counted message bytes this is an
    /// upper bound.
    pub storage_saved_usd_per_month: f64,
}

/// The plan of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPlan {
    /// The log group.
    pub log_group_name: String,
    /// The cutoff, RFC 3339.
    pub cutoff: String,
    /// The group's retention, if any.
    pub retention_days: Option<i32>,
    /// Whether the export and delete amounts were counted (not estimated).
    pub exact: bool,
    /// The prices used.
    pub prices: Prices,
    /// One row per stream, by name.
    pub streams: Vec<StreamPlanRow>,
    /// Totals.
    pub totals: PlanTotals,
}

/// Plans the group for `settings` (see [`PlanRequest::settings`]).
pub async fn plan_group(logs: &dyn LogStore, settings: &RunSettings, exact: bool, prices: Prices) -> Result<GroupPlan> {
    let group = &settings.log_group_name;
    let info = logs.describe_group(group).await?.ok_or_else(|| {
        ArchiverError::invalid(
            "logGroupName",
            format!("log group {group:?} does not exist in this account and region: check the name and the region"),
        )
    })?;
    let ctx = ClassifyContext {
        settings,
        retention_days: info.retention_in_days,
    };
    let mut streams = logs.list_streams(group).await?;
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rows = Vec::with_capacity(streams.len());
    for stream in &streams {
        rows.push(plan_stream(logs, settings, ctx, stream, exact).await?);
    }

    let zero = Amount::counted(0, 0);
    let mut totals = PlanTotals {
        export: zero,
        delete: zero,
        replay: zero,
        ..PlanTotals::default()
    };
    for row in &rows {
        *totals.streams.entry(row.class.clone()).or_default() += 1;
        totals.export.add(&row.export);
        totals.delete.add(&row.delete);
        totals.replay.add(&row.replay);
    }
    totals.reingested_bytes =
        totals.replay.bytes + EVENT_OVERHEAD_BYTES as u64 * totals.replay.events.unwrap_or_default();
    totals.reingestion_usd = totals.reingested_bytes as f64 / BYTES_PER_GB * prices.ingestion_usd_per_gb;
    totals.storage_saved_usd_per_month = totals.delete.bytes as f64 / BYTES_PER_GB * prices.storage_usd_per_gb_month;
    Ok(GroupPlan {
        log_group_name: group.clone(),
        cutoff: DateTime::<Utc>::from_timestamp_millis(settings.cutoff_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        retention_days: info.retention_in_days,
        exact,
        prices,
        streams: rows,
        totals,
    })
}

async fn plan_stream(
    logs: &dyn LogStore,
    settings: &RunSettings,
    ctx: ClassifyContext<'_>,
    stream: &StreamInfo,
    exact: bool,
) -> Result<StreamPlanRow> {
    let group = settings.log_group_name.as_str();
    let cutoff = settings.cutoff_ms;
    let mut row = StreamPlanRow {
        stream: stream.name.clone(),
        class: String::new(),
        reason: None,
        action: "none".into(),
        export: Amount::counted(0, 0),
        delete: Amount::counted(0, 0),
        replay: Amount::counted(0, 0),
    };
    let candidate = stream.first_event_timestamp.is_some_and(|t| t < cutoff);
    // As scan-stream does: GetLogEvents, not DescribeLogStreams, says whether
    // anything at or after the cutoff is left.
    let first_kept = if candidate {
        let mut first = None;
        let progress = read_events(logs, group, &stream.name, cutoff, None, None, ReadLimits::FIRST, |e| {
            first.get_or_insert(e.timestamp);
            Ok(())
        })
        .await?;
        if progress == ReadProgress::StreamMissing {
            row.class = "gone".into();
            row.reason = Some("the stream was deleted while planning".into());
            return Ok(row);
        }
        first
    } else {
        stream.last_event_timestamp
    };
    let class = classify(stream, first_kept, ctx);
    if candidate {
        row.export = if exact {
            count(logs, group, &stream.name, 0, Some(cutoff)).await?
        } else {
            Amount::estimate(estimate_old_bytes(stream, cutoff))
        };
    }
    match class {
        StreamClass::Expired => {
            row.class = "expired".into();
            row.action = "delete".into();
            row.delete = row.export;
        }
        StreamClass::Mixed { .. } => {
            row.class = "mixed".into();
            row.action = "rebuild".into();
            row.delete = row.export;
            row.replay = count(logs, group, &stream.name, cutoff, None).await?;
        }
        StreamClass::Fresh => row.class = "fresh".into(),
        StreamClass::Empty => row.class = "empty".into(),
        StreamClass::Skip(reason) => {
            row.class = "skip".into();
            row.reason = Some(reason.describe());
        }
    }
    Ok(row)
}

/// Counts the events and message bytes with `start_ms <= t < end_ms`.
async fn count(logs: &dyn LogStore, group: &str, stream: &str, start_ms: i64, end_ms: Option<i64>) -> Result<Amount> {
    let mut amount = Amount::counted(0, 0);
    let (mut events, mut bytes) = (0u64, 0u64);
    read_events(
        logs,
        group,
        stream,
        start_ms,
        end_ms,
        None,
        ReadLimits::UNBOUNDED,
        |e| {
            events += 1;
            bytes += e.message.len() as u64;
            Ok(())
        },
    )
    .await?;
    amount.events = Some(events);
    amount.bytes = bytes;
    Ok(amount)
}

/// The share of `storedBytes` older than the cutoff, assuming events spread
/// evenly between the first and the last event.
fn estimate_old_bytes(stream: &StreamInfo, cutoff_ms: i64) -> u64 {
    let stored = stream.stored_bytes.unwrap_or(0).max(0) as f64;
    match (stream.first_event_timestamp, stream.last_event_timestamp) {
        (Some(first), Some(last)) if last > first && last >= cutoff_ms => {
            let share = (cutoff_ms - first) as f64 / (last - first) as f64;
            (stored * share.clamp(0.0, 1.0)).round() as u64
        }
        _ => stored as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::LogEvent;
    use crate::store::memory::MemoryAws;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn request(exact: bool) -> PlanRequest {
        PlanRequest {
            log_group_name: "/g".into(),
            older_than_days: Some(7),
            cutoff: None,
            quiet_minutes: None,
            exact,
            prices: Prices::default(),
        }
    }

    fn seeded(now: i64) -> MemoryAws {
        let aws = MemoryAws::new();
        let seed = |stream: &str, events: Vec<(i64, String)>, ingested: i64| {
            let events = events.into_iter().map(|(t, m)| LogEvent::new(t, m));
            aws.logs.seed("/g", stream, events, Some(ingested));
        };
        let quiet = now - 3 * HOUR;
        seed(
            "expired",
            (0..10).map(|i| (now - 30 * DAY + i, "x".repeat(100))).collect(),
            quiet,
        );
        seed(
            "mixed",
            (0..10).map(|i| (now - 9 * DAY + i * DAY / 2, "y".repeat(50))).collect(),
            quiet,
        );
        seed("fresh", vec![(now - DAY, "z".to_string())], quiet);
        seed(
            "active",
            vec![(now - 20 * DAY, "a".to_string()), (now - HOUR, "b".into())],
            now - 60_000,
        );
        seed("empty", vec![], quiet);
        aws
    }

    async fn plan_seeded(exact: bool) -> GroupPlan {
        let now = Utc::now();
        let aws = seeded(now.timestamp_millis());
        let settings = request(exact).settings(now).unwrap();
        plan_group(aws.logs.as_ref(), &settings, exact, Prices::default())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn classes_actions_and_exact_counts() {
        let plan = plan_seeded(true).await;
        let row = |name: &str| plan.streams.iter().find(|r| r.stream == name).unwrap().clone();

        let expired = row("expired");
        assert_eq!((expired.class.as_str(), expired.action.as_str()), ("expired", "delete"));
        assert_eq!(expired.delete, Amount::counted(10, 1000));
        let mixed = row("mixed");
        assert_eq!((mixed.class.as_str(), mixed.action.as_str()), ("mixed", "rebuild"));
        let kept = mixed.replay.events.unwrap();
        assert_eq!(mixed.export.events.unwrap() + kept, 10);
        assert!(kept > 0 && mixed.export.events.unwrap() > 0);
        assert_eq!(row("fresh").class, "fresh");
        assert_eq!(row("empty").class, "empty");
        let active = row("active");
        assert_eq!((active.class.as_str(), active.action.as_str()), ("skip", "none"));
        assert!(active.reason.unwrap().contains("quiet period"));
        assert_eq!(
            active.export,
            Amount::counted(1, 1),
            "a skipped stream is still exported"
        );
        assert_eq!(active.delete, Amount::counted(0, 0));

        assert_eq!(plan.totals.replay.events, Some(kept));
        assert_eq!(plan.totals.reingested_bytes, kept * (50 + 26));
        let usd = (kept * 76) as f64 / 1e9 * 0.5;
        assert!((plan.totals.reingestion_usd - usd).abs() < 1e-12);
        assert_eq!(plan.totals.streams["skip"], 1);
    }

    #[tokio::test]
    async fn without_exact_the_old_side_is_estimated_from_stored_bytes() {
        let plan = plan_seeded(false).await;
        let expired = plan.streams.iter().find(|r| r.stream == "expired").unwrap();
        assert_eq!(expired.export, Amount::estimate(1000));
        assert!(plan.totals.export.estimated);
        assert_eq!(
            plan.totals.export.events, None,
            "a sum with an uncounted part is uncounted"
        );
        assert!(!plan.totals.replay.estimated, "replays are always counted");
    }

    #[tokio::test]
    async fn a_missing_group_says_how_to_fix_it() {
        let aws = MemoryAws::new();
        let now = Utc::now();
        let err = plan_group(
            aws.logs.as_ref(),
            &request(false).settings(now).unwrap(),
            false,
            Prices::default(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("check the name and the region"), "{err}");
    }
}
