//! What a run started now would do to each stream of a group, and what it
//! would cost and save: read-only (DescribeLogGroups, DescribeLogStreams,
//! GetLogEvents), for `cwl-archiver plan` and `start`'s confirmation.
//!
//! Streams are classified by [`crate::domain::classify::classify`] with the
//! same inputs scan-stream uses: the group's checkpoint (when the caller
//! read it) advanced by the export the run would make, from the checkpoint
//! to the cutoff. The events a rebuild would replay are always counted,
//! since they are what costs money; the events to export and delete are
//! counted only on request (`exact`) and otherwise estimated from the
//! group's `storedBytes` (DescribeLogGroups), apportioned to the streams by
//! their time span: a stream's own `storedBytes` is always 0 on AWS since
//! 2019, so no estimate uses it.
//!
//! Streams are planned concurrently, and every GetLogEvents call waits for
//! a token of a [`TokenBucket`] set to the account's quota, so a plan of
//! thousands of streams is bounded by the quota, not by round trips.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::domain::batch::EVENT_OVERHEAD_BYTES;
use crate::domain::classify::{ClassifyContext, SkipReason, StreamClass, classify};
use crate::domain::input::{ExecutionInput, RunSettings};
use crate::domain::window::{Checkpoint, ExportWindow};
use crate::error::{ArchiverError, Result};
use crate::store::{LogStore, StreamInfo};
use crate::workflow::{EventCursor, Page};

/// Default storage price of CloudWatch Logs, USD per GB-month.
pub const DEFAULT_STORAGE_USD_PER_GB_MONTH: f64 = 0.03;
/// Default ingestion price of CloudWatch Logs, USD per GB (what a replay costs).
pub const DEFAULT_INGESTION_USD_PER_GB: f64 = crate::workflow::INGESTION_USD_PER_GB;
/// GetLogEvents calls per second a plan makes by default: the lowest
/// per-account quota (10 to 25 TPS depending on the region).
pub const DEFAULT_READS_PER_SECOND: f64 = 10.0;
/// Streams planned at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

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
    /// The mode a run would have (`rebuild` when `None`; `plan` plans a rebuild).
    pub mode: Option<String>,
    /// Quiet period in minutes (default as in the execution input).
    pub quiet_minutes: Option<i64>,
    /// Margin below the 14-day replay limit (default as in the execution input).
    pub replay_margin_hours: Option<i64>,
    /// The prefix a run would write under (default as in the execution input).
    pub prefix: Option<String>,
    /// The bucket a run would write to (a plan writes nothing).
    pub bucket: Option<String>,
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
    /// (cutoff at least 12 h old, floored to the hour, ...).
    pub fn settings(&self, now: DateTime<Utc>) -> Result<RunSettings> {
        let input = ExecutionInput {
            log_group_name: Some(self.log_group_name.clone()),
            older_than_days: self.older_than_days,
            cutoff: self.cutoff.clone(),
            // A plan writes nothing; the bucket only names where a run would write.
            bucket: Some(self.bucket.clone().unwrap_or_else(|| "plan-writes-nothing".into())),
            prefix: self.prefix.clone(),
            mode: Some(self.mode.clone().unwrap_or_else(|| "rebuild".into())),
            quiet_minutes: self.quiet_minutes,
            replay_margin_hours: self.replay_margin_hours,
            ..ExecutionInput::default()
        };
        input.validate(now)
    }
}

/// How to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Count the events to export and delete by reading them, instead of estimating.
    pub exact: bool,
    /// Prices for the cost estimates.
    pub prices: Prices,
    /// The group's checkpoint, when the caller read it from the bucket:
    /// events it covers were exported by earlier runs.
    pub checkpoint: Option<Checkpoint>,
    /// The group's `storedBytes` (DescribeLogGroups), for the estimates.
    pub group_stored_bytes: Option<u64>,
    /// Streams planned at once.
    pub concurrency: usize,
    /// GetLogEvents calls per second, across all streams.
    pub reads_per_second: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            exact: false,
            prices: Prices::default(),
            checkpoint: None,
            group_stored_bytes: None,
            concurrency: DEFAULT_CONCURRENCY,
            reads_per_second: DEFAULT_READS_PER_SECOND,
        }
    }
}

