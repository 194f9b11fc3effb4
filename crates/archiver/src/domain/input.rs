//! The execution input of the state machine, its validation, and the resolved
//! settings every later step receives.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ArchiverError, Result};

/// Default S3 key prefix under which everything of the archiver is written.
pub const DEFAULT_PREFIX: &str = "cwl-archiver";
/// Default quiet period: streams that received events more recently are skipped.
pub const DEFAULT_QUIET_MINUTES: i64 = 60;
/// Default Wait between two DescribeExportTasks polls.
pub const DEFAULT_POLL_SECONDS: i64 = 60;
/// Default number of streams handled by one Map item: large enough that an
/// expired stream costs a tenth of a state transition, small enough that a
/// batch of deletes fits one invocation at the 5 TPS DeleteLogStream quota.
pub const DEFAULT_STREAMS_PER_BATCH: i64 = 50;
/// Default safety margin below the 14-day PutLogEvents age limit, in hours.
pub const DEFAULT_REPLAY_MARGIN_HOURS: i64 = 24;
/// Default API pages per Lambda invocation: 2,000 pages of up to 10,000
/// events is far more than the time budget allows, so time usually decides.
pub const DEFAULT_INVOCATION_PAGES: i64 = 2_000;
/// Default seconds of work per invocation, well inside the 900 s timeout.
pub const DEFAULT_INVOCATION_SECONDS: i64 = 600;
/// Default DeleteLogStream rate of a run: the account's quota.
pub const DEFAULT_DELETES_PER_SECOND: i64 = 5;
/// Default Map items processed at once; the run's delete rate is split
/// between them.
pub const DEFAULT_MAP_CONCURRENCY: i64 = 4;

fn default_map_concurrency() -> i64 {
    DEFAULT_MAP_CONCURRENCY
}

/// The pause between deletes of one invocation for a run-wide rate shared
/// by `concurrency` items.
fn delete_interval_ms(deletes_per_second: i64, concurrency: i64) -> u64 {
    (1000 * concurrency.max(1) / deletes_per_second.max(1)) as u64
}
/// Data can take up to 12 hours to become exportable, so the cutoff may not be newer.
pub const MIN_CUTOFF_AGE_HOURS: i64 = 12;
/// Retention mode hands events older than the cutoff to the group's
/// retention policy without reading them, so every such event must already
/// be in the export: with a cutoff at least 15 days old, none can still
/// arrive (PutLogEvents refuses events over 14 days old) or be too recent
/// for the export (up to 12 hours, plus the margin).
pub const RETENTION_MODE_MIN_DAYS: i64 = 15;
/// Default days of retention on top of the cutoff in retention mode, and of
/// protection in the retention guard: more than the time between two
/// scheduled runs plus the time to notice and fix a failed one.
pub const DEFAULT_RETENTION_SLACK_DAYS: i64 = 14;
/// Longest run id: Step Functions execution names have at most 80 characters.
pub const RUN_ID_MAX_CHARS: usize = 80;

/// What a run does to the streams it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Export, delete expired streams, rebuild mixed streams keeping newer events.
    #[default]
    Rebuild,
    /// Export and delete expired streams only; mixed streams are left whole.
    ExpiredOnly,
    /// Export and advance the checkpoint; delete nothing.
    ExportOnly,
    /// Report what a rebuild run would do; touch nothing.
    Plan,
    /// Export, delete expired streams, and set the group's retention so that
    /// CloudWatch Logs expires the archived events of mixed streams itself:
    /// no replay, no re-ingestion cost.
    Retention,
}

/// What a run does when the group's retention could expire events no
/// export holds yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RetentionConflict {
    /// Raise the retention so that they survive, and report it (the
    /// archiver records the previous value; `cwl-archiver retention
    /// restore` puts it back once that is safe).
    #[default]
    Raise,
    /// Fail the run before it touches anything, naming the group, its
    /// retention and the retention it needs.
    Refuse,
}

