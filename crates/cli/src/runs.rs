//! `cwl-archiver runs`: a group's runs, newest first, from its executions
//! (ListExecutions of the state machine) and its reports (`@runs/` in S3).

use archiver::domain::input::group_name_token;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::aws::{Aws, AwsArgs};
use crate::error::{AwsFailure, CliError, CliResult};
use crate::lease::group_root;
use crate::render::{Table, bytes};
use crate::report;
use crate::view::Totals;
use crate::watch;

/// Executions listed at most (newest first).
const MAX_LISTED: usize = 1000;
/// Executions whose input is read at most.
const MAX_DESCRIBED: usize = 200;
/// Reports read at most (newest first).
const MAX_REPORTS: usize = 200;

#[derive(clap::Args)]
#[command(
    long_about = "List a group's runs, newest first: their status, mode, cutoff and totals. Executions come \
    from the state machine (--state-machine-arn, or CWL_ARCHIVER_STATE_MACHINE_ARN), reports from the \
    bucket (--bucket, or CWL_ARCHIVER_BUCKET); give either or both. Executions are matched to the group \
    by their input (the newest 200 whose name fits the group or was given by the account-wide state \
    machine are read)."
)]
pub struct RunsArgs {
    /// The log group.
    #[arg(long, value_name = "NAME")]
    pub group: String,
    /// The archive bucket, where the group's reports are.
    #[arg(long, env = "CWL_ARCHIVER_BUCKET", value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The archiver's key prefix in the bucket.
    #[arg(long, default_value = archiver::domain::input::DEFAULT_PREFIX, value_name = "PREFIX")]
    pub prefix: String,
    /// The archive state machine, whose executions are listed.
    #[arg(long, env = "CWL_ARCHIVER_STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    /// At most this many runs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Print the runs as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where to look for a group's runs.
pub struct RunsQuery {
    /// The group.
    pub group: String,
    /// The bucket of its reports.
    pub bucket: Option<String>,
    /// The prefix.
    pub prefix: String,
    /// The state machine of its executions.
    pub state_machine_arn: Option<String>,
}

impl RunsQuery {
    /// " in ... and ..." for messages.
    pub fn searched(&self) -> String {
        let mut places = Vec::new();
        if let Some(arn) = &self.state_machine_arn {
            places.push(format!("the executions of {arn}"));
        }
        if let Some(b) = &self.bucket {
            places.push(format!("s3://{b}/{}/@runs/", group_root(&self.prefix, &self.group)));
        }
        format!(" in {}", places.join(" and "))
    }
}

/// One run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    /// When it started, RFC 3339.
    pub started_at: Option<String>,
    /// The run id (the execution name, or the cutoff for runs of earlier versions).
    pub run_id: Option<String>,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `GROUP_BUSY`, `ABORTED`, `TIMED_OUT`.
    pub status: Option<String>,
    /// The mode.
    pub mode: Option<String>,
    /// The cutoff (RFC 3339), or `olderThanDays` as `30d` until the run resolves it.
    pub cutoff: Option<String>,
    /// The execution.
    pub execution_arn: Option<String>,
    /// The report, `s3://bucket/key`.
    pub report: Option<String>,
    /// The run's totals, from the report or the execution output.
    pub totals: Option<Totals>,
    #[serde(skip)]
    sort_key: i64,
}

impl RunRow {
    fn merge(&mut self, report: &Value) {
        let fill = |slot: &mut Option<String>, key: &str| {
            if let Some(v) = report.get(key).and_then(Value::as_str) {
                slot.get_or_insert_with(|| v.to_string());
            }
        };
        fill(&mut self.status, "status");
        fill(&mut self.mode, "mode");
        fill(&mut self.started_at, "startedAt");
        fill(&mut self.run_id, "runId");
        if let Some(c) = report.get("cutoff").and_then(Value::as_str) {
            self.cutoff = Some(c.to_string());
        }
        if let (Some(b), Some(k)) = (
            report.get("reportBucket").and_then(Value::as_str),
            report.get("reportKey").and_then(Value::as_str),
        ) {
            self.report.get_or_insert_with(|| format!("s3://{b}/{k}"));
        }
        if let Some(t) = report
            .get("totals")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
        {
            self.totals = Some(t);
        }
    }
}

