//! A stream's staged kept events in S3: numbered segments of bounded size,
//! each a complete staging object, so that memory never grows with the
//! stream and a scan or replay can stop between segments and go on in the
//! next invocation.
//!
//! The segments form sorted runs: the scan writes one run (segments in
//! stream order); events that arrive afterwards are staged as a further run.
//! Readers merge the runs by timestamp.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::read::EventCursor;
use crate::domain::event::LogEvent;
use crate::domain::layout::GroupLayout;
use crate::domain::staging::{StagingEncoder, StagingHeader, decode_all};
use crate::error::{ArchiverError, Result};
use crate::store::ArchiveStore;

/// Most events in one segment: about 10–20 MB decoded for typical messages.
pub const SEGMENT_MAX_EVENTS: u64 = 50_000;
/// Most message bytes in one segment.
pub const SEGMENT_MAX_MESSAGE_BYTES: u64 = 16 * 1024 * 1024;

/// Segments `first..=last`, whose events read in order are chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRun {
    /// First segment number (from 1).
    pub first: u32,
    /// Last segment number.
    pub last: u32,
}

/// Where a stream's staged events are, and their totals. Written into the
/// rebuilding marker, where it is the truth while the stream is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct StagedSet {
    /// The sorted runs of segments.
    pub runs: Vec<SegmentRun>,
    /// Events staged.
    pub events: u64,
    /// Message bytes staged.
    pub message_bytes: u64,
}

impl StagedSet {
    /// The number the next segment written for this stream gets.
    pub fn next_segment(&self) -> u32 {
        self.runs.iter().map(|r| r.last + 1).max().unwrap_or(1)
    }

    /// Every segment number.
    pub fn segments(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.first..=r.last)
    }

    /// Adds what a writer wrote.
    pub fn add(&mut self, written: &Written) {
        if let Some(run) = written.run {
            self.runs.push(run);
            self.events += written.events;
            self.message_bytes += written.message_bytes;
        }
    }
}

/// What a [`SegmentWriter`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// The segments, if any.
    pub run: Option<SegmentRun>,
    /// Events written.
    pub events: u64,
    /// Message bytes written.
    pub message_bytes: u64,
}

/// Writes one sorted run of segments: events go into an in-memory gzip
/// encoder that is sealed into an S3 object whenever it reaches the segment
/// limits.
pub struct SegmentWriter<'a> {
    archive: &'a dyn ArchiveStore,
    bucket: &'a str,
    layout: &'a GroupLayout,
    run_id: &'a str,
    header: StagingHeader,
    encoder: Option<StagingEncoder>,
    first: u32,
    next: u32,
    events: u64,
    message_bytes: u64,
}

impl<'a> SegmentWriter<'a> {
    /// A writer of run `run_id`'s staging whose first segment is number `first`.
    pub fn new(
        archive: &'a dyn ArchiveStore,
        bucket: &'a str,
        layout: &'a GroupLayout,
        run_id: &'a str,
        header: StagingHeader,
        first: u32,
    ) -> Self {
        Self {
            archive,
            bucket,
            layout,
            run_id,
            header,
            encoder: None,
            first,
            next: first,
            events: 0,
            message_bytes: 0,
        }
    }

    /// Appends an event (not older than the previous one).
    pub async fn push(&mut self, event: &LogEvent) -> Result<()> {
        let encoder = self
            .encoder
            .get_or_insert_with(|| StagingEncoder::new(self.header.clone()));
        encoder.push(event).map_err(|e| ArchiverError::StagingCorrupt {
            bucket: self.bucket.to_string(),
            key: self
                .layout
                .staging_segment(self.run_id, &self.header.log_stream_name, self.next),
            detail: e.to_string(),
        })?;
        let summary = encoder.summary();
        if summary.events >= SEGMENT_MAX_EVENTS || summary.message_bytes >= SEGMENT_MAX_MESSAGE_BYTES {
            self.seal().await?;
        }
        Ok(())
    }

    /// Writes the open segment, if it holds any event.
    pub async fn seal(&mut self) -> Result<()> {
        let Some(encoder) = self.encoder.take() else {
            return Ok(());
        };
        if encoder.summary().events == 0 {
            return Ok(());
        }
        let key = self
            .layout
            .staging_segment(self.run_id, &self.header.log_stream_name, self.next);
        let (bytes, summary) = encoder.finish().map_err(|e| ArchiverError::StagingCorrupt {
            bucket: self.bucket.to_string(),
            key: key.clone(),
            detail: e.to_string(),
        })?;
        self.archive.put(self.bucket, &key, Bytes::from(bytes)).await?;
        self.next += 1;
        self.events += summary.events;
        self.message_bytes += summary.message_bytes;
        Ok(())
    }

    /// Seals the open segment and says what was written.
    pub async fn finish(mut self) -> Result<Written> {
        self.seal().await?;
        Ok(self.written())
    }

    /// What the sealed segments hold.
    fn written(&self) -> Written {
        Written {
            run: (self.next > self.first).then(|| SegmentRun {
                first: self.first,
                last: self.next - 1,
            }),
            events: self.events,
            message_bytes: self.message_bytes,
        }
    }
}

/// Reads a stream's staged events oldest first, merging the runs, one
/// segment per run in memory at a time.
pub struct StagedEvents<'a> {
    archive: &'a dyn ArchiveStore,
    bucket: &'a str,
    layout: &'a GroupLayout,
    run_id: &'a str,
    stream: &'a str,
    runs: Vec<RunReader>,
    from_ms: i64,
}

