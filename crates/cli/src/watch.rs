//! `cwl-archiver watch`: follow an execution to its end, with progress, then
//! show the run. `start --wait` uses the same code.
//!
//! Progress comes from the execution history (which state runs, the export
//! task's status as CheckExport returns it, the manifest's size) and from
//! the run's outcome objects in S3, one per finished Map item, each listing
//! its streams: streams done, elapsed time and an estimate of the time left
//! work the same for inline and Distributed Maps, on AWS and on the emulator.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use archiver::domain::input::RunSettings;
use aws_sdk_sfn::types::HistoryEvent;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::aws::{Aws, AwsArgs};
use crate::error::{AwsFailure, CliError, CliResult};
use crate::flags::ShowFlags;
use crate::lease::group_root;
use crate::report;
use crate::view::{RunView, summarize_cause};

/// Seconds between two polls of the execution.
pub const DEFAULT_INTERVAL: u64 = 2;

#[derive(clap::Args)]
#[command(
    long_about = "Follow a running execution with progress (the phase, then streams done, elapsed time and \
    the time left), then show the run: totals first, a summary by action, then the first streams.\n\n\
    Ctrl-C stops following, not the run: it goes on in Step Functions (stop it with `cwl-archiver stop ARN`); \
    the exit code is then 130. A failed execution exits 1 with its error and cause; a run that did not \
    start because another run held the group exits 3."
)]
pub struct WatchArgs {
    /// The execution's ARN, as `start` prints it.
    pub execution_arn: String,
    /// Seconds between polls.
    #[arg(long, default_value_t = DEFAULT_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub interval: u64,
    #[command(flatten)]
    pub show: ShowFlags,
}

/// Checks the shape of an execution ARN locally.
pub fn check_execution_arn(arn: &str) -> CliResult {
    if arn.starts_with("arn:") && arn.contains(":execution:") {
        Ok(())
    } else {
        Err(CliError::input(format!(
            "{arn:?} is not an execution ARN: give the arn:aws:states:...:execution:... that `start` printed (`cwl-archiver runs --group G` lists them)"
        )))
    }
}

pub async fn run(args: WatchArgs, aws: &AwsArgs) -> CliResult {
    check_execution_arn(&args.execution_arn)?;
    let aws = aws.load().await?;
    follow_and_show(&aws, &args.execution_arn, args.interval, &args.show).await
}

/// Where the run stands, as far as the history tells.
#[derive(Default)]
struct Progress {
    last_event_id: i64,
    state: String,
    export_status: Option<String>,
    export_polls: u64,
    settings: Option<RunSettings>,
    batches: Option<u64>,
    streams: Option<u64>,
    iterations_done: u64,
}

impl Progress {
    fn apply(&mut self, event: &HistoryEvent) {
        self.last_event_id = self.last_event_id.max(event.id());
        if let Some(entered) = event.state_entered_event_details() {
            self.state = entered.name().to_string();
            if entered.name() == "CheckExport" {
                self.export_polls += 1;
            }
        }
        if event.map_iteration_succeeded_event_details().is_some()
            || event.map_iteration_failed_event_details().is_some()
        {
            self.iterations_done += 1;
        }
        let Some(exited) = event.state_exited_event_details() else {
            return;
        };
        let Some(run) = exited
            .output()
            .and_then(|o| serde_json::from_str::<Value>(o).ok())
            .and_then(|o| o.get("run").cloned())
        else {
            return;
        };
        if let Ok(settings) = serde_json::from_value(run["settings"].clone()) {
            self.settings = Some(settings);
        }
        let export = &run["export"];
        if let Some(status) = export["status"].as_str() {
            self.export_status = Some(status.to_string());
        }
        self.batches = export["manifest"]["batches"].as_u64().or(self.batches);
        self.streams = export["manifest"]["streams"].as_u64().or(self.streams);
    }

    fn phase(&self) -> String {
        match (self.state.as_str(), &self.export_status) {
            ("", _) => "starting".into(),
            ("StartExport" | "WaitForExportSlot", Some(s)) if s == "BUSY" => {
                "waiting for the account's export slot (another export task runs)".into()
            }
            ("CheckExport", Some(s)) if s == "LISTING" => "export done; listing the group's streams".into(),
            ("CheckExport" | "WaitForExport", _) => format!("export running ({} poll(s))", self.export_polls),
            (state, _) => state.to_string(),
        }
    }

    fn in_map(&self) -> bool {
        matches!(
            self.state.as_str(),
            "PruneStreams" | "ScanStreams" | "ScanDone?" | "RebuildStreams" | "RebuildDone?" | "RecordFailure"
        ) || self.state.starts_with("Scan")
            || self.state.starts_with("Rebuild")
    }
}

/// Streams finished so far, counted from the run's outcome objects (each
/// read once).
#[derive(Default)]
struct StreamsDone {
    counted: BTreeMap<String, u64>,
}

