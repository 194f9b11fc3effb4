//! Deciding what happens to one stream.

use serde::{Deserialize, Serialize};

use crate::domain::input::{Mode, RunSettings};
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
    /// Mode `expired-only` leaves mixed streams whole.
    ExpiredOnlyMode,
    /// Mode `export-only` deletes nothing.
    ExportOnlyMode,
    /// Mode `retention` leaves mixed streams to the group's retention policy.
    RetentionMode,
    /// A data protection policy masks the group: its export may hold masked
    /// text, so deleting would destroy the originals.
    DataProtected,
}

impl SkipReason {
    /// A sentence for reports.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::KeptEventsTooOld { .. } => {
                "kept events older than 14 days (minus the replay margin) cannot be \
                 replayed: PutLogEvents drops them; use mode retention to archive at this cutoff"
                    .into()
            }
            SkipReason::KeptEventsBeyondRetention { retention_days, .. } => format!(
                "kept events are older than the group's {retention_days}-day retention: PutLogEvents would drop \
                 them; use mode retention"
            ),
            SkipReason::Active { .. } => "received events within the quiet period".into(),
            SkipReason::ExpiredOnlyMode => "mixed stream left whole in expired-only mode".into(),
            SkipReason::ExportOnlyMode => "export-only mode deletes nothing".into(),
            SkipReason::RetentionMode => "left to the group's retention, which expires its archived events".into(),
            SkipReason::DataProtected => "the group has a data protection policy: its export may hold masked text, \
                 so deleting would destroy the originals; set allowMaskedArchive to archive it anyway"
                .into(),
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
    /// The group's retention, if any.
    pub retention_days: Option<i32>,
}

/// Classifies a stream from its DescribeLogStreams data and `first_kept_ms`,
/// the timestamp of its first event at or after the cutoff as GetLogEvents
/// reports it (`None` when there is none, or when [`needs_first_kept`] says
/// no read was needed). DescribeLogStreams timestamps are eventually
/// consistent, so they only pick candidates and keep live writers away (the
/// quiet period); a GetLogEvents read decides. No class is final:
/// rebuild-stream reads the stream again right before it deletes anything,
/// and that read alone decides a delete candidate.
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
    if let Some(last_ingestion_ms) = within_quiet_period(stream, settings) {
        return StreamClass::Skip(SkipReason::Active { last_ingestion_ms });
    }
    let Some(oldest_kept_ms) = first_kept_ms else {
        return StreamClass::Expired;
    };
    match settings.mode {
        Mode::ExpiredOnly => return StreamClass::Skip(SkipReason::ExpiredOnlyMode),
        Mode::Retention => return StreamClass::Skip(SkipReason::RetentionMode),
        _ => {}
    }
    if oldest_kept_ms < replay_floor_ms(settings, None) {
        return StreamClass::Skip(SkipReason::KeptEventsTooOld { oldest_kept_ms });
    }
    if let Some(days) = ctx.retention_days
        && oldest_kept_ms < replay_floor_ms(settings, Some(days))
    {
        return StreamClass::Skip(SkipReason::KeptEventsBeyondRetention {
            oldest_kept_ms,
            retention_days: days,
        });
    }
    StreamClass::Mixed { oldest_kept_ms }
}

/// When the stream last received events, if that is within the quiet period.
fn within_quiet_period(stream: &StreamInfo, settings: &RunSettings) -> Option<i64> {
    let last_ingestion = stream.last_ingestion_time.unwrap_or(stream.creation_time);
    let quiet_since = settings.started_at_ms - settings.quiet_minutes * 60_000;
    (last_ingestion > quiet_since).then_some(last_ingestion)
}

