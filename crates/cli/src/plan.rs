//! `cwl-archiver plan`: what a run would do, read-only.

use std::fmt::Write as _;
use std::io::IsTerminal;

use archiver::domain::input::RunSettings;
use archiver::domain::window::Checkpoint;
use archiver::operator::plan::{
    Amount, DEFAULT_CONCURRENCY, DEFAULT_READS_PER_SECOND, GroupPlan, PlanOptions, PlanProgress, PlanRequest, Prices,
    plan_group,
};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use crate::aws::{Aws, AwsArgs};
use crate::error::{CliError, CliResult};
use crate::flags::RunFlags;
use crate::lease::group_root;
use crate::preflight::{self, GroupFacts};
use crate::render::{Table, bytes, heading, usd};
use crate::report;

#[derive(clap::Args)]
#[command(
    long_about = "Show what an archive run started now would do to each stream of a log group, and what it \
        would cost and save. Reads only (DescribeLogGroups, DescribeLogStreams, GetLogEvents, and with \
        --bucket the group's checkpoint in S3); writes nothing.\n\n\
        Takes the same flags as `start`. With --bucket (or CWL_ARCHIVER_BUCKET) the group's checkpoint \
        is read: events earlier runs exported are not counted as to export again.\n\n\
        Classes: expired (every event older than the cutoff: deleted), mixed (rebuilt: the newer events \
        are replayed, which costs ingestion again), fresh/empty (untouched), skip (untouched, with the \
        reason). The events a rebuild replays are always counted by reading them (UTF-8 message bytes). \
        The events to export and delete are estimated (~) from the group's storedBytes, apportioned to \
        the streams by their time span (a stream's own storedBytes is always 0 on AWS), unless --exact \
        counts them by reading them too.\n\n\
        Streams are read --concurrency at a time, with at most --reads-per-second GetLogEvents calls \
        (the account's quota is 10 to 25 per second, shared with everything else in it)."
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub run: RunFlags,
    /// Count the events to export and delete by reading them (slower) instead of estimating.
    #[arg(long)]
    pub exact: bool,
    /// Streams read at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY as u64, value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// GetLogEvents calls per second, at most (the account's quota is 10 to 25).
    #[arg(long, default_value_t = DEFAULT_READS_PER_SECOND, value_name = "N")]
    pub reads_per_second: f64,
    /// Ingestion price, USD per GB: what a rebuild's replay costs.
    #[arg(long, default_value_t = archiver::operator::plan::DEFAULT_INGESTION_USD_PER_GB, value_name = "USD")]
    pub ingestion_price: f64,
    /// Storage price, USD per GB-month: what deleting archived events saves.
    #[arg(long, default_value_t = archiver::operator::plan::DEFAULT_STORAGE_USD_PER_GB_MONTH, value_name = "USD")]
    pub storage_price: f64,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The plan request of the shared run flags.
fn request(run: &RunFlags) -> CliResult<PlanRequest> {
    let cutoff = run.cutoff(Utc::now())?;
    Ok(PlanRequest {
        log_group_name: run.group.clone(),
        older_than_days: cutoff.days(),
        cutoff: cutoff.at(),
        mode: Some(run.mode.clone()),
        quiet_minutes: run.quiet_minutes,
        replay_margin_hours: run.replay_margin_hours,
        prefix: run.prefix.clone(),
        bucket: run.bucket.clone(),
    })
}

/// The group's checkpoint, if the bucket has one.
async fn checkpoint(aws: &Aws, settings: &RunSettings) -> CliResult<Option<Checkpoint>> {
    let key = format!(
        "{}/@checkpoint.json",
        group_root(&settings.prefix, &settings.log_group_name)
    );
    let Some(value) = report::get_json(&aws.s3(), &settings.bucket, &key).await? else {
        return Ok(None);
    };
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| CliError::failed(format!("s3://{}/{key} is not a checkpoint: {e}", settings.bucket)))
}

/// Plans with a progress bar on a terminal (stderr).
async fn make_plan(
    aws: &Aws,
    settings: &RunSettings,
    facts: &GroupFacts,
    with_bucket: bool,
    mut options: PlanOptions,
) -> CliResult<GroupPlan> {
    if with_bucket {
        options.checkpoint = checkpoint(aws, settings).await?;
    }
    options.group_stored_bytes = facts.stored_bytes.map(|b| b.max(0) as u64);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} planning [{bar:30}] {pos}/{len} streams, {elapsed} elapsed, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let progress = |p: PlanProgress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    };
    let plan = plan_group(aws.plan_clients().logs, settings, &options, &progress).await;
    bar.finish_and_clear();
    Ok(plan?)
}

/// The plan's summary, for `start`'s confirmation.
pub async fn summary(aws: &Aws, run: &RunFlags, settings: &RunSettings, facts: &GroupFacts) -> CliResult<String> {
    let mut settings = settings.clone();
    // Classify as the run would, whatever it writes.
    settings.bucket = run.bucket.clone().unwrap_or_default();
    let plan = make_plan(aws, &settings, facts, true, PlanOptions::default()).await?;
    let mut out = String::new();
    let t = &plan.totals;
    let classes: Vec<String> = t.streams.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let _ = writeln!(
        out,
        "plan of {} (mode {}, cutoff {}): {} stream(s): {}",
        plan.log_group_name,
        plan.mode,
        plan.cutoff,
        plan.streams.len(),
        classes.join(", ")
    );
    let deleted = plan.streams.iter().filter(|r| r.action == "delete").count();
    let rebuilt = plan.streams.iter().filter(|r| r.action == "rebuild").count();
    let _ = write!(
        out,
        "  deletes {deleted} stream(s), rebuilds {rebuilt} (replaying {} event(s), {} re-ingested, est. {}); `cwl-archiver plan` shows every stream",
        t.replay.events.unwrap_or_default(),
        bytes(t.reingested_bytes),
        usd(t.reingestion_usd)
    );
    Ok(out)
}

