//! scan-stream: classify each stream of a batch and stage the events to keep
//! in S3 before anything is deleted.

use tracing::Instrument;

use super::read::{EventCursor, Page, ReadLimits, ReadProgress, read_events};
use super::staged::{SegmentWriter, StagedSet};
use super::start::load_checkpoint;
use super::{
    BatchRequest, BudgetClock, Clients, ExportState, ManifestStream, RunState, ScanResult, ScanResume, StreamOutcome,
    StreamPlan,
};
use crate::domain::classify::{ClassifyContext, SkipReason, StreamClass, classify};
use crate::domain::input::{Mode, RunSettings};
use crate::domain::layout::GroupLayout;
use crate::domain::staging::{StagingHeader, StagingSummary};
use crate::domain::window::{Checkpoint, ExportRecord};
use crate::error::{ArchiverError, Result};
use crate::store::StreamInfo;

/// Plans every stream of the batch; mixed streams are staged to S3 first.
/// When the invocation's budget runs out it returns the plans so far and
/// where to go on; the state machine calls again with that result.
pub async fn scan_batch(request: BatchRequest, clients: &Clients) -> Result<ScanResult> {
    let BatchRequest { run, batch, scan } = request;
    let settings = &run.settings;
    let (mut plans, mut resume) = match scan {
        Some(previous) => (previous.plans, previous.resume),
        None => (Vec::new(), None),
    };
    let mut clock = BudgetClock::start(settings.budget);
    let layout = GroupLayout::of(settings);
    let checkpoint = effective_checkpoint(&run, clients, &layout).await?;
    let retention_days = clients
        .logs
        .describe_group(&settings.log_group_name)
        .await?
        .and_then(|g| g.retention_in_days);
    for index in plans.len()..batch.streams.len() {
        let continuing = resume.take().filter(|r| r.stream == index && r.token.is_some());
        if continuing.is_none() && clock.exhausted() {
            let resume = ScanResume {
                stream: index,
                token: None,
                staged: StagedSet::default(),
            };
            return Ok(ScanResult {
                plans,
                resume: Some(resume),
            });
        }
        let ctx = ClassifyContext {
            settings,
            checkpoint: &checkpoint,
            retention_days,
        };
        let stream = &batch.streams[index];
        let scanning = Scanning {
            run: &run,
            layout: &layout,
            clients,
            index,
        };
        let span = tracing::info_span!("stream", stream = stream.stream.as_str());
        match scanning
            .plan_stream(stream, ctx, continuing, &mut clock)
            .instrument(span)
            .await?
        {
            Scanned::Planned(plan) => plans.push(plan),
            Scanned::Paused(resume) => {
                return Ok(ScanResult {
                    plans,
                    resume: Some(resume),
                });
            }
        }
    }
    Ok(ScanResult { plans, resume: None })
}

/// A stream planned, or a staging paused by the budget.
enum Scanned {
    Planned(StreamPlan),
    Paused(ScanResume),
}

/// What planning one stream needs.
struct Scanning<'a> {
    run: &'a RunState,
    layout: &'a GroupLayout,
    clients: &'a Clients,
    index: usize,
}

/// The checkpoint as it stands after this run's export; in plan mode, as it
/// would stand.
async fn effective_checkpoint(run: &RunState, clients: &Clients, layout: &GroupLayout) -> Result<Checkpoint> {
    let settings = &run.settings;
    let mut checkpoint = load_checkpoint(clients, &settings.bucket, &layout.checkpoint())
        .await?
        .unwrap_or_default();
    if let ExportState::Ready {
        planned_window: Some(window),
        ..
    } = &run.export
    {
        checkpoint.advance(ExportRecord {
            task_id: "planned".into(),
            from_ms: window.from_ms,
            until_ms: window.until_ms,
            started_at_ms: settings.started_at_ms,
            destination_prefix: String::new(),
            objects: 0,
            bytes: 0,
        });
    }
    Ok(checkpoint)
}

