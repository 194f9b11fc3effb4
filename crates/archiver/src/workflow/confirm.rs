//! The read right before every delete: it confirms what the stream holds and
//! proves that every event older than the cutoff is in the archive.
//!
//! CloudWatch Logs has no conditional delete, so the archiver reads the
//! stream and deletes it straight after a read that found nothing it did not
//! already account for:
//!
//! - an event older than the cutoff that CloudWatch Logs ingested too late
//!   for the export covering it (data takes up to 12 hours to become
//!   exportable) is looked up in that export's objects and, if it is not
//!   there, written to the archive as a supplement beside them;
//! - an event at or after the cutoff must be staged (it is compared with the
//!   staged set, and a new one is staged).
//!
//! A read that had to supplement or stage anything is followed by another
//! read; the delete follows a read that found nothing new.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::read::EventCursor;
use super::staged::{Comparison, SegmentWriter, StagedEvents, StagedSet, compare};
use super::{BudgetClock, Clients};
use crate::domain::event::{IngestedEvent, LogEvent};
use crate::domain::export_format::{ExportReader, encode_export_object, parse_export_key, supplement_key};
use crate::domain::input::RunSettings;
use crate::domain::layout::GroupLayout;
use crate::domain::window::{Proof, ProofSegment};
use crate::error::{ArchiverError, Result};

/// What one confirmation read found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Confirmation {
    /// Whether the stream exists.
    pub stream_exists: bool,
    /// Events at or after the cutoff that were not staged: staged now when
    /// a staged set was given, else only counted.
    pub new_kept: u64,
    /// Events older than the cutoff missing from the archive, supplemented now.
    pub supplemented: u64,
    /// The stream's events at or after the cutoff against the staged ones.
    pub comparison: Comparison,
}

impl Confirmation {
    /// Nothing new: the stream may be deleted straight away.
    pub fn is_clean(&self) -> bool {
        self.stream_exists && self.new_kept == 0 && self.supplemented == 0
    }
}

/// What the proof's read found.
struct Proven {
    /// Events older than the cutoff missing from the archive, supplemented now.
    supplemented: u64,
    /// The read met an event at or after the cutoff.
    reached_cutoff: bool,
}

/// The staged set a confirmation compares the kept events with.
pub(crate) struct Staging<'s, 'w> {
    /// The run whose staging it is.
    pub run_id: &'s str,
    /// The staged segments.
    pub set: &'s StagedSet,
    /// Where new kept events are staged.
    pub writer: &'s mut SegmentWriter<'w>,
}

/// Reads streams of one group to confirm them before a delete.
pub(crate) struct Confirmer<'a> {
    pub clients: &'a Clients,
    pub settings: &'a RunSettings,
    pub layout: &'a GroupLayout,
    /// Kept events read unmasked (a data-protected group): what is staged
    /// and replayed must be the original text.
    pub unmask_kept: bool,
}

/// An event older than the cutoff that must be in the archive, with how
/// many identical events (same time and text) CloudWatch Logs holds.
type Wanted = BTreeMap<(i64, String), u64>;

