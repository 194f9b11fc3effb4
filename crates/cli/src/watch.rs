//! `cwl-archiver watch`: follow an execution to its end, with progress, then
//! print its report. `start --wait` uses the same code.
//!
//! Progress comes from the execution history (which state runs, the export
//! task's status as CheckExport returns it, the manifest's size) and from
//! the run's outcome objects in S3, one per finished Map item: that works
//! the same for inline and Distributed Maps, on AWS and on the emulator.

use std::io::IsTerminal;
use std::time::Duration;

use archiver::domain::input::RunSettings;
use archiver::domain::layout::GroupLayout;
use archiver::workflow::{Clients, RunReport};
use aws_sdk_sfn::types::HistoryEvent;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::aws::AwsArgs;
use crate::render;
use crate::{CliError, CliResult};

/// Seconds between two polls of the execution.
pub const DEFAULT_INTERVAL: u64 = 2;

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The execution's ARN, as `start` prints it.
    execution_arn: String,
    /// Print the execution output as JSON instead of the rendered report.
    #[arg(long)]
    json: bool,
    /// Seconds between polls.
    #[arg(long, default_value_t = DEFAULT_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=300))]
    interval: u64,
}

/// How the end of a run is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The execution output, as JSON.
    Json,
    /// The full report from S3, rendered.
    Report,
}

pub async fn run(args: WatchArgs, aws: &AwsArgs) -> CliResult {
    if !args.execution_arn.starts_with("arn:") || !args.execution_arn.contains(":execution:") {
        return Err(CliError::Input(format!(
            "{:?} is not an execution ARN: give the arn:aws:states:...:execution:... that `start` printed",
            args.execution_arn
        )));
    }
    let output = if args.json { Output::Json } else { Output::Report };
    follow_and_print(&aws.sfn().await, aws, &args.execution_arn, args.interval, output).await
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
        if !matches!(exited.name(), "StartExport" | "CheckExport") {
            return;
        }
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
        self.export_status = export["status"].as_str().map(str::to_string);
        self.batches = export["manifest"]["batches"].as_u64().or(self.batches);
        self.streams = export["manifest"]["streams"].as_u64().or(self.streams);
    }

    fn message(&self) -> String {
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
}

/// How an execution ended.
struct Ended {
    status: String,
    output: Option<String>,
    error: Option<String>,
    cause: Option<String>,
}

/// Follows the execution until it ends, then prints the report (or the
/// output as JSON); an execution that did not succeed is an error carrying
/// its error and cause.
pub async fn follow_and_print(
    sfn: &aws_sdk_sfn::Client,
    aws: &AwsArgs,
    arn: &str,
    interval: u64,
    output: Output,
) -> CliResult {
    let clients = aws.clients().await;
    let ended = follow(sfn, &clients, arn, interval).await?;
    if ended.status != "SUCCEEDED" {
        let cause = ended.cause.as_deref().map(summarize_cause).unwrap_or_default();
        return Err(CliError::Failed(format!(
            "execution {}: {}: {cause}\n  see the execution's history: aws stepfunctions get-execution-history --execution-arn {arn}",
            ended.status,
            ended.error.as_deref().unwrap_or("no error name"),
        )));
    }
    let text = ended.output.unwrap_or_else(|| "{}".into());
    if output == Output::Json {
        println!("{text}");
        return Ok(());
    }
    let summary: RunReport = serde_json::from_str(&text)
        .map_err(|e| CliError::Failed(format!("the execution output is not a run report ({e}): {text}")))?;
    let report = crate::report::full_report(&clients, &summary.report_bucket, &summary.report_key)
        .await
        .unwrap_or_else(|e| {
            render::warn(&format!("showing the totals only: {e}"));
            summary
        });
    anstream::print!("{}", render::run_report(&report));
    Ok(())
}

/// Lambda causes are JSON with an `errorMessage`; show the message.
fn summarize_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

async fn follow(sfn: &aws_sdk_sfn::Client, clients: &Clients, arn: &str, interval: u64) -> CliResult<Ended> {
    // The bar draws only on a terminal; elsewhere (CI logs, pipes) each
    // change of phase is one plain line on stderr.
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let plain = !std::io::stderr().is_terminal();
    let mut last_line = String::new();
    let mut progress = Progress::default();
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| CliError::sdk("DescribeExecution", e))?;
        for event in new_history(sfn, arn, progress.last_event_id).await? {
            progress.apply(&event);
        }
        let line = match (progress.state.as_str(), progress.batches) {
            ("PruneStreams" | "ScanStreams" | "RebuildStreams" | "RecordFailure", Some(total)) if total > 0 => {
                let done = batches_done(clients, &progress)
                    .await
                    .max(progress.iterations_done)
                    .min(total);
                if bar.length() != Some(total) {
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} streams [{bar:30}] {pos}/{len} batches {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_length(total);
                }
                bar.set_position(done);
                let streams = progress.streams.unwrap_or_default();
                bar.set_message(format!("({streams} candidate streams)"));
                format!("streams: {done}/{total} batches done ({streams} candidate streams)")
            }
            _ => {
                let message = progress.message();
                bar.set_message(message.clone());
                message
            }
        };
        if plain && line != last_line {
            eprintln!("{line}");
            last_line = line;
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
            });
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
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
            .map_err(|e| CliError::sdk("GetExecutionHistory", e))?;
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

/// Map items finished so far: the run's outcome objects in S3.
async fn batches_done(clients: &Clients, progress: &Progress) -> u64 {
    let Some(settings) = &progress.settings else { return 0 };
    let prefix = GroupLayout::of(settings).outcomes_root(&settings.run_id);
    // Progress is best effort: a failed listing only leaves the bar where it was.
    clients
        .archive
        .list(&settings.bucket, &prefix)
        .await
        .map_or(0, |objects| objects.len() as u64)
}
