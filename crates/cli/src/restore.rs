//! `cwl-archiver restore`: archived events back out of S3.

use std::io::Write;

use archiver::operator::restore::{ReingestTarget, RestoreRequest, reingest, restore_events};
use chrono::{DateTime, Utc};

use crate::aws::{Aws, AwsArgs};
use crate::error::{AwsFailure, CliError, CliResult};
use crate::flags::parse_time_ms;
use crate::render::{self, Table};

#[derive(clap::Args)]
#[command(
    long_about = "Get archived events back: finds the export objects of the window through the \
    group's checkpoint in S3, reads them, and writes the events with from <= timestamp < to as JSON \
    lines ({\"stream\", \"timestamp\", \"message\"}) to stdout, or re-ingests them into a log group \
    with --into-group.\n\n\
    Re-ingestion follows the PutLogEvents rules: events older than 14 days, older than the target \
    group's retention or more than 2 h in the future are not sent; they are counted and reported \
    (get them as JSON lines instead). Re-ingestion is idempotent: events the target stream holds \
    already (same timestamp and message, counted) are not written again, so a restore can be run \
    twice or resumed after a failure."
)]
pub struct RestoreArgs {
    /// The archived log group.
    #[arg(long)]
    group: String,
    /// Only this stream (default: every stream).
    #[arg(long)]
    stream: Option<String>,
    /// Start of the window, included: RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31, midnight UTC).
    #[arg(long)]
    from: String,
    /// End of the window, excluded: RFC 3339 or a date.
    #[arg(long)]
    to: String,
    /// The archive bucket.
    #[arg(long, env = "CWL_ARCHIVER_BUCKET", value_name = "BUCKET")]
    bucket: String,
    /// The archiver's key prefix in the bucket.
    #[arg(long, default_value = archiver::domain::input::DEFAULT_PREFIX)]
    prefix: String,
    /// Re-ingest into this log group (it must exist) instead of printing.
    #[arg(long)]
    into_group: Option<String>,
    /// With --into-group: write every event into this stream (default: each event's own stream name).
    #[arg(long, requires = "into_group")]
    into_stream: Option<String>,
}

/// One event on stdout, fields in this order.
#[derive(serde::Serialize)]
struct Line<'a> {
    stream: &'a str,
    timestamp: i64,
    message: &'a str,
}

fn parse_time(flag: &str, text: &str) -> CliResult<i64> {
    parse_time_ms(flag, text)
}

/// The bucket exists (the library would read a missing bucket as "no checkpoint").
async fn check_bucket(aws: &Aws, bucket: &str) -> CliResult {
    match aws.s3().head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let f = AwsFailure::of("HeadBucket", &e);
            match f.status {
                Some(404) => Err(f.input(format!(
                    "--bucket {bucket}: NoSuchBucket: no bucket {bucket} in this account; check the name and --region"
                ))),
                Some(301) => Err(f.input(format!(
                    "--bucket {bucket}: the bucket is in another region than {}: give --region with the bucket's (and the archived group's) region",
                    aws.region
                ))),
                _ => Err(f.generic(&format!("bucket {bucket}"))),
            }
        }
    }
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

pub async fn run(args: RestoreArgs, aws: &AwsArgs) -> CliResult {
    let request = RestoreRequest {
        log_group_name: args.group.clone(),
        stream: args.stream.clone(),
        from_ms: parse_time("--from", &args.from)?,
        to_ms: parse_time("--to", &args.to)?,
        bucket: args.bucket.clone(),
        prefix: args.prefix.trim_matches('/').to_string(),
    };
    if request.from_ms >= request.to_ms {
        return Err(CliError::input("--from must be earlier than --to: the window is empty"));
    }
    let aws = aws.load().await?;
    check_bucket(&aws, &request.bucket).await?;
    let clients = aws.clients();
    let restored = restore_events(clients.archive.as_ref(), &request).await?;
    for (from, until) in &restored.uncovered {
        render::warn(&format!(
            "no export on record covers {} .. {}: those events were never archived (or are older than the checkpoint's history)",
            iso(*from),
            iso(*until)
        ));
    }
    eprintln!(
        "read {} event(s) of {} stream(s) from {} export object(s)",
        restored.events(),
        restored.streams.len(),
        restored.objects_read
    );
    let Some(into_group) = args.into_group else {
        let mut out = std::io::stdout().lock();
        for (stream, events) in &restored.streams {
            for e in events {
                let line = Line {
                    stream,
                    timestamp: e.timestamp,
                    message: &e.message,
                };
                let line = serde_json::to_string(&line).map_err(|e| CliError::failed(e.to_string()))?;
                writeln!(out, "{line}").map_err(|e| CliError::failed(format!("writing to stdout: {e}")))?;
            }
        }
        return Ok(());
    };
    let target = ReingestTarget {
        log_group_name: into_group,
        stream: args.into_stream,
        now_ms: Utc::now().timestamp_millis(),
    };
    let report = reingest(clients.logs.as_ref(), &restored, &target).await?;
    let mut table = Table::new(&[("stream", false), ("events written", true), ("already there", true)]);
    for (stream, n) in &report.written {
        let present = report.already_present.get(stream).copied().unwrap_or_default();
        table.row(vec![stream.clone(), n.to_string(), present.to_string()]);
    }
    anstream::print!("{}", table.render());
    println!(
        "re-ingested {} event(s) into {} in {} PutLogEvents call(s)",
        report.events_written(),
        target.log_group_name,
        report.batches
    );
    if report.events_already_present() > 0 {
        println!(
            "not re-ingested: {} event(s) the target holds already (same timestamp and message)",
            report.events_already_present()
        );
    }
    for r in &report.refused {
        println!(
            "not re-ingested: {} event(s) {} ({} .. {})",
            r.events,
            r.reason.describe(),
            iso(r.oldest_ms),
            iso(r.newest_ms)
        );
    }
    if report.events_refused() > 0 {
        render::warn(&format!(
            "{} event(s) were not re-ingested; run without --into-group to get them as JSON lines",
            report.events_refused()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(parse_time("--from", "1970-01-02").ok(), Some(86_400_000));
        assert_eq!(parse_time("--from", "1970-01-01T00:00:01.5Z").ok(), Some(1_500));
        assert!(matches!(parse_time("--to", "yesterday"), Err(e) if e.message.contains("--to")));
    }
}
