//! Getting archived events back: find the export objects of a window through
//! the group's checkpoint, read them, and hand the events out or re-ingest
//! them into a log group within the PutLogEvents rules.
//!
//! The window is `from_ms <= t < to_ms`, the same convention as GetLogEvents.
//! Events come back as the export wrote them: an export line cannot tell a
//! multi-line message whose later line starts with a timestamp from two
//! events (see [`crate::domain::export_format`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::batch::{BatchPacker, MAX_MESSAGE_BYTES};
use crate::domain::classify::REPLAY_MAX_AGE_MS;
use crate::domain::event::LogEvent;
use crate::domain::export_format::{ExportReader, parse_export_key};
use crate::domain::layout::GroupLayout;
use crate::domain::window::Checkpoint;
use crate::error::{ArchiverError, Result};
use crate::store::{ArchiveStore, LogStore};

/// PutLogEvents drops events more than 2 hours in the future.
pub const MAX_FUTURE_MS: i64 = 2 * 3_600_000;

/// A margin below the 14-day limit so that an event at the edge is refused
/// here, with a count, rather than dropped by CloudWatch while the batch travels.
pub const REINGEST_AGE_MARGIN_MS: i64 = 10 * 60_000;

/// Which archived events to get back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRequest {
    /// The archived log group.
    pub log_group_name: String,
    /// Only this stream, or every stream.
    pub stream: Option<String>,
    /// First event time included (ms).
    pub from_ms: i64,
    /// First event time excluded (ms).
    pub to_ms: i64,
    /// The archive bucket.
    pub bucket: String,
    /// The archiver's key prefix in the bucket.
    pub prefix: String,
}

/// The archived events of a window, by stream, each stream in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Restored {
    /// Events per stream.
    pub streams: BTreeMap<String, Vec<LogEvent>>,
    /// Export objects read.
    pub objects_read: u64,
    /// Parts of the window no export on record covers (`[from, until)` in ms):
    /// events there were never archived, or fell out of the checkpoint's history.
    pub uncovered: Vec<(i64, i64)>,
    /// Every stream the window's export objects hold (whatever `stream` asked for).
    pub exported_streams: BTreeSet<String>,
}

impl Restored {
    /// Number of events.
    pub fn events(&self) -> u64 {
        self.streams.values().map(|v| v.len() as u64).sum()
    }
}

/// Finds and reads the export objects holding the window's events.
pub async fn restore_events(archive: &dyn ArchiveStore, request: &RestoreRequest) -> Result<Restored> {
    if request.from_ms >= request.to_ms {
        return Err(ArchiverError::invalid(
            "from",
            "the window is empty: --from must be earlier than --to",
        ));
    }
    let layout = GroupLayout::new(&request.prefix, &request.log_group_name);
    let key = layout.checkpoint();
    let checkpoint: Checkpoint = match archive.get(&request.bucket, &key).await? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            ArchiverError::Internal(format!("checkpoint s3://{}/{key} is not valid: {e}", request.bucket))
        })?,
        None => {
            return Err(ArchiverError::invalid(
                "group",
                format!(
                    "no checkpoint at s3://{}/{key}: nothing of {:?} was archived under this bucket and prefix; check --bucket and --prefix",
                    request.bucket, request.log_group_name
                ),
            ));
        }
    };
    let mut restored = Restored {
        uncovered: uncovered(&checkpoint, request.from_ms, request.to_ms),
        ..Restored::default()
    };
    for record in checkpoint
        .exports
        .iter()
        .filter(|r| r.from_ms < request.to_ms && r.until_ms > request.from_ms)
    {
        let task_prefix = format!("{}/{}/", record.destination_prefix, record.task_id);
        for object in archive.list(&request.bucket, &task_prefix).await? {
            let Some(parsed) = parse_export_key(&record.destination_prefix, &object.key) else {
                continue;
            };
            restored.exported_streams.insert(parsed.stream.clone());
            if request.stream.as_ref().is_some_and(|s| *s != parsed.stream) {
                continue;
            }
            let Some(body) = archive.get(&request.bucket, &object.key).await? else {
                continue; // removed since the listing (a lifecycle rule, say)
            };
            restored.objects_read += 1;
            let events = restored.streams.entry(parsed.stream).or_default();
            for event in ExportReader::from_gzip(body.as_ref()) {
                let event = event.map_err(|e| ArchiverError::VerificationFailed {
                    subject: format!("s3://{}/{}", request.bucket, object.key),
                    detail: format!("not a readable export object: {e}"),
                })?;
                if (request.from_ms..request.to_ms).contains(&event.timestamp) {
                    events.push(event);
                }
            }
        }
    }
    if let Some(stream) = &request.stream
        && !restored.exported_streams.is_empty()
        && !restored.exported_streams.contains(stream)
    {
        const SHOWN: usize = 10;
        let names: Vec<&str> = restored
            .exported_streams
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect();
        let more = restored.exported_streams.len().saturating_sub(SHOWN);
        return Err(ArchiverError::invalid(
            "stream",
            format!(
                "no stream {stream:?} in the exports of {:?} for this window; they hold {} stream(s): {}{}",
                request.log_group_name,
                restored.exported_streams.len(),
                names.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            ),
        ));
    }
    restored.streams.retain(|_, events| !events.is_empty());
    for events in restored.streams.values_mut() {
        // Export objects keep no order; a stable sort keeps equal timestamps as written.
        events.sort_by_key(|e| e.timestamp);
    }
    Ok(restored)
}