impl Scanning<'_> {
    async fn plan_stream(
        &self,
        candidate: &ManifestStream,
        ctx: ClassifyContext<'_>,
        continuing: Option<ScanResume>,
        clock: &mut BudgetClock,
    ) -> Result<Scanned> {
        let Scanning {
            run, layout, clients, ..
        } = *self;
        let settings = &run.settings;
        let name = candidate.stream.as_str();
        if let Some(resume) = continuing {
            return self.stage_kept_events(candidate, Some(resume), clock).await;
        }
        let leave = |action: &str, reason: Option<String>| StreamPlan::Leave {
            stream: name.to_string(),
            outcome: StreamOutcome::new(name, action, reason),
        };

        // An interrupted rebuild: the staging object, not the stream, is the truth.
        if settings.mode != Mode::Plan
            && clients
                .archive
                .exists(&settings.bucket, &layout.rebuilding_marker(name))
                .await?
        {
            return Ok(Scanned::Planned(StreamPlan::Rebuild {
                stream: name.to_string(),
                staged: None,
                tail_token: None,
                stored_bytes: stored_bytes(candidate.info.as_ref()),
            }));
        }
        let Some(info) = &candidate.info else {
            return Ok(Scanned::Planned(leave(
                "gone",
                Some("the stream no longer exists".into()),
            )));
        };

        let mut first_kept = None;
        let progress = read_events(
            clients.logs.as_ref(),
            &settings.log_group_name,
            name,
            settings.cutoff_ms,
            None,
            None,
            ReadLimits::FIRST,
            |event| {
                first_kept.get_or_insert(event.timestamp);
                Ok(())
            },
        )
        .await?;
        clock.spend(1);
        if progress == ReadProgress::StreamMissing {
            return Ok(Scanned::Planned(leave(
                "gone",
                Some("the stream was deleted before the scan".into()),
            )));
        }

        let mut class = classify(info, first_kept, ctx);
        if matches!(class, StreamClass::Expired | StreamClass::Mixed { .. })
            && candidate.in_export == Some(false)
            && info
                .last_event_timestamp
                .is_some_and(|last| exported_window_contains(run, last, info))
        {
            class = StreamClass::Skip(SkipReason::NotCoveredByExport);
        }
        let plan = match class {
            StreamClass::Fresh => leave("fresh", None),
            StreamClass::Empty => leave("empty", None),
            StreamClass::Skip(reason) => leave("skipped", Some(reason.describe())),
            StreamClass::Expired if settings.mode == Mode::Plan => leave("would-delete", None),
            StreamClass::Expired => StreamPlan::Delete {
                stream: name.to_string(),
                stored_bytes: stored_bytes(Some(info)),
            },
            StreamClass::Mixed { .. } if settings.mode == Mode::Plan => {
                let summary = count_kept(settings, name, clients).await?;
                StreamPlan::Leave {
                    stream: name.to_string(),
                    outcome: StreamOutcome {
                        events_replayed: summary.events,
                        bytes_replayed: summary.message_bytes,
                        stored_bytes: stored_bytes(Some(info)),
                        ..StreamOutcome::new(name, "would-rebuild", None)
                    },
                }
            }
            StreamClass::Mixed { .. } => return self.stage_kept_events(candidate, None, clock).await,
        };
        Ok(Scanned::Planned(plan))
    }

    /// Streams the events `>= cutoff` of a stream into staging segments in S3,
    /// so memory stays bounded by one segment whatever the stream's size. When
    /// the budget runs out it seals the open segment and hands back the read
    /// token. Segments left by an earlier attempt are simply overwritten:
    /// without a rebuilding marker the stream itself is still complete.
    async fn stage_kept_events(
        &self,
        candidate: &ManifestStream,
        resume: Option<ScanResume>,
        clock: &mut BudgetClock,
    ) -> Result<Scanned> {
        let settings = &self.run.settings;
        let stream = candidate.stream.as_str();
        let (token, mut staged) = match resume {
            Some(r) => (r.token, r.staged),
            None => (None, StagedSet::default()),
        };
        let header = StagingHeader {
            log_group_name: settings.log_group_name.clone(),
            log_stream_name: stream.to_string(),
            cutoff_ms: settings.cutoff_ms,
        };
        let archive = self.clients.archive.as_ref();
        let mut writer = SegmentWriter::new(archive, &settings.bucket, self.layout, header, staged.next_segment());
        let mut cursor = EventCursor::new(
            self.clients.logs.as_ref(),
            &settings.log_group_name,
            stream,
            settings.cutoff_ms,
            None,
            token,
        );
        loop {
            let page = cursor.next_page().await?;
            clock.spend(1);
            match page {
                Page::StreamMissing => {
                    return Err(ArchiverError::VerificationFailed {
                        subject: stream.to_string(),
                        detail: "the stream disappeared while it was being staged".into(),
                    });
                }
                Page::End => break,
                Page::Events(events) => {
                    for event in &events {
                        writer.push(event).await?;
                    }
                }
            }
            if cursor.is_ended() {
                break;
            }
            if clock.exhausted() {
                staged.add(&writer.finish().await?);
                tracing::info!(
                    stream,
                    events = staged.events,
                    "staging paused by the invocation budget"
                );
                return Ok(Scanned::Paused(ScanResume {
                    stream: self.index,
                    token: cursor.token().map(str::to_string),
                    staged,
                }));
            }
        }
        staged.add(&writer.finish().await?);
        tracing::info!(
            stream,
            events = staged.events,
            segments = staged.segments().count(),
            "kept events staged"
        );
        Ok(Scanned::Planned(StreamPlan::Rebuild {
            stream: stream.to_string(),
            staged: Some(staged),
            tail_token: cursor.token().map(str::to_string),
            stored_bytes: stored_bytes(candidate.info.as_ref()),
        }))
    }
}

/// Whether the stream may have events inside the window this run exported.
fn exported_window_contains(run: &RunState, last_event_ms: i64, info: &StreamInfo) -> bool {
    match &run.export {
        ExportState::Ready { export: Some(e), .. } => {
            last_event_ms >= e.window.from_ms && info.first_event_timestamp.is_some_and(|f| f < e.window.until_ms)
        }
        _ => false,
    }
}

fn stored_bytes(info: Option<&StreamInfo>) -> i64 {
    info.and_then(|i| i.stored_bytes).unwrap_or(0)
}

/// Counts the events a rebuild would replay (plan mode), writing nothing.
async fn count_kept(settings: &RunSettings, stream: &str, clients: &Clients) -> Result<StagingSummary> {
    let mut summary = StagingSummary::default();
    read_events(
        clients.logs.as_ref(),
        &settings.log_group_name,
        stream,
        settings.cutoff_ms,
        None,
        None,
        ReadLimits::UNBOUNDED,
        |event| {
            summary.events += 1;
            summary.message_bytes += event.message.len() as u64;
            Ok(())
        },
    )
    .await?;
    Ok(summary)
}
