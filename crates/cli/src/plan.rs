//! `cwl-archiver plan`: what a run would do, read-only.

use std::fmt::Write as _;

use archiver::operator::plan::{Amount, GroupPlan, PlanRequest, Prices, plan_group};
use chrono::Utc;

use crate::aws::AwsArgs;
use crate::render::{Table, bytes, heading, usd};
use crate::{CliError, CliResult};

#[derive(clap::Args)]
#[command(
    long_about = "Show what an archive run started now would do to each stream of a log group, and what it \
        would cost and save. Reads CloudWatch Logs only (DescribeLogGroups, DescribeLogStreams, \
        GetLogEvents); writes nothing.\n\n\
        Classes: expired (every event older than the cutoff: deleted), mixed (rebuilt: the newer events \
        are replayed, which costs ingestion again), fresh/empty (untouched), skip (untouched, with the \
        reason). The events a rebuild replays are always counted by reading them; the events to export \
        and delete are estimated from storedBytes (marked ~) unless --exact reads them too."
)]
pub struct PlanArgs {
    #[command(flatten)]
    target: GroupCutoff,
    /// Streams that received events this recently are skipped (default 60).
    #[arg(long)]
    quiet_minutes: Option<i64>,
    /// Count the events to export and delete by reading them (slower) instead of estimating.
    #[arg(long)]
    exact: bool,
    /// Ingestion price, USD per GB: what a rebuild's replay costs.
    #[arg(long, default_value_t = archiver::operator::plan::DEFAULT_INGESTION_USD_PER_GB, value_name = "USD")]
    ingestion_price: f64,
    /// Storage price, USD per GB-month: what deleting archived events saves.
    #[arg(long, default_value_t = archiver::operator::plan::DEFAULT_STORAGE_USD_PER_GB_MONTH, value_name = "USD")]
    storage_price: f64,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

/// The group and the cutoff, as `plan` and `start` take them.
#[derive(clap::Args)]
pub struct GroupCutoff {
    /// The log group.
    #[arg(long)]
    pub group: String,
    /// Archive events older than this, in days: `30` or `30d`.
    #[arg(long, conflicts_with = "cutoff", required_unless_present = "cutoff")]
    pub older_than: Option<String>,
    /// Or an explicit RFC 3339 cutoff, at least 12 h in the past.
    #[arg(long)]
    pub cutoff: Option<String>,
}

impl GroupCutoff {
    /// `--older-than` in days, if given.
    pub fn older_than_days(&self) -> CliResult<Option<i64>> {
        self.older_than.as_deref().map(parse_days).transpose()
    }
}

/// `30` or `30d` as whole days.
pub fn parse_days(text: &str) -> CliResult<i64> {
    text.trim_end_matches('d')
        .parse::<i64>()
        .map_err(|_| CliError::Input(format!("--older-than {text:?}: give whole days, e.g. 30 or 30d")))
}

pub async fn run(args: PlanArgs, aws: &AwsArgs) -> CliResult {
    for (flag, price) in [
        ("--ingestion-price", args.ingestion_price),
        ("--storage-price", args.storage_price),
    ] {
        if !(price.is_finite() && price >= 0.0) {
            return Err(CliError::Input(format!("{flag} {price}: give a price of 0 or more")));
        }
    }
    let request = PlanRequest {
        log_group_name: args.target.group.clone(),
        older_than_days: args.target.older_than_days()?,
        cutoff: args.target.cutoff.clone(),
        quiet_minutes: args.quiet_minutes,
        exact: args.exact,
        prices: Prices {
            ingestion_usd_per_gb: args.ingestion_price,
            storage_usd_per_gb_month: args.storage_price,
        },
    };
    let settings = request.settings(Utc::now())?;
    let clients = aws.clients().await;
    let plan = plan_group(clients.logs.as_ref(), &settings, request.exact, request.prices).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&plan).map_err(|e| CliError::Failed(e.to_string()))?;
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
        "{}\n",
        heading(&format!(
            "plan for {} (cutoff {}, {retention})",
            plan.log_group_name, plan.cutoff
        ))
    );
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
        "\nre-ingestion of rebuilds: {} billed, est. {} at {}/GB",
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
    if t.export.estimated {
        let _ = writeln!(
            out,
            "~ estimated from DescribeLogStreams storedBytes, ? not counted: run with --exact to count by reading the events"
        );
    } else {
        let _ = writeln!(
            out,
            "bytes are message bytes; CloudWatch bills storage on compressed size, so the saving is an upper bound"
        );
    }
    out
}
