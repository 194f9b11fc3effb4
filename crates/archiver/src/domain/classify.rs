//! Deciding what happens to one stream.

use serde::{Deserialize, Serialize};

use crate::domain::input::{Mode, RunSettings};
use crate::domain::window::Checkpoint;
use crate::store::StreamInfo;

/// PutLogEvents drops events older than this.
pub const REPLAY_MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// Why a stream is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum SkipReason {
    /// A kept event is too old for PutLogEvents (14 days minus the margin).
    KeptEventsTooOld {
        /// The oldest event that would have to be replayed (ms).
        oldest_kept_ms: i64,
    },
    /// A kept event is older than the group's retention: a replay would drop it.
    KeptEventsBeyondRetention {
        /// The oldest event that would have to be replayed (ms).
        oldest_kept_ms: i64,
        /// The group's retention.
        retention_days: i32,
    },
    /// The stream received events within the quiet period: a live writer would race the delete.
    Active {
        /// When it last received events (ms).
        last_ingestion_ms: i64,
    },
    /// It received events after the export that covers its old events started,
    /// so an old event may have arrived late and be missing from the archive.
    NotCoveredByExport,
    /// Mode `expired-only` leaves mixed streams whole.
    ExpiredOnlyMode,
    /// Mode `export-only` deletes nothing.
    ExportOnlyMode,
}

impl SkipReason {
    /// A sentence for reports.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::KeptEventsTooOld { .. } => {
                "kept events are too close to the 14-day PutLogEvents limit to be replayed".into()
            }
            SkipReason::KeptEventsBeyondRetention { retention_days, .. } => {
                format!("kept events are older than the group's {retention_days}-day retention")
            }
            SkipReason::Active { .. } => "received events within the quiet period".into(),
            SkipReason::NotCoveredByExport => {
                "received events after its export started; old events may be missing from the archive".into()
            }
            SkipReason::ExpiredOnlyMode => "mixed stream left whole in expired-only mode".into(),
            SkipReason::ExportOnlyMode => "export-only mode deletes nothing".into(),
        }
    }
}

/// What the run does with a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "kebab-case")]
pub enum StreamClass {
    /// Every event is older than the cutoff: delete the stream.
    Expired,
    /// Events on both sides of the cutoff: stage the kept ones, then rebuild.
    Mixed {
        /// The oldest kept event (ms).
        oldest_kept_ms: i64,
    },
    /// Nothing older than the cutoff: untouched.
    Fresh,
    /// No events at all: untouched.
    Empty,
    /// Left as it is, with the reason.
    Skip(SkipReason),
}

/// Everything the classification needs besides the stream.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyContext<'a> {
    /// The run's settings.
    pub settings: &'a RunSettings,
    /// The group's checkpoint after this run's export.
    pub checkpoint: &'a Checkpoint,
    /// The group's retention, if any.
    pub retention_days: Option<i32>,
}