/// A token bucket: at most `rate` takes per second, in bursts of at most
/// `burst`. Shared by every stream of a plan, so the plan stays within the
/// account's GetLogEvents quota however many streams run at once.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A bucket of `rate` tokens per second holding at most `burst`, full.
    pub fn new(rate: f64, burst: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let (tokens, last) = *state;
                let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
                if tokens >= 1.0 {
                    *state = (tokens - 1.0, now);
                    return;
                }
                *state = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// An amount of events and bytes; `estimated` when it was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    /// Events, when counted (`None` for an estimate).
    pub events: Option<u64>,
    /// Counted: UTF-8 message bytes. Estimated: a share of the group's
    /// `storedBytes` (see [`GroupPlan::bytes_basis`]).
    pub bytes: u64,
    /// Whether `bytes` is an estimate.
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
    /// Events older than the cutoff and not yet exported (after the
    /// checkpoint), which the run's export writes to S3.
    pub export: Amount,
    /// Events removed from CloudWatch: every event older than the cutoff of
    /// a deleted or rebuilt stream (exported by this run or an earlier one).
    pub delete: Amount,
    /// Events a rebuild replays (always counted).
    pub replay: Amount,
    /// Kept events too old for PutLogEvents (14 days, or the group's
    /// retention): a rebuild cannot serve the stream, retention mode can.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beyond_replay: bool,
}

/// The cheapest mode that archives the group safely, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// `retention`, `rebuild` or `expired-only`.
    pub mode: String,
    /// Why, in a sentence.
    pub reason: String,
    /// What a rebuild would cost in re-ingestion, USD (retention mode: $0).
    pub rebuild_reingestion_usd: f64,
    /// Streams a rebuild cannot serve: their kept events are too old to replay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuild_cannot_serve: Vec<String>,
}

/// Picks the cheapest safe mode from the rows of a plan.
pub fn recommend(settings: &RunSettings, rows: &[StreamPlanRow], reingestion_usd: f64) -> Recommendation {
    let cannot: Vec<String> = rows
        .iter()
        .filter(|r| r.beyond_replay)
        .map(|r| r.stream.clone())
        .collect();
    let mixed = rows.iter().any(|r| r.action == "rebuild") || !cannot.is_empty();
    let retention_fits = settings.older_than_days() >= crate::domain::input::RETENTION_MODE_MIN_DAYS;
    let (mode, reason) = if !mixed {
        (
            "expired-only",
            "no stream holds events on both sides of the cutoff: deleting the expired streams archives everything"
                .to_string(),
        )
    } else if retention_fits {
        (
            "retention",
            format!(
                "hands the archived events to the group's retention: $0 re-ingestion against {} for a rebuild{}",
                usd(reingestion_usd),
                if cannot.is_empty() {
                    String::new()
                } else {
                    format!(", which cannot serve {} stream(s) at all", cannot.len())
                }
            ),
        )
    } else {
        (
            "rebuild",
            format!(
                "the cutoff is younger than {} days, so retention mode cannot be sure the export holds every older \
                 event; a rebuild re-ingests the kept events for about {}",
                crate::domain::input::RETENTION_MODE_MIN_DAYS,
                usd(reingestion_usd)
            ),
        )
    };
    Recommendation {
        mode: mode.to_string(),
        reason,
        rebuild_reingestion_usd: reingestion_usd,
        rebuild_cannot_serve: cannot,
    }
}

fn usd(value: f64) -> String {
    format!("${value:.4}")
}

/// Totals of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanTotals {
    /// Streams per class.
    pub streams: BTreeMap<String, u64>,
    /// Everything the run would export.
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
    /// The mode planned.
    pub mode: String,
    /// The cutoff, RFC 3339.
    pub cutoff: String,
    /// The window the run would export (`null`: the checkpoint already covers the cutoff).
    pub export_window: Option<ExportWindow>,
    /// Whether the group's checkpoint was read (events before it were exported already).
    pub checkpoint_read: bool,
    /// The group's retention, if any.
    pub retention_days: Option<i32>,
    /// The group's `storedBytes` as DescribeLogGroups reports it.
    pub group_stored_bytes: Option<u64>,
    /// Whether the export and delete amounts were counted (not estimated).
    pub exact: bool,
    /// What the byte figures measure.
    pub bytes_basis: String,
    /// The prices used.
    pub prices: Prices,
    /// One row per stream, by name.
    pub streams: Vec<StreamPlanRow>,
    /// Totals.
    pub totals: PlanTotals,
    /// The cheapest safe mode for the group.
    pub recommendation: Recommendation,
}