/// The parts of `[from, to)` no export record covers.
fn uncovered(checkpoint: &Checkpoint, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
    let mut records: Vec<(i64, i64)> = checkpoint.exports.iter().map(|r| (r.from_ms, r.until_ms)).collect();
    records.sort();
    let mut gaps = Vec::new();
    let mut at = from_ms;
    for (start, until) in records {
        if start > at {
            gaps.push((at, start.min(to_ms)));
        }
        at = at.max(until);
        if at >= to_ms {
            break;
        }
    }
    if at < to_ms {
        gaps.push((at, to_ms));
    }
    gaps.retain(|(a, b)| a < b);
    gaps
}

/// Where re-ingested events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReingestTarget {
    /// The log group; it must exist.
    pub log_group_name: String,
    /// One stream for everything, or `None` to keep each event's stream name.
    pub stream: Option<String>,
    /// Now (ms): the reference for the 14-day and retention limits.
    pub now_ms: i64,
}

/// Why events were not re-ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusedReason {
    /// Older than 14 days: PutLogEvents would drop it.
    OlderThan14Days,
    /// Older than the target group's retention.
    BeyondRetention,
    /// More than 2 hours in the future.
    TooNew,
    /// Larger than any PutLogEvents batch.
    TooLarge,
}

impl RefusedReason {
    /// A sentence for the command's output.
    pub fn describe(self) -> &'static str {
        match self {
            RefusedReason::OlderThan14Days => "older than 14 days (PutLogEvents drops them)",
            RefusedReason::BeyondRetention => "older than the target group's retention",
            RefusedReason::TooNew => "more than 2 hours in the future",
            RefusedReason::TooLarge => "larger than a PutLogEvents batch allows",
        }
    }
}

/// Events refused for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refused {
    /// The reason.
    pub reason: RefusedReason,
    /// How many.
    pub events: u64,
    /// The oldest refused event (ms).
    pub oldest_ms: i64,
    /// The newest refused event (ms).
    pub newest_ms: i64,
}

/// What a re-ingestion did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReingestReport {
    /// Events written, per target stream.
    pub written: BTreeMap<String, u64>,
    /// PutLogEvents calls made.
    pub batches: u64,
    /// Events not written, by reason; never silently dropped.
    pub refused: Vec<Refused>,
    /// Events not written because the target stream holds them already
    /// (same timestamp and message), per target stream: a restore run twice
    /// writes nothing the second time.
    pub already_present: BTreeMap<String, u64>,
}

impl ReingestReport {
    /// Events written in all.
    pub fn events_written(&self) -> u64 {
        self.written.values().sum()
    }

    /// Events refused in all.
    pub fn events_refused(&self) -> u64 {
        self.refused.iter().map(|r| r.events).sum()
    }

    /// Events already in their target stream, in all.
    pub fn events_already_present(&self) -> u64 {
        self.already_present.values().sum()
    }
}

