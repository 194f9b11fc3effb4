//! rebuild-stream: delete expired streams; rebuild mixed streams from their
//! staging segments; finish earlier runs' interrupted rebuilds; record every
//! outcome in S3.
//!
//! Every delete follows a confirmation read (see [`super::confirm`]) that
//! found nothing new. Progress is kept in S3 per Map item, so a retried or
//! continued invocation never redoes a finished stream, and a stream being
//! deleted when an invocation died is recognised: gone, recreated by its
//! writer since (left alone), or still to delete.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::confirm::{Confirmer, Staging};
use super::lease;
use super::read::EventCursor;
use super::scan::load_plans;
use super::staged::{SegmentWriter, StagedEvents, StagedSet, compare};
use super::start::load_checkpoint;
use super::{
    BatchFailure, BatchSummary, BudgetClock, Clients, ExportState, RebuildPhase, RebuildRequest, RebuildResume,
    RunState, StreamOutcome, StreamPlan,
};
use crate::domain::batch::BatchPacker;
use crate::domain::classify::replay_floor_ms;
use crate::domain::event::LogEvent;
use crate::domain::input::{Mode, RunSettings};
use crate::domain::layout::{GroupLayout, StagingKeyKind};
use crate::domain::staging::StagingHeader;
use crate::domain::window::{Checkpoint, Proof};
use crate::error::{ArchiverError, ErrorName, Result};

/// How often one stream's replay starts over after duplicates were found
/// before the stream is reported as failed (its staging is kept).
const MAX_REPLAY_RESTARTS: u32 = 3;
/// Confirmation reads before a delete: a read that staged or supplemented
/// something is followed by another; a stream whose writer keeps writing
/// through this many is left whole.
const MAX_CONFIRM_ROUNDS: u32 = 4;

/// How far rebuild-stream got with one Map item (in S3, see
/// [`GroupLayout::progress`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    /// The first stream not finished (index in the plans).
    next: usize,
    /// The outcomes of the streams before it.
    outcomes: Vec<StreamOutcome>,
    /// The expired stream being deleted: a retry that finds it must tell
    /// whether the stream it sees is the one it was deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleting: Option<DeleteIntent>,
    /// Where the rebuild of stream `next` stopped for a continuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<RebuildPhase>,
    /// Replays of stream `next` started over after duplicates.
    #[serde(default)]
    restarts: u32,
    /// Events of stream `next` archived as supplements so far.
    #[serde(default)]
    supplemented: u64,
}

/// An expired stream about to be deleted, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteIntent {
    stream: String,
    since_ms: i64,
}

/// The rebuilding marker: written before a staged stream is deleted; while
/// it exists the staging segments, not the stream, hold the truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Marker {
    /// The run whose staging it is.
    run_id: String,
    /// That run's cutoff: the staging holds the stream's events from it on.
    cutoff_ms: i64,
    /// The staged segments and totals.
    staged: StagedSet,
}

