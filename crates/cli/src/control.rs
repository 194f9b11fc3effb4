//! `cwl-archiver stop` and `cwl-archiver redrive`: control a run.

use serde_json::Value;

use crate::aws::AwsArgs;
use crate::error::{AwsFailure, CliResult};
use crate::lease::{self, Release};
use crate::render;
use crate::watch;

#[derive(clap::Args)]
#[command(
    long_about = "Stop a running execution (StopExecution), then release the group's lease if this \
    execution holds it (rewritten with \"released\": true under If-Match, so a lease another run took \
    meanwhile is never touched). A stream stopped in the middle of its rebuild keeps its staged events \
    and its marker in S3: the group's next run finishes it before anything else."
)]
pub struct StopArgs {
    /// The execution's ARN.
    pub execution_arn: String,
    /// Why, recorded as the execution's cause.
    #[arg(long, default_value = "stopped with cwl-archiver stop")]
    pub cause: String,
}

#[derive(clap::Args)]
#[command(
    long_about = "Redrive a failed, aborted or timed-out execution (RedriveExecution): it goes on from \
    the states that failed, under the same name and run id, and can be followed with `watch` again."
)]
pub struct RedriveArgs {
    /// The execution's ARN.
    pub execution_arn: String,
}

pub async fn stop(args: StopArgs, aws_args: &AwsArgs) -> CliResult {
    let arn = args.execution_arn.as_str();
    watch::check_execution_arn(arn)?;
    let aws = aws_args.load().await?;
    let sfn = aws.sfn();
    let d = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| watch::describe_error(AwsFailure::of("DescribeExecution", &e), arn))?;
    let status = d.status().as_str().to_string();
    if status == "RUNNING" {
        sfn.stop_execution()
            .execution_arn(arn)
            .error("StoppedByOperator")
            .cause(&args.cause)
            .send()
            .await
            .map_err(|e| AwsFailure::of("StopExecution", &e).generic(&format!("execution {arn}")))?;
        println!("stopped {arn}");
    } else {
        println!("execution {arn} is {status}, not running: nothing to stop");
    }
    let input: Value = d.input().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
    let (Some(group), Some(bucket)) = (input["logGroupName"].as_str(), input["bucket"].as_str()) else {
        render::warn("the execution's input names no group or bucket: its lease (if any) was not looked at");
        return Ok(());
    };
    let prefix = input["prefix"]
        .as_str()
        .unwrap_or(archiver::domain::input::DEFAULT_PREFIX)
        .trim_matches('/');
    let key = lease::lease_key(prefix, group);
    match lease::release(&aws.s3(), bucket, &key, arn).await? {
        Release::Released => println!("released the lease of {group} (s3://{bucket}/{key})"),
        Release::NoLease => println!("{group} has no lease: nothing to release"),
        Release::NotHeldBy => println!("the lease of {group} is not held by this execution: left as it is"),
        Release::Changed => render::warn(&format!(
            "the lease of {group} changed while it was being released (the run let go of it, or another run took it): left as it is"
        )),
    }
    Ok(())
}

pub async fn redrive(args: RedriveArgs, aws_args: &AwsArgs) -> CliResult {
    let arn = args.execution_arn.as_str();
    watch::check_execution_arn(arn)?;
    let aws = aws_args.load().await?;
    aws.sfn()
        .redrive_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| {
            let f = AwsFailure::of("RedriveExecution", &e);
            match f.code() {
                Some("ExecutionNotRedrivable") => {
                    let why = f.message.clone().unwrap_or_default();
                    f.input(format!(
                        "ExecutionNotRedrivable: {arn} cannot be redriven ({why}); only a FAILED, ABORTED or TIMED_OUT execution of the last 14 days can: start a new run with `cwl-archiver start` instead"
                    ))
                }
                Some("ExecutionDoesNotExist" | "InvalidArn") => watch::describe_error(f, arn),
                _ if f.is_not_implemented() => f.input(format!(
                    "RedriveExecution: the endpoint does not implement it (an emulator?); start a new run with `cwl-archiver start` instead of redriving {arn}"
                )),
                _ => f.generic(&format!("execution {arn}")),
            }
        })?;
    println!("redriven {arn}");
    render::note(&format!("follow it with `cwl-archiver watch {arn}`"));
    Ok(())
}