impl Confirmer<'_> {
    /// Reads `stream` from `proof.read_from_ms()`: old events that need the
    /// proof are made sure of in the archive, kept events (at or after
    /// `proof.cutoff_ms`) are compared with `staging` and new ones staged,
    /// or, without a staging, counted.
    pub async fn read(
        &self,
        stream: &str,
        proof: &Proof,
        staging: Option<Staging<'_, '_>>,
        clock: &mut BudgetClock,
    ) -> Result<Confirmation> {
        let mut found = Confirmation {
            stream_exists: true,
            ..Confirmation::default()
        };
        let logs = self.clients.logs.as_ref();
        let group = &self.settings.log_group_name;
        // Without a staging (an expired stream) any kept event is news and
        // one is enough: the proof's read runs on past the cutoff and stops
        // at the first. GetLogEvents is the quota an expired stream's delete
        // waits on, and a second read from the cutoff would cost two more
        // calls (its page and the page that repeats the token).
        let counting_only = staging.is_none();
        if counting_only || proof.read_from_ms() < proof.cutoff_ms {
            // Read as the export sees the events (masked where a policy
            // masks them), to compare like with like.
            let end = (!counting_only).then_some(proof.cutoff_ms);
            let mut cursor = EventCursor::new(logs, group, stream, proof.read_from_ms(), end, None);
            if proof.read_from_ms() == proof.cutoff_ms {
                cursor = cursor.with_page_size(1);
            }
            let proven = self.prove(stream, proof, &mut cursor).await?;
            found.supplemented = proven.supplemented;
            found.new_kept = u64::from(proven.reached_cutoff);
            clock.spend(cursor.pages());
            if cursor.is_missing() {
                found.stream_exists = false;
                return Ok(found);
            }
        }
        let Some(staging) = staging else {
            return Ok(found);
        };
        let mut cursor = EventCursor::new(logs, group, stream, proof.cutoff_ms, None, None).unmasked(self.unmask_kept);
        let archive = self.clients.archive.as_ref();
        let mut expected = StagedEvents::open(
            archive,
            &self.settings.bucket,
            self.layout,
            staging.run_id,
            stream,
            staging.set,
        )
        .from_ms(proof.cutoff_ms);
        found.comparison = compare(&mut expected, &mut cursor, Some(staging.writer)).await?;
        found.new_kept = found.comparison.foreign;
        clock.spend(cursor.pages());
        found.stream_exists = !cursor.is_missing();
        Ok(found)
    }

    /// Reads the old events of the proof's segments and makes sure each one
    /// ingested too late for its export is in the archive. Stops at the
    /// first event at or after the cutoff.
    async fn prove(&self, stream: &str, proof: &Proof, cursor: &mut EventCursor<'_>) -> Result<Proven> {
        let mut supplemented = 0;
        let mut reached_cutoff = false;
        let mut segment: Option<&ProofSegment> = None;
        let mut wanted = Wanted::new();
        let mut same_time: Vec<IngestedEvent> = Vec::new();
        loop {
            let mut next = cursor.next_ingested().await?;
            if next.as_ref().is_some_and(|e| e.event.timestamp >= proof.cutoff_ms) {
                reached_cutoff = true;
                next = None;
            }
            let timestamp = next.as_ref().map(|e| e.event.timestamp);
            if same_time.first().map(|e| e.event.timestamp) != timestamp {
                let group = std::mem::take(&mut same_time);
                let group_segment = group.first().and_then(|e| proof.segment_of(e.event.timestamp));
                if group_segment.map(|s| &s.task_id) != segment.map(|s| &s.task_id) {
                    if let Some(done) = segment {
                        supplemented += self.ensure_archived(stream, done, std::mem::take(&mut wanted)).await?;
                    }
                    segment = group_segment;
                }
                want_late(proof, group, &mut wanted);
            }
            match next {
                Some(event) => same_time.push(event),
                None => break,
            }
        }
        if let Some(done) = segment {
            supplemented += self.ensure_archived(stream, done, wanted).await?;
        }
        Ok(Proven {
            supplemented,
            reached_cutoff,
        })
    }

    /// Makes sure the archive holds `wanted` of `stream` under `export`:
    /// what its objects (the export's and earlier supplements) lack is
    /// written as a supplement. Returns how many events were written.
    pub async fn ensure_archived(&self, stream: &str, export: &ProofSegment, wanted: Wanted) -> Result<u64> {
        if wanted.is_empty() {
            return Ok(0);
        }
        let archive = self.clients.archive.as_ref();
        let bucket = &self.settings.bucket;
        let prefix = &export.destination_prefix;
        let mut held: HashMap<&(i64, String), u64> = HashMap::new();
        let mut own_supplements = 0u32;
        for object in archive
            .list(bucket, &format!("{prefix}/{}/{stream}/", export.task_id))
            .await?
        {
            let Some(key) = parse_export_key(prefix, &object.key).filter(|k| k.stream == stream) else {
                continue;
            };
            if key.supplement.as_deref() == Some(self.settings.run_id.as_str()) {
                own_supplements = own_supplements.max(key.part + 1);
            }
            let Some(body) = archive.get(bucket, &object.key).await? else {
                continue;
            };
            for event in ExportReader::from_gzip(body.as_ref()) {
                let event = event.map_err(|e| ArchiverError::VerificationFailed {
                    subject: format!("s3://{bucket}/{}", object.key),
                    detail: format!("the export object is unreadable: {e}"),
                })?;
                if let Some((key, _)) = wanted.get_key_value(&(event.timestamp, event.message)) {
                    *held.entry(key).or_default() += 1;
                }
            }
        }
        let mut missing: Vec<LogEvent> = Vec::new();
        for (key, count) in &wanted {
            let have = held.get(key).copied().unwrap_or(0);
            for _ in have..*count {
                missing.push(LogEvent::new(key.0, key.1.clone()));
            }
        }
        if missing.is_empty() {
            return Ok(0);
        }
        let key = supplement_key(prefix, &export.task_id, stream, &self.settings.run_id, own_supplements);
        let body = encode_export_object(&missing)
            .map_err(|e| ArchiverError::Internal(format!("compressing a supplement: {e}")))?;
        archive.put(bucket, &key, Bytes::from(body)).await?;
        tracing::warn!(
            stream,
            task_id = export.task_id,
            events = missing.len(),
            key,
            "events that arrived too late for their export were archived as a supplement"
        );
        Ok(missing.len() as u64)
    }
}

/// Adds the events of one millisecond that need the proof to `wanted`, each
/// with the number of identical events the stream holds.
fn want_late(proof: &Proof, same_time: Vec<IngestedEvent>, wanted: &mut Wanted) {
    let Some(first) = same_time.first() else {
        return;
    };
    if !same_time
        .iter()
        .any(|e| proof.needs_proof(e.event.timestamp, e.ingestion_ms).is_some())
    {
        return;
    }
    let timestamp = first.event.timestamp;
    let late: Vec<&str> = same_time
        .iter()
        .filter(|e| proof.needs_proof(timestamp, e.ingestion_ms).is_some())
        .map(|e| e.event.message.as_str())
        .collect();
    for event in &same_time {
        if late.contains(&event.event.message.as_str()) {
            *wanted.entry((timestamp, event.event.message.clone())).or_default() += 1;
        }
    }
}