/// Carries out scan-stream's plans. Errors that a retry may cure
/// (throttling, 5xx, replay not yet readable) fail the whole call so that
/// Step Functions retries it with the same input; every step is idempotent,
/// and the progress in S3 says where to go on. Other errors fail only their
/// stream, which is reported while the rest go on. When the budget runs out
/// the result says to call again.
pub async fn rebuild_batch(request: RebuildRequest, clients: &Clients) -> Result<BatchSummary> {
    let RebuildRequest { run, batch, scan, .. } = request;
    let settings = &run.settings;
    if settings.mode != Mode::Plan {
        lease::confirm(clients, settings).await?;
    }
    let layout = GroupLayout::of(settings);
    let plans = load_plans(
        clients,
        &settings.bucket,
        &layout.plans(&settings.run_id, batch.batch),
        scan.planned,
    )
    .await?;
    let progress_key = layout.progress(&settings.run_id, batch.batch);
    let mut progress: Progress = match clients.archive.get(&settings.bucket, &progress_key).await? {
        Some(body) => serde_json::from_slice(&body)
            .map_err(|e| ArchiverError::Internal(format!("progress s3://{}/{progress_key}: {e}", settings.bucket)))?,
        None => Progress::default(),
    };
    let first = progress.next;
    let mut clock = BudgetClock::start(settings.budget);
    let deletes_left = plans.iter().skip(first).any(|p| matches!(p, StreamPlan::Delete { .. }));
    let mut pacing = if deletes_left {
        Pacing::for_run(clients, &run, &layout).await?
    } else {
        Pacing::none()
    };
    let rebuilder = Rebuilder {
        run: &run,
        settings,
        layout: &layout,
        clients,
        checkpoint: tokio::sync::OnceCell::new(),
        progress_key: &progress_key,
    };
    for (index, plan) in plans.iter().enumerate().skip(first) {
        // Hand back between streams too, once this invocation did some work.
        if index > first && clock.exhausted() {
            rebuilder.save(&progress).await?;
            return Ok(paused(batch.batch, index));
        }
        let in_export = batch.streams.get(index).and_then(|s| s.in_export);
        let span = tracing::info_span!("stream", stream = plan.stream());
        let done = rebuilder
            .carry_out(plan, in_export, &mut progress, &mut pacing, &mut clock)
            .instrument(span)
            .await;
        let outcome = match done {
            Ok(Carried::Done(outcome)) => outcome,
            Ok(Carried::Paused) => {
                rebuilder.save(&progress).await?;
                return Ok(paused(batch.batch, index));
            }
            Err(e) if e.is_transient() || e.name() == ErrorName::LeaseLost => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "stream failed");
                StreamOutcome::new(plan.stream(), "failed", Some(format!("{}: {e}", e.name())))
            }
        };
        let touched = !matches!(plan, StreamPlan::Leave { .. });
        progress.outcomes.push(outcome);
        progress.next = index + 1;
        progress.deleting = None;
        progress.phase = None;
        progress.restarts = 0;
        progress.supplemented = 0;
        if touched {
            rebuilder.save(&progress).await?;
        }
    }
    write_outcomes(clients, settings, &layout, batch.batch, &progress.outcomes).await
}

fn paused(batch: u32, stream: usize) -> BatchSummary {
    BatchSummary {
        batch,
        outcome_key: None,
        failed: 0,
        resume: Some(RebuildResume { stream }),
    }
}

/// Records the outcomes of a batch whose retries ran out: the streams
/// finished before the failure keep their outcome (from the batch's
/// progress), the others are failed (their staging, if any, is kept for the
/// next run).
pub async fn record_batch_failure(failure: BatchFailure, clients: &Clients) -> Result<BatchSummary> {
    let settings = &failure.run.settings;
    let layout = GroupLayout::of(settings);
    let error = failure
        .error
        .get("Error")
        .and_then(|v| v.as_str())
        .unwrap_or("States.TaskFailed");
    let cause = failure.error.get("Cause").and_then(|v| v.as_str()).unwrap_or("");
    let reason = format!("{error}: {}", summarize_cause(cause));
    let progress_key = layout.progress(&settings.run_id, failure.batch.batch);
    let mut outcomes = match clients.archive.get(&settings.bucket, &progress_key).await? {
        Some(body) => serde_json::from_slice::<Progress>(&body)
            .map(|p| p.outcomes)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let done = outcomes.len();
    outcomes.extend(
        failure.batch.streams[done.min(failure.batch.streams.len())..]
            .iter()
            .map(|s| StreamOutcome::new(&s.stream, "failed", Some(reason.clone()))),
    );
    write_outcomes(clients, settings, &layout, failure.batch.batch, &outcomes).await
}

/// Lambda causes are JSON with an `errorMessage`; keep the message only.
fn summarize_cause(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| cause.to_string())
}

async fn write_outcomes(
    clients: &Clients,
    settings: &RunSettings,
    layout: &GroupLayout,
    batch: u32,
    outcomes: &[StreamOutcome],
) -> Result<BatchSummary> {
    let key = layout.outcome(&settings.run_id, batch);
    let body = serde_json::to_vec(outcomes).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    Ok(BatchSummary {
        batch,
        outcome_key: Some(key),
        failed: outcomes.iter().filter(|o| o.action == "failed").count() as u64,
        resume: None,
    })
}

/// DeleteLogStream's pace for one Map item: the run's rate shared by the
/// items that can be running now, never more than the run's rate.
struct Pacing {
    interval: std::time::Duration,
    last: Option<tokio::time::Instant>,
}

