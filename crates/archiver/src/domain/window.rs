//! The export window and the per-group checkpoint that makes runs
//! gap-free and overlap-free.
//!
//! CreateExportTask includes both ends of `[from, to]`, GetLogEvents includes
//! `startTime` and excludes `endTime`. For a cutoff `C` the run exports
//! `[from, C - 1]`, keeps `t >= C`, and the next run starts at `C`.

use serde::{Deserialize, Serialize};

/// CloudWatch Logs data "can take up to 12 hours to become available for
/// export" (CreateExportTask reference): an event ingested less than this
/// before an export task started may be missing from it.
pub const EXPORT_AVAILABILITY_MS: i64 = 12 * 3_600_000;
/// Margin on the availability delay, for clock differences and rounding.
pub const EXPORT_AVAILABILITY_MARGIN_MS: i64 = 3_600_000;
/// PutLogEvents refuses events more than 14 days older than their ingestion
/// (`tooOldLogEventEndIndex`, PutLogEvents reference): an event ingested at
/// `I` has a timestamp of at least `I - 14 days`.
pub const INGESTION_MAX_AGE_MS: i64 = 14 * 24 * 3_600_000;

/// One completed and verified export of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    /// The export task id.
    pub task_id: String,
    /// First event time exported (inclusive, ms).
    pub from_ms: i64,
    /// Events with `t < until_ms` were exported (the run's cutoff).
    pub until_ms: i64,
    /// When the export task was created (the earliest of the archiver's
    /// clock before the call and the task's own creation time).
    pub started_at_ms: i64,
    /// Where its objects are.
    pub destination_prefix: String,
    /// Number of objects written.
    pub objects: u64,
    /// Compressed bytes written.
    pub bytes: u64,
}

impl ExportRecord {
    /// Events ingested before this are in the export (if their timestamp is
    /// in its window): the task's start minus the availability delay and
    /// its margin.
    pub fn complete_before_ms(&self) -> i64 {
        self.started_at_ms - EXPORT_AVAILABILITY_MS - EXPORT_AVAILABILITY_MARGIN_MS
    }

    /// Events of the window older than this were all ingested before
    /// [`complete_before_ms`](Self::complete_before_ms) (PutLogEvents refuses
    /// older ones), so they are all in the export.
    pub fn late_floor_ms(&self) -> i64 {
        self.complete_before_ms() - INGESTION_MAX_AGE_MS
    }

    /// The whole window below `cutoff_ms`, every event of it to be proven:
    /// for an export that left out a stream the listing shows with events in
    /// the window, and for staged events that must be archived by hand.
    pub fn distrusted(&self, cutoff_ms: i64) -> ProofSegment {
        ProofSegment {
            from_ms: self.from_ms,
            until_ms: self.until_ms.min(cutoff_ms),
            complete_before_ms: i64::MIN,
            task_id: self.task_id.clone(),
            destination_prefix: self.destination_prefix.clone(),
        }
    }

    /// The part of the window whose events may have arrived too late for the
    /// export, `None` when every event of the window is surely in it.
    pub fn proof_range(&self) -> Option<(i64, i64)> {
        let from = self.from_ms.max(self.late_floor_ms());
        (from < self.until_ms).then_some((from, self.until_ms))
    }
}

/// The checkpoint object of a group: what has been exported so far. It is
/// written with a compare-and-swap (S3 `If-Match`) and never moves back.
///
/// Every export stays on record (about 250 bytes each): `restore` finds the
/// objects through the records, and the per-event proof before a delete
/// needs each export's start time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The log group.
    pub log_group_name: String,
    /// Every event with `t < exported_until_ms` is in an export.
    pub exported_until_ms: i64,
    /// The exports, oldest first.
    pub exports: Vec<ExportRecord>,
}

impl Checkpoint {
    /// Records a verified export and advances the checkpoint (never back).
    pub fn advance(&mut self, record: ExportRecord) {
        self.exported_until_ms = self.exported_until_ms.max(record.until_ms);
        self.exports.push(record);
        self.exports.sort_by_key(|r| (r.from_ms, r.until_ms));
    }

    /// The export whose window holds `timestamp`, if one does.
    pub fn record_covering(&self, timestamp: i64) -> Option<&ExportRecord> {
        self.exports
            .iter()
            .find(|r| r.from_ms <= timestamp && timestamp < r.until_ms)
    }

