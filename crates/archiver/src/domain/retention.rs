//! Retention policies: the values CloudWatch Logs accepts, the retention a
//! group needs so that nothing unexported can expire, and the record of the
//! retention the archiver replaced.
//!
//! Events older than a group's retention are marked for deletion and
//! deleted within about 72 hours (PutRetentionPolicy reference). The archive
//! holds every event older than the checkpoint; so a retention is safe while
//! every event newer than the checkpoint outlives the time until a later
//! run can export it: `retention >= (now - checkpoint) + slack`, where the
//! slack covers the time to the next run and to noticing a failed one.

use serde::{Deserialize, Serialize};

/// The values PutRetentionPolicy accepts, in days (the PutRetentionPolicy
/// API reference); any other value is an InvalidParameterException.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// The smallest valid retention of at least `days`, or `None` above the
/// largest (3,653 days: then only no retention at all keeps the events).
pub fn smallest_valid_at_least(days: i64) -> Option<i32> {
    RETENTION_DAYS.iter().copied().find(|&valid| i64::from(valid) >= days)
}

const DAY_MS: i64 = 24 * 3_600_000;

/// A retention policy: `None` keeps events forever.
pub type RetentionDays = Option<i32>;

/// The shortest retention, in days, under which no event newer than the
/// checkpoint (`exported_until_ms`, 0 before the first export) can expire
/// within `slack_days` from `now_ms`. `None`: only no retention at all is
/// safe (nothing is exported yet).
pub fn required_days(now_ms: i64, exported_until_ms: i64, slack_days: i64) -> Option<i64> {
    (exported_until_ms > 0)
        .then(|| (now_ms - exported_until_ms).max(0).saturating_add(DAY_MS - 1) / DAY_MS + slack_days)
}

/// Whether `current` keeps what `required` asks for.
pub fn protects(current: RetentionDays, required: Option<i64>) -> bool {
    match (current, required) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(days), Some(need)) => i64::from(days) >= need,
    }
}

/// The retention to set so that `required` is kept: the smallest valid
/// value at least as long, or none at all beyond the longest.
pub fn policy_for(required: Option<i64>) -> RetentionDays {
    required.and_then(smallest_valid_at_least)
}

/// The retention the archiver replaced, kept in S3 (`@retention.json`) so
/// that `cwl-archiver retention restore` can put it back. Written once, when
/// the archiver first changes the group's retention; later changes keep
/// the original value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionRecord {
    /// The log group.
    pub log_group_name: String,
    /// The group's retention before the archiver changed it (`null`: none).
    pub previous_retention_days: RetentionDays,
    /// The retention the archiver set last (`null`: none).
    pub set_retention_days: RetentionDays,
    /// Why: `guard` (protecting unexported events) or `hand-off`
    /// (retention mode: CloudWatch Logs expires the archived events).
    pub reason: String,
    /// The run that set it.
    pub run_id: String,
    /// When, RFC 3339.
    pub set_at: String,
}

/// A change the archiver made to a group's retention in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionChange {
    /// The retention before (`null`: none).
    pub from: RetentionDays,
    /// The retention after (`null`: none).
    pub to: RetentionDays,
    /// `guard`, `relaxed` (the guard's raise undone once the export covered
    /// what it protected) or `hand-off`.
    pub reason: String,
}

/// What a run did to the group's retention, reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetentionStatus {
    /// The group's retention when the run started (`null`: none).
    pub at_start: RetentionDays,
    /// The changes the run made, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<RetentionChange>,
}

/// The wording of a retention for people.
pub fn describe(days: RetentionDays) -> String {
    match days {
        None => "no retention (events never expire)".into(),
        Some(1) => "1 day".into(),
        Some(days) => format!("{days} days"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirement_covers_the_time_since_the_checkpoint_and_the_slack() {
        let now = 1_000 * DAY_MS;
        assert_eq!(required_days(now, 0, 14), None);
        assert_eq!(required_days(now, now - 30 * DAY_MS, 14), Some(44));
        assert_eq!(required_days(now, now - 30 * DAY_MS - 1, 14), Some(45));
        assert!(protects(None, None));
        assert!(!protects(Some(3653), None));
        assert!(protects(Some(60), Some(44)));
        assert!(!protects(Some(30), Some(44)));
        assert_eq!(policy_for(Some(44)), Some(60));
        assert_eq!(policy_for(Some(4000)), None);
        assert_eq!(policy_for(None), None);
    }

    #[test]
    fn rounds_up_to_a_valid_value() {
        assert_eq!(smallest_valid_at_least(0), Some(1));
        assert_eq!(smallest_valid_at_least(1), Some(1));
        assert_eq!(smallest_valid_at_least(31), Some(60));
        assert_eq!(smallest_valid_at_least(3653), Some(3653));
        assert_eq!(smallest_valid_at_least(3654), None);
    }
}