impl Pacing {
    fn none() -> Self {
        Self {
            interval: std::time::Duration::ZERO,
            last: None,
        }
    }

    /// The items that can be running are at most the Map's concurrency and
    /// at most the items whose outcomes are not written yet (this one
    /// included): the run's rate is split between that many.
    async fn for_run(clients: &Clients, run: &RunState, layout: &GroupLayout) -> Result<Self> {
        let settings = &run.settings;
        let batches = match &run.export {
            ExportState::Ready { manifest, .. } => manifest.batches,
            _ => 1,
        };
        let done = clients
            .archive
            .list(&settings.bucket, &layout.outcomes_root(&settings.run_id))
            .await?
            .len() as u64;
        let concurrency = u64::try_from(settings.map_concurrency.max(1)).unwrap_or(1);
        let running = concurrency.min(batches.saturating_sub(done).max(1));
        let interval_ms = settings.budget.delete_interval_ms * running / concurrency;
        Ok(Self {
            interval: std::time::Duration::from_millis(interval_ms),
            last: None,
        })
    }

    /// Waits until this item may delete again. Called before the
    /// confirmation read, never between it and the delete.
    async fn wait(&mut self) {
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.interval).await;
        }
        self.last = Some(tokio::time::Instant::now());
    }
}

/// What carrying out one plan gave.
enum Carried {
    /// The stream is finished: its outcome.
    Done(StreamOutcome),
    /// The budget ran out mid-rebuild; the progress says where to go on.
    Paused,
}

/// The stream a rebuild works on: a mixed stream of this run, or an
/// earlier run's interrupted rebuild.
struct Target<'a> {
    stream: &'a str,
    /// The run whose staging and marker it is.
    staging_run: &'a str,
    /// What the scan staged (`None` when finishing: the marker says).
    staged: Option<&'a StagedSet>,
    /// Whether this run's export left the stream out (its whole window is proven).
    distrust_export: bool,
    export_bytes: u64,
}

/// Where the rebuild of one stream got to in this invocation.
enum Step {
    /// Rebuilt, verified, staging removed: the outcome.
    Done(StreamOutcome),
    /// The budget ran out; go on from `phase`.
    Paused {
        phase: RebuildPhase,
        restarts: u32,
        supplemented: u64,
    },
}

/// How a confirmation before a delete ended.
enum Confirmed {
    /// The stream is deleted (or was gone already); this many old events
    /// were archived as supplements first.
    Deleted(u64),
    /// A writer kept writing through every confirmation; nothing was deleted.
    WriterKeptWriting,
}

/// A stream that may be deleted already (a retry, a restart) whose writer
/// kept writing through every confirmation: its marker and staging stay.
fn kept_writing(stream: &str) -> ArchiverError {
    ArchiverError::VerificationFailed {
        subject: stream.to_string(),
        detail: "a writer kept writing while the stream was confirmed; its staging and marker are kept and the next \
                 run finishes it"
            .into(),
    }
}

/// Carries out the plans of one group's Map item.
struct Rebuilder<'a> {
    run: &'a RunState,
    settings: &'a RunSettings,
    layout: &'a GroupLayout,
    clients: &'a Clients,
    checkpoint: tokio::sync::OnceCell<Checkpoint>,
    progress_key: &'a str,
}