struct RunReader {
    next: u32,
    last: u32,
    events: VecDeque<LogEvent>,
}

impl<'a> StagedEvents<'a> {
    /// A reader of `set`, staged by run `run_id`.
    pub fn open(
        archive: &'a dyn ArchiveStore,
        bucket: &'a str,
        layout: &'a GroupLayout,
        run_id: &'a str,
        stream: &'a str,
        set: &StagedSet,
    ) -> Self {
        let runs = set
            .runs
            .iter()
            .map(|r| RunReader {
                next: r.first,
                last: r.last,
                events: VecDeque::new(),
            })
            .collect();
        Self {
            archive,
            bucket,
            layout,
            run_id,
            stream,
            runs,
            from_ms: i64::MIN,
        }
    }

    /// Only the staged events at or after `from_ms`: the rest cannot be
    /// replayed any more and are archived instead (finishing an earlier
    /// run's rebuild whose events aged past the 14-day replay limit).
    pub fn from_ms(mut self, from_ms: i64) -> Self {
        self.from_ms = from_ms;
        self
    }

    async fn load(&self, segment: u32) -> Result<VecDeque<LogEvent>> {
        let key = self.layout.staging_segment(self.run_id, self.stream, segment);
        let corrupt = |detail: String| ArchiverError::StagingCorrupt {
            bucket: self.bucket.to_string(),
            key: key.clone(),
            detail,
        };
        let bytes = self
            .archive
            .get(self.bucket, &key)
            .await?
            .ok_or_else(|| corrupt("the segment is missing".into()))?;
        let (header, events) = decode_all(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if header.log_stream_name != self.stream {
            return Err(corrupt(format!(
                "it holds events of stream {:?}",
                header.log_stream_name
            )));
        }
        Ok(events.into())
    }

    /// The next staged event by timestamp; `None` after the last.
    pub async fn next_event(&mut self) -> Result<Option<LogEvent>> {
        loop {
            match self.next_staged().await? {
                Some(event) if event.timestamp < self.from_ms => continue,
                other => return Ok(other),
            }
        }
    }

    async fn next_staged(&mut self) -> Result<Option<LogEvent>> {
        for i in 0..self.runs.len() {
            while self.runs[i].events.is_empty() && self.runs[i].next <= self.runs[i].last {
                let segment = self.runs[i].next;
                self.runs[i].events = self.load(segment).await?;
                self.runs[i].next += 1;
            }
        }
        let oldest = self
            .runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.events.front().map(|e| (e.timestamp, i)))
            .min();
        Ok(oldest.and_then(|(_, i)| self.runs[i].events.pop_front()))
    }

    /// Skips `count` events (to resume a replay).
    pub async fn skip(&mut self, count: u64) -> Result<()> {
        for _ in 0..count {
            if self.next_event().await?.is_none() {
                break;
            }
        }
        Ok(())
    }
}

/// How a stream's events compare with the staged ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Staged events not in the stream.
    pub missing: u64,
    /// Staged events in the stream more often than staged.
    pub duplicated: u64,
    /// Events in the stream that were never staged: written by someone else.
    pub foreign: u64,
    /// Whether the stream exists.
    pub stream_exists: bool,
}

impl Comparison {
    /// Every staged event is in the stream exactly once.
    pub fn is_exact(&self) -> bool {
        self.stream_exists && self.missing == 0 && self.duplicated == 0
    }
}

/// Compares the stream (from `cursor`) with the staged events, both oldest
/// first, one timestamp at a time, so memory holds only the events of one
/// millisecond. Events never staged are handed to `foreign` when given.
pub async fn compare(
    staged: &mut StagedEvents<'_>,
    cursor: &mut EventCursor<'_>,
    mut foreign: Option<&mut SegmentWriter<'_>>,
) -> Result<Comparison> {
    let mut result = Comparison::default();
    let mut next_staged = staged.next_event().await?;
    let mut next_actual = cursor.next_event().await?;
    result.stream_exists = !cursor.is_missing();
    loop {
        let timestamp = match (&next_staged, &next_actual) {
            (None, None) => break,
            (Some(s), None) => s.timestamp,
            (None, Some(a)) => a.timestamp,
            (Some(s), Some(a)) => s.timestamp.min(a.timestamp),
        };
        let mut expected = Vec::new();
        while let Some(event) = next_staged.take_if(|e| e.timestamp == timestamp) {
            expected.push(event.message);
            next_staged = staged.next_event().await?;
        }
        let mut actual = Vec::new();
        while let Some(event) = next_actual.take_if(|e| e.timestamp == timestamp) {
            actual.push(event.message);
            next_actual = cursor.next_event().await?;
        }
        expected.sort_unstable();
        actual.sort_unstable();
        let (mut e, mut a) = (0, 0);
        while e < expected.len() || a < actual.len() {
            match (expected.get(e), actual.get(a)) {
                (Some(x), Some(y)) if x == y => {
                    e += 1;
                    a += 1;
                }
                (Some(x), Some(y)) if x < y => {
                    result.missing += 1;
                    e += 1;
                }
                (Some(_), None) => {
                    result.missing += 1;
                    e += 1;
                }
                (_, Some(y)) => {
                    if expected.binary_search(y).is_ok() {
                        result.duplicated += 1;
                    } else {
                        result.foreign += 1;
                        if let Some(writer) = foreign.as_deref_mut() {
                            writer
                                .push(&LogEvent {
                                    timestamp,
                                    message: y.clone(),
                                })
                                .await?;
                        }
                    }
                    a += 1;
                }
                (None, None) => break,
            }
        }
    }
    Ok(result)
}