/// What a run does when another run holds the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IfBusy {
    /// End at once, successfully, touching nothing (`GROUP_BUSY`).
    #[default]
    End,
    /// Wait (in a Wait state) until the group is free.
    Wait,
}

impl Mode {
    /// The mode's name in the execution input.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Rebuild => "rebuild",
            Mode::ExpiredOnly => "expired-only",
            Mode::ExportOnly => "export-only",
            Mode::Plan => "plan",
            Mode::Retention => "retention",
        }
    }

    /// Every mode, in the order the documentation lists them.
    pub const ALL: [Mode; 5] = [
        Mode::Rebuild,
        Mode::ExpiredOnly,
        Mode::ExportOnly,
        Mode::Plan,
        Mode::Retention,
    ];

    /// The mode named `text` in the execution input.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.as_str() == text)
    }

    /// Whether the mode deletes or rebuilds streams.
    pub fn is_destructive(self) -> bool {
        matches!(self, Mode::Rebuild | Mode::ExpiredOnly | Mode::Retention)
    }
}

/// The input of one execution of the archive state machine (camelCase JSON).
///
/// Unknown fields are rejected so that a typo never silently falls back to a
/// default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionInput {
    /// The log group to archive (required).
    pub log_group_name: Option<String>,
    /// Archive events older than this many days (whole days, at least 1).
    pub older_than_days: Option<i64>,
    /// Or an explicit cutoff instant (RFC 3339), at least 12 h in the past.
    pub cutoff: Option<String>,
    /// The archive bucket, in the same region as the log group (required).
    pub bucket: Option<String>,
    /// Key prefix of everything the archiver writes (default `cwl-archiver`).
    pub prefix: Option<String>,
    /// `rebuild` (default), `expired-only`, `export-only` or `plan`.
    pub mode: Option<String>,
    /// Skip streams that received events within this many minutes (default 60).
    pub quiet_minutes: Option<i64>,
    /// Seconds between export status polls (default 60).
    pub poll_seconds: Option<i64>,
    /// Streams per Map item (default 50, at most 500).
    pub streams_per_batch: Option<i64>,
    /// Hours of margin below the 14-day replay limit (default 24).
    pub replay_margin_hours: Option<i64>,
    /// API pages (GetLogEvents reads, PutLogEvents batches) one Lambda
    /// invocation handles before it hands back a continuation (default 2,000).
    pub invocation_pages: Option<i64>,
    /// Seconds of work one Lambda invocation does before it hands back a
    /// continuation (default 600, at most 840: the functions time out at 900).
    pub invocation_seconds: Option<i64>,
    /// DeleteLogStream calls per second for the whole run, shared by the Map's
    /// concurrent items (default 5, the account quota).
    pub deletes_per_second: Option<i64>,
    /// Map items processed at once (default 4, at most 40): the Map's
    /// MaxConcurrency, read from the settings by the state machine.
    pub map_concurrency: Option<i64>,
    /// `end` (default): a run started while another run holds the group
    /// ends at once as `GROUP_BUSY`; `wait`: it waits for the group.
    pub if_busy: Option<String>,
    /// Prune a group with a data protection policy although its export may
    /// hold masked text (default false: its streams are skipped).
    pub allow_masked_archive: Option<bool>,
    /// Days of retention on top of the cutoff in retention mode, and of
    /// protection in the retention guard (default 14).
    pub retention_slack_days: Option<i64>,
    /// `raise` (default) or `refuse`: what a run does when the group's
    /// retention could expire events no export holds yet.
    pub retention_conflict: Option<String>,
    /// Set by the state machine from `$$.Execution.Name`: the run id.
    pub execution_name: Option<String>,
    /// Set by the state machine from `$$.Execution.StartTime`; the cutoff is
    /// computed from it so retries and re-runs of one execution agree.
    pub execution_start_time: Option<String>,
}

