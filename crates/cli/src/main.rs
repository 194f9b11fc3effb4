//! `cwl-archiver`: start and follow archive runs of the state machine.

use std::process::ExitCode;
use std::time::Duration;

use archiver::input::{ExecutionInput, format_run_id, group_name_token};
use chrono::Utc;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cwl-archiver",
    version,
    about = "Archive CloudWatch Logs events older than a cutoff to S3, keeping every newer event"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start an archive run for one log group (StartExecution); --wait follows it to the end.
    Start(StartArgs),
}

#[derive(clap::Args)]
struct StartArgs {
    /// The log group to archive.
    #[arg(long)]
    group: String,
    /// Archive events older than this, in days: `30` or `30d`.
    #[arg(long, conflicts_with = "cutoff", required_unless_present = "cutoff")]
    older_than: Option<String>,
    /// Or an explicit RFC 3339 cutoff, at least 12 h in the past.
    #[arg(long)]
    cutoff: Option<String>,
    /// The archive bucket (same region as the group).
    #[arg(long)]
    bucket: String,
    /// rebuild, expired-only, export-only or plan.
    #[arg(long, default_value = "rebuild")]
    mode: String,
    /// Key prefix in the bucket.
    #[arg(long)]
    prefix: Option<String>,
    /// Seconds between export polls.
    #[arg(long)]
    poll_seconds: Option<i64>,
    /// The archive state machine.
    #[arg(long, env = "CWL_ARCHIVER_STATE_MACHINE_ARN")]
    state_machine_arn: String,
    /// Follow the execution and print its report.
    #[arg(long)]
    wait: bool,
    /// Use this endpoint instead of AWS (a local stack, for instance).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// AWS profile.
    #[arg(long, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// AWS region.
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
}

fn parse_days(text: &str) -> Result<i64, String> {
    text.trim_end_matches('d')
        .parse::<i64>()
        .map_err(|_| format!("--older-than {text:?}: give whole days, e.g. 30 or 30d"))
}

/// Execution names derive from the group and the cutoff, so starting the
/// same run twice is refused by Step Functions itself.
fn execution_name(group: &str, cutoff_ms: i64) -> String {
    let group = group_name_token(group);
    let tail: String = group
        .chars()
        .rev()
        .take(60)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}-{}", tail.trim_start_matches('-'), format_run_id(cutoff_ms))
}

async fn start(args: StartArgs) -> Result<ExitCode, String> {
    let input = ExecutionInput {
        log_group_name: Some(args.group.clone()),
        older_than_days: args.older_than.as_deref().map(parse_days).transpose()?,
        cutoff: args.cutoff.clone(),
        bucket: Some(args.bucket.clone()),
        prefix: args.prefix.clone(),
        mode: Some(args.mode.clone()),
        poll_seconds: args.poll_seconds,
        ..ExecutionInput::default()
    };
    // Check locally first: the same rules the state machine applies.
    let settings = input.validate(Utc::now()).map_err(|e| e.to_string())?;
    let mut loader = aws_config::from_env();
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &args.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let sfn = aws_sdk_sfn::Client::new(&loader.load().await);
    let name = execution_name(&args.group, settings.cutoff_ms);
    let body = serde_json::to_string(&input).map_err(|e| e.to_string())?;
    let started = sfn
        .start_execution()
        .state_machine_arn(&args.state_machine_arn)
        .name(&name)
        .input(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "StartExecution failed: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
    let arn = started.execution_arn().to_string();
    eprintln!("started {arn}");
    if !args.wait {
        println!("{arn}");
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        let d = sfn.describe_execution().execution_arn(&arn).send().await.map_err(|e| {
            format!(
                "DescribeExecution failed: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
        match d.status().as_str() {
            "RUNNING" | "PENDING_REDRIVE" => tokio::time::sleep(Duration::from_secs(2)).await,
            "SUCCEEDED" => {
                println!("{}", d.output().unwrap_or("{}"));
                return Ok(ExitCode::SUCCESS);
            }
            status => {
                eprintln!(
                    "execution {status}: {} {}",
                    d.error().unwrap_or(""),
                    d.cause().unwrap_or("")
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Start(args) => start(args).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_valid_and_stable() {
        let name = execution_name("/aws/lambda/orders-api", 1_761_350_400_000);
        assert_eq!(name, "aws-lambda-orders-api-20251025T000000Z");
        let long = execution_name(&format!("/{}", "x".repeat(300)), 0);
        assert!(long.len() <= 80, "{long}");
        assert!(long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn days_parse_with_or_without_suffix() {
        assert_eq!(parse_days("30d"), Ok(30));
        assert_eq!(parse_days("7"), Ok(7));
        assert!(parse_days("a week").is_err());
    }
}
