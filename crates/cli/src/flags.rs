//! Flags that mean the same thing wherever they appear: the run's group,
//! cutoff, bucket and mode (`plan` and `start`), and how a run is shown
//! (`watch`, `report`, `start --wait`).

use archiver::domain::input::{MIN_CUTOFF_AGE_HOURS, floor_to_hour};
use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{CliError, CliResult};

/// The modes of the execution input.
pub const MODES: [&str; 5] = ["rebuild", "expired-only", "export-only", "plan", "retention"];

/// Whether a mode deletes anything from CloudWatch Logs.
pub fn is_destructive(mode: &str) -> bool {
    matches!(mode, "rebuild" | "expired-only" | "retention")
}

/// The group, the cutoff, where the archive is and what a run does: the
/// flags `plan` and `start` share.
#[derive(clap::Args, Debug, Clone)]
pub struct RunFlags {
    /// The log group.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// Archive events older than this: 30d, 2w, 36h (at least 12h), or plain days (30).
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "cutoff",
        required_unless_present = "cutoff"
    )]
    pub older_than: Option<String>,
    /// Or an explicit cutoff: RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31, midnight UTC), at least 12 h ago.
    #[arg(long, value_name = "TIME")]
    pub cutoff: Option<String>,
    /// The archive bucket, in the group's region (plan: to honour the group's checkpoint).
    #[arg(long, env = "CWL_ARCHIVER_BUCKET", value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix of everything the archiver writes in the bucket (default cwl-archiver).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// What the run does: rebuild, expired-only, export-only, plan (touch nothing) or retention.
    #[arg(long, default_value = "rebuild", value_parser = clap::builder::PossibleValuesParser::new(MODES))]
    pub mode: String,
    /// Skip streams that received events this recently, in minutes (default 60).
    #[arg(long, value_name = "MINUTES")]
    pub quiet_minutes: Option<i64>,
    /// Margin below the 14-day replay limit, in hours (default 24).
    #[arg(long, value_name = "HOURS")]
    pub replay_margin_hours: Option<i64>,
    /// Allow destructive modes on a group under a data protection policy (its export may hold masked text).
    #[arg(long)]
    pub allow_masked_archive: bool,
    /// Days of retention on top of the cutoff in mode retention, and of protection in the retention guard (default 14).
    #[arg(long, value_name = "DAYS")]
    pub retention_slack_days: Option<i64>,
    /// When the group's retention could expire events no export holds yet: raise it (the default; the previous value is recorded and `retention restore` puts it back) or refuse to run.
    #[arg(long, value_name = "WHAT", value_parser = ["raise", "refuse"])]
    pub retention_conflict: Option<String>,
}

impl RunFlags {
    /// `--older-than` / `--cutoff` as the execution input takes them.
    pub fn cutoff(&self, now: DateTime<Utc>) -> CliResult<Cutoff> {
        match (&self.older_than, &self.cutoff) {
            (Some(text), _) => parse_older_than(text, now),
            (None, Some(text)) => Ok(Cutoff::At(parse_time("--cutoff", text)?)),
            (None, None) => Err(CliError::input(
                "give --older-than (e.g. 30d) or --cutoff (e.g. 2026-01-31)",
            )),
        }
    }
}

/// The cutoff as the execution input carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cutoff {
    /// `olderThanDays`: the state machine computes the cutoff from the
    /// execution's start, floored to the hour.
    Days(i64),
    /// `cutoff`: an explicit instant, RFC 3339.
    At(String),
}

impl Cutoff {
    /// `olderThanDays`, if this is a number of days.
    pub fn days(&self) -> Option<i64> {
        match self {
            Cutoff::Days(d) => Some(*d),
            Cutoff::At(_) => None,
        }
    }

    /// `cutoff`, if this is an instant.
    pub fn at(&self) -> Option<String> {
        match self {
            Cutoff::At(t) => Some(t.clone()),
            Cutoff::Days(_) => None,
        }
    }
}

