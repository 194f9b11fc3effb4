//! `cwl-archiver start`: StartExecution of the archive state machine.

use archiver::domain::input::{ExecutionInput, format_run_id, group_name_token};
use chrono::Utc;

use crate::aws::AwsArgs;
use crate::plan::GroupCutoff;
use crate::watch::{self, Output};
use crate::{CliError, CliResult};

#[derive(clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    target: GroupCutoff,
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
    /// Follow the execution (as `watch` does) and print its report.
    #[arg(long)]
    wait: bool,
    /// With --wait: print the execution output as JSON instead of the rendered report.
    #[arg(long, requires = "wait")]
    json: bool,
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

pub async fn run(args: StartArgs, aws: &AwsArgs) -> CliResult {
    let input = ExecutionInput {
        log_group_name: Some(args.target.group.clone()),
        older_than_days: args.target.older_than_days()?,
        cutoff: args.target.cutoff.clone(),
        bucket: Some(args.bucket.clone()),
        prefix: args.prefix.clone(),
        mode: Some(args.mode.clone()),
        poll_seconds: args.poll_seconds,
        ..ExecutionInput::default()
    };
    // Check locally first: the same rules the state machine applies.
    let settings = input.validate(Utc::now())?;
    let sfn = aws.sfn().await;
    let name = execution_name(&args.target.group, settings.cutoff_ms);
    let body = serde_json::to_string(&input).map_err(|e| CliError::Failed(e.to_string()))?;
    let started = sfn
        .start_execution()
        .state_machine_arn(&args.state_machine_arn)
        .name(&name)
        .input(body)
        .send()
        .await
        .map_err(|e| CliError::sdk("StartExecution", e))?;
    let arn = started.execution_arn().to_string();
    if !args.wait {
        println!("{arn}");
        return Ok(());
    }
    eprintln!("started {arn}");
    let output = if args.json { Output::Json } else { Output::Report };
    watch::follow_and_print(&sfn, aws, &arn, watch::DEFAULT_INTERVAL, output).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_days;

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
        assert_eq!(parse_days("30d").ok(), Some(30));
        assert_eq!(parse_days("7").ok(), Some(7));
        assert!(parse_days("a week").is_err());
    }
}