impl Rebuilder<'_> {
    fn group(&self) -> &str {
        &self.settings.log_group_name
    }

    fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    fn unmask(&self) -> bool {
        matches!(&self.run.export, ExportState::Ready { protection, .. } if protection.masks())
    }

    fn retention_days(&self) -> Option<i32> {
        match &self.run.export {
            ExportState::Ready { retention_days, .. } => *retention_days,
            _ => None,
        }
    }

    async fn save(&self, progress: &Progress) -> Result<()> {
        let body = serde_json::to_vec(progress).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        self.clients
            .archive
            .put(self.bucket(), self.progress_key, Bytes::from(body))
            .await
    }

    async fn checkpoint(&self) -> Result<&Checkpoint> {
        self.checkpoint
            .get_or_try_init(|| async {
                let key = self.layout.checkpoint();
                Ok(load_checkpoint(self.clients, self.bucket(), &key)
                    .await?
                    .unwrap_or_default())
            })
            .await
    }

    /// What must be proven before the stream's events older than
    /// `cutoff_ms` are deleted; `distrust` when this run's export left the
    /// stream out.
    async fn proof(&self, stream: &str, cutoff_ms: i64, distrust: bool) -> Result<Proof> {
        let checkpoint = self.checkpoint().await?;
        let mut proof = checkpoint.proof(cutoff_ms).map_err(|(from, until)| ArchiverError::VerificationFailed {
            subject: stream.to_string(),
            detail: format!(
                "no export on record covers the events from {from} to {until} ms, so they cannot be proven archived; \
                 nothing was deleted"
            ),
        })?;
        if distrust
            && let ExportState::Ready {
                export: Some(export), ..
            } = &self.run.export
            && let Some(record) = checkpoint.exports.iter().find(|r| r.task_id == export.task_id)
        {
            proof.distrust(record);
        }
        Ok(proof)
    }

    fn confirmer(&self) -> Confirmer<'_> {
        Confirmer {
            clients: self.clients,
            settings: self.settings,
            layout: self.layout,
            unmask_kept: self.unmask(),
        }
    }

    async fn carry_out(
        &self,
        plan: &StreamPlan,
        in_export: Option<bool>,
        progress: &mut Progress,
        pacing: &mut Pacing,
        clock: &mut BudgetClock,
    ) -> Result<Carried> {
        let distrust_export = in_export == Some(false);
        let step = match plan {
            StreamPlan::Leave { outcome, .. } => return Ok(Carried::Done(outcome.clone())),
            StreamPlan::Delete { stream, export_bytes } => {
                let outcome = self
                    .delete_expired(stream, *export_bytes, distrust_export, progress, pacing, clock)
                    .await?;
                return Ok(Carried::Done(outcome));
            }
            StreamPlan::Rebuild {
                stream,
                staged,
                export_bytes,
            } => {
                let target = Target {
                    stream,
                    staging_run: &self.settings.run_id,
                    staged: Some(staged),
                    distrust_export,
                    export_bytes: *export_bytes,
                };
                self.rebuild(target, progress, clock).await?
            }
            StreamPlan::Finish { stream, run_id } => {
                let target = Target {
                    stream,
                    staging_run: run_id,
                    staged: None,
                    distrust_export: false,
                    export_bytes: 0,
                };
                self.rebuild(target, progress, clock).await?
            }
        };
        Ok(match step {
            Step::Done(outcome) => Carried::Done(outcome),
            Step::Paused {
                phase,
                restarts,
                supplemented,
            } => {
                progress.phase = Some(phase);
                progress.restarts = restarts;
                progress.supplemented = supplemented;
                Carried::Paused
            }
        })
    }

    /// Deletes an expired stream once a confirmation read proves every one
    /// of its events archived and finds no kept event.
    async fn delete_expired(
        &self,
        stream: &str,
        export_bytes: u64,
        distrust_export: bool,
        progress: &mut Progress,
        pacing: &mut Pacing,
        clock: &mut BudgetClock,
    ) -> Result<StreamOutcome> {
        let outcome = |action: &str, reason: Option<&str>| StreamOutcome {
            export_bytes,
            ..StreamOutcome::new(stream, action, reason.map(str::to_string))
        };
        match progress.deleting.as_ref().filter(|i| i.stream == stream) {
            // An invocation died while deleting this stream: is the stream
            // still the one it was deleting?
            Some(intent) => match self.recreated_since(stream, intent.since_ms).await? {
                Recreated::Gone => return Ok(outcome("deleted", None)),
                Recreated::Yes => {
                    return Ok(outcome(
                        "left",
                        Some("recreated by its writer after this run deleted it; left as it is"),
                    ));
                }
                Recreated::No => {}
            },
            None => {
                progress.deleting = Some(DeleteIntent {
                    stream: stream.to_string(),
                    since_ms: self.clients.logs.now_ms(),
                });
                self.save(progress).await?;
            }
        }
        let proof = self.proof(stream, self.settings.cutoff_ms, distrust_export).await?;
        pacing.wait().await;
        let confirmer = self.confirmer();
        let mut supplemented = 0;
        for _ in 0..MAX_CONFIRM_ROUNDS {
            let found = confirmer.read(stream, &proof, None, clock).await?;
            supplemented += found.supplemented;
            if !found.stream_exists {
                return Ok(outcome(
                    "gone",
                    Some("the stream was deleted before this run deleted it"),
                ));
            }
            if found.new_kept > 0 {
                return Ok(outcome(
                    "skipped",
                    Some(
                        "holds events at or after the cutoff (written since the scan, or not yet in the stream's metadata): a writer is back; the next run rebuilds it",
                    ),
                ));
            }
            if found.is_clean() {
                let existed = self.clients.logs.delete_stream(self.group(), stream).await?;
                clock.spend(1);
                tracing::info!(existed, supplemented, "expired stream deleted");
                return Ok(StreamOutcome {
                    events_supplemented: supplemented,
                    ..outcome("deleted", None)
                });
            }
        }
        Ok(outcome(
            "skipped",
            Some("events older than the cutoff kept arriving while the stream was confirmed; left whole"),
        ))
    }

    /// Whether the stream seen now was created after `since_ms`: its oldest
    /// event was ingested since (an expired stream's events are all old).
    async fn recreated_since(&self, stream: &str, since_ms: i64) -> Result<Recreated> {
        let logs = self.clients.logs.as_ref();
        let mut cursor = EventCursor::new(logs, self.group(), stream, 0, None, None).with_page_size(1);
        let first = cursor.next_ingested().await?;
        Ok(match first {
            _ if cursor.is_missing() => Recreated::Gone,
            None => Recreated::Yes,
            Some(event) if event.ingestion_ms >= since_ms => Recreated::Yes,
            Some(_) => Recreated::No,
        })
    }

    /// Rebuilds one stream from its staging segments:
    ///
    /// 1. write the rebuilding marker with the staged set (from now on the
    ///    segments are the truth);
    /// 2. confirm (stage what a writer added, archive late old events),
    ///    delete, recreate, replay the staged events in valid batches;
    /// 3. read the stream back and check every staged event is there once;
    /// 4. delete the segments, then the marker.
    ///
    /// A retry after a crash finds the marker and starts again at 2 (the
    /// confirmation stages whatever a writer put in the stream meanwhile), so
    /// no event the tool did not stage is ever deleted. A continuation
    /// resumes 2 or 3 where the budget stopped it. Finishing an earlier
    /// run's rebuild is the same, under that run's cutoff and staging.
    async fn rebuild(&self, target: Target<'_>, progress: &Progress, clock: &mut BudgetClock) -> Result<Step> {
        let stream = target.stream;
        let marker = self.read_marker(target.staging_run, stream).await?;
        let mut supplemented = progress.supplemented;
        let (mut marker, mut phase, mut restarts) = match (progress.phase, marker) {
            (Some(phase), Some(marker)) => (marker, phase, progress.restarts),
            // The marker goes last, once the stream is verified: a retry of
            // the invocation that finished it.
            (Some(_), None) => return Ok(Step::Done(self.finished(&target, target.staged, supplemented))),
            (None, Some(marker)) => {
                // An earlier attempt (or run) stopped after the marker: the
                // stream may be deleted, hold part of the replay, or what a
                // writer added since. It is confirmed and rebuilt again.
                let mut marker = marker;
                match self.delete_confirmed(&target, &mut marker, clock).await? {
                    Confirmed::Deleted(n) => supplemented += n,
                    Confirmed::WriterKeptWriting => return Err(kept_writing(stream)),
                }
                self.recreate(stream).await?;
                (marker, RebuildPhase::Replay { replayed: 0 }, 0)
            }
            (None, None) => {
                let Some(staged) = target.staged else {
                    // Finishing, and the marker is gone: finished already.
                    return Ok(Step::Done(self.finished(&target, None, 0)));
                };
                if let Some(first) = staged.segments().next()
                    && !self
                        .clients
                        .archive
                        .exists(
                            self.bucket(),
                            &self.layout.staging_segment(target.staging_run, stream, first),
                        )
                        .await?
                {
                    // A retry: an earlier attempt verified the stream and
                    // removed its staging and marker.
                    return Ok(Step::Done(self.finished(&target, Some(staged), 0)));
                }
                let mut marker = Marker {
                    run_id: target.staging_run.to_string(),
                    cutoff_ms: self.settings.cutoff_ms,
                    staged: staged.clone(),
                };
                self.write_marker(stream, &marker).await?;
                if let Confirmed::Deleted(n) = self.delete_confirmed(&target, &mut marker, clock).await? {
                    supplemented += n;
                } else {
                    // Never deleted: the stream is whole, the staging goes.
                    self.remove_staging(target.staging_run, stream).await?;
                    return Ok(Step::Done(StreamOutcome {
                        export_bytes: target.export_bytes,
                        ..StreamOutcome::new(
                            stream,
                            "skipped",
                            Some("a writer kept writing while the stream was confirmed; left whole".into()),
                        )
                    }));
                }
                self.recreate(stream).await?;
                (marker, RebuildPhase::Replay { replayed: 0 }, 0)
            }
        };
        let replay_from = self.replay_from_ms(&marker);
        loop {
            match phase {
                RebuildPhase::Replay { replayed } => {
                    match self.replay(&marker, stream, replay_from, replayed, clock).await? {
                        Some(replayed) => {
                            return Ok(Step::Paused {
                                phase: RebuildPhase::Replay { replayed },
                                restarts,
                                supplemented,
                            });
                        }
                        None if clock.exhausted() => {
                            return Ok(Step::Paused {
                                phase: RebuildPhase::Verify,
                                restarts,
                                supplemented,
                            });
                        }
                        None => phase = RebuildPhase::Verify,
                    }
                }
                RebuildPhase::Verify => {
                    let comparison = {
                        let logs = self.clients.logs.as_ref();
                        let mut expected = self.staged_events(&marker, stream).from_ms(replay_from);
                        let mut cursor = EventCursor::new(logs, self.group(), stream, replay_from, None, None)
                            .unmasked(self.unmask());
                        let comparison = compare(&mut expected, &mut cursor, None).await?;
                        clock.spend(cursor.pages());
                        comparison
                    };
                    if comparison.is_exact() {
                        break;
                    }
                    if !comparison.stream_exists {
                        return Err(ArchiverError::VerificationFailed {
                            subject: stream.to_string(),
                            detail: "the rebuilt stream disappeared before verification".into(),
                        });
                    }
                    if comparison.missing > 0 {
                        // Possibly not readable yet: Step Functions retries the
                        // verification with backoff.
                        return Err(ArchiverError::VerificationPending {
                            stream: stream.to_string(),
                            missing: comparison.missing,
                        });
                    }
                    // A batch applied twice (a retried call, a crash after
                    // PutLogEvents): start the replay over on a clean stream,
                    // after staging what a writer added meanwhile.
                    if restarts >= MAX_REPLAY_RESTARTS {
                        return Err(ArchiverError::ReplayDuplicated {
                            stream: stream.to_string(),
                            duplicates: comparison.duplicated,
                        });
                    }
                    restarts += 1;
                    tracing::warn!(duplicates = comparison.duplicated, restarts, "replaying again");
                    match self.delete_confirmed(&target, &mut marker, clock).await? {
                        Confirmed::Deleted(n) => supplemented += n,
                        Confirmed::WriterKeptWriting => return Err(kept_writing(stream)),
                    }
                    self.recreate(stream).await?;
                    phase = RebuildPhase::Replay { replayed: 0 };
                }
            }
        }
        self.remove_staging(&marker.run_id, stream).await?;
        tracing::info!(events = marker.staged.events, "stream rebuilt and verified");
        Ok(Step::Done(self.finished(&target, Some(&marker.staged), supplemented)))
    }

    /// The outcome of a finished rebuild.
    fn finished(&self, target: &Target<'_>, staged: Option<&StagedSet>, supplemented: u64) -> StreamOutcome {
        let finishing = target.staging_run != self.settings.run_id;
        let (action, reason) = if finishing {
            (
                "finished",
                Some(format!(
                    "finished the interrupted rebuild of run {}",
                    target.staging_run
                )),
            )
        } else {
            ("rebuilt", None)
        };
        let staged = staged.cloned().unwrap_or_default();
        StreamOutcome {
            events_replayed: staged.events,
            bytes_replayed: staged.message_bytes,
            export_bytes: target.export_bytes,
            events_supplemented: supplemented,
            ..StreamOutcome::new(target.stream, action, reason)
        }
    }

    /// The oldest staged event the rebuild replays: the marker's cutoff, or
    /// later when some staged events aged past what PutLogEvents accepts
    /// (an earlier run's rebuild finished days later). Those are archived
    /// instead, before anything is deleted.
    fn replay_from_ms(&self, marker: &Marker) -> i64 {
        marker
            .cutoff_ms
            .max(replay_floor_ms(self.settings, self.retention_days()))
    }

    /// Confirms the stream (stages what a writer added, archives old events
    /// that arrived too late for their export) until a read finds nothing
    /// new, then deletes it straight away.
    async fn delete_confirmed(
        &self,
        target: &Target<'_>,
        marker: &mut Marker,
        clock: &mut BudgetClock,
    ) -> Result<Confirmed> {
        let stream = target.stream;
        let replay_from = self.replay_from_ms(marker);
        let mut proof_until = replay_from;
        if replay_from > marker.cutoff_ms {
            // Events between the cutoff and the replay floor cannot be
            // replayed: they must be archived before the delete. Where an
            // export covers them they are proven like older events; past
            // the exports any such event is staged by the read below and
            // `archive_unreplayable` then stops the delete.
            self.archive_unreplayable(stream, marker, replay_from).await?;
            let exported_until = self.checkpoint().await?.exported_until_ms;
            proof_until = replay_from.min(exported_until).max(marker.cutoff_ms);
        }
        let proof = self.proof(stream, proof_until, target.distrust_export).await?;
        let confirmer = self.confirmer();
        let mut supplemented = 0;
        for _ in 0..MAX_CONFIRM_ROUNDS {
            let header = StagingHeader {
                log_group_name: self.group().to_string(),
                log_stream_name: stream.to_string(),
                cutoff_ms: marker.cutoff_ms,
            };
            let archive = self.clients.archive.as_ref();
            let mut writer = SegmentWriter::new(
                archive,
                self.bucket(),
                self.layout,
                &marker.run_id,
                header,
                marker.staged.next_segment(),
            );
            let staging = Staging {
                run_id: &marker.run_id,
                set: &marker.staged,
                writer: &mut writer,
            };
            let found = confirmer.read(stream, &proof, Some(staging), clock).await?;
            supplemented += found.supplemented;
            let written = writer.finish().await?;
            if written.events > 0 {
                tracing::info!(events = written.events, "events a writer added staged too");
                marker.staged.add(&written);
                self.write_marker(stream, marker).await?;
                if replay_from > marker.cutoff_ms {
                    // A writer's event older than the replay floor.
                    self.archive_unreplayable(stream, marker, replay_from).await?;
                }
            }
            if !found.stream_exists {
                // Deleted already (by an earlier attempt, or someone else):
                // the staging holds every kept event.
                return Ok(Confirmed::Deleted(supplemented));
            }
            if found.is_clean() {
                self.clients.logs.delete_stream(self.group(), stream).await?;
                clock.spend(1);
                return Ok(Confirmed::Deleted(supplemented));
            }
        }
        Ok(Confirmed::WriterKeptWriting)
    }

    /// Archives the staged events older than `replay_from` (they can no
    /// longer be replayed) in the exports covering them, as supplements
    /// where those lack them.
    async fn archive_unreplayable(&self, stream: &str, marker: &Marker, replay_from: i64) -> Result<()> {
        let checkpoint = self.checkpoint().await?;
        let mut events = self.staged_events(marker, stream);
        let mut by_export: BTreeMap<usize, BTreeMap<(i64, String), u64>> = BTreeMap::new();
        while let Some(LogEvent { timestamp, message }) = events.next_event().await? {
            if timestamp >= replay_from {
                break;
            }
            let Some(index) = checkpoint
                .exports
                .iter()
                .position(|r| r.from_ms <= timestamp && timestamp < r.until_ms)
            else {
                // Only a staged event below the floor needs an export: a
                // floor above the cutoff with every staged event above it
                // (an old cutoff, recent kept events) is no reason to stop.
                return Err(ArchiverError::VerificationFailed {
                    subject: stream.to_string(),
                    detail: format!(
                        "run {} staged an event at {timestamp} ms, older than 14 days (before {replay_from} ms), \
                         that can no longer be replayed, and no export covers it yet; the staging is kept and a run \
                         whose cutoff is past it finishes the stream",
                        marker.run_id
                    ),
                });
            };
            *by_export
                .entry(index)
                .or_default()
                .entry((timestamp, message))
                .or_default() += 1;
        }
        let confirmer = self.confirmer();
        for (index, wanted) in by_export {
            let segment = checkpoint.exports[index].distrusted(replay_from);
            confirmer.ensure_archived(stream, &segment, wanted).await?;
        }
        Ok(())
    }

    /// Recreates the stream after the delete. When the create finds the
    /// stream already there, a writer recreated it after our delete: its
    /// events are kept and the replay goes in beside them.
    async fn recreate(&self, stream: &str) -> Result<()> {
        if !self.clients.logs.create_stream(self.group(), stream).await? {
            tracing::warn!("the stream was recreated by someone else; replaying into it");
        }
        Ok(())
    }

    /// The events the marker's staged set holds for `stream`, oldest first.
    fn staged_events<'s>(&'s self, marker: &'s Marker, stream: &'s str) -> StagedEvents<'s> {
        StagedEvents::open(
            self.clients.archive.as_ref(),
            self.bucket(),
            self.layout,
            &marker.run_id,
            stream,
            &marker.staged,
        )
    }

    /// Records the marker: from now on the staging is the truth.
    async fn write_marker(&self, stream: &str, marker: &Marker) -> Result<()> {
        let body = serde_json::to_vec(marker).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        let key = self.layout.rebuilding_marker(&marker.run_id, stream);
        self.clients.archive.put(self.bucket(), &key, Bytes::from(body)).await
    }

    async fn read_marker(&self, run_id: &str, stream: &str) -> Result<Option<Marker>> {
        let key = self.layout.rebuilding_marker(run_id, stream);
        let Some(body) = self.clients.archive.get(self.bucket(), &key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ArchiverError::StagingCorrupt {
                bucket: self.bucket().to_string(),
                key,
                detail: format!("the rebuilding marker is unreadable: {e}"),
            })
    }

    /// Replays the staged events from number `replayed` on (counting from
    /// `replay_from`), in valid batches. Returns where it stopped if the
    /// budget ran out.
    async fn replay(
        &self,
        marker: &Marker,
        stream: &str,
        replay_from: i64,
        mut replayed: u64,
        clock: &mut BudgetClock,
    ) -> Result<Option<u64>> {
        let mut events = self.staged_events(marker, stream).from_ms(replay_from);
        events.skip(replayed).await?;
        let mut packer = BatchPacker::new();
        let packing = |e| ArchiverError::Internal(format!("packing {stream}: {e}"));
        while let Some(event) = events.next_event().await? {
            if let Some(batch) = packer.push(event).map_err(packing)? {
                self.clients.logs.put_events(self.group(), stream, &batch).await?;
                clock.spend(1);
                replayed += batch.len() as u64;
                if clock.exhausted() {
                    return Ok(Some(replayed));
                }
            }
        }
        if let Some(batch) = packer.finish() {
            self.clients.logs.put_events(self.group(), stream, &batch).await?;
            clock.spend(1);
        }
        Ok(None)
    }

    /// Deletes every staging segment of the stream staged by `run_id` (also
    /// ones a longer, abandoned scan left), then the marker.
    async fn remove_staging(&self, run_id: &str, stream: &str) -> Result<()> {
        let prefix = self.layout.stream_staging_root(run_id, stream);
        for object in self.clients.archive.list(self.bucket(), &prefix).await? {
            if let Some(key) = self.layout.parse_staging_key(&object.key)
                && key.stream == stream
                && matches!(key.kind, StagingKeyKind::Segment(_))
            {
                self.clients.archive.delete(self.bucket(), &object.key).await?;
            }
        }
        let marker = self.layout.rebuilding_marker(run_id, stream);
        self.clients.archive.delete(self.bucket(), &marker).await
    }
}

/// Whether the stream seen after a retried delete is a new one.
enum Recreated {
    /// No stream: the delete took effect.
    Gone,
    /// A stream created since the delete began (or empty).
    Yes,
    /// The stream the delete was meant for: still there.
    No,
}
