//! `cwl-archiver retention`: what the archiver did to a group's retention,
//! and putting back what it replaced.

use archiver::domain::input::DEFAULT_PREFIX;
use archiver::domain::layout::GroupLayout;
use archiver::domain::retention::{RetentionRecord, describe};
use archiver::workflow::retention::{Restored, restore_previous};

use crate::aws::AwsArgs;
use crate::error::{CliError, CliResult};

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Show the retention the archiver replaced on a group, and why.
    Show(RetentionArgs),
    /// Put back the group's retention from before the archiver changed it
    /// (refused when that would expire events no export holds yet, unless --force).
    Restore(RestoreArgs),
}

#[derive(clap::Args)]
pub struct RetentionArgs {
    /// The log group.
    #[arg(long, value_name = "NAME")]
    group: String,
    /// The archive bucket.
    #[arg(long, env = "CWL_ARCHIVER_BUCKET", value_name = "BUCKET")]
    bucket: String,
    /// Key prefix of everything the archiver writes in the bucket.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    prefix: String,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    target: RetentionArgs,
    /// Days the previous retention must keep beyond what the archive holds (as the runs' retentionSlackDays).
    #[arg(long, value_name = "DAYS", default_value_t = archiver::domain::input::DEFAULT_RETENTION_SLACK_DAYS)]
    retention_slack_days: i64,
    /// Put it back even if it would expire events no export holds yet.
    #[arg(long)]
    force: bool,
}

pub async fn run(command: RetentionCommand, aws_args: &AwsArgs) -> CliResult {
    match command {
        RetentionCommand::Show(args) => show(args, aws_args).await,
        RetentionCommand::Restore(args) => restore(args, aws_args).await,
    }
}

async fn show(args: RetentionArgs, aws_args: &AwsArgs) -> CliResult {
    let aws = aws_args.load().await?;
    let clients = aws.clients();
    let key = GroupLayout::new(&args.prefix, &args.group).retention_record();
    match clients.archive.get(&args.bucket, &key).await? {
        None => println!(
            "the archiver has not changed the retention of {} (no s3://{}/{key})",
            args.group, args.bucket
        ),
        Some(body) => {
            let record: RetentionRecord = serde_json::from_slice(&body)
                .map_err(|e| CliError::failed(format!("s3://{}/{key} is not a retention record: {e}", args.bucket)))?;
            println!(
                "{}: {} before the archiver; set to {} by run {} at {} ({})",
                args.group,
                describe(record.previous_retention_days),
                describe(record.set_retention_days),
                record.run_id,
                record.set_at,
                if record.reason == "hand-off" {
                    "retention mode hands the archived events to it"
                } else {
                    "the guard keeps events the archive has not reached"
                }
            );
        }
    }
    Ok(())
}

async fn restore(args: RestoreArgs, aws_args: &AwsArgs) -> CliResult {
    let aws = aws_args.load().await?;
    let clients = aws.clients();
    let target = &args.target;
    let layout = GroupLayout::new(&target.prefix, &target.group);
    let restored = restore_previous(
        &clients,
        &layout,
        &target.bucket,
        &target.group,
        args.retention_slack_days,
        args.force,
    )
    .await
    .map_err(|e| match e {
        archiver::ArchiverError::RetentionConflict { .. } => CliError::input(format!(
            "{e}; run the archiver first so that its export covers them, or pass --force"
        )),
        other => other.into(),
    })?;
    match restored {
        Restored::NothingRecorded => println!(
            "the archiver has not changed the retention of {}: nothing to put back",
            target.group
        ),
        Restored::Restored(change) => println!(
            "{}: retention back to {} (it was {})",
            target.group,
            describe(change.to),
            describe(change.from)
        ),
    }
    Ok(())
}