pub async fn run(args: PlanArgs, aws_args: &AwsArgs) -> CliResult {
    for (flag, value) in [
        ("--ingestion-price", args.ingestion_price),
        ("--storage-price", args.storage_price),
    ] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(CliError::input(format!("{flag} {value}: give a price of 0 or more")));
        }
    }
    if !(args.reads_per_second.is_finite() && args.reads_per_second > 0.0) {
        return Err(CliError::input(format!(
            "--reads-per-second {}: give a rate above 0 (the account's quota is 10 to 25)",
            args.reads_per_second
        )));
    }
    let settings = request(&args.run)?.settings(Utc::now())?;
    let aws = aws_args.load().await?;
    let Some(facts) = preflight::describe_group(&aws, &settings.log_group_name).await? else {
        return Err(preflight::missing_group(&settings.log_group_name, &aws.region));
    };
    let options = PlanOptions {
        exact: args.exact,
        prices: Prices {
            ingestion_usd_per_gb: args.ingestion_price,
            storage_usd_per_gb_month: args.storage_price,
        },
        concurrency: args.concurrency as usize,
        reads_per_second: args.reads_per_second,
        ..PlanOptions::default()
    };
    let plan = make_plan(&aws, &settings, &facts, args.run.bucket.is_some(), options).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::failed(e.to_string()))?;
        println!("{text}");
    } else {
        anstream::print!("{}", render(&plan));
    }
    Ok(())
}

fn events(a: &Amount) -> String {
    a.events.map_or_else(|| "?".into(), |n| n.to_string())
}

fn amount_bytes(a: &Amount) -> String {
    let text = bytes(a.bytes);
    if a.estimated { format!("~{text}") } else { text }
}

fn render(plan: &GroupPlan) -> String {
    let mut out = String::new();
    let retention = plan
        .retention_days
        .map_or_else(|| "no retention".to_string(), |d| format!("retention {d} days"));
    let _ = writeln!(
        out,
        "{}",
        heading(&format!(
            "plan for {} (mode {}, cutoff {}, {retention})",
            plan.log_group_name, plan.mode, plan.cutoff
        ))
    );
    let window = match (&plan.export_window, plan.checkpoint_read) {
        (None, _) => "nothing: the group's checkpoint already covers the cutoff".to_string(),
        (Some(w), true) if w.from_ms > 0 => format!(
            "events from {} (the group's checkpoint) to the cutoff",
            chrono::DateTime::<Utc>::from_timestamp_millis(w.from_ms)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ),
        (Some(_), true) => "every event older than the cutoff (the group has no checkpoint yet)".to_string(),
        (Some(_), false) => {
            "every event older than the cutoff (give --bucket to leave out what earlier runs exported)".to_string()
        }
    };
    let _ = writeln!(out, "export: {window}\n");
    let mut table = Table::new(&[
        ("stream", false),
        ("class", false),
        ("action", false),
        ("export ev", true),
        ("export", true),
        ("delete ev", true),
        ("delete", true),
        ("replay ev", true),
        ("replay", true),
        ("reason", false),
    ]);
    let mut add = |name: String, class: String, action: String, e: &Amount, d: &Amount, r: &Amount, why: String| {
        table.row(vec![
            name,
            class,
            action,
            events(e),
            amount_bytes(e),
            events(d),
            amount_bytes(d),
            events(r),
            amount_bytes(r),
            why,
        ]);
    };
    for row in &plan.streams {
        add(
            row.stream.clone(),
            row.class.clone(),
            row.action.clone(),
            &row.export,
            &row.delete,
            &row.replay,
            row.reason.clone().unwrap_or_default(),
        );
    }
    let t = &plan.totals;
    let classes: Vec<String> = t.streams.iter().map(|(c, n)| format!("{c} {n}")).collect();
    add(
        format!("total ({} streams)", plan.streams.len()),
        String::new(),
        String::new(),
        &t.export,
        &t.delete,
        &t.replay,
        classes.join(", "),
    );
    out.push_str(&table.render());
    let _ = writeln!(
        out,
        "\nre-ingestion of rebuilds: {} billed (message bytes + 26 per event), est. {} at {}/GB",
        bytes(t.reingested_bytes),
        usd(t.reingestion_usd),
        usd(plan.prices.ingestion_usd_per_gb)
    );
    let _ = writeln!(
        out,
        "storage saved:            {}{} removed, est. {} per month at {}/GB-month",
        if t.delete.estimated { "~" } else { "" },
        bytes(t.delete.bytes),
        usd(t.storage_saved_usd_per_month),
        usd(plan.prices.storage_usd_per_gb_month)
    );
    if plan.exact {
        let _ = writeln!(
            out,
            "bytes are UTF-8 message bytes of the events read; CloudWatch bills storage on compressed size, so the saving is an upper bound"
        );
    } else {
        let stored = plan.group_stored_bytes.map_or_else(|| "unknown".to_string(), bytes);
        let _ = writeln!(
            out,
            "replay: counted message bytes. ~ export and delete: the group's storedBytes ({stored}, DescribeLogGroups) apportioned to the streams by their time span; ? not counted: --exact counts them"
        );
    }
    let r = &plan.recommendation;
    let _ = writeln!(out, "recommended mode:         {}: {}", r.mode, r.reason);
    if !r.rebuild_cannot_serve.is_empty() {
        let _ = writeln!(
            out,
            "rebuild cannot serve:     {} (kept events older than 14 days cannot be replayed)",
            r.rebuild_cannot_serve.join(", ")
        );
    }
    out
}