/// One problem with the execution input: the field and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputProblem {
    /// The camelCase field name in the execution input.
    pub field: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl InputProblem {
    /// A problem with `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// The validated settings of a run, passed to every step of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSettings {
    /// The log group.
    pub log_group_name: String,
    /// The archive bucket.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/`.
    pub prefix: String,
    /// What the run does.
    pub mode: Mode,
    /// Events with `timestamp < cutoff_ms` are archived; the rest are kept.
    pub cutoff_ms: i64,
    /// When the execution started (ms), the reference for the quiet period.
    pub started_at_ms: i64,
    /// Quiet period in minutes.
    pub quiet_minutes: i64,
    /// Export poll interval in seconds (used by the Wait state).
    pub poll_seconds: i64,
    /// Streams per Map item.
    pub streams_per_batch: i64,
    /// Margin below the 14-day replay limit, in hours.
    pub replay_margin_hours: i64,
    /// The work budget of one Lambda invocation.
    pub budget: InvocationBudget,
    /// Map items processed at once (the Map's `MaxConcurrencyPath` reads it).
    #[serde(default = "default_map_concurrency")]
    pub map_concurrency: i64,
    /// The Step Functions execution (`$$.Execution.Id`), for the logs of every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Identifies the run in every key it writes, its export task and its
    /// lease: the execution name, unique per state machine.
    pub run_id: String,
    /// What to do when another run holds the group.
    #[serde(default)]
    pub if_busy: IfBusy,
    /// Prune a data-protected group although its export may hold masked text.
    #[serde(default)]
    pub allow_masked_archive: bool,
    /// Retention slack in days (retention mode and the retention guard).
    #[serde(default = "default_retention_slack_days")]
    pub retention_slack_days: i64,
    /// What to do when the group's retention could expire unexported events.
    #[serde(default)]
    pub retention_conflict: RetentionConflict,
}

fn default_retention_slack_days() -> i64 {
    DEFAULT_RETENTION_SLACK_DAYS
}

impl RunSettings {
    /// The cutoff's age in whole days at the execution's start, rounded up.
    pub fn older_than_days(&self) -> i64 {
        let day = 24 * 3_600_000;
        (self.started_at_ms - self.cutoff_ms).max(0).saturating_add(day - 1) / day
    }
}

/// How much one Lambda invocation does before it hands back a continuation,
/// so that a stream of any size is finished across invocations instead of
/// hitting the Lambda timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationBudget {
    /// API pages (reads and replay batches).
    pub pages: u64,
    /// Seconds of work.
    pub seconds: u64,
    /// Least time between two DeleteLogStream calls of one invocation (ms).
    #[serde(default)]
    pub delete_interval_ms: u64,
}

impl Default for InvocationBudget {
    fn default() -> Self {
        Self {
            pages: DEFAULT_INVOCATION_PAGES as u64,
            seconds: DEFAULT_INVOCATION_SECONDS as u64,
            delete_interval_ms: delete_interval_ms(DEFAULT_DELETES_PER_SECOND, DEFAULT_MAP_CONCURRENCY),
        }
    }
}

/// A run id from an execution name: letters, digits, `-`, `_` and `.` are
/// kept (they are safe in S3 keys and export task names), anything else
/// becomes `-`; at most [`RUN_ID_MAX_CHARS`] characters.
pub fn run_id_of(execution_name: &str) -> String {
    execution_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(RUN_ID_MAX_CHARS)
        .collect()
}

/// A time as `YYYYMMDDTHHMMSSZ` (UTC), as run ids and execution names show it.
pub fn format_run_id(cutoff_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(cutoff_ms)
        .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| cutoff_ms.to_string())
}