impl StreamsDone {
    async fn update(&mut self, aws: &Aws, settings: &RunSettings, run_ids: &[String]) -> u64 {
        let s3 = aws.s3();
        for run_id in run_ids {
            let prefix = format!(
                "{}/@runs/{run_id}/outcomes/",
                group_root(&settings.prefix, &settings.log_group_name)
            );
            // Progress is best effort: a failed listing leaves the count where it was.
            let Ok(keys) = report::list_keys(&s3, &settings.bucket, &prefix).await else {
                continue;
            };
            if keys.is_empty() {
                continue;
            }
            for key in keys {
                if self.counted.contains_key(&key) {
                    continue;
                }
                if let Ok(Some(v)) = report::get_json(&s3, &settings.bucket, &key).await {
                    let n = v.as_array().map_or(0, |a| a.len() as u64);
                    self.counted.insert(key, n);
                }
            }
            break;
        }
        self.counted.values().sum()
    }
}

/// `1h02m03s`, `4m05s`, `12s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// The progress line of the Map phase.
fn streams_line(done: u64, total: u64, elapsed: Duration, map_elapsed: Duration) -> String {
    let eta = if done > 0 && done < total {
        let per = map_elapsed.as_secs_f64() / done as f64;
        format!(
            ", ETA {}",
            duration(Duration::from_secs_f64(per * (total - done) as f64))
        )
    } else {
        String::new()
    };
    format!("streams: {done}/{total} done, elapsed {}{eta}", duration(elapsed))
}

/// How an execution ended.
struct Ended {
    status: String,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
    settings: Option<RunSettings>,
}

/// The execution name: the last part of its ARN.
pub fn execution_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// The run ids a run's keys may carry: the execution name, or (runs of
/// earlier versions) the cutoff.
pub fn run_ids(arn: &str, settings: Option<&RunSettings>) -> Vec<String> {
    let mut ids = vec![execution_name(arn).to_string()];
    if let Some(s) = settings {
        ids.push(archiver::domain::input::format_run_id(s.cutoff_ms));
    }
    ids
}