/// Where a plan stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanProgress {
    /// Streams planned.
    pub done: u64,
    /// Streams in the group.
    pub total: u64,
}

/// Plans the group for `settings` (see [`PlanRequest::settings`]); calls
/// `progress` after the listing and after each stream.
pub async fn plan_group(
    logs: Arc<dyn LogStore>,
    settings: &RunSettings,
    options: &PlanOptions,
    progress: &(dyn Fn(PlanProgress) + Send + Sync),
) -> Result<GroupPlan> {
    let group = settings.log_group_name.clone();
    let info = logs.describe_group(&group).await?.ok_or_else(|| {
        ArchiverError::invalid(
            "logGroupName",
            format!("log group {group:?} does not exist in this account and region: check the name and the region"),
        )
    })?;
    // The run's export would start now and cover the checkpoint to the cutoff.
    let window = ExportWindow::resolve(options.checkpoint.as_ref(), settings.cutoff_ms);
    let mut streams = logs.list_streams(&group).await?;
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    let total = streams.len() as u64;
    progress(PlanProgress { done: 0, total });

    let shared = Arc::new(Shared {
        settings: settings.clone(),
        retention_days: info.retention_in_days,
        export_from_ms: window.map(|w| w.from_ms),
        exact: options.exact,
        bucket: TokenBucket::new(options.reads_per_second, 1.0),
        apportion: Apportion::new(&streams, options.group_stored_bytes.unwrap_or(0)),
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for stream in streams {
        let (logs, shared, permits) = (logs.clone(), shared.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            plan_stream(logs.as_ref(), &shared, &stream).await
        });
    }
    let mut rows = Vec::with_capacity(total as usize);
    while let Some(joined) = tasks.join_next().await {
        let row = joined.map_err(|e| ArchiverError::Internal(format!("a planning task ended: {e}")))??;
        rows.push(row);
        progress(PlanProgress {
            done: rows.len() as u64,
            total,
        });
    }
    rows.sort_by(|a, b| a.stream.cmp(&b.stream));

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
    let prices = options.prices;
    totals.reingested_bytes =
        totals.replay.bytes + EVENT_OVERHEAD_BYTES as u64 * totals.replay.events.unwrap_or_default();
    totals.reingestion_usd = totals.reingested_bytes as f64 / BYTES_PER_GB * prices.ingestion_usd_per_gb;
    totals.storage_saved_usd_per_month = totals.delete.bytes as f64 / BYTES_PER_GB * prices.storage_usd_per_gb_month;
    let bytes_basis = if options.exact {
        "counted: UTF-8 message bytes of the events read".to_string()
    } else {
        "replay counted (UTF-8 message bytes read); export and delete estimated (~): the group's storedBytes (DescribeLogGroups) apportioned to the streams by their time span".to_string()
    };
    Ok(GroupPlan {
        log_group_name: group,
        mode: settings.mode.as_str().to_string(),
        cutoff: DateTime::<Utc>::from_timestamp_millis(settings.cutoff_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        export_window: window,
        checkpoint_read: options.checkpoint.is_some(),
        retention_days: info.retention_in_days,
        group_stored_bytes: options.group_stored_bytes,
        exact: options.exact,
        bytes_basis,
        prices,
        recommendation: recommend(settings, &rows, totals.reingestion_usd),
        streams: rows,
        totals,
    })
}

/// What every stream's task shares.
struct Shared {
    settings: RunSettings,
    retention_days: Option<i32>,
    /// The start of the planned export, `None` when nothing is exported.
    export_from_ms: Option<i64>,
    exact: bool,
    bucket: TokenBucket,
    apportion: Apportion,
}

/// The group's stored bytes shared out to the streams in proportion to the
/// time their events span (a stream's own figure is always 0 on AWS).
struct Apportion {
    stored: f64,
    total_span: f64,
}

impl Apportion {
    fn span(s: &StreamInfo) -> Option<(i64, i64)> {
        let first = s.first_event_timestamp?;
        let last = s.last_event_timestamp.unwrap_or(first).max(first);
        Some((first, last))
    }

    fn weight((first, last): (i64, i64)) -> f64 {
        // At least an hour, so streams of one event still get a share.
        ((last - first) as f64).max(3_600_000.0)
    }

    fn new(streams: &[StreamInfo], stored: u64) -> Self {
        let total_span = streams.iter().filter_map(Self::span).map(Self::weight).sum();
        Self {
            stored: stored as f64,
            total_span,
        }
    }

    /// The stream's share of the group's bytes with `from <= t < until`.
    fn bytes(&self, s: &StreamInfo, from_ms: i64, until_ms: i64) -> u64 {
        let Some((first, last)) = Self::span(s) else { return 0 };
        if self.total_span <= 0.0 || until_ms <= from_ms {
            return 0;
        }
        let share = self.stored * Self::weight((first, last)) / self.total_span;
        let fraction = if last > first {
            let lo = from_ms.max(first);
            let hi = until_ms.min(last + 1);
            ((hi - lo) as f64 / (last + 1 - first) as f64).clamp(0.0, 1.0)
        } else if (from_ms..until_ms).contains(&first) {
            1.0
        } else {
            0.0
        };
        (share * fraction).round() as u64
    }
}

async fn plan_stream(logs: &dyn LogStore, shared: &Shared, stream: &StreamInfo) -> Result<StreamPlanRow> {
    let settings = &shared.settings;
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
        beyond_replay: false,
    };
    let candidate = stream.first_event_timestamp.is_some_and(|t| t < cutoff);
    // As scan-stream does: GetLogEvents, not DescribeLogStreams, says whether
    // anything at or after the cutoff is left. The first page is kept: a
    // rebuild's replay is counted from it on.
    let mut kept = EventCursor::new(logs, group, &stream.name, cutoff, None, None);
    let mut first_page = Vec::new();
    let first_kept = if candidate {
        loop {
            shared.bucket.take().await;
            match kept.next_page().await? {
                Page::Events(events) if events.is_empty() => continue,
                Page::Events(events) => {
                    first_page = events;
                    break first_page.first().map(|e| e.event.timestamp);
                }
                Page::End => break None,
                Page::StreamMissing => {
                    row.class = "gone".into();
                    row.reason = Some("the stream was deleted while planning".into());
                    return Ok(row);
                }
            }
        }
    } else {
        stream.last_event_timestamp
    };
    let ctx = ClassifyContext {
        settings,
        retention_days: shared.retention_days,
    };
    let class = classify(stream, first_kept, ctx);
    let mut old_side = Amount::counted(0, 0);
    if candidate {
        let from = shared.export_from_ms;
        if shared.exact {
            let (before, after) = count_split(logs, shared, group, &stream.name, from.unwrap_or(cutoff)).await?;
            row.export = after;
            old_side = before;
            old_side.add(&after);
        } else {
            row.export = Amount::estimate(from.map_or(0, |f| shared.apportion.bytes(stream, f, cutoff)));
            old_side = Amount::estimate(shared.apportion.bytes(stream, i64::MIN / 2, cutoff));
        }
    }
    match class {
        StreamClass::Expired => {
            row.class = "expired".into();
            row.action = "delete".into();
            row.delete = old_side;
        }
        StreamClass::Mixed { .. } => {
            row.class = "mixed".into();
            row.action = "rebuild".into();
            row.delete = old_side;
            let mut replay = Amount::counted(0, 0);
            let mut tally = |events: &[crate::domain::event::IngestedEvent]| {
                replay.events = replay.events.map(|n| n + events.len() as u64);
                replay.bytes += events.iter().map(|e| e.event.message.len() as u64).sum::<u64>();
            };
            tally(&first_page);
            while !kept.is_ended() && !kept.is_missing() {
                shared.bucket.take().await;
                match kept.next_page().await? {
                    Page::Events(events) => tally(&events),
                    Page::End | Page::StreamMissing => break,
                }
            }
            row.replay = replay;
        }
        StreamClass::Fresh => row.class = "fresh".into(),
        StreamClass::Empty if stream.first_event_timestamp.is_none() => {
            // DescribeLogStreams shows no events: the stream is empty, or
            // its events are too recent for the listing. One event read
            // tells which.
            shared.bucket.take().await;
            let mut any = EventCursor::new(logs, group, &stream.name, 0, None, None).with_page_size(1);
            if any.next_event().await?.is_some() {
                row.class = "unlisted".into();
                row.reason = Some(
                    "DescribeLogStreams does not show its events yet (its timestamps lag ingestion, typically by \
                     under an hour); a run leaves it until they do"
                        .into(),
                );
            } else {
                row.class = "empty".into();
            }
        }
        StreamClass::Empty => row.class = "empty".into(),
        StreamClass::Skip(reason) => {
            row.class = "skip".into();
            row.beyond_replay = matches!(
                reason,
                SkipReason::KeptEventsTooOld { .. } | SkipReason::KeptEventsBeyondRetention { .. }
            );
            row.reason = Some(reason.describe());
        }
    }
    Ok(row)
}

/// Counts the events older than the cutoff and their message bytes, split
/// at `split_ms`: (before, from it on).
async fn count_split(
    logs: &dyn LogStore,
    shared: &Shared,
    group: &str,
    stream: &str,
    split_ms: i64,
) -> Result<(Amount, Amount)> {
    let mut before = Amount::counted(0, 0);
    let mut after = Amount::counted(0, 0);
    let mut cursor = EventCursor::new(logs, group, stream, 0, Some(shared.settings.cutoff_ms), None);
    while !cursor.is_ended() && !cursor.is_missing() {
        shared.bucket.take().await;
        match cursor.next_page().await? {
            Page::Events(events) => {
                for e in events.into_iter().map(|e| e.event) {
                    let side = if e.timestamp < split_ms {
                        &mut before
                    } else {
                        &mut after
                    };
                    side.events = side.events.map(|n| n + 1);
                    side.bytes += e.message.len() as u64;
                }
            }
            Page::End | Page::StreamMissing => break,
        }
    }
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::LogEvent;
    use crate::store::memory::MemoryAws;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn request() -> PlanRequest {
        PlanRequest {
            log_group_name: "/g".into(),
            older_than_days: Some(7),
            cutoff: None,
            mode: None,
            quiet_minutes: None,
            replay_margin_hours: None,
            prefix: None,
            bucket: None,
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

    async fn plan_with(options: PlanOptions) -> GroupPlan {
        let now = Utc::now();
        let aws = seeded(now.timestamp_millis());
        let settings = request().settings(now).unwrap();
        plan_group(aws.logs.clone(), &settings, &options, &|_| {})
            .await
            .unwrap()
    }

    fn exact() -> PlanOptions {
        PlanOptions {
            exact: true,
            reads_per_second: 1000.0,
            ..PlanOptions::default()
        }
    }

    #[tokio::test]
    async fn classes_actions_and_exact_counts() {
        let plan = plan_with(exact()).await;
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
        assert_eq!(plan.streams.len(), 5, "every stream once, in name order");
        assert!(plan.streams.windows(2).all(|w| w[0].stream < w[1].stream));
    }

    #[tokio::test]
    async fn a_stream_the_listing_does_not_show_yet_is_unlisted_not_empty() {
        let now = Utc::now();
        let aws = seeded(now.timestamp_millis());
        aws.logs.seed(
            "/g",
            "just-written",
            [LogEvent::new(now.timestamp_millis() - 9 * DAY, "w")],
            None,
        );
        aws.logs.set_metadata_lag_ms(Some(30 * 60_000));
        let settings = request().settings(now).unwrap();
        let plan = plan_group(aws.logs.clone(), &settings, &exact(), &|_| {})
            .await
            .unwrap();
        let row = |name: &str| plan.streams.iter().find(|r| r.stream == name).unwrap().clone();
        let unlisted = row("just-written");
        assert_eq!(
            (unlisted.class.as_str(), unlisted.action.as_str()),
            ("unlisted", "none")
        );
        assert!(unlisted.reason.unwrap().contains("lag ingestion"));
        assert_eq!(row("empty").class, "empty");
    }

    #[tokio::test]
    async fn estimates_share_the_group_stored_bytes_never_the_streams() {
        let plan = plan_with(PlanOptions {
            group_stored_bytes: Some(1_000_000),
            reads_per_second: 1000.0,
            ..PlanOptions::default()
        })
        .await;
        let row = |name: &str| plan.streams.iter().find(|r| r.stream == name).unwrap().clone();
        let expired = row("expired");
        assert!(expired.export.estimated && expired.export.events.is_none());
        assert!(expired.export.bytes > 0);
        assert_eq!(
            expired.delete, expired.export,
            "nothing exported before: delete = export"
        );
        // The shares of every stream's whole span add up to the group's bytes.
        assert!(plan.totals.export.bytes <= 1_000_000);
        assert!(!plan.totals.replay.estimated, "replays are always counted");
        assert!(plan.bytes_basis.contains("storedBytes (DescribeLogGroups)"));
        let none = plan_with(PlanOptions {
            reads_per_second: 1000.0,
            ..PlanOptions::default()
        })
        .await;
        assert_eq!(none.totals.export.bytes, 0, "no group figure, no guess");
    }

    #[tokio::test]
    async fn the_checkpoint_leaves_exported_events_out_of_the_export() {
        let now = Utc::now();
        let settings = request().settings(now).unwrap();
        let mut checkpoint = Checkpoint::default();
        // Everything older than 8 days was exported by an earlier run.
        let earlier = settings.cutoff_ms - DAY;
        checkpoint.advance(crate::domain::window::ExportRecord {
            task_id: "t1".into(),
            from_ms: 0,
            until_ms: earlier,
            // It ran an hour ago, after the streams' last ingestion.
            started_at_ms: now.timestamp_millis() - HOUR,
            destination_prefix: "p".into(),
            objects: 1,
            bytes: 1,
        });
        let aws = seeded(now.timestamp_millis());
        let plan = plan_group(
            aws.logs.clone(),
            &settings,
            &PlanOptions {
                checkpoint: Some(checkpoint),
                ..exact()
            },
            &|_| {},
        )
        .await
        .unwrap();
        let expired = plan.streams.iter().find(|r| r.stream == "expired").unwrap();
        assert_eq!(expired.export, Amount::counted(0, 0), "already exported");
        assert_eq!(expired.delete, Amount::counted(10, 1000), "but still deleted");
        let mixed = plan.streams.iter().find(|r| r.stream == "mixed").unwrap();
        assert!(mixed.export.events.unwrap() < mixed.delete.events.unwrap());
        assert_eq!(plan.export_window.map(|w| w.from_ms), Some(earlier));
        assert!(plan.checkpoint_read);
    }

    #[tokio::test]
    async fn modes_change_the_actions() {
        let now = Utc::now();
        let aws = seeded(now.timestamp_millis());
        let settings = PlanRequest {
            mode: Some("expired-only".into()),
            ..request()
        }
        .settings(now)
        .unwrap();
        let plan = plan_group(aws.logs.clone(), &settings, &exact(), &|_| {})
            .await
            .unwrap();
        let mixed = plan.streams.iter().find(|r| r.stream == "mixed").unwrap();
        assert_eq!((mixed.class.as_str(), mixed.action.as_str()), ("skip", "none"));
        assert_eq!(plan.mode, "expired-only");
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_bucket_keeps_to_its_rate() {
        let bucket = Arc::new(TokenBucket::new(10.0, 1.0));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let b = bucket.clone();
            tasks.spawn(async move {
                for _ in 0..5 {
                    b.take().await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        // 40 takes at 10 per second, the first one free: 3.9 s.
        let took = start.elapsed().as_secs_f64();
        assert!((3.8..4.1).contains(&took), "{took}");
    }

    #[tokio::test]
    async fn progress_counts_every_stream_and_a_missing_group_says_how_to_fix_it() {
        let now = Utc::now();
        let aws = seeded(now.timestamp_millis());
        let seen = std::sync::Mutex::new(Vec::new());
        let settings = request().settings(now).unwrap();
        plan_group(aws.logs.clone(), &settings, &exact(), &|p| seen.lock().unwrap().push(p))
            .await
            .unwrap();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.first(), Some(&PlanProgress { done: 0, total: 5 }));
        assert_eq!(seen.last(), Some(&PlanProgress { done: 5, total: 5 }));

        let empty = MemoryAws::new();
        let err = plan_group(empty.logs.clone(), &settings, &exact(), &|_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("check the name and the region"), "{err}");
    }
}
