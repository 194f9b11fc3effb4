//! `cwl-archiver report`: a run from its report in S3, its execution, or
//! the latest run of a group.

use archiver::domain::input::RunSettings;
use serde_json::Value;

use crate::aws::{Aws, AwsArgs};
use crate::error::{AwsFailure, CliError, CliResult};
use crate::flags::ShowFlags;
use crate::lease::group_root;
use crate::render;
use crate::runs::{self, RunsQuery};
use crate::view::RunView;
use crate::watch;

#[derive(clap::Args)]
#[command(
    long_about = "Show a run: totals first, a summary by action, then the first streams (--all for every \
    row, --limit N for more).\n\n\
    SOURCE is the report object (s3://BUCKET/KEY, or KEY with --bucket; runs write it at \
    {prefix}/{group path}/@runs/{runId}/report.json) or an execution ARN. --latest --group G shows the \
    group's newest run instead (its executions through --state-machine-arn, its reports through --bucket).\n\n\
    --json prints the same shape as `watch --json` (see the README)."
)]
pub struct ReportArgs {
    /// s3://BUCKET/KEY of a report.json, a KEY with --bucket, or an execution ARN.
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub source: Option<String>,
    /// Show the newest run of --group.
    #[arg(long, requires = "group")]
    pub latest: bool,
    /// The log group (with --latest).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The archive bucket (a KEY's bucket; with --latest, where the group's reports are).
    #[arg(long, env = "CWL_ARCHIVER_BUCKET", value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// The archiver's key prefix in the bucket (with --latest).
    #[arg(long, default_value = archiver::domain::input::DEFAULT_PREFIX, value_name = "PREFIX")]
    pub prefix: String,
    /// The archive state machine (with --latest: the group's executions).
    #[arg(long, env = "CWL_ARCHIVER_STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    #[command(flatten)]
    pub show: ShowFlags,
}

/// `s3://bucket/key`, or `key` with `--bucket`.
pub fn locate(source: &str, bucket: Option<&str>) -> CliResult<(String, String)> {
    if let Some(rest) = source.strip_prefix("s3://") {
        return match rest.split_once('/') {
            Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string())),
            _ => Err(CliError::input(format!("{source:?}: write s3://BUCKET/KEY"))),
        };
    }
    match bucket {
        Some(b) => Ok((b.to_string(), source.to_string())),
        None => Err(CliError::input(format!(
            "{source:?} needs --bucket, or write it as s3://BUCKET/{source}"
        ))),
    }
}

/// The error of a missing bucket, the same for every command.
pub fn missing_bucket(f: AwsFailure, bucket: &str) -> CliError {
    f.input(format!(
        "--bucket {bucket}: NoSuchBucket: no bucket {bucket} in this account; check the name and --region"
    ))
}

/// An object's JSON; `None` when the key does not exist.
pub async fn get_json(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> CliResult<Option<Value>> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) => {
            let f = AwsFailure::of("GetObject", &e);
            return match f.code() {
                Some("NoSuchKey") => Ok(None),
                Some("NoSuchBucket") => Err(missing_bucket(f, bucket)),
                _ => Err(f.generic(&format!("s3://{bucket}/{key}"))),
            };
        }
    };
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| CliError::failed(format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| CliError::failed(format!("s3://{bucket}/{key} is not JSON: {e}")))
}

/// Keys under a prefix with their last-modified time (seconds), in key order.
pub async fn list_objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> CliResult<Vec<(String, i64)>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                let f = AwsFailure::of("ListObjectsV2", &e);
                if f.code() == Some("NoSuchBucket") {
                    missing_bucket(f, bucket)
                } else {
                    f.generic(&format!("s3://{bucket}/{prefix}"))
                }
            })?;
        keys.extend(page.contents().iter().filter_map(|o| {
            let modified = o.last_modified().map(|t| t.secs()).unwrap_or_default();
            o.key().map(|k| (k.to_string(), modified))
        }));
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(keys),
        }
    }
}

