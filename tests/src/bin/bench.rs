//! Scripted benchmarks against the local emulator (`make bench`):
//!
//! - `bench rebuild --events N...`: one mixed stream with N kept events,
//!   scanned and rebuilt by the workflow steps in a child process (so its
//!   peak RSS is the handlers' own); API calls against the theoretical
//!   minimum, peak RSS, wall time.
//! - `bench group --streams S...`: a group of S streams (nine in ten
//!   expired) archived by the real state machine; state transitions, history
//!   events and the largest state payload, from the execution history.
//! - `bench limits-group --streams S --quota-scale Q`: the same through the
//!   archive state machine with the CloudWatch Logs quotas on (every quota
//!   times Q) and AWS's Step Functions limits, measured against them.
//! - `bench limits-parent --groups G --quota-scale Q`: an account of G tiny
//!   groups through the account-wide state machine, measured the same way.

use std::time::{Duration, Instant};

use archiver::domain::batch::pack_batches;
use archiver::domain::event::LogEvent;
use archiver::workflow::local::run_map_item;
use archiver::workflow::{Clients, ExportState, ManifestBatch, RunState, StartRequest, check_export, start_export};
use clap::{Parser, Subcommand};
use cwl_archiver_e2e::emulator::{Emulator, EmulatorOptions};
use cwl_archiver_e2e::scenario::{DAY, HOUR, cutoff_days_ago, events_in, execution_history};
use cwl_archiver_e2e::stack::{Stack, product_clients};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Parser)]
#[command(about = "cwl-archiver benchmarks against the local emulator")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rebuild one mixed stream of N kept events, for each N.
    Rebuild {
        #[arg(long, num_args = 1.., default_values_t = [100_000u64, 1_000_000])]
        events: Vec<u64>,
    },
    /// Archive a group of S streams through the state machine, for each S.
    Group {
        #[arg(long, num_args = 1.., default_values_t = [2_000u64, 20_000])]
        streams: Vec<u64>,
    },
    /// A group of S streams through the archive state machine with the quotas on, against AWS's limits.
    LimitsGroup {
        #[arg(long, default_value_t = 100_000)]
        streams: u64,
        /// Every CloudWatch Logs quota times this (1 is AWS's).
        #[arg(long, default_value_t = 1.0)]
        quota_scale: f64,
        /// The cutoff, in days before now.
        #[arg(long, default_value_t = 3)]
        cutoff_days: i64,
        /// The run's mode.
        #[arg(long, default_value = "rebuild")]
        mode: String,
    },
    /// An account of G groups through the account-wide state machine with the quotas on, against AWS's limits.
    LimitsParent {
        #[arg(long, default_value_t = 5_000)]
        groups: u64,
        /// Every CloudWatch Logs quota times this (1 is AWS's).
        #[arg(long, default_value_t = 1.0)]
        quota_scale: f64,
    },
    /// (internal) run the scan and rebuild of one Map item and report.
    Handler {
        #[arg(long)]
        state: std::path::PathBuf,
    },
}

const BUCKET: &str = "bench-archive";
/// GetLogEvents page limits, for the theoretical minimum.
const PAGE_EVENTS: u64 = 10_000;
const PAGE_BYTES: u64 = 1_048_576;

/// What the parent hands the handler process.
#[derive(Serialize, Deserialize)]
struct HandlerInput {
    run: RunState,
    batch: ManifestBatch,
}