impl ExecutionInput {
    /// Parses the execution input from JSON; unknown fields name themselves.
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        serde_json::from_value(value).map_err(|e| {
            ArchiverError::invalid("input", format!("{e}; see the execution input reference in the README"))
        })
    }

    /// Checks every field and resolves the cutoff; returns all problems at once.
    ///
    /// `now` is used only when the input carries no `executionStartTime`
    /// (a local plan); in the state machine the start time always comes from
    /// the execution, never from the Lambda's clock.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<RunSettings> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(InputProblem::new(field, message));
        };

        let started_at = match &self.execution_start_time {
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(t) => t.with_timezone(&Utc),
                Err(e) => {
                    problem(
                        "executionStartTime",
                        format!("{text:?} is not an RFC 3339 time ({e}); leave it to the state machine"),
                    );
                    now
                }
            },
            None => now,
        };

        let log_group_name = match self.log_group_name.as_deref().map(str::trim) {
            None | Some("") => {
                problem(
                    "logGroupName",
                    "is required: give the name of the log group to archive, e.g. \"/aws/lambda/my-function\"".into(),
                );
                String::new()
            }
            Some(name) => {
                if let Some(reason) = log_group_name_problem(name) {
                    problem("logGroupName", reason);
                }
                name.to_string()
            }
        };

        let bucket = match self.bucket.as_deref().map(str::trim) {
            None | Some("") => {
                problem(
                    "bucket",
                    "is required: give the archive bucket (same region as the log group)".into(),
                );
                String::new()
            }
            Some(name) => {
                if let Some(reason) = bucket_name_problem(name) {
                    problem("bucket", reason);
                }
                name.to_string()
            }
        };

        let prefix = match self.prefix.as_deref() {
            None => DEFAULT_PREFIX.to_string(),
            Some(p) => {
                let trimmed = p.trim_matches('/');
                if trimmed.is_empty() {
                    problem(
                        "prefix",
                        "must not be empty: leave it out for the default \"cwl-archiver\"".into(),
                    );
                }
                trimmed.to_string()
            }
        };

        let mode = match self.mode.as_deref() {
            None => Mode::Rebuild,
            Some(text) => Mode::parse(text).unwrap_or_else(|| {
                problem(
                    "mode",
                    format!(
                        "{text:?} is not a mode: use \"rebuild\", \"expired-only\", \"export-only\", \"plan\" or \"retention\""
                    ),
                );
                Mode::Rebuild
            }),
        };
        let retention_conflict = match self.retention_conflict.as_deref() {
            None | Some("raise") => RetentionConflict::Raise,
            Some("refuse") => RetentionConflict::Refuse,
            Some(text) => {
                problem(
                    "retentionConflict",
                    format!("{text:?} is not allowed: use \"raise\" or \"refuse\""),
                );
                RetentionConflict::Raise
            }
        };
        let if_busy = match self.if_busy.as_deref() {
            None | Some("end") => IfBusy::End,
            Some("wait") => IfBusy::Wait,
            Some(text) => {
                problem("ifBusy", format!("{text:?} is not allowed: use \"end\" or \"wait\""));
                IfBusy::End
            }
        };
        let run_id = match self.execution_name.as_deref().map(run_id_of) {
            Some(id) if !id.is_empty() => id,
            Some(_) => {
                problem(
                    "executionName",
                    "is empty; leave it to the state machine ($$.Execution.Name)".into(),
                );
                String::new()
            }
            None => format!("plan-{}", format_run_id(started_at.timestamp_millis())),
        };

        let latest_cutoff = started_at - Duration::hours(MIN_CUTOFF_AGE_HOURS);
        let cutoff = match (self.older_than_days, &self.cutoff) {
            (Some(_), Some(_)) => {
                problem("olderThanDays", "give either olderThanDays or cutoff, not both".into());
                None
            }
            (None, None) => {
                problem(
                    "olderThanDays",
                    "is required (or an explicit cutoff): e.g. 30 archives events older than 30 days".into(),
                );
                None
            }
            (Some(days), None) if days <= 0 => {
                problem(
                    "olderThanDays",
                    format!("must be a whole number of days of at least 1, not {days}"),
                );
                None
            }
            (Some(days), None) if days > 36_500 => {
                problem(
                    "olderThanDays",
                    format!("{days} days is more than 100 years; use at most 36500"),
                );
                None
            }
            (Some(days), None) => Some(floor_to_hour(started_at - Duration::days(days))),
            (None, Some(text)) => match DateTime::parse_from_rfc3339(text) {
                Err(e) => {
                    problem(
                        "cutoff",
                        format!("{text:?} is not an RFC 3339 time ({e}): write e.g. \"2026-01-31T00:00:00Z\""),
                    );
                    None
                }
                Ok(t) if t.with_timezone(&Utc) > latest_cutoff => {
                    problem(
                        "cutoff",
                        format!(
                            "{text} is later than {} (execution start − {MIN_CUTOFF_AGE_HOURS} h): events that recent may not be exportable yet; choose an earlier cutoff",
                            latest_cutoff.to_rfc3339()
                        ),
                    );
                    None
                }
                Ok(t) => Some(t.with_timezone(&Utc)),
            },
        };

        let quiet_minutes = bounded(
            &mut problem,
            "quietMinutes",
            self.quiet_minutes,
            DEFAULT_QUIET_MINUTES,
            0,
            7 * 24 * 60,
        );
        let poll_seconds = bounded(
            &mut problem,
            "pollSeconds",
            self.poll_seconds,
            DEFAULT_POLL_SECONDS,
            1,
            3600,
        );
        let streams_per_batch = bounded(
            &mut problem,
            "streamsPerBatch",
            self.streams_per_batch,
            DEFAULT_STREAMS_PER_BATCH,
            1,
            500,
        );
        let replay_margin_hours = bounded(
            &mut problem,
            "replayMarginHours",
            self.replay_margin_hours,
            DEFAULT_REPLAY_MARGIN_HOURS,
            0,
            13 * 24,
        );

        let retention_slack_days = bounded(
            &mut problem,
            "retentionSlackDays",
            self.retention_slack_days,
            DEFAULT_RETENTION_SLACK_DAYS,
            1,
            365,
        );
        let map_concurrency = bounded(
            &mut problem,
            "mapConcurrency",
            self.map_concurrency,
            DEFAULT_MAP_CONCURRENCY,
            1,
            40,
        );
        let budget = InvocationBudget {
            pages: bounded(
                &mut problem,
                "invocationPages",
                self.invocation_pages,
                DEFAULT_INVOCATION_PAGES,
                1,
                100_000,
            ) as u64,
            seconds: bounded(
                &mut problem,
                "invocationSeconds",
                self.invocation_seconds,
                DEFAULT_INVOCATION_SECONDS,
                1,
                840,
            ) as u64,
            delete_interval_ms: delete_interval_ms(
                bounded(
                    &mut problem,
                    "deletesPerSecond",
                    self.deletes_per_second,
                    DEFAULT_DELETES_PER_SECOND,
                    1,
                    1000,
                ),
                map_concurrency,
            ),
        };

        if let Some(cutoff) = cutoff
            && mode == Mode::Retention
            && cutoff > started_at - Duration::days(RETENTION_MODE_MIN_DAYS)
        {
            problems.push(InputProblem::new(
                if self.cutoff.is_some() { "cutoff" } else { "olderThanDays" },
                format!(
                    "retention mode needs a cutoff at least {RETENTION_MODE_MIN_DAYS} days old (events younger \
                     than 14 days can still arrive and miss the export); use olderThanDays >= {RETENTION_MODE_MIN_DAYS}, \
                     or mode rebuild for a recent cutoff"
                ),
            ));
        }

        match cutoff {
            Some(cutoff) if problems.is_empty() => Ok(RunSettings {
                log_group_name,
                bucket,
                prefix,
                mode,
                cutoff_ms: cutoff.timestamp_millis(),
                started_at_ms: started_at.timestamp_millis(),
                quiet_minutes,
                poll_seconds,
                streams_per_batch,
                replay_margin_hours,
                budget,
                map_concurrency,
                execution_id: None,
                run_id,
                if_busy,
                allow_masked_archive: self.allow_masked_archive.unwrap_or(false),
                retention_slack_days,
                retention_conflict,
            }),
            _ => Err(ArchiverError::InvalidInput(problems)),
        }
    }
}