/// Keys under a prefix, in key order.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> CliResult<Vec<String>> {
    Ok(list_objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Adds the full report's streams (and totals) from S3, found through the
/// view's report location or the run's keys; a report that cannot be read
/// leaves the view as it is, with a warning.
pub async fn complete_from_s3(aws: &Aws, view: &mut RunView, arn: &str, settings: Option<&RunSettings>) {
    if !view.streams.is_empty() {
        return;
    }
    let mut candidates = Vec::new();
    if let Some(location) = view.report_location() {
        candidates.push(location);
    }
    if let Some(s) = settings {
        for id in watch::run_ids(arn, Some(s)) {
            candidates.push((
                s.bucket.clone(),
                format!("{}/@runs/{id}/report.json", group_root(&s.prefix, &s.log_group_name)),
            ));
        }
    }
    let s3 = aws.s3();
    for (bucket, key) in candidates {
        match get_json(&s3, &bucket, &key).await {
            Ok(Some(report)) => {
                view.report.get_or_insert_with(|| format!("s3://{bucket}/{key}"));
                view.merge_report(&report);
                return;
            }
            Ok(None) => continue,
            Err(e) => {
                render::warn(&format!("showing the totals only: {e}"));
                return;
            }
        }
    }
}

/// Prints the view: JSON, or the text with at most `--limit` streams.
pub fn print_view(view: &RunView, show: &ShowFlags) -> CliResult {
    if show.json {
        let text = serde_json::to_string_pretty(view).map_err(|e| CliError::failed(format!("encoding JSON: {e}")))?;
        println!("{text}");
    } else {
        anstream::print!("{}", view.render(show.rows()));
    }
    Ok(())
}

/// The view of an execution: its status and output, then the report in S3.
pub async fn execution_view(aws: &Aws, arn: &str) -> CliResult<RunView> {
    let d = aws
        .sfn()
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| watch::describe_error(AwsFailure::of("DescribeExecution", &e), arn))?;
    let status = d.status().as_str().to_string();
    let input: Value = d.input().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
    let mut view = RunView {
        status: Some(status.clone()),
        execution_arn: Some(arn.to_string()),
        run_id: Some(watch::execution_name(arn).to_string()),
        error: d.error().map(str::to_string),
        cause: d.cause().map(str::to_string),
        log_group_name: input["logGroupName"].as_str().map(str::to_string),
        mode: Some(input["mode"].as_str().unwrap_or("rebuild").to_string()),
        ..RunView::default()
    };
    if status == "RUNNING" {
        return Err(CliError::input(format!(
            "execution {arn} is RUNNING and has no report yet: follow it with `cwl-archiver watch {arn}`"
        )));
    }
    if let Some(output) = d.output().and_then(|o| serde_json::from_str::<Value>(o).ok()) {
        // The output's run id is the one the keys carry.
        view.run_id = None;
        view.merge_report(&output);
        view.run_id
            .get_or_insert_with(|| watch::execution_name(arn).to_string());
        if output["status"] == "GROUP_BUSY" {
            view.status = Some("GROUP_BUSY".into());
        }
    }
    let settings = settings_from_input(&input, d.start_date().secs());
    complete_from_s3(aws, &mut view, arn, settings.as_ref()).await;
    Ok(view)
}

/// The run settings an execution input resolves to (for its keys in S3).
pub fn settings_from_input(input: &Value, start_secs: i64) -> Option<RunSettings> {
    let mut input = input.clone();
    if let Some(map) = input.as_object_mut() {
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(start_secs, 0)?;
        map.insert("executionStartTime".into(), Value::from(start.to_rfc3339()));
    }
    archiver::domain::input::ExecutionInput::from_json(input)
        .ok()?
        .validate(chrono::Utc::now())
        .ok()
}

pub async fn run(args: ReportArgs, aws_args: &AwsArgs) -> CliResult {
    // Local checks before any call.
    let source = match (&args.source, args.latest) {
        (Some(s), _) if s.starts_with("arn:") => {
            watch::check_execution_arn(s)?;
            Source::Execution(s.clone())
        }
        (Some(s), _) => {
            let (b, k) = locate(s, args.bucket.as_deref())?;
            Source::Object(b, k)
        }
        (None, _) => Source::Latest,
    };
    let aws = aws_args.load().await?;
    let view = match source {
        Source::Execution(arn) => execution_view(&aws, &arn).await?,
        Source::Object(bucket, key) => {
            let Some(report) = get_json(&aws.s3(), &bucket, &key).await? else {
                return Err(CliError::input(format!(
                    "no report at s3://{bucket}/{key}: check the key (runs write {{prefix}}/{{group path}}/@runs/{{runId}}/report.json; `cwl-archiver runs --group G --bucket {bucket}` lists them)"
                )));
            };
            let mut view = RunView::from_report(&report);
            view.report.get_or_insert_with(|| format!("s3://{bucket}/{key}"));
            view
        }
        Source::Latest => {
            let group = args.group.clone().unwrap_or_default();
            let query = RunsQuery {
                group: group.clone(),
                bucket: args.bucket.clone(),
                prefix: args.prefix.trim_matches('/').to_string(),
                state_machine_arn: args.state_machine_arn.clone(),
            };
            let rows = runs::collect(&aws, &query).await?;
            let Some(latest) = rows.into_iter().find(|r| r.status.as_deref() != Some("RUNNING")) else {
                return Err(CliError::input(format!(
                    "no finished run of {group} found{}: check --group, --bucket and --state-machine-arn",
                    query.searched()
                )));
            };
            match (&latest.execution_arn, &latest.report) {
                (Some(arn), _) => execution_view(&aws, arn).await?,
                (None, Some(url)) => {
                    let (bucket, key) = locate(url, None)?;
                    let report = get_json(&aws.s3(), &bucket, &key).await?.unwrap_or_default();
                    let mut view = RunView::from_report(&report);
                    view.report.get_or_insert_with(|| url.clone());
                    view
                }
                (None, None) => return Err(CliError::failed("the latest run has neither an execution nor a report")),
            }
        }
    };
    // The report was shown: its status is in it, and this command succeeded.
    print_view(&view, &args.show)
}

enum Source {
    Execution(String),
    Object(String, String),
    Latest,
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
        assert!(matches!(locate("k", None), Err(e) if e.message.contains("--bucket")));
        assert!(locate("s3://b", None).is_err());
    }

    #[test]
    fn settings_resolve_from_an_execution_input() {
        let input = serde_json::json!({"logGroupName": "/g", "olderThanDays": 7, "bucket": "bkt", "ifBusy": "wait"});
        let s = settings_from_input(&input, 1_767_225_600).unwrap(); // 2026-01-01T00:00:00Z
        assert_eq!(archiver::domain::input::format_run_id(s.cutoff_ms), "20251225T000000Z");
    }
}
