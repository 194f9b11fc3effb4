//! The export window and the per-group checkpoint that makes runs
//! gap-free and overlap-free.
//!
//! CreateExportTask includes both ends of `[from, to]`, GetLogEvents includes
//! `startTime` and excludes `endTime`. For a cutoff `C` the run exports
//! `[from, C - 1]`, keeps `t >= C`, and the next run starts at `C`.

use serde::{Deserialize, Serialize};

/// How many export records a checkpoint keeps (about a year of daily runs).
pub const CHECKPOINT_HISTORY: usize = 400;

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
    /// When the export task was created: events ingested later may be missing from it.
    pub started_at_ms: i64,
    /// Where its objects are.
    pub destination_prefix: String,
    /// Number of objects written.
    pub objects: u64,
    /// Compressed bytes written.
    pub bytes: u64,
}

/// The checkpoint object of a group: what has been exported so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The log group.
    pub log_group_name: String,
    /// Every event with `t < exported_until_ms` is in an export.
    pub exported_until_ms: i64,
    /// The exports, oldest first (the most recent [`CHECKPOINT_HISTORY`]).
    pub exports: Vec<ExportRecord>,
}

impl Checkpoint {
    /// Records a verified export and advances the checkpoint.
    pub fn advance(&mut self, record: ExportRecord) {
        self.exported_until_ms = self.exported_until_ms.max(record.until_ms);
        self.exports.push(record);
        if self.exports.len() > CHECKPOINT_HISTORY {
            let excess = self.exports.len() - CHECKPOINT_HISTORY;
            self.exports.drain(..excess);
        }
    }

    /// The earliest time after which an event with timestamp in
    /// `[first_ms, cutoff_ms)` may have been ingested without being exported:
    /// the start of the oldest export covering that range. `None` when some
    /// part of the range is covered by no export on record.
    pub fn exported_if_ingested_before(&self, first_ms: i64, cutoff_ms: i64) -> Option<i64> {
        if first_ms >= cutoff_ms {
            return Some(i64::MAX);
        }
        if self.exported_until_ms < cutoff_ms {
            return None;
        }
        let covering: Vec<&ExportRecord> = self
            .exports
            .iter()
            .filter(|e| e.until_ms > first_ms && e.from_ms < cutoff_ms)
            .collect();
        // The records are contiguous by construction; if the oldest covering
        // one starts after first_ms, that part fell out of the history.
        let oldest_from = covering.iter().map(|e| e.from_ms).min()?;
        if oldest_from > first_ms {
            return None;
        }
        covering.iter().map(|e| e.started_at_ms).min()
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
    fn coverage_uses_the_oldest_covering_export() {
        let mut c = Checkpoint::default();
        c.advance(record(0, 1000, 5000));
        c.advance(record(1000, 2000, 6000));
        assert_eq!(c.exported_if_ingested_before(1500, 2000), Some(6000));
        assert_eq!(c.exported_if_ingested_before(500, 2000), Some(5000));
        assert_eq!(c.exported_if_ingested_before(500, 3000), None);
        assert_eq!(c.exported_if_ingested_before(2500, 2000), Some(i64::MAX));
    }

    #[test]
    fn history_is_bounded_and_coverage_beyond_it_is_unknown() {
        let mut c = Checkpoint::default();
        for i in 0..(CHECKPOINT_HISTORY as i64 + 10) {
            c.advance(record(i * 10, (i + 1) * 10, 1_000_000 + i));
        }
        assert_eq!(c.exports.len(), CHECKPOINT_HISTORY);
        assert_eq!(c.exported_if_ingested_before(0, c.exported_until_ms), None);
    }
}
