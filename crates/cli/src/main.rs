//! `cwl-archiver`: plan, start, follow, report and restore archive runs.
//!
//! The logic lives in the `archiver` library; this binary parses flags,
//! reaches AWS and renders.

mod aws;
mod plan;
mod render;
mod report;
mod restore;
mod start;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of bad input (flags, times, names): nothing was done.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code of a failure: an AWS call, a failed execution.
const EXIT_FAILURE: u8 = 1;

#[derive(Parser)]
#[command(
    name = "cwl-archiver",
    version,
    about = "Archive CloudWatch Logs events older than a cutoff to S3, keeping every newer event",
    long_about = "Archive CloudWatch Logs events older than a cutoff to S3, keeping every newer event.\n\n\
        Exit codes: 0 success, 1 failure (an AWS call failed, the execution failed), 2 bad input.\n\
        Colour is used only when stdout is a terminal (NO_COLOR and CLICOLOR_FORCE are honoured)."
)]
struct Cli {
    #[command(flatten)]
    aws: aws::AwsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a run would do to each stream, and what it would cost and save (read-only).
    Plan(plan::PlanArgs),
    /// Start an archive run for one log group (StartExecution); --wait follows it to the end.
    Start(start::StartArgs),
    /// Follow a running execution with progress, then print its report.
    Watch(watch::WatchArgs),
    /// Print a run report from S3 or from an execution.
    Report(report::ReportArgs),
    /// Get archived events back from S3: as JSON lines, or re-ingested into a log group.
    Restore(restore::RestoreArgs),
}

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// The input is unusable; the message says how to fix it.
    Input(String),
    /// Something failed while running.
    Failed(String),
}

impl CliError {
    /// An AWS SDK error, with its whole chain of causes.
    pub fn sdk(operation: &str, error: impl std::error::Error) -> Self {
        CliError::Failed(format!(
            "{operation} failed: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&error)
        ))
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl From<archiver::ArchiverError> for CliError {
    fn from(e: archiver::ArchiverError) -> Self {
        match e {
            archiver::ArchiverError::InvalidInput(_) => CliError::Input(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// What every command returns.
pub type CliResult<T = ()> = Result<T, CliError>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let aws = cli.aws;
    let result = match cli.command {
        Command::Plan(args) => plan::run(args, &aws).await,
        Command::Start(args) => start::run(args, &aws).await,
        Command::Watch(args) => watch::run(args, &aws).await,
        Command::Report(args) => report::run(args, &aws).await,
        Command::Restore(args) => restore::run(args, &aws).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            render::error(&e.to_string());
            ExitCode::from(match e {
                CliError::Input(_) => EXIT_BAD_INPUT,
                CliError::Failed(_) => EXIT_FAILURE,
            })
        }
    }
}
