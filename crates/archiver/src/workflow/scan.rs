//! scan-stream: classify each stream of a batch and stage the events to keep
//! in S3 before anything is deleted.

use bytes::Bytes;
use tracing::Instrument;

use super::lease;
use super::read::{EventCursor, Page, ReadLimits, ReadProgress, read_events};
use super::staged::{SegmentWriter, StagedSet};
use super::{
    BatchRequest, BudgetClock, Clients, ExportState, ManifestStream, RunState, ScanResult, ScanResume, StreamOutcome,
    StreamPlan,
};
use crate::domain::classify::{ClassifyContext, SkipReason, StreamClass, classify, needs_first_kept};
use crate::domain::input::Mode;
use crate::domain::layout::GroupLayout;
use crate::domain::staging::{StagingHeader, StagingSummary};
use crate::error::{ArchiverError, Result};
use crate::store::DataProtection;

/// Plans every stream of the batch; mixed streams are staged to S3 first.
/// The plans go to S3 (`@runs/{runId}/plans/{batch}.json`), so the state
/// payload stays the same size whatever the batch holds. When the
/// invocation's budget runs out it returns where to go on; the state machine
/// calls again with that result.
pub async fn scan_batch(request: BatchRequest, clients: &Clients) -> Result<ScanResult> {
    let BatchRequest { run, batch, scan } = request;
    let settings = &run.settings;
    if settings.mode != Mode::Plan {
        lease::confirm(clients, settings).await?;
    }
    let layout = GroupLayout::of(settings);
    let plans_key = layout.plans(&settings.run_id, batch.batch);
    let (mut plans, mut resume) = match scan {
        Some(previous) => (
            load_plans(clients, &settings.bucket, &plans_key, previous.planned).await?,
            previous.resume,
        ),
        None => (Vec::new(), None),
    };
    let mut clock = BudgetClock::start(settings.budget);
    let (protection, retention_days) = match &run.export {
        ExportState::Ready {
            protection,
            retention_days,
            ..
        } => (*protection, *retention_days),
        _ => (DataProtection::default(), None),
    };
    let scanning = Scanning {
        run: &run,
        layout: &layout,
        clients,
        protection,
        ctx: ClassifyContext {
            settings,
            retention_days,
        },
    };
    for index in plans.len()..batch.streams.len() {
        let continuing = resume.take().filter(|r| r.stream == index && r.token.is_some());
        if continuing.is_none() && clock.exhausted() {
            resume = Some(ScanResume {
                stream: index,
                token: None,
                staged: StagedSet::default(),
            });
            break;
        }
        let stream = &batch.streams[index];
        let span = tracing::info_span!("stream", stream = stream.stream.as_str());
        match scanning
            .plan_stream(stream, index, continuing, &mut clock)
            .instrument(span)
            .await?
        {
            Scanned::Planned(plan) => plans.push(plan),
            Scanned::Paused(paused) => {
                resume = Some(paused);
                break;
            }
        }
    }
    let body = serde_json::to_vec(&plans).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients
        .archive
        .put(&settings.bucket, &plans_key, Bytes::from(body))
        .await?;
    Ok(ScanResult {
        planned: plans.len(),
        resume,
    })
}

/// The plans an earlier invocation of the batch saved: exactly `planned` of them.
pub(crate) async fn load_plans(clients: &Clients, bucket: &str, key: &str, planned: usize) -> Result<Vec<StreamPlan>> {
    let body = clients.archive.get(bucket, key).await?.ok_or_else(|| {
        ArchiverError::Internal(format!(
            "the plans s3://{bucket}/{key} of an earlier invocation are missing"
        ))
    })?;
    let plans: Vec<StreamPlan> = serde_json::from_slice(&body)
        .map_err(|e| ArchiverError::Internal(format!("plans s3://{bucket}/{key}: {e}")))?;
    if plans.len() != planned {
        return Err(ArchiverError::Internal(format!(
            "the plans s3://{bucket}/{key} hold {} streams, the state machine says {planned}",
            plans.len()
        )));
    }
    Ok(plans)
}

