//! rebuild-stream: delete expired streams; rebuild mixed streams from their
//! staging segments; record every outcome in S3.

use bytes::Bytes;
use tracing::Instrument;

use super::read::{EventCursor, Page};
use super::staged::{Comparison, SegmentWriter, StagedEvents, StagedSet, compare};
use super::{
    BatchFailure, BatchSummary, BudgetClock, Clients, RebuildPhase, RebuildRequest, RebuildResume, StreamOutcome,
    StreamPlan,
};
use crate::domain::batch::BatchPacker;
use crate::domain::input::RunSettings;
use crate::domain::layout::{GroupLayout, StagingKeyKind};
use crate::domain::staging::StagingHeader;
use crate::error::{ArchiverError, Result};

/// How often one stream's replay starts over after duplicates were found
/// before the stream is reported as failed (its staging is kept).
const MAX_REPLAY_RESTARTS: u32 = 3;

/// Carries out scan-stream's plans. Errors that a retry may cure
/// (throttling, 5xx, replay not yet readable) fail the whole call so that
/// Step Functions retries it with the same input; every step is idempotent.
/// Other errors fail only their stream, which is reported while the rest go
/// on. When the budget runs out the result carries where to go on.
pub async fn rebuild_batch(request: RebuildRequest, clients: &Clients) -> Result<BatchSummary> {
    let settings = &request.run.settings;
    let layout = GroupLayout::of(settings);
    let batch = request.batch.batch;
    let mut clock = BudgetClock::start(settings.budget);
    let resume = request.rebuild.and_then(|r| r.resume);
    let (first, mut outcomes, mut phase, mut restarts) = match resume {
        Some(r) => (r.stream, r.outcomes, r.phase, r.restarts),
        None => (0, Vec::with_capacity(request.scan.plans.len()), None, 0),
    };
    let delete_interval = std::time::Duration::from_millis(settings.budget.delete_interval_ms);
    let mut last_delete: Option<tokio::time::Instant> = None;
    let rebuilder = Rebuilder {
        settings,
        layout: &layout,
        clients,
    };
    for (index, plan) in request.scan.plans.into_iter().enumerate().skip(first) {
        let pause = |phase, restarts, outcomes| {
            Ok(BatchSummary {
                batch,
                outcome_key: None,
                failed: 0,
                resume: Some(RebuildResume {
                    stream: index,
                    phase,
                    restarts,
                    outcomes,
                }),
            })
        };
        // Hand back between streams too, once this invocation did some work.
        if index > first && clock.exhausted() {
            return pause(None, 0, outcomes);
        }
        let outcome = match plan {
            StreamPlan::Leave { outcome, .. } => outcome,
            StreamPlan::Delete { stream, stored_bytes } => {
                // Paced so that the Map's concurrent items together stay
                // within the account's DeleteLogStream quota.
                if let Some(last) = last_delete {
                    tokio::time::sleep_until(last + delete_interval).await;
                }
                last_delete = Some(tokio::time::Instant::now());
                let existed = clients.logs.delete_stream(&settings.log_group_name, &stream).await?;
                clock.spend(1);
                tracing::info!(stream, existed, "expired stream deleted");
                StreamOutcome {
                    stored_bytes,
                    ..StreamOutcome::new(&stream, "deleted", None)
                }
            }
            StreamPlan::Rebuild {
                stream,
                staged,
                tail_token,
                stored_bytes,
            } => {
                let target = Target {
                    stream: &stream,
                    staged,
                    tail_token,
                };
                let span = tracing::info_span!("stream", stream = stream.as_str());
                match rebuilder
                    .run(target, phase.take(), restarts, &mut clock)
                    .instrument(span)
                    .await
                {
                    Ok(Step::Paused { phase, restarts }) => return pause(Some(phase), restarts, outcomes),
                    Ok(Step::Done(staged)) => StreamOutcome {
                        events_replayed: staged.events,
                        bytes_replayed: staged.message_bytes,
                        stored_bytes,
                        ..StreamOutcome::new(&stream, "rebuilt", None)
                    },
                    Err(e) if e.is_transient() => return Err(e),
                    Err(e) => {
                        tracing::error!(stream, error = %e, "rebuild failed");
                        StreamOutcome {
                            stored_bytes,
                            ..StreamOutcome::new(&stream, "failed", Some(format!("{}: {e}", e.name())))
                        }
                    }
                }
            }
        };
        restarts = 0;
        outcomes.push(outcome);
    }
    write_outcomes(clients, settings, &layout, batch, &outcomes).await
}