/// The events of the target stream with timestamps in `[from_ms, to_ms]`,
/// counted by (timestamp, message); empty when the stream does not exist.
async fn present_events(
    logs: &dyn LogStore,
    group: &str,
    stream: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<HashMap<(i64, String), u64>> {
    let mut present = HashMap::new();
    crate::workflow::read_events(
        logs,
        group,
        stream,
        from_ms,
        Some(to_ms.saturating_add(1)),
        None,
        crate::workflow::ReadLimits::UNBOUNDED,
        |e| {
            *present.entry((e.timestamp, e.message)).or_insert(0) += 1;
            Ok(())
        },
    )
    .await?;
    Ok(present)
}

/// Writes the restored events into `target` with valid PutLogEvents batches,
/// creating the streams as needed. Events CloudWatch would drop are counted
/// in the report instead of being sent.
pub async fn reingest(logs: &dyn LogStore, restored: &Restored, target: &ReingestTarget) -> Result<ReingestReport> {
    let group = logs.describe_group(&target.log_group_name).await?.ok_or_else(|| {
        ArchiverError::invalid(
            "into-group",
            format!(
                "log group {:?} does not exist: create it first (aws logs create-log-group --log-group-name {})",
                target.log_group_name, target.log_group_name
            ),
        )
    })?;
    let age_floor = target.now_ms - REPLAY_MAX_AGE_MS + REINGEST_AGE_MARGIN_MS;
    let retention_floor = group
        .retention_in_days
        .map(|days| target.now_ms - i64::from(days) * 86_400_000 + REINGEST_AGE_MARGIN_MS);
    let refuse = |e: &LogEvent| {
        if e.timestamp < age_floor {
            Some(RefusedReason::OlderThan14Days)
        } else if retention_floor.is_some_and(|floor| e.timestamp < floor) {
            Some(RefusedReason::BeyondRetention)
        } else if e.timestamp > target.now_ms + MAX_FUTURE_MS {
            Some(RefusedReason::TooNew)
        } else if e.message.len() > MAX_MESSAGE_BYTES {
            Some(RefusedReason::TooLarge)
        } else {
            None
        }
    };

    let mut by_target: BTreeMap<&str, Vec<LogEvent>> = BTreeMap::new();
    let mut refused: BTreeMap<RefusedReason, Refused> = BTreeMap::new();
    for (stream, events) in &restored.streams {
        let name = target.stream.as_deref().unwrap_or(stream);
        for event in events {
            match refuse(event) {
                None => by_target.entry(name).or_default().push(event.clone()),
                Some(reason) => {
                    let r = refused.entry(reason).or_insert(Refused {
                        reason,
                        events: 0,
                        oldest_ms: event.timestamp,
                        newest_ms: event.timestamp,
                    });
                    r.events += 1;
                    r.oldest_ms = r.oldest_ms.min(event.timestamp);
                    r.newest_ms = r.newest_ms.max(event.timestamp);
                }
            }
        }
    }

    let mut report = ReingestReport {
        refused: refused.into_values().collect(),
        ..ReingestReport::default()
    };
    for (stream, mut events) in by_target {
        // Several source streams may share one target: interleave them in time.
        events.sort_by_key(|e| e.timestamp);
        // Idempotent: what the target holds already (an earlier restore, a
        // restore cut short) is not written again, event for event.
        if let (Some(first), Some(last)) = (events.first(), events.last()) {
            let mut present =
                present_events(logs, &target.log_group_name, stream, first.timestamp, last.timestamp).await?;
            let before = events.len();
            events.retain(|e| match present.get_mut(&(e.timestamp, e.message.clone())) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            });
            let skipped = (before - events.len()) as u64;
            if skipped > 0 {
                report.already_present.insert(stream.to_string(), skipped);
            }
        }
        if events.is_empty() {
            report.written.insert(stream.to_string(), 0);
            continue;
        }
        logs.create_stream(&target.log_group_name, stream).await?;
        let count = events.len() as u64;
        let packing = |e| ArchiverError::Internal(format!("packing {stream}: {e}"));
        let mut packer = BatchPacker::new();
        for event in events {
            if let Some(batch) = packer.push(event).map_err(packing)? {
                logs.put_events(&target.log_group_name, stream, &batch).await?;
                report.batches += 1;
            }
        }
        if let Some(batch) = packer.finish() {
            logs.put_events(&target.log_group_name, stream, &batch).await?;
            report.batches += 1;
        }
        report.written.insert(stream.to_string(), count);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    use super::*;
    use crate::domain::export_format::format_export_text;
    use crate::domain::window::ExportRecord;
    use crate::store::memory::{MemoryArchive, MemoryAws};

    const DAY: i64 = 86_400_000;

    fn gzip(text: &str) -> Bytes {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        Bytes::from(gz.finish().unwrap())
    }

    /// Two exports: [0, 10 DAY) and [10 DAY, 20 DAY), streams a and b/c.
    async fn archive_with_two_exports() -> MemoryArchive {
        let archive = MemoryArchive::default();
        archive.create_bucket("bk");
        let layout = GroupLayout::new("p", "/g");
        let mut checkpoint = Checkpoint::default();
        for (task, from, until) in [("t1", 0, 10 * DAY), ("t2", 10 * DAY, 20 * DAY)] {
            let prefix = layout.export_prefix(until);
            for stream in ["a", "b/c"] {
                let events: Vec<LogEvent> = (0..4)
                    .rev() // objects are not in time order
                    .map(|i| LogEvent::new(from + i * DAY, format!("{stream} {task} {i}\nsecond line ✓")))
                    .collect();
                let key = format!("{prefix}/{task}/{stream}/000000.gz");
                archive
                    .put("bk", &key, gzip(&format_export_text(&events)))
                    .await
                    .unwrap();
            }
            checkpoint.advance(ExportRecord {
                task_id: task.into(),
                from_ms: from,
                until_ms: until,
                started_at_ms: until,
                destination_prefix: prefix,
                objects: 2,
                bytes: 1,
            });
        }
        let body = serde_json::to_vec(&checkpoint).unwrap();
        archive
            .put("bk", &layout.checkpoint(), Bytes::from(body))
            .await
            .unwrap();
        archive
    }

    fn request(stream: Option<&str>, from_ms: i64, to_ms: i64) -> RestoreRequest {
        RestoreRequest {
            log_group_name: "/g".into(),
            stream: stream.map(str::to_string),
            from_ms,
            to_ms,
            bucket: "bk".into(),
            prefix: "p".into(),
        }
    }

    #[tokio::test]
    async fn the_window_spans_exports_and_keeps_only_its_events() {
        let archive = archive_with_two_exports().await;
        // [2 DAY, 12 DAY): events 2, 3 of t1 and 0, 1 of t2.
        let restored = restore_events(&archive, &request(Some("b/c"), 2 * DAY, 12 * DAY))
            .await
            .unwrap();
        let times: Vec<i64> = restored.streams["b/c"].iter().map(|e| e.timestamp).collect();
        assert_eq!(times, vec![2 * DAY, 3 * DAY, 10 * DAY, 11 * DAY]);
        assert_eq!(restored.streams["b/c"][0].message, "b/c t1 2\nsecond line ✓");
        assert_eq!(restored.streams.len(), 1);
        assert_eq!(restored.objects_read, 2);
        assert!(restored.uncovered.is_empty());

        let all = restore_events(&archive, &request(None, 0, 30 * DAY)).await.unwrap();
        assert_eq!(all.events(), 16);
        assert_eq!(all.uncovered, vec![(20 * DAY, 30 * DAY)]);
    }

    #[tokio::test]
    async fn an_unknown_stream_names_the_streams_the_export_has() {
        let archive = archive_with_two_exports().await;
        let err = restore_events(&archive, &request(Some("nope"), 0, 30 * DAY))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("they hold 2 stream(s): a, b/c"), "{err}");
        // A known stream with nothing in the window is no error.
        let none = restore_events(&archive, &request(Some("a"), 25 * DAY, 30 * DAY))
            .await
            .unwrap();
        assert_eq!(none.events(), 0);
    }

    #[tokio::test]
    async fn a_missing_checkpoint_names_the_flags_to_check() {
        let archive = MemoryArchive::default();
        let err = restore_events(&archive, &request(None, 0, 1)).await.unwrap_err();
        assert!(err.to_string().contains("check --bucket and --prefix"), "{err}");
        let err = restore_events(&archive, &request(None, 5, 5)).await.unwrap_err();
        assert!(err.to_string().contains("earlier than --to"), "{err}");
    }

    #[tokio::test]
    async fn reingestion_refuses_and_counts_what_cloudwatch_would_drop() {
        let now = 100 * DAY;
        let mut restored = Restored::default();
        restored.streams.insert(
            "a".into(),
            vec![
                LogEvent::new(now - 20 * DAY, "too old"),
                LogEvent::new(now - 13 * DAY, "beyond 7-day retention"),
                LogEvent::new(now - 2 * DAY, "fine 1"),
                LogEvent::new(now - DAY, "fine 2"),
                LogEvent::new(now + 3 * 3_600_000, "future"),
            ],
        );
        restored
            .streams
            .insert("b".into(), vec![LogEvent::new(now - 36 * 3_600_000, "fine b")]);
        let aws = MemoryAws::new();
        aws.control().set_now_ms(now);
        aws.logs.create_group_with("/restored", 0, Some(7));
        let logs = aws.logs.as_ref();
        let target = ReingestTarget {
            log_group_name: "/restored".into(),
            stream: Some("all".into()),
            now_ms: now,
        };
        let report = reingest(logs, &restored, &target).await.unwrap();
        assert_eq!(report.events_written(), 3);
        assert_eq!(report.events_refused(), 3);
        let reasons: Vec<RefusedReason> = report.refused.iter().map(|r| r.reason).collect();
        assert_eq!(
            reasons,
            vec![
                RefusedReason::OlderThan14Days,
                RefusedReason::BeyondRetention,
                RefusedReason::TooNew
            ]
        );
        let written: Vec<String> = logs
            .events("/restored", "all")
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(written, vec!["fine 1", "fine b", "fine 2"], "merged in time order");

        // Twice: nothing is written again.
        let again = reingest(logs, &restored, &target).await.unwrap();
        assert_eq!(again.events_written(), 0);
        assert_eq!(again.events_already_present(), 3);
        assert_eq!(logs.events("/restored", "all").unwrap().len(), 3);

        let missing = ReingestTarget {
            log_group_name: "/nope".into(),
            ..target
        };
        let err = reingest(logs, &restored, &missing).await.unwrap_err();
        assert!(err.to_string().contains("create-log-group"), "{err}");
    }
}
