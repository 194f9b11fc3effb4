//! One run as `watch`, `report` and `start --wait` show it: the same JSON
//! shape for all three (`--json`), and the same text: totals first, then a
//! summary by action, then the first streams.
//!
//! Reports are read tolerantly (fields the workflow adds later are kept in
//! the JSON and ignored by the text), so the command line reads the reports
//! of older and newer runs alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::render::{Table, bytes, heading, usd};

/// Totals of a run, as the report stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Totals {
    /// Streams per action.
    pub streams: BTreeMap<String, u64>,
    /// Export objects written by the run.
    pub export_objects: u64,
    /// Compressed bytes exported.
    pub export_bytes: u64,
    /// Events replayed (or, in plan mode, that would be).
    pub events_replayed: u64,
    /// Bytes re-ingested as billed (message bytes + 26 per event).
    pub bytes_replayed: u64,
    /// Estimated re-ingestion cost, USD.
    pub estimated_reingestion_usd: f64,
    /// Whatever else the report's totals carry.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One stream's outcome, as the report stores it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamRow {
    /// The stream.
    pub stream: String,
    /// What happened (`deleted`, `rebuilt`, `skipped`, ... or `would-delete`, `would-rebuild`).
    pub action: String,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Events replayed.
    pub events_replayed: u64,
    /// Message bytes replayed.
    pub bytes_replayed: u64,
    /// Whatever else the outcome carries.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A run: what `--json` prints for `watch`, `report` and `start --wait`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// `SUCCEEDED`, `FAILED`, `GROUP_BUSY`, `RUNNING`, `ABORTED`,
    /// `TIMED_OUT`; `null` for a report read from S3 that does not say.
    pub status: Option<String>,
    /// The execution, when known.
    pub execution_arn: Option<String>,
    /// The run id.
    pub run_id: Option<String>,
    /// The log group.
    pub log_group_name: Option<String>,
    /// The mode.
    pub mode: Option<String>,
    /// The cutoff, RFC 3339.
    pub cutoff: Option<String>,
    /// When the run started, RFC 3339.
    pub started_at: Option<String>,
    /// The execution's error name, when it did not succeed.
    pub error: Option<String>,
    /// The execution's cause, when it did not succeed.
    pub cause: Option<String>,
    /// `GROUP_BUSY`: the run that held the group's lease.
    pub held_by: Option<Value>,
    /// The full report, `s3://bucket/key`.
    pub report: Option<String>,
    /// The export task of the run.
    pub export_task_id: Option<String>,
    /// Totals (absent when the run wrote no report).
    pub totals: Option<Totals>,
    /// Every stream's outcome (only from the full report in S3).
    pub streams: Vec<StreamRow>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl RunView {
    /// A view of a report (the full one from S3, or the execution output).
    pub fn from_report(report: &Value) -> Self {
        let mut view = RunView::default();
        view.merge_report(report);
        view
    }

    /// Adds what a report says; fields already known stay.
    pub fn merge_report(&mut self, report: &Value) {
        let fill = |slot: &mut Option<String>, key: &str| {
            if slot.is_none() {
                *slot = text(report, key);
            }
        };
        fill(&mut self.status, "status");
        fill(&mut self.execution_arn, "executionArn");
        fill(&mut self.run_id, "runId");
        fill(&mut self.log_group_name, "logGroupName");
        fill(&mut self.mode, "mode");
        fill(&mut self.cutoff, "cutoff");
        fill(&mut self.started_at, "startedAt");
        fill(&mut self.export_task_id, "exportTaskId");
        if self.held_by.is_none() {
            self.held_by = report.get("heldBy").cloned();
        }
        if self.report.is_none()
            && let (Some(b), Some(k)) = (text(report, "reportBucket"), text(report, "reportKey"))
        {
            self.report = Some(format!("s3://{b}/{k}"));
        }
        if let Some(t) = report.get("totals")
            && let Ok(totals) = serde_json::from_value(t.clone())
        {
            self.totals = Some(totals);
        }
        if let Some(rows) = report.get("outcomes").and_then(Value::as_array)
            && !rows.is_empty()
        {
            self.streams = rows
                .iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect();
        }
    }

    /// The bucket and key of the full report, if named.
    pub fn report_location(&self) -> Option<(String, String)> {
        let rest = self.report.as_deref()?.strip_prefix("s3://")?;
        let (b, k) = rest.split_once('/')?;
        Some((b.to_string(), k.to_string()))
    }

    fn is_plan(&self) -> bool {
        self.mode.as_deref() == Some("plan") || self.streams.iter().any(|s| s.action.starts_with("would-"))
    }

    /// The run as text: heading, totals, summary by action, then at most
    /// `rows` streams (`None`: all).
    pub fn render(&self, rows: Option<usize>) -> String {
        let mut out = String::new();
        let unknown = || "?".to_string();
        let _ = writeln!(
            out,
            "{}",
            heading(&format!(
                "run {} of {} (mode {}, cutoff {}): {}",
                self.run_id.clone().unwrap_or_else(unknown),
                self.log_group_name.clone().unwrap_or_else(unknown),
                self.mode.clone().unwrap_or_else(unknown),
                self.cutoff.clone().unwrap_or_else(unknown),
                self.status.as_deref().unwrap_or("status not recorded"),
            ))
        );
        if let Some(arn) = &self.execution_arn {
            let _ = writeln!(out, "execution:  {arn}");
        }
        if let Some(held) = &self.held_by {
            let by = text(held, "executionArn")
                .or_else(|| text(held, "runId"))
                .unwrap_or_else(unknown);
            let since = text(held, "since").map(|s| format!(" since {s}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "not run:    the group's lease was held by {by}{since}; follow that run with `cwl-archiver watch {by}`"
            );
        }
        if let Some(error) = &self.error {
            let cause = self.cause.as_deref().map(summarize_cause).unwrap_or_default();
            let _ = writeln!(out, "error:      {error}: {cause}");
        }
        let plan = self.is_plan();
        if let Some(t) = &self.totals {
            let count: u64 = t.streams.values().sum();
            let by: Vec<String> = t.streams.iter().map(|(a, n)| format!("{a} {n}")).collect();
            let _ = writeln!(
                out,
                "streams:    {count}{}",
                if by.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", by.join(", "))
                }
            );
            let _ = writeln!(
                out,
                "export:     {} object(s), {}{}",
                t.export_objects,
                bytes(t.export_bytes),
                self.export_task_id
                    .as_deref()
                    .map(|id| format!(" (task {id})"))
                    .unwrap_or_default()
            );
            if plan {
                let _ = writeln!(
                    out,
                    "replay:     {} event(s) would be replayed, {} of ingestion billed, est. {}",
                    t.events_replayed,
                    bytes(t.bytes_replayed),
                    usd(t.estimated_reingestion_usd)
                );
            } else {
                let _ = writeln!(
                    out,
                    "replayed:   {} event(s), {} re-ingested, est. {}",
                    t.events_replayed,
                    bytes(t.bytes_replayed),
                    usd(t.estimated_reingestion_usd)
                );
            }
        }
        if let Some(report) = &self.report {
            let _ = writeln!(out, "report:     {report}");
        }
        if self.streams.is_empty() {
            return out;
        }
        let replay_header = if plan { "events to replay" } else { "events replayed" };
        let bytes_header = if plan { "bytes to replay" } else { "bytes replayed" };

        // Summary by action and reason.
        let mut groups: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
        for s in &self.streams {
            let g = groups
                .entry((s.action.clone(), s.reason.clone().unwrap_or_default()))
                .or_default();
            g.0 += 1;
            g.1 += s.events_replayed;
            g.2 += s.bytes_replayed;
        }
        let mut table = Table::new(&[
            ("action", false),
            ("streams", true),
            (replay_header, true),
            (bytes_header, true),
            ("reason", false),
        ]);
        for ((action, reason), (n, events, b)) in &groups {
            table.row(vec![
                action.clone(),
                n.to_string(),
                events.to_string(),
                bytes(*b),
                reason.clone(),
            ]);
        }
        let _ = writeln!(out, "\n{}", heading("by action"));
        out.push_str(&table.render());

        let shown = rows.unwrap_or(usize::MAX).min(self.streams.len());
        let title = if shown == self.streams.len() {
            format!("streams ({})", self.streams.len())
        } else {
            format!(
                "streams (first {shown} of {}; --all for every row, --limit N for more)",
                self.streams.len()
            )
        };
        let _ = writeln!(out, "\n{}", heading(&title));
        let mut table = Table::new(&[
            ("stream", false),
            ("action", false),
            (replay_header, true),
            (bytes_header, true),
            ("reason", false),
        ]);
        for s in self.streams.iter().take(shown) {
            table.row(vec![
                s.stream.clone(),
                s.action.clone(),
                s.events_replayed.to_string(),
                bytes(s.bytes_replayed),
                s.reason.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table.render());
        out
    }
}

/// Lambda causes are JSON with an `errorMessage`; show the message.
pub fn summarize_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(mode: &str, n: usize) -> Value {
        let action = if mode == "plan" { "would-rebuild" } else { "rebuilt" };
        let outcomes: Vec<Value> = (0..n)
            .map(|i| json!({"stream": format!("s{i:03}"), "action": action, "eventsReplayed": 10, "bytesReplayed": 100, "storedBytes": 0}))
            .collect();
        json!({"logGroupName": "/g", "mode": mode, "cutoff": "2026-01-01T00:00:00Z", "runId": "r1",
            "exportTaskId": "t", "totals": {"streams": {action: n}, "exportObjects": 1, "exportBytes": 10,
            "eventsReplayed": 10 * n, "bytesReplayed": 1000, "deletedStoredBytes": 0, "estimatedReingestionUsd": 0.0},
            "reportBucket": "b", "reportKey": "k/report.json", "outcomes": outcomes})
    }

    #[test]
    fn totals_first_then_actions_then_the_first_streams() {
        let view = RunView::from_report(&report("rebuild", 30));
        let text = anstream::adapter::strip_str(&view.render(Some(5))).to_string();
        let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in\n{text}"));
        assert!(at("streams:    30 (rebuilt 30)") < at("by action"));
        assert!(at("by action") < at("streams (first 5 of 30"));
        assert!(text.contains("s004") && !text.contains("s005"), "{text}");
        assert!(text.contains("report:     s3://b/k/report.json"));
        assert!(text.contains("re-ingested"));
        let all = anstream::adapter::strip_str(&view.render(None)).to_string();
        assert!(all.contains("s029") && all.contains("streams (30)"));
    }

    #[test]
    fn a_plan_says_would_be_replayed_never_re_ingested() {
        let view = RunView::from_report(&report("plan", 3));
        let text = anstream::adapter::strip_str(&view.render(None)).to_string();
        assert!(text.contains("would be replayed"), "{text}");
        assert!(!text.contains("re-ingested"), "{text}");
        assert!(!text.contains("events replayed"), "{text}");
    }

    #[test]
    fn json_keeps_unknown_fields() {
        let mut r = report("rebuild", 1);
        r["totals"]["newTotal"] = json!(7);
        let view = RunView::from_report(&r);
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!(v["totals"]["newTotal"], 7);
        assert_eq!(v["streams"][0]["storedBytes"], 0);
        assert_eq!(v["report"], "s3://b/k/report.json");
    }
}
