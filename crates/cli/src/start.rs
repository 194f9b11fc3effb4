//! `cwl-archiver start`: checks, then StartExecution of the archive state
//! machine under a name that is new for every start.

use std::io::{BufRead, IsTerminal};

use archiver::domain::input::{ExecutionInput, RunSettings, group_name_token};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::aws::{Aws, AwsArgs};
use crate::error::{AwsFailure, CliError, CliResult};
use crate::flags::{RunFlags, ShowFlags, is_destructive};
use crate::lease;
use crate::preflight::{self, StartCheck};
use crate::render;
use crate::watch;

#[derive(clap::Args)]
#[command(
    long_about = "Start an archive run of one log group: StartExecution of the archive state machine.\n\n\
    Before it starts anything, start checks that the group, the bucket (in the group's region, with a \
    policy that lets CloudWatch Logs write the export) and the state machine exist, that the mode suits \
    the group (data protection, retention), and that no other run of the group is in progress (the \
    group's lease, and running executions). A failed check exits 2 (3 for a run in progress) and names \
    the flag and the fix.\n\n\
    A destructive mode (rebuild, expired-only, retention) asks for confirmation on a terminal after \
    showing the plan's summary; --yes skips the question, and without a terminal --yes is required.\n\n\
    Every start gets its own execution name, {group}-{UTC time}-{random}, so a plan run, a corrected \
    command or a re-run after a failure never collide. Prints the execution ARN; --wait follows the run \
    as `watch` does."
)]
pub struct StartArgs {
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub exec: ExecFlags,
    /// Start a destructive mode without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Follow the execution (as `watch` does) and print its report.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub show: ShowFlags,
}

/// The execution input fields only a run uses (not a local plan).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExecFlags {
    /// The archive state machine.
    #[arg(long, env = "CWL_ARCHIVER_STATE_MACHINE_ARN", value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    /// Seconds between export polls (default 60).
    #[arg(long, value_name = "SECONDS")]
    pub poll_seconds: Option<i64>,
    /// Streams per Map item (default 50, 1 to 500).
    #[arg(long, value_name = "N")]
    pub streams_per_batch: Option<i64>,
    /// API pages one Lambda invocation handles before it hands back a continuation (default 2000).
    #[arg(long, value_name = "N")]
    pub invocation_pages: Option<i64>,
    /// Seconds of work per Lambda invocation before a continuation (default 600, at most 840).
    #[arg(long, value_name = "SECONDS")]
    pub invocation_seconds: Option<i64>,
    /// DeleteLogStream calls per second for the run (default 5, the account quota).
    #[arg(long, value_name = "N")]
    pub deletes_per_second: Option<i64>,
    /// Map items processed at once (default 4, 1 to 40).
    #[arg(long, value_name = "N")]
    pub map_concurrency: Option<i64>,
    /// When another run holds the group: end at once (end, the default) or wait for it (wait).
    #[arg(long, value_name = "WHAT", value_parser = ["end", "wait"])]
    pub if_busy: Option<String>,
}

/// The execution input of a start, checked locally with the rules the
/// state machine applies, and its JSON.
pub fn execution_input(run: &RunFlags, exec: &ExecFlags, now: DateTime<Utc>) -> CliResult<(RunSettings, Value)> {
    let cutoff = run.cutoff(now)?;
    let Some(bucket) = run.bucket.clone() else {
        return Err(CliError::input(
            "--bucket is required: the archive bucket, in the group's region (or set CWL_ARCHIVER_BUCKET)",
        ));
    };
    let input = ExecutionInput {
        log_group_name: Some(run.group.clone()),
        older_than_days: cutoff.days(),
        cutoff: cutoff.at(),
        bucket: Some(bucket),
        prefix: run.prefix.clone(),
        mode: Some(run.mode.clone()),
        quiet_minutes: run.quiet_minutes,
        poll_seconds: exec.poll_seconds,
        streams_per_batch: exec.streams_per_batch,
        replay_margin_hours: run.replay_margin_hours,
        invocation_pages: exec.invocation_pages,
        invocation_seconds: exec.invocation_seconds,
        deletes_per_second: exec.deletes_per_second,
        map_concurrency: exec.map_concurrency,
        if_busy: exec.if_busy.clone(),
        allow_masked_archive: run.allow_masked_archive.then_some(true),
        retention_slack_days: run.retention_slack_days,
        retention_conflict: run.retention_conflict.clone(),
        ..ExecutionInput::default()
    };
    let settings = input.validate(now)?;
    let mut body = serde_json::to_value(&input).map_err(|e| CliError::failed(format!("encoding the input: {e}")))?;
    if let Value::Object(map) = &mut body {
        map.retain(|_, v| !v.is_null());
    }
    Ok((settings, body))
}