/// `30d`, `2w`, `36h` or `30` (days). Whole days go to the state machine as
/// `olderThanDays`; hours become an explicit cutoff, floored to the hour
/// as the days are, and must be at least 12 hours.
pub fn parse_older_than(text: &str, now: DateTime<Utc>) -> CliResult<Cutoff> {
    let bad = || {
        CliError::input(format!(
            "--older-than {text:?}: write a duration such as 30d, 2w or 36h (or plain days: 30)"
        ))
    };
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&t[..at], t[at..].trim()),
        None => (t, "d"),
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    let hours = match unit {
        "d" | "day" | "days" => n.checked_mul(24),
        "w" | "week" | "weeks" => n.checked_mul(24 * 7),
        "h" | "hour" | "hours" => Some(n),
        _ => return Err(bad()),
    }
    .ok_or_else(bad)?;
    if hours < MIN_CUTOFF_AGE_HOURS {
        return Err(CliError::input(format!(
            "--older-than {text}: the cutoff must be at least {MIN_CUTOFF_AGE_HOURS}h in the past (events that recent may not be exportable yet); use e.g. 12h or 1d"
        )));
    }
    if hours % 24 == 0 {
        return Ok(Cutoff::Days(hours / 24));
    }
    let cutoff = floor_to_hour(now - chrono::Duration::hours(hours));
    Ok(Cutoff::At(cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// RFC 3339, or a date at midnight UTC, as RFC 3339.
pub fn parse_time(flag: &str, text: &str) -> CliResult<String> {
    parse_time_ms(flag, text).map(|ms| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| text.to_string())
    })
}

/// RFC 3339, or a date at midnight UTC, in ms.
pub fn parse_time_ms(flag: &str, text: &str) -> CliResult<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(CliError::input(format!(
        "{flag} {text:?}: write an RFC 3339 time (2026-01-31T12:00:00Z) or a date (2026-01-31)"
    )))
}

/// How a run's report is shown: `watch`, `report` and `start --wait`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ShowFlags {
    /// Print the run as JSON (the shape is in the README: "The run as JSON").
    #[arg(long)]
    pub json: bool,
    /// List every stream instead of the first --limit.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// How many streams to list after the totals and the summary by action.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
}

impl ShowFlags {
    /// Rows to show: `None` for all.
    pub fn rows(&self) -> Option<usize> {
        (!self.all).then_some(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:37:12Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn durations_in_days_weeks_and_hours() {
        assert_eq!(parse_older_than("30d", now()).ok(), Some(Cutoff::Days(30)));
        assert_eq!(parse_older_than("30", now()).ok(), Some(Cutoff::Days(30)));
        assert_eq!(parse_older_than("2w", now()).ok(), Some(Cutoff::Days(14)));
        assert_eq!(parse_older_than("48h", now()).ok(), Some(Cutoff::Days(2)));
        assert_eq!(
            parse_older_than("36h", now()).ok(),
            Some(Cutoff::At("2026-11-22T22:00:00Z".into()))
        );
        assert_eq!(
            parse_older_than("12h", now()).ok(),
            Some(Cutoff::At("2026-11-23T22:00:00Z".into()))
        );
        let err = parse_older_than("6h", now()).unwrap_err();
        assert!(err.message.contains("at least 12h"), "{err}");
        for bad in ["a week", "3x", "", "d", "-3d"] {
            assert!(parse_older_than(bad, now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bare_date_is_midnight_utc() {
        assert_eq!(
            parse_time("--cutoff", "2026-01-31").ok().as_deref(),
            Some("2026-01-31T00:00:00Z")
        );
        assert_eq!(
            parse_time("--cutoff", "2026-01-31T12:30:00+02:00").ok().as_deref(),
            Some("2026-01-31T10:30:00Z")
        );
        assert_eq!(parse_time_ms("--from", "1970-01-02").ok(), Some(86_400_000));
        assert!(parse_time("--cutoff", "yesterday").is_err());
    }
}