/// What the handler process reports.
#[derive(Serialize, Deserialize, Debug)]
struct HandlerReport {
    scan_invocations: u32,
    rebuild_invocations: u32,
    failed: u64,
    wall_ms: u128,
    peak_rss_kib: u64,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    match Args::parse().command {
        Command::Rebuild { events } => {
            println!(
                "| kept events | GetLogEvents | PutLogEvents | minimum (read+put+verify) | ratio | ratio without verify | invocations | peak RSS | wall |"
            );
            println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for n in events {
                rebuild(n).await?;
            }
        }
        Command::Group { streams } => {
            println!(
                "| streams | expired | mixed | state transitions (execution + Map items) | per stream | history events (execution) | largest state payload | wall |"
            );
            println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
            for s in streams {
                group(s).await?;
            }
        }
        Command::LimitsGroup {
            streams,
            quota_scale,
            cutoff_days,
            mode,
        } => limits::group(streams, quota_scale, cutoff_days, &mode).await?,
        Command::LimitsParent { groups, quota_scale } => limits::parent(groups, quota_scale).await?,
        Command::Handler { state } => handler(&state).await?,
    }
    Ok(())
}

/// A log line of about 150 bytes.
fn message(i: u64) -> String {
    format!(
        "2026-11-20T10:{:02}:{:02}.{:03}Z INFO [req-{i:08x}] GET /api/orders/{} 200 {}ms user={} region=eu-west-1",
        (i / 60) % 60,
        i % 60,
        i % 1000,
        i % 9973,
        i % 250,
        i % 4099
    )
}

/// GetLogEvents pages a forward read of `events` takes at the least.
fn minimum_pages(events: &[LogEvent]) -> u64 {
    let (mut pages, mut count, mut bytes) = (0u64, 0u64, 0u64);
    for e in events {
        let size = e.message.len() as u64 + 26;
        if count == 0 || count == PAGE_EVENTS || bytes + size > PAGE_BYTES {
            pages += 1;
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += size;
    }
    pages.max(1)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn rebuild(n: u64) -> Result<(), String> {
    let group = "/bench/rebuild";
    let emulator = Emulator::start(EmulatorOptions {
        lambda_endpoint: None,
        export_delay_seconds: 0.2,
    })
    .await
    .map_err(err)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(3);
    // Kept events from the cutoff to two hours ago, a few ms apart.
    let span = (now - 2 * HOUR - cutoff_ms).max(1);
    let kept: Vec<LogEvent> = (0..n)
        .map(|i| LogEvent::new(cutoff_ms + (i as i64 * span) / n.max(1) as i64, message(i)))
        .collect();
    let old: Vec<(i64, String)> = (0..10u64).map(|i| (cutoff_ms - DAY + i as i64, message(i))).collect();
    emulator
        .seed_with_ingestion(group, "mixed", &old, now - 3 * HOUR)
        .await
        .map_err(err)?;
    for chunk in kept.chunks(50_000) {
        let chunk: Vec<(i64, String)> = chunk.iter().map(|e| (e.timestamp, e.message.clone())).collect();
        emulator
            .seed_with_ingestion(group, "mixed", &chunk, now - 3 * HOUR)
            .await
            .map_err(err)?;
    }
    create_bucket(&emulator).await?;
    let clients = product_clients(&emulator);
    let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1});
    let (run, batch) = exported(input, &clients).await?;

    emulator.reset_calls().await.map_err(err)?;
    let state = std::env::temp_dir().join(format!("cwl-archiver-bench-{n}.json"));
    let handoff = HandlerInput { run, batch };
    std::fs::write(&state, serde_json::to_vec(&handoff).map_err(err)?).map_err(err)?;
    let exe = std::env::current_exe().map_err(err)?;
    // The child configures itself as a Lambda does: from the environment.
    let out = std::process::Command::new(exe)
        .args(["handler", "--state"])
        .arg(&state)
        .env("AWS_ENDPOINT_URL", emulator.endpoint())
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_REGION", "us-east-1")
        // As infra/template.yaml configures scan-stream and rebuild-stream.
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!("handler failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let report: HandlerReport = serde_json::from_slice(&out.stdout).map_err(err)?;
    let calls = emulator.calls().await.map_err(err)?;
    let gets = calls.get("logs.GetLogEvents").copied().unwrap_or(0);
    let puts = calls.get("logs.PutLogEvents").copied().unwrap_or(0);

    // The outcome, checked: every kept event is in the rebuilt stream.
    let rebuilt = events_in(&product_clients(&emulator), group, "mixed")
        .await
        .map_or(0, |events| events.len() as u64);
    if report.failed != 0 || rebuilt != n {
        return Err(format!("rebuild of {n} events ended with {rebuilt} events, {report:?}"));
    }
    let read = minimum_pages(&kept);
    let batches = pack_batches(&kept).map_err(err)?.len() as u64;
    let minimum = 2 * read + batches;
    println!(
        "| {n} | {gets} | {puts} | {minimum} ({read}+{batches}+{read}) | {:.3} | {:.3} | {} scan + {} rebuild | {:.1} MiB | {:.1} s |",
        (gets + puts) as f64 / minimum as f64,
        (gets + puts).saturating_sub(read) as f64 / (read + batches) as f64,
        report.scan_invocations,
        report.rebuild_invocations,
        report.peak_rss_kib as f64 / 1024.0,
        report.wall_ms as f64 / 1000.0,
    );
    Ok(())
}

async fn create_bucket(emulator: &Emulator) -> Result<(), String> {
    let created = emulator.s3().create_bucket().bucket(BUCKET).send().await;
    created
        .map(|_| ())
        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))
}