/// `{group token tail, <= 40}-{YYYYMMDDTHHMMSSZ}-{4 hex}`: new for every
/// start, and it says which group and when.
pub fn execution_name(group: &str, now: DateTime<Utc>, random: u16) -> String {
    let token = group_name_token(group);
    let chars: Vec<char> = token.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(40)..].iter().collect();
    let tail = tail.trim_start_matches(['-', '_']);
    let tail = if tail.is_empty() { "group" } else { tail };
    format!("{tail}-{}-{random:04x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// 16 random bits from the standard library's randomly keyed hasher.
pub fn random_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() & 0xffff) as u16
}

/// Asks a yes/no question; only "y" or "yes" is a yes.
pub fn confirm(question: &str, input: &mut impl BufRead) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    if input.read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// The state machine ARN from the flag or the environment.
pub fn state_machine_arn(exec: &ExecFlags) -> CliResult<String> {
    exec.state_machine_arn.clone().ok_or_else(|| {
        CliError::input(
            "--state-machine-arn is required (or set CWL_ARCHIVER_STATE_MACHINE_ARN): the stack's ArchiveStateMachineArn output",
        )
    })
}

/// A running execution of the state machine for `group`, if any.
pub async fn running_execution(aws: &Aws, state_machine_arn: &str, group: &str) -> CliResult<Option<(String, String)>> {
    let sfn = aws.sfn();
    let mut next = None;
    loop {
        let page = sfn
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| AwsFailure::of("ListExecutions", &e).generic(&format!("state machine {state_machine_arn}")))?;
        // Few executions run at once (one per group, the parent one group at
        // a time): read each one's input rather than trust its name.
        for e in page.executions() {
            let d = sfn
                .describe_execution()
                .execution_arn(e.execution_arn())
                .send()
                .await
                .map_err(|err| AwsFailure::of("DescribeExecution", &err).generic(e.execution_arn()))?;
            let input: Value = d.input().and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
            if input["logGroupName"].as_str() == Some(group) {
                let since = DateTime::<Utc>::from_timestamp(e.start_date().secs(), 0)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                return Ok(Some((e.execution_arn().to_string(), since)));
            }
        }
        match page.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => return Ok(None),
        }
    }
}