/// Whether [`classify`] needs the stream's first event at or after the
/// cutoff, a GetLogEvents read (two calls for a stream that has none: its
/// page and the page that repeats the token).
///
/// It does not where DescribeLogStreams alone leaves the stream as it is
/// (fresh, active, export-only), nor, in a run that deletes, for a stream
/// whose metadata puts every event before the cutoff: that stream is
/// planned for deletion, and the read rebuild-stream makes right before the
/// delete runs past the cutoff, so an event at or after it (one the lagging
/// metadata does not show yet) leaves the stream whole for the next run.
/// GetLogEvents is the quota an expired stream's delete waits on; this read
/// would double its cost. A plan reads, so that it says what a run does
/// with metadata that is current.
pub fn needs_first_kept(stream: &StreamInfo, settings: &RunSettings) -> bool {
    let Some(first) = stream.first_event_timestamp else {
        // Empty or fresh: only a read tells.
        return true;
    };
    if first >= settings.cutoff_ms
        || settings.mode == Mode::ExportOnly
        || within_quiet_period(stream, settings).is_some()
    {
        return false;
    }
    let expired_by_metadata = stream
        .last_event_timestamp
        .is_some_and(|last| last < settings.cutoff_ms);
    !(settings.mode.is_destructive() && expired_by_metadata)
}

/// The oldest event a replay may write: PutLogEvents drops events older
/// than 14 days and than the group's retention; the run's replay margin
/// keeps a distance from both.
pub fn replay_floor_ms(settings: &RunSettings, retention_days: Option<i32>) -> i64 {
    let max_age = retention_days.map_or(REPLAY_MAX_AGE_MS, |days| {
        REPLAY_MAX_AGE_MS.min(i64::from(days) * 24 * 3_600_000)
    });
    settings.started_at_ms - max_age + settings.replay_margin_hours * 3_600_000
}

#[cfg(test)]
mod tests {
    use super::*;

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
            run_id: "run".into(),
            if_busy: Default::default(),
            allow_masked_archive: false,
            retention_slack_days: 14,
            retention_conflict: Default::default(),
        }
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
        classify(
            s,
            first_kept,
            ClassifyContext {
                settings: &settings,
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
    fn the_scan_reads_only_where_the_read_decides() {
        let quiet = START - 2 * HOUR;
        let needs = |s: &StreamInfo, mode: Mode| needs_first_kept(s, &settings(mode));
        let expired = stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), quiet);
        let mixed = stream(Some(CUTOFF - DAY), Some(CUTOFF), quiet);
        let fresh = stream(Some(CUTOFF), Some(CUTOFF + 1), quiet);
        let active = stream(Some(CUTOFF - DAY), Some(CUTOFF - 1), START - 60_000);
        let no_events = stream(None, None, quiet);
        // A delete candidate by its metadata: the confirmation before the delete decides.
        for mode in [Mode::Rebuild, Mode::ExpiredOnly, Mode::Retention] {
            assert!(!needs(&expired, mode), "{mode:?}");
            assert!(needs(&mixed, mode), "{mode:?}");
        }
        // A plan reads, so it says what a run does.
        assert!(needs(&expired, Mode::Plan));
        assert!(needs(&no_events, Mode::Rebuild));
        for mode in [Mode::Rebuild, Mode::Plan, Mode::ExportOnly] {
            assert!(!needs(&fresh, mode), "{mode:?}");
            assert!(!needs(&active, mode), "{mode:?}");
        }
        assert!(!needs(&mixed, Mode::ExportOnly));
        // Where no read is made, no answer of it could have changed the
        // class, except a delete candidate's, which the confirmation reads.
        for s in [&expired, &mixed, &fresh, &active, &no_events] {
            for mode in [
                Mode::Rebuild,
                Mode::ExpiredOnly,
                Mode::Retention,
                Mode::ExportOnly,
                Mode::Plan,
            ] {
                if needs(s, mode) {
                    continue;
                }
                let unread = run(s, None, mode, None);
                if unread == StreamClass::Expired {
                    continue;
                }
                for first_kept in [Some(CUTOFF), Some(START - HOUR)] {
                    assert_eq!(run(s, first_kept, mode, None), unread, "{s:?} {mode:?}");
                }
            }
        }
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
        let s = stream(Some(START - 30 * DAY), Some(START - 5 * DAY), START - 5 * DAY);
        let ctx = ClassifyContext {
            settings: &settings,
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
}
