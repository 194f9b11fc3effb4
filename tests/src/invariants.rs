//! The archiver's promises, checked against what S3 and CloudWatch Logs hold
//! (never against the run's own report). CloudWatch Logs is read through the
//! emulator's own reader (`/_emulator/events`: every stored event, original
//! text, past quotas, masks and metadata lag), not through the product's
//! GetLogEvents reader:
//!
//! 1. every event older than the cutoff is in the S3 export, once;
//! 2. every event is still in CloudWatch, or was older than the cutoff and
//!    is in S3;
//! 3. no event is in CloudWatch more often than it was written;
//! 4. no staging segment or marker is left once the streams are verified.

use std::collections::BTreeMap;

use archiver::domain::event::LogEvent;

use crate::scenario::{exported_events, object_keys};
use crate::stack::Stack;

/// Every event a scenario wrote successfully, per stream.
pub type Written = BTreeMap<String, Vec<(i64, String)>>;

/// Where the archive of one group is.
#[derive(Debug, Clone)]
pub struct Archive<'a> {
    /// The log group.
    pub group: &'a str,
    /// The archive bucket.
    pub bucket: &'a str,
    /// The cutoff of the run(s).
    pub cutoff_ms: i64,
}

/// What the checker found; every count is zero when the promises hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Events written and found neither in CloudWatch nor (if older than the
    /// cutoff) in S3, per stream.
    pub lost: BTreeMap<String, u64>,
    /// Events older than the cutoff missing from the export, per stream.
    pub not_exported: BTreeMap<String, u64>,
    /// Events more often in CloudWatch than written, per stream.
    pub duplicated_in_logs: BTreeMap<String, u64>,
    /// Events more often in the export than written, per stream.
    pub duplicated_in_export: BTreeMap<String, u64>,
    /// Staging keys left behind.
    pub staging_left: Vec<String>,
    /// Events counted in CloudWatch and in S3 (for the record).
    pub in_logs: u64,
    /// Events counted in the export.
    pub in_export: u64,
}

impl Findings {
    /// Total events lost.
    pub fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }

    /// Total duplicated events, in CloudWatch and S3.
    pub fn duplicated_total(&self) -> u64 {
        self.duplicated_in_logs.values().sum::<u64>() + self.duplicated_in_export.values().sum::<u64>()
    }

    /// Panics with the findings unless every promise holds.
    pub fn assert_clean(&self, case: &str) {
        assert!(
            self.lost.is_empty()
                && self.not_exported.is_empty()
                && self.duplicated_in_logs.is_empty()
                && self.duplicated_in_export.is_empty()
                && self.staging_left.is_empty(),
            "{case}: {self:#?}"
        );
    }
}

/// Multiset of events.
fn counts<'a>(events: impl IntoIterator<Item = &'a LogEvent>) -> BTreeMap<(i64, &'a str), u64> {
    let mut map = BTreeMap::new();
    for e in events {
        *map.entry((e.timestamp, e.message.as_str())).or_default() += 1;
    }
    map
}

/// Reads S3 and CloudWatch and checks the four promises for `written`.
pub async fn check(stack: &Stack, archive: &Archive<'_>, written: &Written) -> Findings {
    let root = format!("cwl-archiver/{}", archive.group.trim_start_matches('/'));
    let exported = exported_events(stack, archive.bucket, &format!("{root}/@exports/")).await;
    let mut findings = Findings {
        staging_left: object_keys(stack, archive.bucket, &format!("{root}/@staging/")).await,
        ..Findings::default()
    };
    let stored = stack
        .emulator
        .stored_events(archive.group)
        .await
        .expect("the emulator's event reader");
    for (stream, events) in written {
        let written: Vec<LogEvent> = events.iter().map(|(t, m)| LogEvent::new(*t, m.clone())).collect();
        let in_logs: Vec<LogEvent> = stored
            .get(stream)
            .map(|events| {
                events
                    .iter()
                    .map(|e| LogEvent::new(e.timestamp, e.message.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let in_export = exported.get(stream).cloned().unwrap_or_default();
        findings.in_logs += in_logs.len() as u64;
        findings.in_export += in_export.len() as u64;
        let (want, logs, export) = (counts(&written), counts(&in_logs), counts(&in_export));
        let note = |map: &mut BTreeMap<String, u64>, n: u64| {
            if n > 0 {
                *map.entry(stream.clone()).or_default() += n;
            }
        };
        for (key, &n) in &want {
            let (timestamp, _) = *key;
            let in_logs = logs.get(key).copied().unwrap_or(0);
            let in_export = export.get(key).copied().unwrap_or(0);
            let archived = timestamp < archive.cutoff_ms;
            if archived {
                note(&mut findings.not_exported, n.saturating_sub(in_export));
            }
            let kept = if archived { in_logs.max(in_export) } else { in_logs };
            note(&mut findings.lost, n.saturating_sub(kept));
            note(&mut findings.duplicated_in_logs, in_logs.saturating_sub(n));
            note(&mut findings.duplicated_in_export, in_export.saturating_sub(n));
        }
        for (key, &n) in &logs {
            if !want.contains_key(key) {
                // Never written by the scenario: only a duplicate could put it there.
                note(&mut findings.duplicated_in_logs, n);
            }
        }
    }
    findings
}
