//! `cwl-archiver`: plan, start, follow, list, stop, redrive, report and
//! restore archive runs.
//!
//! The logic lives in the `archiver` library; this binary parses flags,
//! checks what it can before it reaches AWS, reaches AWS and renders.

mod aws;
mod control;
mod error;
mod flags;
mod lease;
mod plan;
mod preflight;
mod render;
mod report;
mod restore;
mod retention;
mod runs;
mod start;
mod view;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use error::{CliError, CliResult};

/// The version with the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CWL_ARCHIVER_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "cwl-archiver",
    version = VERSION,
    about = "Archive CloudWatch Logs events older than a cutoff to S3, keeping every newer event",
    long_about = "Archive CloudWatch Logs events older than a cutoff to S3, keeping every newer event.\n\n\
        A typical session: `plan` what a run would do, `start` it, `watch` it, `report` it; `runs` lists \
        a group's runs, `stop` and `redrive` control one, `restore` gets archived events back.\n\n\
        Exit codes: 0 success; 1 a failure while running (an AWS call failed, the execution failed); \
        2 bad input or a failed pre-flight check (nothing was started or changed; the message names the \
        flag and the fix); 3 another run of the group is in progress (nothing was started); 130 \
        interrupted with Ctrl-C while following a run (the run goes on).\n\n\
        Errors are one line on stderr: the AWS error code, what it means here, and the fix; --debug \
        adds the detail. Colour is used only when the output is a terminal (NO_COLOR and CLICOLOR_FORCE \
        are honoured).",
    after_help = "Environment: AWS_PROFILE, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL, \
        CWL_ARCHIVER_STATE_MACHINE_ARN, CWL_ARCHIVER_BUCKET."
)]
struct Cli {
    #[command(flatten)]
    aws: aws::AwsArgs,
    /// Show the detail of errors (the AWS SDK's chain of causes).
    #[arg(long, short = 'v', global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a run would do to each stream, and what it would cost and save (read-only).
    Plan(plan::PlanArgs),
    /// Check, then start an archive run of one log group; --wait follows it to the end.
    Start(start::StartArgs),
    /// Follow a running execution with progress, then show the run.
    Watch(watch::WatchArgs),
    /// Show a run: from its report in S3, its execution, or the latest of a group.
    Report(report::ReportArgs),
    /// List a group's runs, newest first, with status, mode, cutoff and totals.
    Runs(runs::RunsArgs),
    /// Stop a running execution and release the group's lease it holds.
    Stop(control::StopArgs),
    /// Redrive a failed execution from where it failed.
    Redrive(control::RedriveArgs),
    /// Get archived events back from S3: as JSON lines, or re-ingested into a log group.
    Restore(restore::RestoreArgs),
    /// Show or put back the retention the archiver replaced on a group.
    #[command(subcommand)]
    Retention(retention::RetentionCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): cwl-archiver man > cwl-archiver.1
    Man,
}

fn print_completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "cwl-archiver", &mut std::io::stdout());
}

fn print_man() -> CliResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::failed(format!("rendering the man page: {e}")))?;
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::failed(format!("writing to stdout: {e}")))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let aws = cli.aws;
    error::set_context(error::Context {
        endpoint: aws.endpoint_url.clone(),
        region: aws.region.clone(),
        profile: aws.profile.clone(),
        debug: cli.debug,
    });
    let result = match cli.command {
        Command::Plan(args) => plan::run(args, &aws).await,
        Command::Start(args) => start::run(args, &aws).await,
        Command::Watch(args) => watch::run(args, &aws).await,
        Command::Report(args) => report::run(args, &aws).await,
        Command::Runs(args) => runs::run(args, &aws).await,
        Command::Stop(args) => control::stop(args, &aws).await,
        Command::Redrive(args) => control::redrive(args, &aws).await,
        Command::Restore(args) => restore::run(args, &aws).await,
        Command::Retention(command) => retention::run(command, &aws).await,
        Command::Completions { shell } => {
            print_completions(shell);
            Ok(())
        }
        Command::Man => print_man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            render::error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn plan_and_start_share_their_run_flags() {
        let cmd = Cli::command();
        let flags = |name: &str| -> Vec<String> {
            cmd.find_subcommand(name)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        };
        let (plan, start) = (flags("plan"), flags("start"));
        for f in [
            "group",
            "older-than",
            "cutoff",
            "bucket",
            "prefix",
            "mode",
            "quiet-minutes",
            "replay-margin-hours",
            "allow-masked-archive",
            "retention-slack-days",
        ] {
            assert!(plan.contains(&f.to_string()) && start.contains(&f.to_string()), "{f}");
        }
        for cmd in ["watch", "report"] {
            let f = flags(cmd);
            for shared in ["json", "all", "limit"] {
                assert!(f.contains(&shared.to_string()), "{cmd} --{shared}");
            }
        }
    }

    #[test]
    fn the_version_names_the_commit() {
        assert!(VERSION.contains("(commit "), "{VERSION}");
    }
}