/// Records the outcomes of a batch whose retries ran out: the streams not
/// finished before the failure are failed (their staging, if any, is kept
/// for the next run).
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
    // Streams a continuation finished before the failure keep their outcome.
    let mut outcomes = failure
        .rebuild
        .and_then(|r| r.resume)
        .map(|r| r.outcomes)
        .unwrap_or_default();
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
    let key = layout.outcome(&settings.run_id(), batch);
    let body = serde_json::to_vec(outcomes).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    Ok(BatchSummary {
        batch,
        outcome_key: Some(key),
        failed: outcomes.iter().filter(|o| o.action == "failed").count() as u64,
        resume: None,
    })
}

/// The stream a plan rebuilds.
struct Target<'a> {
    stream: &'a str,
    staged: Option<StagedSet>,
    tail_token: Option<String>,
}

/// Where one stream's rebuild got to in this invocation.
enum Step {
    /// Rebuilt, verified, staging removed; what was replayed.
    Done(StagedSet),
    /// The budget ran out; go on from `phase`.
    Paused { phase: RebuildPhase, restarts: u32 },
}

/// What step 1 found.
enum Prepared {
    /// The stream is recreated: replay this.
    Replay(StagedSet),
    /// Nothing left to do: an earlier attempt rebuilt and verified it.
    Done(StagedSet),
}

/// Rebuilds streams of one group.
struct Rebuilder<'a> {
    settings: &'a RunSettings,
    layout: &'a GroupLayout,
    clients: &'a Clients,
}

