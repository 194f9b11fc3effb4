//! `cwl-archiver report`: a run report from S3 or from an execution.

use archiver::workflow::{Clients, RunReport};

use crate::aws::AwsArgs;
use crate::render;
use crate::{CliError, CliResult};

#[derive(clap::Args)]
#[command(long_about = "Print the report of a run: per-stream outcomes and totals.\n\n\
    SOURCE is the report object (s3://BUCKET/KEY, or KEY with --bucket; runs write it at \
    {prefix}/{group path}/@runs/{runId}/report.json) or an execution ARN, whose output names the report.")]
pub struct ReportArgs {
    /// s3://BUCKET/KEY of a report.json, a KEY with --bucket, or an execution ARN.
    source: String,
    /// The bucket of a KEY given without s3://.
    #[arg(long)]
    bucket: Option<String>,
    /// Print the report's JSON as stored, instead of the table.
    #[arg(long)]
    json: bool,
}

/// Reads and parses a full report from S3.
pub async fn full_report(clients: &Clients, bucket: &str, key: &str) -> CliResult<RunReport> {
    let body = report_body(clients, bucket, key).await?;
    serde_json::from_slice(&body).map_err(|e| CliError::Failed(format!("s3://{bucket}/{key} is not a run report: {e}")))
}

async fn report_body(clients: &Clients, bucket: &str, key: &str) -> CliResult<Vec<u8>> {
    match clients.archive.get(bucket, key).await? {
        Some(body) => Ok(body.to_vec()),
        None => Err(CliError::Failed(format!(
            "no report at s3://{bucket}/{key}: check the key (runs write {{prefix}}/{{group path}}/@runs/{{runId}}/report.json)"
        ))),
    }
}

/// `s3://bucket/key`, or `key` with `--bucket`.
fn locate(source: &str, bucket: Option<&str>) -> CliResult<(String, String)> {
    if let Some(rest) = source.strip_prefix("s3://") {
        return match rest.split_once('/') {
            Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
            _ => Err(CliError::Input(format!("{source:?}: write s3://BUCKET/KEY"))),
        };
    }
    match bucket {
        Some(b) => Ok((b.to_string(), source.to_string())),
        None => Err(CliError::Input(format!(
            "{source:?} needs --bucket, or write it as s3://BUCKET/{source}"
        ))),
    }
}

pub async fn run(args: ReportArgs, aws: &AwsArgs) -> CliResult {
    let clients = aws.clients().await;
    let (bucket, key) = if args.source.starts_with("arn:") {
        let d = aws
            .sfn()
            .await
            .describe_execution()
            .execution_arn(&args.source)
            .send()
            .await
            .map_err(|e| CliError::sdk("DescribeExecution", e))?;
        let Some(output) = d.output() else {
            return Err(CliError::Failed(format!(
                "execution is {} and has no report yet: follow it with `cwl-archiver watch {}`",
                d.status().as_str(),
                args.source
            )));
        };
        let summary: RunReport = serde_json::from_str(output)
            .map_err(|e| CliError::Failed(format!("the execution output is not a run report ({e})")))?;
        (summary.report_bucket, summary.report_key)
    } else {
        locate(&args.source, args.bucket.as_deref())?
    };
    if args.json {
        let body = report_body(&clients, &bucket, &key).await?;
        println!("{}", String::from_utf8_lossy(&body));
    } else {
        anstream::print!("{}", render::run_report(&full_report(&clients, &bucket, &key).await?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_bucket_and_key() {
        assert_eq!(
            locate("s3://b/p/g/@runs/r/report.json", None).ok(),
            Some(("b".into(), "p/g/@runs/r/report.json".into()))
        );
        assert_eq!(locate("k", Some("b")).ok(), Some(("b".into(), "k".into())));
        assert!(matches!(locate("k", None), Err(CliError::Input(m)) if m.contains("--bucket")));
        assert!(matches!(locate("s3://b", None), Err(CliError::Input(_))));
    }
}