/// The part of an execution name before its time (and random) suffix.
fn name_head(name: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    if let Some((head, _)) = name.rsplit_once('-') {
        heads.push(head); // {group}-{runId} (earlier versions)
        if let Some((head, _)) = head.rsplit_once('-') {
            heads.push(head); // {group}-{time}-{random}
        }
    }
    heads
}

fn uuid_like(name: &str) -> bool {
    name.len() == 36 && name.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

fn rfc3339(secs: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn secs_of(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

/// A group's runs, newest first.
pub async fn collect(aws: &Aws, q: &RunsQuery) -> CliResult<Vec<RunRow>> {
    if q.bucket.is_none() && q.state_machine_arn.is_none() {
        return Err(CliError::input(
            "give --state-machine-arn (the group's executions) or --bucket (its reports), or both; or set CWL_ARCHIVER_STATE_MACHINE_ARN / CWL_ARCHIVER_BUCKET",
        ));
    }
    let mut rows: Vec<RunRow> = Vec::new();
    if let Some(sm) = &q.state_machine_arn {
        rows.extend(executions(aws, sm, &q.group).await?);
    }
    if let Some(bucket) = &q.bucket {
        let s3 = aws.s3();
        let prefix = format!("{}/@runs/", group_root(&q.prefix, &q.group));
        let mut reports: Vec<(String, i64)> = report::list_objects(&s3, bucket, &prefix)
            .await?
            .into_iter()
            .filter(|(k, _)| k.ends_with("/report.json"))
            .collect();
        reports.sort_by_key(|(_, modified)| std::cmp::Reverse(*modified));
        for (key, modified) in reports.into_iter().take(MAX_REPORTS) {
            let Some(report) = report::get_json(&s3, bucket, &key).await? else {
                continue;
            };
            let url = format!("s3://{bucket}/{key}");
            let run_id = report["runId"].as_str().unwrap_or_default().to_string();
            let arn = report["executionArn"].as_str().map(str::to_string);
            // The execution this report belongs to: by ARN, by the report its
            // output names, by name (= run id), or (earlier versions) by a name
            // ending in the run id.
            let at = rows.iter().position(|r| {
                let name = r
                    .execution_arn
                    .as_deref()
                    .map(watch::execution_name)
                    .unwrap_or_default();
                (arn.is_some() && r.execution_arn == arn)
                    || r.report.as_deref() == Some(url.as_str())
                    || (!run_id.is_empty() && (name == run_id || name.ends_with(&format!("-{run_id}"))))
            });
            match at {
                Some(i) => {
                    rows[i].report = Some(url);
                    rows[i].merge(&report);
                }
                None => {
                    let mut row = RunRow {
                        execution_arn: arn,
                        report: Some(url),
                        sort_key: modified,
                        ..RunRow::default()
                    };
                    row.merge(&report);
                    if let Some(s) = row.started_at.as_deref().and_then(secs_of) {
                        row.sort_key = s;
                    }
                    rows.push(row);
                }
            }
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.sort_key));
    Ok(rows)
}

async fn executions(aws: &Aws, state_machine_arn: &str, group: &str) -> CliResult<Vec<RunRow>> {
    let sfn = aws.sfn();
    let token = group_name_token(group);
    let mut listed = Vec::new();
    let mut next = None;
    loop {
        let page = sfn
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .max_results(1000)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| {
                let f = AwsFailure::of("ListExecutions", &e);
                let code = f.code().unwrap_or_default().to_string();
                match code.as_str() {
                    "StateMachineDoesNotExist" | "InvalidArn" => f.input(format!(
                        "--state-machine-arn: {code}: {state_machine_arn} is not a state machine of this account and region; take ArchiveStateMachineArn from the stack's outputs"
                    )),
                    _ => f.generic(&format!("state machine {state_machine_arn}")),
                }
            })?;
        listed.extend(page.executions().iter().cloned());
        match page.next_token() {
            Some(t) if listed.len() < MAX_LISTED => next = Some(t.to_string()),
            _ => break,
        }
    }
    listed.sort_by_key(|e| std::cmp::Reverse(e.start_date().secs()));
    let mut rows = Vec::new();
    let mut described = 0;
    for e in listed {
        let name = e.name();
        let ours = name_head(name).iter().any(|h| !h.is_empty() && token.ends_with(h));
        if !ours && !uuid_like(name) {
            continue;
        }
        if described >= MAX_DESCRIBED {
            break;
        }
        described += 1;
        let d = sfn
            .describe_execution()
            .execution_arn(e.execution_arn())
            .send()
            .await
            .map_err(|err| watch::describe_error(AwsFailure::of("DescribeExecution", &err), e.execution_arn()))?;
        let input: Value = d.input().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
        if input["logGroupName"].as_str() != Some(group) {
            continue;
        }
        let mut row = RunRow {
            started_at: rfc3339(e.start_date().secs()),
            run_id: Some(name.to_string()),
            status: Some(e.status().as_str().to_string()),
            mode: Some(input["mode"].as_str().unwrap_or("rebuild").to_string()),
            cutoff: input["cutoff"]
                .as_str()
                .map(str::to_string)
                .or_else(|| input["olderThanDays"].as_i64().map(|d| format!("{d}d"))),
            execution_arn: Some(e.execution_arn().to_string()),
            sort_key: e.start_date().secs(),
            ..RunRow::default()
        };
        if let Some(output) = d.output().and_then(|o| serde_json::from_str::<Value>(o).ok()) {
            let status = row.status.clone();
            row.status = None;
            row.merge(&output);
            // GROUP_BUSY is the output's word for a SUCCEEDED execution that did nothing.
            if row.status.as_deref() != Some("GROUP_BUSY") {
                row.status = status;
            }
            row.run_id = Some(name.to_string());
        }
        rows.push(row);
    }
    Ok(rows)
}

fn streams(t: &Totals) -> String {
    t.streams
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn run(args: RunsArgs, aws_args: &AwsArgs) -> CliResult {
    let q = RunsQuery {
        group: args.group.clone(),
        bucket: args.bucket.clone(),
        prefix: args.prefix.trim_matches('/').to_string(),
        state_machine_arn: args.state_machine_arn.clone(),
    };
    if q.bucket.is_none() && q.state_machine_arn.is_none() {
        return collect_error();
    }
    let aws = aws_args.load().await?;
    let mut rows = collect(&aws, &q).await?;
    rows.truncate(args.limit);
    if args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| CliError::failed(format!("encoding JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if rows.is_empty() {
        println!("no runs of {}{}", args.group, q.searched());
        return Ok(());
    }
    let mut table = Table::new(&[
        ("started", false),
        ("status", false),
        ("mode", false),
        ("cutoff", false),
        ("streams", false),
        ("replayed", true),
        ("exported", true),
        ("run", false),
    ]);
    let dash = || "-".to_string();
    for r in &rows {
        let t = r.totals.as_ref();
        table.row(vec![
            r.started_at.clone().unwrap_or_else(dash),
            r.status.clone().unwrap_or_else(dash),
            r.mode.clone().unwrap_or_else(dash),
            r.cutoff.clone().unwrap_or_else(dash),
            t.map(streams).filter(|s| !s.is_empty()).unwrap_or_else(dash),
            t.map(|t| {
                if r.mode.as_deref() == Some("plan") {
                    format!("{} ev (plan)", t.events_replayed)
                } else {
                    format!("{} ev", t.events_replayed)
                }
            })
            .unwrap_or_else(dash),
            t.map(|t| bytes(t.export_bytes)).unwrap_or_else(dash),
            r.execution_arn
                .clone()
                .or_else(|| r.report.clone())
                .or_else(|| r.run_id.clone())
                .unwrap_or_else(dash),
        ]);
    }
    anstream::print!("{}", table.render());
    println!(
        "show one with `cwl-archiver report RUN` (an execution ARN or s3:// report), the newest with `cwl-archiver report --latest --group {}`",
        args.group
    );
    Ok(())
}

fn collect_error() -> CliResult {
    Err(CliError::input(
        "give --state-machine-arn (the group's executions) or --bucket (its reports), or both; or set CWL_ARCHIVER_STATE_MACHINE_ARN / CWL_ARCHIVER_BUCKET",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_group() {
        let token = group_name_token("/ops/orders");
        for name in ["ops-orders-20261124T103712Z-beef", "ops-orders-20261124T000000Z"] {
            assert!(name_head(name).iter().any(|h| token.ends_with(h)), "{name}");
        }
        assert!(
            !name_head("other-20261124T103712Z-beef")
                .iter()
                .any(|h| token.ends_with(h))
        );
        assert!(uuid_like("0b6f4c2e-2d5e-4c2a-9f0e-1a2b3c4d5e6f"));
    }
}