/// Classifies a stream from its DescribeLogStreams data and `first_kept_ms`,
/// the timestamp of its first event at or after the cutoff as GetLogEvents
/// reports it (`None` when there is none). DescribeLogStreams timestamps are
/// eventually consistent, so the GetLogEvents answer decides expired or mixed.
pub fn classify(stream: &StreamInfo, first_kept_ms: Option<i64>, ctx: ClassifyContext<'_>) -> StreamClass {
    let settings = ctx.settings;
    let cutoff = settings.cutoff_ms;
    let Some(first) = stream.first_event_timestamp else {
        return match first_kept_ms {
            None => StreamClass::Empty,
            Some(_) => StreamClass::Fresh,
        };
    };
    if first >= cutoff {
        return StreamClass::Fresh;
    }
    if settings.mode == Mode::ExportOnly {
        return StreamClass::Skip(SkipReason::ExportOnlyMode);
    }
    let last_ingestion = stream.last_ingestion_time.unwrap_or(stream.creation_time);
    let quiet_since = settings.started_at_ms - settings.quiet_minutes * 60_000;
    if last_ingestion > quiet_since {
        return StreamClass::Skip(SkipReason::Active {
            last_ingestion_ms: last_ingestion,
        });
    }
    match ctx.checkpoint.exported_if_ingested_before(first, cutoff) {
        Some(limit) if last_ingestion < limit => {}
        _ => return StreamClass::Skip(SkipReason::NotCoveredByExport),
    }
    let Some(oldest_kept_ms) = first_kept_ms else {
        return StreamClass::Expired;
    };
    if settings.mode == Mode::ExpiredOnly {
        return StreamClass::Skip(SkipReason::ExpiredOnlyMode);
    }
    let replay_floor = settings.started_at_ms - REPLAY_MAX_AGE_MS + settings.replay_margin_hours * 3_600_000;
    if oldest_kept_ms < replay_floor {
        return StreamClass::Skip(SkipReason::KeptEventsTooOld { oldest_kept_ms });
    }
    if let Some(days) = ctx.retention_days {
        let retention_floor =
            settings.started_at_ms - i64::from(days) * 24 * 3_600_000 + settings.replay_margin_hours * 3_600_000;
        if oldest_kept_ms < retention_floor {
            return StreamClass::Skip(SkipReason::KeptEventsBeyondRetention {
                oldest_kept_ms,
                retention_days: days,
            });
        }
    }
    StreamClass::Mixed { oldest_kept_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::window::ExportRecord;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    const START: i64 = 1_000 * DAY;
    const CUTOFF: i64 = START - 3 * DAY;

    fn settings(mode: Mode) -> RunSettings {
        RunSettings {
            log_group_name: "g".into(),
            bucket: "b".into(),
            prefix: "p".into(),
            mode,
            cutoff_ms: CUTOFF,
            started_at_ms: START,
            quiet_minutes: 60,
            poll_seconds: 1,
            streams_per_batch: 10,
            replay_margin_hours: 24,
            budget: Default::default(),
            map_concurrency: 4,
            execution_id: None,
        }
    }

    fn checkpoint() -> Checkpoint {
        let mut c = Checkpoint::default();
        c.advance(ExportRecord {
            task_id: "t".into(),
            from_ms: 0,
            until_ms: CUTOFF,
            started_at_ms: START + HOUR,
            destination_prefix: "d".into(),
            objects: 1,
            bytes: 1,
        });
        c
    }

    fn stream(first: Option<i64>, last: Option<i64>, ingested: i64) -> StreamInfo {
        StreamInfo {
            name: "s".into(),
            creation_time: 0,
            first_event_timestamp: first,
            last_event_timestamp: last,
            last_ingestion_time: Some(ingested),
            stored_bytes: None,
        }
    }

    fn run(s: &StreamInfo, first_kept: Option<i64>, mode: Mode, retention: Option<i32>) -> StreamClass {
        let settings = settings(mode);
        let checkpoint = checkpoint();
        classify(
            s,
            first_kept,
            ClassifyContext {
                settings: &settings,
                checkpoint: &checkpoint,
                retention_days: retention,
            },
        )
    }

    #[test]
    fn expired_mixed_fresh_empty() {
        let quiet = START - 2 * HOUR;
        assert_eq!(
            run(
                &stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), quiet),
                None,
                Mode::Rebuild,
                None
            ),
            StreamClass::Expired
        );
        assert_eq!(
            run(
                &stream(Some(CUTOFF - DAY), Some(CUTOFF), quiet),
                Some(CUTOFF),
                Mode::Rebuild,
                None
            ),
            StreamClass::Mixed { oldest_kept_ms: CUTOFF }
        );
        assert_eq!(
            run(
                &stream(Some(CUTOFF), Some(CUTOFF + 1), quiet),
                Some(CUTOFF),
                Mode::Rebuild,
                None
            ),
            StreamClass::Fresh
        );
        assert_eq!(
            run(&stream(None, None, quiet), None, Mode::Rebuild, None),
            StreamClass::Empty
        );
    }

    #[test]
    fn stale_describe_timestamps_are_overruled_by_get_log_events() {
        // DescribeLogStreams says everything is old, but GetLogEvents found a kept event.
        let s = stream(Some(CUTOFF - DAY), Some(CUTOFF - DAY), START - 2 * HOUR);
        assert_eq!(
            run(&s, Some(CUTOFF + 5), Mode::Rebuild, None),
            StreamClass::Mixed {
                oldest_kept_ms: CUTOFF + 5
            }
        );
    }

    #[test]
    fn recently_ingested_streams_are_skipped_as_active() {
        let s = stream(Some(CUTOFF - DAY), Some(START), START - 30 * 60_000);
        assert!(matches!(
            run(&s, Some(CUTOFF), Mode::Rebuild, None),
            StreamClass::Skip(SkipReason::Active { .. })
        ));
    }

    #[test]
    fn kept_events_too_old_to_replay_are_skipped() {
        let settings = RunSettings {
            cutoff_ms: START - 20 * DAY,
            ..settings(Mode::Rebuild)
        };
        let mut c = Checkpoint::default();
        c.advance(ExportRecord {
            task_id: "t".into(),
            from_ms: 0,
            until_ms: settings.cutoff_ms,
            started_at_ms: START,
            destination_prefix: "d".into(),
            objects: 1,
            bytes: 1,
        });
        let s = stream(Some(START - 30 * DAY), Some(START - 5 * DAY), START - 5 * DAY);
        let ctx = ClassifyContext {
            settings: &settings,
            checkpoint: &c,
            retention_days: None,
        };
        assert_eq!(
            classify(&s, Some(START - 20 * DAY), ctx),
            StreamClass::Skip(SkipReason::KeptEventsTooOld {
                oldest_kept_ms: START - 20 * DAY
            })
        );
        // Inside the margin: 13.5 days old is still refused with a 24 h margin.
        assert!(matches!(
            classify(&s, Some(START - 13 * DAY - 12 * HOUR), ctx),
            StreamClass::Skip(SkipReason::KeptEventsTooOld { .. })
        ));
        assert!(matches!(
            classify(&s, Some(START - 12 * DAY), ctx),
            StreamClass::Mixed { .. }
        ));
    }

    #[test]
    fn kept_events_beyond_retention_are_skipped() {
        let s = stream(Some(CUTOFF - DAY), Some(START - 2 * HOUR), START - 2 * HOUR);
        assert!(matches!(
            run(&s, Some(CUTOFF), Mode::Rebuild, Some(3)),
            StreamClass::Skip(SkipReason::KeptEventsBeyondRetention { retention_days: 3, .. })
        ));
        assert!(matches!(
            run(&s, Some(CUTOFF), Mode::Rebuild, Some(7)),
            StreamClass::Mixed { .. }
        ));
    }

    #[test]
    fn modes_limit_what_is_touched() {
        let quiet = START - 2 * HOUR;
        let mixed = stream(Some(CUTOFF - DAY), Some(CUTOFF + 1), quiet);
        let expired = stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), quiet);
        assert_eq!(
            run(&mixed, Some(CUTOFF), Mode::ExpiredOnly, None),
            StreamClass::Skip(SkipReason::ExpiredOnlyMode)
        );
        assert_eq!(run(&expired, None, Mode::ExpiredOnly, None), StreamClass::Expired);
        assert_eq!(
            run(&expired, None, Mode::ExportOnly, None),
            StreamClass::Skip(SkipReason::ExportOnlyMode)
        );
        assert_eq!(
            run(&mixed, Some(CUTOFF), Mode::Plan, None),
            StreamClass::Mixed { oldest_kept_ms: CUTOFF }
        );
    }

    #[test]
    fn late_arrivals_after_the_export_started_are_not_deleted() {
        // Ingested after the export task started: an old event may have arrived late.
        let s = stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), START + 2 * HOUR);
        let settings = RunSettings {
            started_at_ms: START + 4 * HOUR,
            ..settings(Mode::Rebuild)
        };
        let c = checkpoint();
        let ctx = ClassifyContext {
            settings: &settings,
            checkpoint: &c,
            retention_days: None,
        };
        assert_eq!(
            classify(&s, None, ctx),
            StreamClass::Skip(SkipReason::NotCoveredByExport)
        );
        // No export on record at all.
        let empty = Checkpoint::default();
        let ctx = ClassifyContext {
            settings: &settings,
            checkpoint: &empty,
            retention_days: None,
        };
        assert_eq!(
            classify(
                &stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), START - 2 * HOUR),
                None,
                ctx
            ),
            StreamClass::Skip(SkipReason::NotCoveredByExport)
        );
    }
}