    /// What must be proven, event by event, before a stream's events older
    /// than `cutoff_ms` are deleted. `Err` with the first uncovered range
    /// when the exports on record do not cover `[0, cutoff_ms)`.
    pub fn proof(&self, cutoff_ms: i64) -> Result<Proof, (i64, i64)> {
        let mut covered_to = 0i64;
        let mut segments = Vec::new();
        for record in self.exports.iter().filter(|r| r.from_ms < cutoff_ms) {
            if record.from_ms > covered_to {
                return Err((covered_to, record.from_ms));
            }
            covered_to = covered_to.max(record.until_ms);
            if let Some((from_ms, until_ms)) = record.proof_range() {
                segments.push(ProofSegment {
                    from_ms,
                    until_ms: until_ms.min(cutoff_ms),
                    complete_before_ms: record.complete_before_ms(),
                    task_id: record.task_id.clone(),
                    destination_prefix: record.destination_prefix.clone(),
                });
            }
        }
        if covered_to < cutoff_ms {
            return Err((covered_to, cutoff_ms));
        }
        Ok(Proof { cutoff_ms, segments })
    }
}

/// The ranges of event time where an event may be missing from the export
/// that covers it, because it was ingested too late for that export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// Events at or after the cutoff are kept, not archived.
    pub cutoff_ms: i64,
    /// The ranges, by time; they never overlap.
    pub segments: Vec<ProofSegment>,
}

/// One export's range of event time that needs the per-event proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofSegment {
    /// First event time concerned (inclusive).
    pub from_ms: i64,
    /// Event time concerned ends here (exclusive).
    pub until_ms: i64,
    /// Events ingested before this are surely in the export.
    pub complete_before_ms: i64,
    /// The export task.
    pub task_id: String,
    /// Where its objects are.
    pub destination_prefix: String,
}

impl Proof {
    /// Where the proof's read starts: the oldest event time concerned, or
    /// the cutoff when no event older than it needs proving.
    pub fn read_from_ms(&self) -> i64 {
        self.segments.first().map_or(self.cutoff_ms, |s| s.from_ms)
    }

    /// The segment an event with this timestamp falls in, if it needs proving.
    pub fn segment_of(&self, timestamp: i64) -> Option<&ProofSegment> {
        let at = self.segments.partition_point(|s| s.until_ms <= timestamp);
        self.segments
            .get(at)
            .filter(|s| s.from_ms <= timestamp && timestamp < s.until_ms)
    }

    /// Treats every event of `task_id`'s window as possibly missing: the
    /// export wrote no object for a stream the listing shows with events there.
    pub fn distrust(&mut self, record: &ExportRecord) {
        self.segments.retain(|s| s.task_id != record.task_id);
        // Export windows never overlap, so neither do the segments.
        let segment = record.distrusted(self.cutoff_ms);
        if segment.from_ms < segment.until_ms {
            self.segments.push(segment);
            self.segments.sort_by_key(|s| s.from_ms);
        }
    }

    /// Whether an event needs to be found in the archive before its stream
    /// is deleted: it is older than the cutoff, in a proof segment, and was
    /// ingested too late for that segment's export to be sure to hold it.
    pub fn needs_proof(&self, timestamp: i64, ingestion_ms: i64) -> Option<&ProofSegment> {
        self.segment_of(timestamp)
            .filter(|s| ingestion_ms >= s.complete_before_ms)
    }
}

/// The window a run exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportWindow {
    /// First event time included (ms).
    pub from_ms: i64,
    /// Events with `t < until_ms` are included: CreateExportTask gets `to = until_ms - 1`.
    pub until_ms: i64,
}

impl ExportWindow {
    /// The window from the checkpoint (or the beginning of time) to the cutoff;
    /// `None` when there is nothing new to export.
    pub fn resolve(checkpoint: Option<&Checkpoint>, cutoff_ms: i64) -> Option<ExportWindow> {
        // Without a checkpoint start at 0, not at the group's creation time:
        // events can carry timestamps older than their group.
        let from_ms = checkpoint.map_or(0, |c| c.exported_until_ms);
        (from_ms < cutoff_ms).then_some(ExportWindow {
            from_ms,
            until_ms: cutoff_ms,
        })
    }