/// Follows the execution until it ends (Ctrl-C: exit 130, the run goes
/// on), then shows the run; an execution that did not succeed is an error
/// carrying its error and cause.
pub async fn follow_and_show(aws: &Aws, arn: &str, interval: u64, show: &ShowFlags) -> CliResult {
    let interrupted = || {
        CliError::interrupted(format!(
            "interrupted: the run goes on in Step Functions; follow it again with `cwl-archiver watch {arn}`, or stop it with `cwl-archiver stop {arn}`"
        ))
    };
    let ended = tokio::select! {
        ended = follow(aws, arn, interval) => ended?,
        _ = tokio::signal::ctrl_c() => return Err(interrupted()),
    };
    let mut view = RunView {
        status: Some(ended.status.clone()),
        execution_arn: Some(arn.to_string()),
        error: ended.error.clone(),
        cause: ended.cause.clone(),
        ..RunView::default()
    };
    if let Some(output) = ended
        .output
        .as_deref()
        .and_then(|o| serde_json::from_str::<Value>(o).ok())
    {
        view.merge_report(&output);
        if output["status"] == "GROUP_BUSY" {
            view.status = Some("GROUP_BUSY".into());
        }
    }
    if let Some(s) = &ended.settings {
        view.log_group_name.get_or_insert_with(|| s.log_group_name.clone());
        view.mode.get_or_insert_with(|| s.mode.as_str().to_string());
        view.cutoff.get_or_insert_with(|| {
            chrono::DateTime::<chrono::Utc>::from_timestamp_millis(s.cutoff_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        });
    }
    report::complete_from_s3(aws, &mut view, arn, ended.settings.as_ref()).await;
    report::print_view(&view, show)?;
    outcome(&view)
}

/// The exit of a shown run: success, busy (3), or failed (1).
pub fn outcome(view: &RunView) -> CliResult {
    let arn = view.execution_arn.clone().unwrap_or_default();
    match view.status.as_deref() {
        Some("SUCCEEDED") | None => Ok(()),
        Some("GROUP_BUSY") => {
            let by = view
                .held_by
                .as_ref()
                .and_then(|h| h["executionArn"].as_str().or(h["runId"].as_str()))
                .unwrap_or("another run")
                .to_string();
            Err(CliError::busy(format!(
                "the run did not start: {by} held the group's lease; follow it with `cwl-archiver watch {by}`, then start again"
            )))
        }
        Some(status) => {
            let cause = view.cause.as_deref().map(summarize_cause).unwrap_or_default();
            Err(CliError::failed(format!(
                "execution {status}: {}: {cause}; its history: aws stepfunctions get-execution-history --execution-arn {arn}",
                view.error.as_deref().unwrap_or("no error name"),
            )))
        }
    }
}

async fn follow(aws: &Aws, arn: &str, interval: u64) -> CliResult<Ended> {
    let sfn = aws.sfn();
    // The bar draws only on a terminal; elsewhere (CI logs, pipes) each
    // change of phase is one plain line on stderr.
    let plain = !std::io::stderr().is_terminal();
    let bar = if plain {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut last_line = String::new();
    let mut progress = Progress::default();
    let mut done = StreamsDone::default();
    let started = Instant::now();
    let mut started_at: Option<Instant> = None;
    let mut map_started: Option<Instant> = None;
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| describe_error(AwsFailure::of("DescribeExecution", &e), arn))?;
        // Elapsed counts from the execution's start, also when watch starts later.
        let since_start = started_at.get_or_insert_with(|| {
            let secs = chrono::Utc::now().timestamp() - d.start_date().secs();
            started
                .checked_sub(Duration::from_secs(secs.max(0) as u64))
                .unwrap_or(started)
        });
        for event in new_history(&sfn, arn, progress.last_event_id).await? {
            progress.apply(&event);
        }
        let line = match (progress.in_map(), progress.streams, &progress.settings) {
            (true, Some(total), Some(settings)) if total > 0 => {
                let map_start = *map_started.get_or_insert_with(Instant::now);
                let ids = run_ids(arn, Some(settings));
                let n = done.update(aws, settings, &ids).await.min(total);
                if bar.length() != Some(total) {
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_length(total);
                }
                bar.set_position(n);
                streams_line(n, total, since_start.elapsed(), map_start.elapsed())
            }
            _ => format!("{}, elapsed {}", progress.phase(), duration(since_start.elapsed())),
        };
        bar.set_message(line.clone());
        // Plain output: one line per change of phase or count, not per tick.
        let key = line.split(", elapsed").next().unwrap_or(&line).to_string();
        if plain && key != last_line {
            eprintln!("{line}");
            last_line = key;
        }
        let status = d.status().as_str();
        if status != "RUNNING" && status != "PENDING_REDRIVE" {
            bar.finish_and_clear();
            if plain {
                eprintln!("execution {status}");
            }
            return Ok(Ended {
                status: status.to_string(),
                output: d.output().map(str::to_string),
                error: d.error().map(str::to_string),
                cause: d.cause().map(str::to_string),
                settings: progress.settings.take(),
            });
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
    }
}

/// DescribeExecution's errors, in words.
pub fn describe_error(f: AwsFailure, arn: &str) -> CliError {
    match f.code() {
        Some("ExecutionDoesNotExist") => f.input(format!(
            "ExecutionDoesNotExist: no execution {arn} in this account and region; check the ARN and --region (`cwl-archiver runs --group G` lists a group's runs)"
        )),
        Some("InvalidArn") => f.input(format!(
            "InvalidArn: {arn} is not an execution ARN; give the arn:aws:states:...:execution:... that `start` printed"
        )),
        _ => f.generic(&format!("execution {arn}")),
    }
}

/// The history events after `after_id`, oldest first: read newest first and
/// stop at the first one already seen, so a poll costs one page.
async fn new_history(sfn: &aws_sdk_sfn::Client, arn: &str, after_id: i64) -> CliResult<Vec<HistoryEvent>> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(arn)
            .reverse_order(true)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| describe_error(AwsFailure::of("GetExecutionHistory", &e), arn))?;
        let ids: Vec<i64> = page.events().iter().map(HistoryEvent::id).collect();
        let newest_first = ids.first() > ids.last();
        events.extend(page.events().iter().filter(|e| e.id() > after_id).cloned());
        token = page.next_token().map(str::to_string);
        // Newest first, a page that reaches a seen event ends the new ones;
        // oldest first (some emulators ignore reverseOrder), read on.
        let reached_seen = ids.iter().any(|id| *id <= after_id);
        if (newest_first && reached_seen) || token.is_none() {
            break;
        }
    }
    events.sort_by_key(HistoryEvent::id);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_the_streams_line() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h02m03s");
        assert_eq!(
            streams_line(100, 400, Duration::from_secs(90), Duration::from_secs(60)),
            "streams: 100/400 done, elapsed 1m30s, ETA 3m00s"
        );
        assert_eq!(
            streams_line(0, 400, Duration::from_secs(5), Duration::from_secs(5)),
            "streams: 0/400 done, elapsed 5s"
        );
    }

    #[test]
    fn run_ids_are_the_name_then_the_cutoff() {
        let arn = "arn:aws:states:us-east-1:1:execution:sm:g-20260101T000000Z-abcd";
        assert_eq!(run_ids(arn, None), vec!["g-20260101T000000Z-abcd"]);
        assert!(check_execution_arn(arn).is_ok());
        assert!(check_execution_arn("nope").is_err());
    }
}