pub async fn run(args: StartArgs, aws_args: &AwsArgs) -> CliResult {
    let now = Utc::now();
    // Local checks first: no AWS call for a typo.
    let (settings, body) = execution_input(&args.run, &args.exec, now)?;
    let state_machine_arn = state_machine_arn(&args.exec)?;
    let destructive = is_destructive(&args.run.mode);
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if destructive && !args.yes && !terminal {
        return Err(CliError::input(format!(
            "--yes is required: mode {} deletes from CloudWatch Logs and there is no terminal to ask on; run `cwl-archiver plan` first, then add --yes (or use --mode plan or export-only)",
            args.run.mode
        )));
    }
    let aws = aws_args.load().await?;
    let group = settings.log_group_name.as_str();
    let facts = preflight::check_start(
        &aws,
        &StartCheck {
            group,
            bucket: &settings.bucket,
            prefix: &settings.prefix,
            state_machine_arn: &state_machine_arn,
            mode: &args.run.mode,
            allow_masked_archive: args.run.allow_masked_archive,
            refuse_retention_conflict: args.run.retention_conflict.as_deref() == Some("refuse"),
            cutoff_ms: settings.cutoff_ms,
            now,
        },
    )
    .await?;

    // One run per group: the lease, and the executions running now.
    let waits = args.exec.if_busy.as_deref() == Some("wait");
    let key = lease::lease_key(&settings.prefix, group);
    let busy = match lease::read(&aws.s3(), &settings.bucket, &key).await? {
        Some(read) if read.lease.is_held(now) => Some(read.lease.describe_holder(group)),
        _ => running_execution(&aws, &state_machine_arn, group).await?.map(|(arn, since)| {
            format!(
                "a run of {group} is in progress: execution {arn} (since {since}); follow it with `cwl-archiver watch {arn}` or stop it with `cwl-archiver stop {arn}`"
            )
        }),
    };
    if let Some(busy) = busy {
        if !waits {
            return Err(CliError::busy(format!(
                "{busy}; nothing was started (--if-busy wait starts a run that waits for it)"
            )));
        }
        render::note(&format!("{busy}; this run waits for it (--if-busy wait)"));
    }

    if destructive && !args.yes {
        let summary = crate::plan::summary(&aws, &args.run, &settings, &facts).await?;
        render::note(&summary);
        let question = format!(
            "Start a {} run of {group} with cutoff {}?",
            args.run.mode,
            DateTime::<Utc>::from_timestamp_millis(settings.cutoff_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        );
        if !confirm(&question, &mut std::io::stdin().lock()) {
            return Err(CliError::input("not started: the question was not answered yes"));
        }
    }

    let sfn = aws.sfn();
    let mut attempt = 0;
    let arn = loop {
        let name = execution_name(group, Utc::now(), random_u16());
        match sfn
            .start_execution()
            .state_machine_arn(&state_machine_arn)
            .name(&name)
            .input(body.to_string())
            .send()
            .await
        {
            Ok(out) => break out.execution_arn().to_string(),
            Err(e) => {
                let f = AwsFailure::of("StartExecution", &e);
                // A random suffix makes this all but impossible; try once more.
                if f.code() == Some("ExecutionAlreadyExists") && attempt == 0 {
                    attempt += 1;
                    continue;
                }
                return Err(f.generic(&format!("state machine {state_machine_arn}")));
            }
        }
    };
    if !args.wait {
        println!("{arn}");
        render::note(&format!(
            "started; follow it with `cwl-archiver watch {arn}`, stop it with `cwl-archiver stop {arn}`"
        ));
        return Ok(());
    }
    render::note(&format!("started {arn}"));
    watch::follow_and_show(&aws, &arn, watch::DEFAULT_INTERVAL, &args.show).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        start: StartArgs,
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T10:37:12Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn names_are_unique_valid_and_name_the_group_and_time() {
        let name = execution_name("/aws/lambda/orders-api", now(), 0xbeef);
        assert_eq!(name, "aws-lambda-orders-api-20261124T103712Z-beef");
        let long = execution_name(&format!("/{}", "x".repeat(300)), now(), 1);
        assert!(long.len() <= 80, "{long}");
        assert!(long.starts_with(&"x".repeat(40)));
        for n in [name, long, execution_name("/-/", now(), 7)] {
            assert!(
                n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{n}"
            );
        }
        let a: Vec<u16> = (0..8).map(|_| random_u16()).collect();
        assert!(a.iter().any(|x| *x != a[0]), "{a:?}");
    }

    #[test]
    fn every_execution_input_field_is_reachable_from_start() {
        let cli = Cli::parse_from([
            "x",
            "--group",
            "/g",
            "--older-than",
            "36h",
            "--bucket",
            "bkt",
            "--prefix",
            "p",
            "--mode",
            "expired-only",
            "--quiet-minutes",
            "5",
            "--replay-margin-hours",
            "2",
            "--poll-seconds",
            "3",
            "--streams-per-batch",
            "4",
            "--invocation-pages",
            "6",
            "--invocation-seconds",
            "7",
            "--deletes-per-second",
            "8",
            "--map-concurrency",
            "9",
            "--if-busy",
            "wait",
            "--allow-masked-archive",
            "--retention-slack-days",
            "2",
            "--retention-conflict",
            "refuse",
        ]);
        let (_, body) = execution_input(&cli.start.run, &cli.start.exec, now()).unwrap();
        // Every field the library's input has (the state machine sets executionStartTime;
        // olderThanDays and cutoff are one or the other).
        let all = serde_json::to_value(ExecutionInput::default()).unwrap();
        for field in all.as_object().unwrap().keys() {
            if matches!(field.as_str(), "executionStartTime" | "executionName" | "olderThanDays") {
                continue;
            }
            assert!(body.get(field).is_some(), "{field} is not reachable from start: {body}");
        }
        assert_eq!(body["cutoff"], "2026-11-22T22:00:00Z");
        let days = Cli::parse_from(["x", "--group", "/g", "--older-than", "2w", "--bucket", "bkt"]);
        let (_, body) = execution_input(&days.start.run, &days.start.exec, now()).unwrap();
        assert_eq!(
            body,
            json!({"logGroupName": "/g", "olderThanDays": 14, "bucket": "bkt", "mode": "rebuild"})
        );
    }

    #[test]
    fn only_yes_confirms() {
        for (answer, yes) in [
            ("y\n", true),
            ("YES\n", true),
            ("\n", false),
            ("no\n", false),
            ("", false),
        ] {
            assert_eq!(confirm("?", &mut answer.as_bytes()), yes, "{answer:?}");
        }
    }
}