impl Rebuilder<'_> {
    fn group(&self) -> &str {
        &self.settings.log_group_name
    }

    fn bucket(&self) -> &str {
        &self.settings.bucket
    }

    /// Rebuilds one stream from its staging segments:
    ///
    /// 1. stage what arrived since the scan, then write the rebuilding marker
    ///    with the staged set (from now on the segments are the truth);
    /// 2. delete the stream, recreate it, replay the staged events in valid
    ///    batches, oldest first;
    /// 3. read the stream back and check every staged event is there once;
    /// 4. delete the segments, then the marker.
    ///
    /// A retry after a crash finds the marker; it stages what a writer put in
    /// the stream meanwhile and starts again at 2, unless the stream already
    /// holds every staged event (then only 3 and 4). A continuation resumes 2
    /// or 3 where the budget stopped it.
    async fn run(
        &self,
        target: Target<'_>,
        phase: Option<RebuildPhase>,
        mut restarts: u32,
        clock: &mut BudgetClock,
    ) -> Result<Step> {
        let stream = target.stream;
        let (staged, mut phase) = match phase {
            Some(phase) => match self.read_marker(stream).await? {
                Some(staged) => (staged, phase),
                // The marker goes last, after the segments, once the stream is
                // verified: a retry of the invocation that finished it.
                None => return Ok(Step::Done(target.staged.unwrap_or_default())),
            },
            None => match self.prepare(&target, clock).await? {
                Prepared::Replay(staged) => (staged, RebuildPhase::Replay { replayed: 0 }),
                Prepared::Done(staged) => return Ok(Step::Done(staged)),
            },
        };
        loop {
            match phase {
                RebuildPhase::Replay { replayed } => match self.replay(stream, &staged, replayed, clock).await? {
                    Some(replayed) => {
                        return Ok(Step::Paused {
                            phase: RebuildPhase::Replay { replayed },
                            restarts,
                        });
                    }
                    None if clock.exhausted() => {
                        return Ok(Step::Paused {
                            phase: RebuildPhase::Verify,
                            restarts,
                        });
                    }
                    None => phase = RebuildPhase::Verify,
                },
                RebuildPhase::Verify => {
                    let (comparison, _) = self.compare(stream, &staged, None, clock).await?;
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
                    // PutLogEvents): start the replay over on a clean stream.
                    if restarts >= MAX_REPLAY_RESTARTS {
                        return Err(ArchiverError::ReplayDuplicated {
                            stream: stream.to_string(),
                            duplicates: comparison.duplicated,
                        });
                    }
                    restarts += 1;
                    tracing::warn!(stream, duplicates = comparison.duplicated, restarts, "replaying again");
                    self.recreate(stream).await?;
                    phase = RebuildPhase::Replay { replayed: 0 };
                }
            }
        }
        self.finish(stream).await?;
        tracing::info!(stream, events = staged.events, "stream rebuilt and verified");
        Ok(Step::Done(staged))
    }

    /// Step 1 and the deletion: returns the staged set to replay, or says
    /// that an earlier attempt already finished the stream.
    async fn prepare(&self, target: &Target<'_>, clock: &mut BudgetClock) -> Result<Prepared> {
        let stream = target.stream;
        let archive = self.clients.archive.as_ref();
        let (mut staged, tail_token) = match self.read_marker(stream).await? {
            Some(mut staged) => {
                // An earlier attempt stopped after the marker. The stream may
                // hold part of the replay and what a writer added since.
                let mut catch_up = self.segment_writer(stream, &staged);
                let (comparison, end) = self.compare(stream, &staged, Some(&mut catch_up), clock).await?;
                let written = catch_up.finish().await?;
                if comparison.is_exact() && written.events == 0 && !self.has_events_before_cutoff(stream).await? {
                    self.finish(stream).await?;
                    return Ok(Prepared::Done(staged));
                }
                staged.add(&written);
                (staged, end)
            }
            None => {
                let Some(staged) = target.staged.clone() else {
                    return Ok(Prepared::Done(StagedSet::default()));
                };
                let first_segment = staged.segments().next();
                if let Some(first) = first_segment
                    && !archive
                        .exists(self.bucket(), &self.layout.staging_segment(stream, first))
                        .await?
                {
                    // A retry of the batch: an earlier attempt verified this
                    // stream and removed its staging and marker.
                    return Ok(Prepared::Done(staged));
                }
                (staged, target.tail_token.clone())
            }
        };
        self.write_marker(stream, &staged).await?;
        // Stage what arrived since the last read until a read finds nothing
        // new, so that the delete follows an empty read directly.
        if let Some(mut token) = tail_token {
            loop {
                let mut catch_up = self.segment_writer(stream, &staged);
                token = self.stage_tail(stream, token, &mut catch_up, clock).await?;
                let written = catch_up.finish().await?;
                if written.events == 0 {
                    break;
                }
                tracing::info!(
                    stream,
                    events = written.events,
                    "events that arrived since the scan staged too"
                );
                staged.add(&written);
                self.write_marker(stream, &staged).await?;
            }
        }
        self.recreate(stream).await?;
        Ok(Prepared::Replay(staged))
    }

    /// Records the staged set in the marker: from now on it is the truth.
    async fn write_marker(&self, stream: &str, staged: &StagedSet) -> Result<()> {
        let note = serde_json::to_vec(staged).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        let marker = self.layout.rebuilding_marker(stream);
        self.clients
            .archive
            .put(self.bucket(), &marker, Bytes::from(note))
            .await
    }

    /// Whether the stream still holds an event older than the cutoff (it was
    /// not deleted yet).
    async fn has_events_before_cutoff(&self, stream: &str) -> Result<bool> {
        let logs = self.clients.logs.as_ref();
        let cursor = EventCursor::new(logs, self.group(), stream, 0, Some(self.settings.cutoff_ms), None);
        Ok(cursor.with_page_size(1).next_event().await?.is_some())
    }

    /// Removes the staging segments, then the marker.
    async fn finish(&self, stream: &str) -> Result<()> {
        self.clean_up(stream).await?;
        let marker = self.layout.rebuilding_marker(stream);
        self.clients.archive.delete(self.bucket(), &marker).await
    }

    /// A writer of further segments of the stream's staged set.
    fn segment_writer(&self, stream: &str, staged: &StagedSet) -> SegmentWriter<'_> {
        SegmentWriter::new(
            self.clients.archive.as_ref(),
            self.bucket(),
            self.layout,
            self.header(stream),
            staged.next_segment(),
        )
    }

    fn header(&self, stream: &str) -> StagingHeader {
        StagingHeader {
            log_group_name: self.group().to_string(),
            log_stream_name: stream.to_string(),
            cutoff_ms: self.settings.cutoff_ms,
        }
    }

    async fn read_marker(&self, stream: &str) -> Result<Option<StagedSet>> {
        let marker = self.layout.rebuilding_marker(stream);
        let Some(body) = self.clients.archive.get(self.bucket(), &marker).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ArchiverError::StagingCorrupt {
                bucket: self.bucket().to_string(),
                key: marker,
                detail: format!("the rebuilding marker is not a staged set: {e}"),
            })
    }

    /// Stages the events written after the read that ended at `token`;
    /// returns the token after the last event read.
    async fn stage_tail(
        &self,
        stream: &str,
        token: String,
        writer: &mut SegmentWriter<'_>,
        clock: &mut BudgetClock,
    ) -> Result<String> {
        let logs = self.clients.logs.as_ref();
        let cutoff = self.settings.cutoff_ms;
        let mut cursor = EventCursor::new(logs, self.group(), stream, cutoff, None, Some(token.clone()));
        while let Page::Events(events) = cursor.next_page().await? {
            for event in &events {
                writer.push(event).await?;
            }
        }
        clock.spend(cursor.pages());
        Ok(cursor.token().map_or(token, str::to_string))
    }

    /// Deletes and recreates the stream. When the create finds the stream
    /// already there, a writer recreated it after our delete: its events are
    /// kept and the replay goes in beside them.
    async fn recreate(&self, stream: &str) -> Result<()> {
        self.clients.logs.delete_stream(self.group(), stream).await?;
        if !self.clients.logs.create_stream(self.group(), stream).await? {
            tracing::warn!(stream, "the stream was recreated by someone else; replaying into it");
        }
        Ok(())
    }

    /// Replays the staged events from number `replayed` on, in valid
    /// batches. Returns where it stopped if the budget ran out.
    async fn replay(
        &self,
        stream: &str,
        staged: &StagedSet,
        mut replayed: u64,
        clock: &mut BudgetClock,
    ) -> Result<Option<u64>> {
        let archive = self.clients.archive.as_ref();
        let mut events = StagedEvents::open(archive, self.bucket(), self.layout, stream, staged);
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

    /// Compares the stream's events at or after the cutoff with the staged ones.
    async fn compare(
        &self,
        stream: &str,
        staged: &StagedSet,
        foreign: Option<&mut SegmentWriter<'_>>,
        clock: &mut BudgetClock,
    ) -> Result<(Comparison, Option<String>)> {
        let archive = self.clients.archive.as_ref();
        let logs = self.clients.logs.as_ref();
        let mut expected = StagedEvents::open(archive, self.bucket(), self.layout, stream, staged);
        let mut cursor = EventCursor::new(logs, self.group(), stream, self.settings.cutoff_ms, None, None);
        let comparison = compare(&mut expected, &mut cursor, foreign).await?;
        clock.spend(cursor.pages());
        Ok((comparison, cursor.token().map(str::to_string)))
    }

    /// Deletes every staging segment of the stream (also ones a longer,
    /// abandoned scan left), but not the marker.
    async fn clean_up(&self, stream: &str) -> Result<()> {
        let prefix = format!("{}{stream}:", self.layout.staging_root());
        for object in self.clients.archive.list(self.bucket(), &prefix).await? {
            if let Some((name, StagingKeyKind::Segment(_))) = self.layout.parse_staging_key(&object.key)
                && name == stream
            {
                self.clients.archive.delete(self.bucket(), &object.key).await?;
            }
        }
        Ok(())
    }
}