/// A stream planned, or a staging paused by the budget.
enum Scanned {
    Planned(StreamPlan),
    Paused(ScanResume),
}

/// What planning the streams of a batch needs.
struct Scanning<'a> {
    run: &'a RunState,
    layout: &'a GroupLayout,
    clients: &'a Clients,
    protection: DataProtection,
    ctx: ClassifyContext<'a>,
}

impl Scanning<'_> {
    async fn plan_stream(
        &self,
        candidate: &ManifestStream,
        index: usize,
        continuing: Option<ScanResume>,
        clock: &mut BudgetClock,
    ) -> Result<Scanned> {
        let settings = &self.run.settings;
        let name = candidate.stream.as_str();
        if let Some(resume) = continuing {
            return self.stage_kept_events(candidate, index, Some(resume), clock).await;
        }
        let leave = |action: &str, reason: Option<String>| StreamPlan::Leave {
            stream: name.to_string(),
            outcome: StreamOutcome::new(name, action, reason),
        };

        // An earlier run's interrupted rebuild: its staging, not the stream,
        // is the truth, and it is finished under that run's cutoff first.
        if let Some(run_id) = candidate.unfinished_runs.first() {
            return Ok(Scanned::Planned(match settings.mode {
                Mode::Plan => leave(
                    "would-finish",
                    Some(format!("finishes the interrupted rebuild of run {run_id}")),
                ),
                _ => StreamPlan::Finish {
                    stream: name.to_string(),
                    run_id: run_id.clone(),
                },
            }));
        }
        let Some(info) = &candidate.info else {
            return Ok(Scanned::Planned(leave(
                "gone",
                Some("the stream no longer exists".into()),
            )));
        };
        if self.protection.masks() && !settings.allow_masked_archive && settings.mode.is_destructive() {
            return Ok(Scanned::Planned(leave(
                "skipped",
                Some(SkipReason::DataProtected.describe()),
            )));
        }

        let mut first_kept = None;
        if needs_first_kept(info, settings) {
            let progress = read_events(
                self.clients.logs.as_ref(),
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
        }

        let plan = match classify(info, first_kept, self.ctx) {
            StreamClass::Fresh => leave("fresh", None),
            StreamClass::Empty => leave("empty", None),
            StreamClass::Skip(SkipReason::RetentionMode) => {
                leave("retained", Some(SkipReason::RetentionMode.describe()))
            }
            StreamClass::Skip(reason) => leave("skipped", Some(reason.describe())),
            StreamClass::Expired if settings.mode == Mode::Plan => leave("would-delete", None),
            StreamClass::Expired => StreamPlan::Delete {
                stream: name.to_string(),
                export_bytes: candidate.export_bytes,
            },
            StreamClass::Mixed { .. } if settings.mode == Mode::Plan => {
                let summary = self.count_kept(name).await?;
                StreamPlan::Leave {
                    stream: name.to_string(),
                    outcome: StreamOutcome {
                        events_replayed: summary.events,
                        bytes_replayed: summary.message_bytes,
                        export_bytes: candidate.export_bytes,
                        ..StreamOutcome::new(name, "would-rebuild", None)
                    },
                }
            }
            StreamClass::Mixed { .. } => return self.stage_kept_events(candidate, index, None, clock).await,
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
        index: usize,
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
        let mut writer = SegmentWriter::new(
            archive,
            &settings.bucket,
            self.layout,
            &settings.run_id,
            header,
            staged.next_segment(),
        );
        let mut cursor = EventCursor::new(
            self.clients.logs.as_ref(),
            &settings.log_group_name,
            stream,
            settings.cutoff_ms,
            None,
            token,
        )
        .unmasked(self.protection.masks());
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
                        writer.push(&event.event).await?;
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
                    stream: index,
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
            staged,
            export_bytes: candidate.export_bytes,
        }))
    }

    /// Counts the events a rebuild would replay (plan mode), writing nothing.
    async fn count_kept(&self, stream: &str) -> Result<StagingSummary> {
        let settings = &self.run.settings;
        let mut summary = StagingSummary::default();
        read_events(
            self.clients.logs.as_ref(),
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
}