/// Starts the run and polls the export until the manifest is written.
async fn exported(input: serde_json::Value, clients: &Clients) -> Result<(RunState, ManifestBatch), String> {
    let request = StartRequest {
        input,
        execution_start_time: None,
        execution_id: None,
        execution_name: Some(format!("bench-{}", chrono::Utc::now().timestamp_millis())),
    };
    let mut run = start_export(request, clients).await.map_err(err)?;
    let manifest = loop {
        run = check_export(run, clients).await.map_err(err)?;
        if let ExportState::Ready { manifest, .. } = &run.export {
            break manifest.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let body = clients
        .archive
        .get(&manifest.bucket, &manifest.key)
        .await
        .map_err(err)?
        .ok_or("no manifest")?;
    let mut batches: Vec<ManifestBatch> = serde_json::from_slice(&body).map_err(err)?;
    if batches.len() != 1 {
        return Err(format!("expected one Map item, got {}", batches.len()));
    }
    Ok((run, batches.remove(0)))
}

/// The handler process: the product's configuration from the environment,
/// the two steps looped as the state machine loops them.
async fn handler(state: &std::path::Path) -> Result<(), String> {
    let input: HandlerInput = serde_json::from_slice(&std::fs::read(state).map_err(err)?).map_err(err)?;
    let clients = Clients::from_env().await;
    let started = Instant::now();
    let item = run_map_item(&input.run, input.batch, &clients).await.map_err(err)?;
    let report = HandlerReport {
        scan_invocations: item.scan_invocations,
        rebuild_invocations: item.rebuild_invocations,
        failed: item.summary.failed,
        wall_ms: started.elapsed().as_millis(),
        peak_rss_kib: peak_rss_kib(),
    };
    println!("{}", serde_json::to_string(&report).map_err(err)?);
    Ok(())
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn group(streams: u64) -> Result<(), String> {
    let group = "/bench/group";
    let stack = Stack::start(0.2).await.map_err(err)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (cutoff_ms, cutoff) = cutoff_days_ago(3);
    let mixed_every = 10;
    for s in 0..streams {
        let name = format!("2026/11/{:02}/[$LATEST]{s:06x}", 1 + s % 28);
        let mut events: Vec<(i64, String)> = (0..5)
            .map(|i| (cutoff_ms - DAY + i, message(s * 10 + i as u64)))
            .collect();
        if s % mixed_every == 0 {
            events.extend((0..5).map(|i| (cutoff_ms + HOUR + i, message(s * 10 + 5 + i as u64))));
        }
        stack
            .emulator
            .seed_with_ingestion(group, &name, &events, now - 3 * HOUR)
            .await
            .map_err(err)?;
    }
    create_bucket(&stack.emulator).await?;
    // The state machine's own cost: the quotas off (`limits-group` runs with
    // them on); pacing at AWS's 5 TPS would only measure the pacing.
    stack.emulator.set_quotas_enabled(false).await.map_err(err)?;
    let input =
        json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1, "deletesPerSecond": 1000});
    let started = Instant::now();
    let name = format!("bench-{streams}");
    let run = stack.run(&name, &input, Duration::from_secs(3600)).await.map_err(err)?;
    let wall = started.elapsed();
    if run.status != "SUCCEEDED" {
        return Err(format!("{run:?}"));
    }
    let (events, parent_transitions, largest) = history(&stack, &name).await?;
    // The engine keeps no history of the Distributed Map's child executions;
    // their transitions follow from the invocations: each is a Task and a
    // Choice (ScanDone?, RebuildDone?), and each item ends in a Succeed.
    let interposer = &stack.interposer;
    let scans = interposer.invocations("scan-stream");
    let rebuilds = interposer.invocations("rebuild-stream");
    let items = streams.div_ceil(archiver::domain::input::DEFAULT_STREAMS_PER_BATCH as u64);
    let transitions = parent_transitions + 2 * (scans + rebuilds) + items;
    let largest = largest.max(interposer.largest_payload());
    let mixed = streams.div_ceil(mixed_every);
    println!(
        "| {streams} | {} | {mixed} | {transitions} ({parent_transitions} + {items} items) | {:.3} | {events} | {:.1} KiB | {:.0} s |",
        streams - mixed,
        transitions as f64 / streams as f64,
        largest as f64 / 1024.0,
        wall.as_secs_f64()
    );
    Ok(())
}

/// History events, state transitions (states entered) and the largest
/// state input or output of an execution, in bytes.
async fn history(stack: &Stack, name: &str) -> Result<(u64, u64, usize), String> {
    let events = execution_history(stack, name).await;
    let transitions = events
        .iter()
        .filter(|e| e.state_entered_event_details().is_some())
        .count();
    let largest = events
        .iter()
        .map(|e| {
            let input = e
                .state_entered_event_details()
                .and_then(|d| d.input())
                .map_or(0, str::len);
            let output = e
                .state_exited_event_details()
                .and_then(|d| d.output())
                .map_or(0, str::len);
            input.max(output)
        })
        .max()
        .unwrap_or(0);
    Ok((events.len() as u64, transitions as u64, largest))
}

/// The benchmarks on AWS's limits: through the real state machines, with
/// the CloudWatch Logs quotas on (scaled) and Step Functions' 256 KiB and
/// 25,000-event limits enforced by the emulator.
mod limits {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use cwl_archiver_e2e::limits::{
        ExecutionFigures, PARENT_CHILD_EVENTS, all_figures, archive_item_events, execution_figures,
    };
    use cwl_archiver_e2e::scenario::{DAY, HOUR, cutoff_days_ago};
    use cwl_archiver_e2e::stack::Stack;
    use serde_json::json;

    use super::{BUCKET, create_bucket, err, message};

    /// AWS's DeleteLogStream quota, the floor of any archive run.
    const DELETE_QUOTA: f64 = 5.0;
    const TIMEOUT: Duration = Duration::from_secs(12 * 3600);

    /// A stream to seed: group, stream, events.
    type Seeded = (String, String, Vec<(i64, String)>);

    /// The commit the figures are measured at.
    fn commit() -> String {
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// One stream's events: three a day before the cutoff; a mixed stream
    /// keeps two of them and gets two an hour after it.
    fn stream_events(id: u64, mixed: bool, cutoff_ms: i64) -> Vec<(i64, String)> {
        let mut events: Vec<(i64, String)> = (0..3)
            .map(|i| (cutoff_ms - DAY + i, message(id * 10 + i as u64)))
            .collect();
        if mixed {
            events.truncate(2);
            events.extend((0..2).map(|i| (cutoff_ms + HOUR + i, message(id * 10 + 5 + i as u64))));
        }
        events
    }

    /// Seeds `(group, stream, events)`, four requests in flight.
    async fn seed_all(stack: &Stack, streams: Vec<Seeded>) -> Result<(), String> {
        let ingested = chrono::Utc::now().timestamp_millis() - 3 * HOUR;
        let total = streams.len();
        let started = Instant::now();
        let mut slices: [Vec<Seeded>; 4] = Default::default();
        for (i, item) in streams.into_iter().enumerate() {
            slices[i % 4].push(item);
        }
        let seed = |slice: Vec<Seeded>, report: bool| async move {
            for (i, (group, stream, events)) in slice.into_iter().enumerate() {
                stack
                    .emulator
                    .seed_with_ingestion(&group, &stream, &events, ingested)
                    .await
                    .map_err(err)?;
                if report && i % 2_500 == 2_499 {
                    eprintln!(
                        "seeded about {} of {total} streams ({:.0} s)",
                        4 * (i + 1),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok::<(), String>(())
        };
        let [a, b, c, d] = slices;
        let (a, b, c, d) = tokio::join!(seed(a, true), seed(b, false), seed(c, false), seed(d, false));
        a.and(b).and(c).and(d)
    }

    /// The DeleteLogStream calls' rate while they ran: deletes after the
    /// first one ÷ the time from the first to the last.
    fn delete_rate(stack: &Stack) -> (u64, f64) {
        let deletes: Vec<Instant> = stack
            .interposer
            .timeline()
            .into_iter()
            .filter(|c| c.operation == "DeleteLogStream")
            .map(|c| c.answered)
            .collect();
        let n = deletes.len() as u64;
        let (Some(first), Some(last)) = (deletes.iter().min(), deletes.iter().max()) else {
            return (0, 0.0);
        };
        let span = last.duration_since(*first).as_secs_f64();
        (n, if span > 0.0 { (n - 1) as f64 / span } else { 0.0 })
    }

    /// The strict per-account quotas (tests/emulator/RULES.md) of the
    /// CloudWatch Logs operations a run makes, in calls per second.
    const QUOTAS: [(&str, f64); 8] = [
        ("logs.DeleteLogStream", 5.0),
        ("logs.DescribeLogStreams", 5.0),
        ("logs.GetLogEvents", 10.0),
        ("logs.CreateLogStream", 50.0),
        ("logs.PutLogEvents", 5000.0),
        ("logs.DescribeLogGroups", 5.0),
        ("logs.CreateExportTask", 5.0),
        ("logs.DescribeExportTasks", 5.0),
    ];

    /// The operation whose calls take longest at its quota: no run with
    /// these calls can be faster, whatever DeleteLogStream allows.
    struct Busiest {
        operation: String,
        calls: u64,
        rate: f64,
    }

    impl Busiest {
        fn seconds(&self) -> f64 {
            self.calls as f64 / self.rate
        }

        /// The table row, with the wall time as a multiple of that floor.
        fn row(&self, wall: f64) -> String {
            let seconds = self.seconds();
            format!(
                "| busiest quota | {}: {} calls ÷ {:.0}/s = {seconds:.0} s; wall ÷ that {:.2} |\n",
                self.operation,
                self.calls,
                self.rate,
                wall / seconds.max(f64::MIN_POSITIVE)
            )
        }
    }

    async fn busiest_quota(stack: &Stack, scale: f64) -> Result<Busiest, String> {
        let calls = stack.emulator.calls().await.map_err(err)?;
        let busiest = QUOTAS
            .iter()
            .map(|(op, tps)| Busiest {
                operation: op.to_string(),
                calls: calls.get(*op).copied().unwrap_or(0),
                rate: tps * scale,
            })
            .max_by(|a, b| a.seconds().total_cmp(&b.seconds()));
        busiest.ok_or_else(|| "no quota to compare with".to_string())
    }

    /// Calls per operation (the emulator's count, throttled ones included) and
    /// the throttled ones, as table rows with the count per stream.
    async fn calls_table(stack: &Stack, streams: u64) -> Result<String, String> {
        let calls = stack.emulator.calls().await.map_err(err)?;
        let throttled = stack.emulator.throttled().await.map_err(err)?;
        let mut out = String::from("| operation | calls | per stream | throttled |\n| --- | ---: | ---: | ---: |\n");
        // Step Functions calls other than StartExecution are the harness's
        // polling (every 250 ms) and the emulator's own `.sync` polling.
        for (op, n) in calls
            .iter()
            .filter(|(op, _)| !op.starts_with("states.") || op.as_str() == "states.StartExecution")
        {
            out.push_str(&format!(
                "| {op} | {n} | {:.3} | {} |\n",
                *n as f64 / streams as f64,
                throttled.get(op).copied().unwrap_or(0)
            ));
        }
        Ok(out)
    }

    fn stats(figures: &[ExecutionFigures]) -> (u64, f64, u64, usize) {
        let events: Vec<u64> = figures.iter().map(|f| f.events).collect();
        let max = events.iter().copied().max().unwrap_or(0);
        let mean = events.iter().sum::<u64>() as f64 / events.len().max(1) as f64;
        let transitions = figures.iter().map(|f| f.transitions).sum();
        let largest = figures.iter().map(|f| f.largest_payload).max().unwrap_or(0);
        (max, mean, transitions, largest)
    }

    fn scaled_quotas(scale: f64) -> String {
        format!(
            "DeleteLogStream {:.0}/s, DescribeLogStreams {:.0}/s, GetLogEvents {:.0}/s, CreateLogStream {:.0}/s, DescribeLogGroups {:.0}/s, CreateExportTask and DescribeExportTasks {:.0}/s",
            5.0 * scale,
            5.0 * scale,
            10.0 * scale,
            50.0 * scale,
            5.0 * scale,
            5.0 * scale
        )
    }

    /// A group of `streams` streams (nine in ten expired) through the archive state machine.
    pub async fn group(streams: u64, scale: f64, cutoff_days: i64, mode: &str) -> Result<(), String> {
        let group = "/bench/limits";
        let stack = Stack::start(0.2).await.map_err(err)?;
        stack.emulator.set_quota_scale(scale).await.map_err(err)?;
        // By default a cutoff 3 days ago, as the other benchmarks: a rebuild
        // replays kept events (PutLogEvents takes none older than 14 days),
        // and the read before each delete also proves the day before the
        // cutoff archived (the export is minutes old; docs/safety.md, I4).
        let (cutoff_ms, cutoff) = cutoff_days_ago(cutoff_days);
        let mixed_every = 10;
        let seeded: Vec<Seeded> = (0..streams)
            .map(|s| {
                let name = format!("2026/11/{:02}/[$LATEST]{s:06x}", 1 + s % 28);
                (
                    group.to_string(),
                    name,
                    stream_events(s, s % mixed_every == 0, cutoff_ms),
                )
            })
            .collect();
        seed_all(&stack, seeded).await?;
        create_bucket(&stack.emulator).await?;
        stack.emulator.reset_calls().await.map_err(err)?;
        stack.emulator.reset_throttled().await.map_err(err)?;
        stack.interposer.clear();
        let deletes_per_second = (DELETE_QUOTA * scale).round().max(1.0) as i64;
        let input = json!({"logGroupName": group, "cutoff": cutoff, "bucket": BUCKET, "pollSeconds": 1,
            "deletesPerSecond": deletes_per_second, "mode": mode});
        eprintln!(
            "archiving {streams} streams, quotas x{scale}, deletesPerSecond {deletes_per_second}, mode {mode}, cutoff {cutoff}"
        );
        let started = Instant::now();
        let run = stack.run("limits-group", &input, TIMEOUT).await.map_err(err)?;
        let wall = started.elapsed().as_secs_f64();
        if run.status != "SUCCEEDED" {
            return Err(format!("{run:?}"));
        }
        let calls = calls_table(&stack, streams).await?;
        let busiest = busiest_quota(&stack, scale).await?;
        let output = run.output.unwrap_or_default();
        let figures = all_figures(&stack, &stack.state_machine_arn).await.map_err(err)?;
        let execution = figures.first().cloned().unwrap_or_default();
        let scans = stack.interposer.invocations("scan-stream");
        let rebuilds = stack.interposer.invocations("rebuild-stream");
        let items = streams.div_ceil(archiver::domain::input::DEFAULT_STREAMS_PER_BATCH as u64);
        let child_transitions = 2 * (scans + rebuilds) + items;
        let transitions = execution.transitions + child_transitions;
        let lambda = stack.interposer.largest_payload();
        let (deletes, rate) = delete_rate(&stack);
        let quota = DELETE_QUOTA * scale;
        let floor = deletes as f64 / quota;
        let mixed = streams.div_ceil(mixed_every);
        println!(
            "### limits-group: {streams} streams, mode {mode}, cutoff {cutoff_days} days ago, measured at {}\n",
            commit()
        );
        println!("| figure | value |\n| --- | --- |");
        println!(
            "| streams (expired, mixed) | {streams} ({}, {mixed}) |",
            streams - mixed
        );
        println!("| outcome | {} |", output["totals"]["streams"]);
        println!("| quota scale | {scale} ({}) |", scaled_quotas(scale));
        println!("| Map items (streamsPerBatch 50) | {items} |");
        println!(
            "| largest state payload (execution history) | {} B |",
            execution.largest_payload
        );
        println!("| largest Lambda payload | {lambda} B |");
        println!("| history events, archive execution | {} |", execution.events);
        println!(
            "| history events, each Map child (derived from {} invocations over {items} items) | {} |",
            scans + rebuilds,
            archive_item_events((scans + rebuilds).div_ceil(items))
        );
        println!(
            "| state transitions | {transitions} ({} execution + {child_transitions} Map children), {:.3} per stream |",
            execution.transitions,
            transitions as f64 / streams as f64
        );
        println!(
            "| DeleteLogStream | {deletes} calls at {rate:.2}/s; ÷ quota {quota:.0}/s = {:.3} |",
            rate / quota
        );
        println!(
            "| wall | {wall:.0} s: {:.0} s to the Map Run (export, listing the streams), {:.0} s in it (scan, delete, rebuild), {:.0} s after (report) |",
            execution.before_map, execution.map_run, execution.after_map
        );
        println!("| quota floor (deletes ÷ DeleteLogStream quota) | {floor:.0} s |");
        println!(
            "| wall ÷ floor (goal 1.1) | {:.2}; the Map Run alone {:.2} |",
            wall / floor.max(f64::MIN_POSITIVE),
            execution.map_run / floor.max(f64::MIN_POSITIVE)
        );
        println!("{}", busiest.row(wall));
        println!("{calls}");
        Ok(())
    }

    /// An account of `groups` groups of two streams (one expired, one mixed)
    /// through the account-wide state machine.
    pub async fn parent(groups: u64, scale: f64) -> Result<(), String> {
        let stack = Stack::start(0.0).await.map_err(err)?;
        stack.emulator.set_quota_scale(scale).await.map_err(err)?;
        let (cutoff_ms, cutoff) = cutoff_days_ago(3);
        let seeded: Vec<Seeded> = (0..groups)
            .flat_map(|g| {
                let group = format!("/bench/account/g{g:05}");
                [
                    (
                        group.clone(),
                        "expired".to_string(),
                        stream_events(2 * g, false, cutoff_ms),
                    ),
                    (group, "mixed".to_string(), stream_events(2 * g + 1, true, cutoff_ms)),
                ]
            })
            .collect();
        seed_all(&stack, seeded).await?;
        create_bucket(&stack.emulator).await?;
        let parent = stack.deploy_parent(BUCKET, |ctx| ctx).await.map_err(err)?;
        stack.emulator.reset_calls().await.map_err(err)?;
        stack.emulator.reset_throttled().await.map_err(err)?;
        stack.interposer.clear();
        let deletes_per_second = (DELETE_QUOTA * scale).round().max(1.0) as i64;
        let input = json!({"logGroupNamePrefix": "/bench/account/",
            "archive": {"cutoff": cutoff, "pollSeconds": 1, "deletesPerSecond": deletes_per_second}});
        eprintln!("archiving {groups} groups, quotas x{scale}");
        let started = Instant::now();
        let run = stack
            .run_on(&parent, "limits-parent", &input, TIMEOUT)
            .await
            .map_err(err)?;
        let wall = started.elapsed().as_secs_f64();
        if run.status != "SUCCEEDED" {
            return Err(format!("{run:?}"));
        }
        let streams = 2 * groups;
        let calls = calls_table(&stack, streams).await?;
        let busiest = busiest_quota(&stack, scale).await?;
        let output = run.output.unwrap_or_default();
        let parent_arn = format!("{}:limits-parent", parent.replace(":stateMachine:", ":execution:"));
        let parent_run = execution_figures(&stack, &parent_arn).await.map_err(err)?;
        let runs = all_figures(&stack, &stack.state_machine_arn).await.map_err(err)?;
        let (max_events, mean_events, run_transitions, run_largest) = stats(&runs);
        let scans = stack.interposer.invocations("scan-stream");
        let rebuilds = stack.interposer.invocations("rebuild-stream");
        // One Map item per group run (two streams), one Archive state per parent child.
        let child_transitions = 2 * (scans + rebuilds) + groups + groups;
        let transitions = parent_run.transitions + run_transitions + child_transitions;
        let lambda = stack.interposer.largest_payload();
        let (deletes, rate) = delete_rate(&stack);
        let quota = DELETE_QUOTA * scale;
        let floor = deletes as f64 / quota;
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        for key in ["succeeded", "busy", "failed"] {
            statuses.insert(key.into(), output[key].as_u64().unwrap_or(0));
        }
        println!("### limits-parent: {groups} groups, measured at {}\n", commit());
        println!("| figure | value |\n| --- | --- |");
        println!("| groups (streams) | {groups} ({streams}: one expired, one mixed each) |");
        println!("| outcome | {statuses:?} |");
        println!("| quota scale | {scale} ({}) |", scaled_quotas(scale));
        println!(
            "| largest state payload (parent and group histories) | {} B |",
            parent_run.largest_payload.max(run_largest)
        );
        println!("| largest Lambda payload | {lambda} B |");
        println!("| history events, parent execution | {} |", parent_run.events);
        println!(
            "| history events, group executions | at most {max_events}, mean {mean_events:.1} ({} executions) |",
            runs.len()
        );
        println!("| history events, each parent Map child (derived) | {PARENT_CHILD_EVENTS} |");
        println!(
            "| history events, each group's Map child (derived) | {} |",
            archive_item_events((scans + rebuilds).div_ceil(groups))
        );
        println!(
            "| state transitions | {transitions} ({} parent + {run_transitions} group executions + {child_transitions} Map children), {:.3} per stream, {:.2} per group |",
            parent_run.transitions,
            transitions as f64 / streams as f64,
            transitions as f64 / groups as f64
        );
        println!(
            "| DeleteLogStream | {deletes} calls at {rate:.2}/s; ÷ quota {quota:.0}/s = {:.3} |",
            rate / quota
        );
        println!(
            "| wall | {wall:.0} s ({:.2} s per group): {:.0} s to the Map Run (listing the groups), {:.0} s in it, {:.0} s after (summary) |",
            wall / groups as f64,
            parent_run.before_map,
            parent_run.map_run,
            parent_run.after_map
        );
        println!("| quota floor (deletes ÷ DeleteLogStream quota) | {floor:.0} s |");
        println!(
            "| wall ÷ floor (goal 1.1) | {:.2} |",
            wall / floor.max(f64::MIN_POSITIVE)
        );
        println!("{}", busiest.row(wall));
        println!("{calls}");
        Ok(())
    }
}