    /// The inclusive `to` of CreateExportTask.
    pub fn export_to_ms(&self) -> i64 {
        self.until_ms - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn record(from_ms: i64, until_ms: i64, started_at_ms: i64) -> ExportRecord {
        ExportRecord {
            task_id: format!("t{until_ms}"),
            from_ms,
            until_ms,
            started_at_ms,
            destination_prefix: String::new(),
            objects: 1,
            bytes: 1,
        }
    }

    #[test]
    fn window_starts_at_the_checkpoint_and_ends_one_ms_before_the_cutoff() {
        assert_eq!(
            ExportWindow::resolve(None, 1000),
            Some(ExportWindow {
                from_ms: 0,
                until_ms: 1000
            })
        );
        let mut c = Checkpoint::default();
        c.advance(record(0, 1000, 5000));
        let w = ExportWindow::resolve(Some(&c), 2000).unwrap();
        assert_eq!((w.from_ms, w.export_to_ms()), (1000, 1999));
        assert_eq!(ExportWindow::resolve(Some(&c), 1000), None);
        assert_eq!(ExportWindow::resolve(Some(&c), 999), None);
    }

    #[test]
    fn an_export_started_long_after_its_cutoff_needs_no_proof() {
        // Cutoff 30 days before the export: every event of the window was
        // ingested at least 16 days before it (PutLogEvents' 14-day rule).
        let cutoff = 100 * DAY;
        let late = record(0, cutoff, cutoff + 30 * DAY);
        assert_eq!(late.proof_range(), None);
        // Exactly at the bound: 14 days + 12 h + 1 h after the cutoff.
        let bound = record(0, cutoff, cutoff + 14 * DAY + 13 * HOUR);
        assert_eq!(bound.proof_range(), None);
        let inside = record(0, cutoff, cutoff + 14 * DAY + 13 * HOUR - 1);
        assert_eq!(inside.proof_range(), Some((cutoff - 1, cutoff)));
    }

    #[test]
    fn a_recent_cutoff_needs_the_last_fourteen_and_a_half_days_proven() {
        let cutoff = 100 * DAY;
        let started = cutoff + DAY;
        let r = record(0, cutoff, started);
        let floor = started - 13 * HOUR - 14 * DAY;
        assert_eq!(r.proof_range(), Some((floor, cutoff)));
        let mut c = Checkpoint::default();
        c.advance(r);
        let proof = c.proof(cutoff).unwrap();
        assert_eq!(proof.read_from_ms(), floor);
        // Ingested before the export could miss it: nothing to prove.
        assert!(proof.needs_proof(cutoff - HOUR, started - 14 * HOUR).is_none());
        // Ingested within 13 hours of the export's start: prove it.
        assert!(proof.needs_proof(cutoff - HOUR, started - 12 * HOUR).is_some());
        // Older than the floor: it cannot have been ingested that late.
        assert!(proof.needs_proof(floor - 1, started).is_none());
        // Kept events are never proven against the export.
        assert!(proof.needs_proof(cutoff, started).is_none());
    }

    #[test]
    fn the_proof_covers_every_export_and_finds_gaps() {
        let mut c = Checkpoint::default();
        c.advance(record(0, 10 * DAY, 11 * DAY));
        c.advance(record(10 * DAY, 20 * DAY, 21 * DAY));
        let proof = c.proof(20 * DAY).unwrap();
        assert_eq!(proof.segments.len(), 2);
        assert_eq!(
            proof.segment_of(15 * DAY).map(|s| s.task_id.as_str()),
            Some("t1728000000")
        );
        assert_eq!(c.proof(25 * DAY), Err((20 * DAY, 25 * DAY)));
        let mut gap = Checkpoint::default();
        gap.advance(record(5, 10, 11));
        assert_eq!(gap.proof(10), Err((0, 5)));
        assert_eq!(Checkpoint::default().proof(0).map(|p| p.segments.len()), Ok(0));
    }

    #[test]
    fn a_distrusted_export_is_proven_over_its_whole_window() {
        let cutoff = 100 * DAY;
        let r = record(0, cutoff, cutoff + 30 * DAY);
        let mut c = Checkpoint::default();
        c.advance(r.clone());
        let mut proof = c.proof(cutoff).unwrap();
        assert_eq!(proof.read_from_ms(), cutoff);
        proof.distrust(&r);
        assert_eq!(proof.read_from_ms(), 0);
        assert!(proof.needs_proof(5, 0).is_some());
    }

    #[test]
    fn the_checkpoint_never_moves_back() {
        let mut c = Checkpoint::default();
        c.advance(record(0, 20, 30));
        c.advance(record(0, 10, 30));
        assert_eq!(c.exported_until_ms, 20);
        assert_eq!(c.exports.len(), 2);
    }
}