fn bounded(
    problem: &mut impl FnMut(&str, String),
    field: &str,
    value: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
) -> i64 {
    match value {
        None => default,
        Some(v) if (min..=max).contains(&v) => v,
        Some(v) => {
            problem(
                field,
                format!("must be between {min} and {max}, not {v} (default {default})"),
            );
            default
        }
    }
}

/// The group name as a token for AWS names that allow only letters, digits,
/// `-` and `_` (export task names, execution names): every other character
/// becomes `-`, and leading and trailing `-` go.
pub fn group_name_token(group: &str) -> String {
    let token: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    token.trim_matches('-').to_string()
}

/// Floors a time to the start of its hour in UTC, so that runs started
/// minutes apart agree on the cutoff.
pub fn floor_to_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

fn log_group_name_problem(name: &str) -> Option<String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "_-/.#".contains(c);
    if name.len() > 512 {
        Some(format!(
            "is {} characters long; log group names have at most 512",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| !valid_char(*c))
            .map(|c| format!("{name:?} contains {c:?}; log group names use letters, digits and _ - / . #"))
    }
}

/// Why `name` cannot be an S3 bucket name, or `None` when it can.
pub fn bucket_name_problem(name: &str) -> Option<String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let looks_like_ip = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if !(3..=63).contains(&name.len()) {
        Some(format!(
            "{name:?} is not a bucket name: bucket names have 3 to 63 characters"
        ))
    } else if !name.chars().all(valid_char) {
        Some(format!(
            "{name:?} is not a bucket name: use lowercase letters, digits, '-' and '.' only (not an ARN or s3:// URL)"
        ))
    } else if !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
        Some(format!(
            "{name:?} is not a bucket name: it must start and end with a letter or digit"
        ))
    } else if name.contains("..") || looks_like_ip {
        Some(format!("{name:?} is not a bucket name: no '..' and not an IP address"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_reads_its_concurrency_from_the_settings_that_split_the_delete_rate() {
        let definition: serde_json::Value =
            serde_json::from_str(include_str!("../../../../statemachine/archive.asl.json")).unwrap();
        let map = &definition["States"]["PruneStreams"];
        assert_eq!(map["MaxConcurrencyPath"], "$.run.settings.mapConcurrency");
        // Four items at 800 ms between deletes make the account's 5 TPS.
        assert_eq!(InvocationBudget::default().delete_interval_ms, 800);
        assert_eq!(delete_interval_ms(5, 10), 2000);
    }
    use serde_json::json;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:37:12Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn input(value: serde_json::Value) -> ExecutionInput {
        ExecutionInput::from_json(value).unwrap()
    }

    fn problems(value: serde_json::Value) -> Vec<InputProblem> {
        match input(value).validate(start()) {
            Err(ArchiverError::InvalidInput(p)) => p,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    fn fields(p: &[InputProblem]) -> Vec<&str> {
        p.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn cutoff_is_execution_start_minus_days_floored_to_the_hour() {
        let settings = input(json!({"logGroupName": "/app/api", "olderThanDays": 30, "bucket": "archive-bucket"}))
            .validate(start())
            .unwrap();
        assert_eq!(
            settings.cutoff_ms,
            DateTime::parse_from_rfc3339("2026-10-25T10:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(settings.mode, Mode::Rebuild);
        assert_eq!(settings.prefix, DEFAULT_PREFIX);
        assert!(
            settings.run_id.starts_with("plan-20261124T103712Z"),
            "{}",
            settings.run_id
        );
    }

    #[test]
    fn execution_start_time_wins_over_the_local_clock() {
        let settings = input(json!({"logGroupName": "g", "olderThanDays": 1, "bucket": "bkt",
            "executionStartTime": "2026-01-10T05:59:59.999Z"}))
        .validate(start())
        .unwrap();
        assert_eq!(
            settings.cutoff_ms,
            DateTime::parse_from_rfc3339("2026-01-09T05:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_field() {
        let p = problems(json!({"olderThanDays": 0, "mode": "nuke", "bucket": "My_Bucket"}));
        assert_eq!(fields(&p), vec!["logGroupName", "bucket", "mode", "olderThanDays"]);
        assert!(p[2].message.contains("\"expired-only\""));
    }

    #[test]
    fn negative_and_zero_days_are_rejected() {
        for days in [0, -3] {
            let p = problems(json!({"logGroupName": "g", "olderThanDays": days, "bucket": "bkt"}));
            assert_eq!(fields(&p), vec!["olderThanDays"]);
            assert!(p[0].message.contains("at least 1"), "{}", p[0].message);
        }
    }

    #[test]
    fn cutoff_must_be_at_least_twelve_hours_old() {
        let p = problems(json!({"logGroupName": "g", "cutoff": "2026-11-24T00:00:00Z", "bucket": "bkt"}));
        assert_eq!(fields(&p), vec!["cutoff"]);
        let ok = input(json!({"logGroupName": "g", "cutoff": "2026-11-23T22:00:00Z", "bucket": "bkt"}))
            .validate(start())
            .unwrap();
        assert_eq!(
            ok.cutoff_ms,
            DateTime::parse_from_rfc3339("2026-11-23T22:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn days_and_cutoff_together_or_neither_are_rejected() {
        let both = problems(
            json!({"logGroupName": "g", "olderThanDays": 3, "cutoff": "2026-01-01T00:00:00Z", "bucket": "bkt"}),
        );
        assert_eq!(fields(&both), vec!["olderThanDays"]);
        let neither = problems(json!({"logGroupName": "g", "bucket": "bkt"}));
        assert_eq!(fields(&neither), vec!["olderThanDays"]);
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = ExecutionInput::from_json(json!({"logGroupName": "g", "olderThanDay": 3})).unwrap_err();
        assert!(err.to_string().contains("olderThanDay"), "{err}");
    }

    #[test]
    fn malformed_bucket_names_are_rejected() {
        for bad in [
            "ab",
            "s3://bucket",
            "arn:aws:s3:::b",
            "-bucket",
            "bucket-",
            "my..bucket",
            "192.168.1.1",
            "UPPER",
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad} accepted");
        }
        for good in ["abc", "my-archive.logs", "archive-123456789012-eu-west-1"] {
            assert_eq!(bucket_name_problem(good), None, "{good} rejected");
        }
    }

    #[test]
    fn limits_are_checked() {
        let p = problems(json!({"logGroupName": "g", "olderThanDays": 3, "bucket": "bkt",
            "pollSeconds": 0, "streamsPerBatch": 501, "quietMinutes": -1}));
        assert_eq!(fields(&p), vec!["quietMinutes", "pollSeconds", "streamsPerBatch"]);
    }

    #[test]
    fn modes_parse() {
        for (text, mode) in [
            ("rebuild", Mode::Rebuild),
            ("expired-only", Mode::ExpiredOnly),
            ("export-only", Mode::ExportOnly),
            ("plan", Mode::Plan),
        ] {
            let s = input(json!({"logGroupName": "g", "olderThanDays": 3, "bucket": "bkt", "mode": text}))
                .validate(start())
                .unwrap();
            assert_eq!(s.mode, mode);
        }
    }
}
