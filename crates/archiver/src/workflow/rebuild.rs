//! rebuild-stream: delete expired streams; rebuild mixed streams from their
//! staging objects; record every outcome in S3.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use tracing::Instrument;

use super::read::{ReadLimits, ReadProgress, read_events};
use super::{BatchFailure, BatchSummary, Clients, RebuildRequest, StreamOutcome, StreamPlan};
use crate::batch::BatchPacker;
use crate::error::{ArchiverError, Result};
use crate::event::LogEvent;
use crate::input::RunSettings;
use crate::layout::GroupLayout;
use crate::staging::StagingDecoder;

/// Carries out scan-stream's plans. Errors that a retry may cure
/// (throttling, 5xx, replay not yet readable) fail the whole call so that
/// Step Functions retries it; every step is idempotent. Other errors fail
/// only their stream, which is reported while the rest go on.
pub async fn rebuild_batch(request: RebuildRequest, clients: &Clients) -> Result<BatchSummary> {
    let settings = &request.run.settings;
    let layout = GroupLayout::of(settings);
    let mut outcomes = Vec::with_capacity(request.plans.len());
    for plan in request.plans {
        let outcome = match plan {
            StreamPlan::Leave { outcome, .. } => outcome,
            StreamPlan::Delete { stream, stored_bytes } => {
                let existed = clients.logs.delete_stream(&settings.log_group_name, &stream).await?;
                tracing::info!(stream, existed, "expired stream deleted");
                StreamOutcome {
                    stored_bytes,
                    ..StreamOutcome::new(&stream, "deleted", None)
                }
            }
            StreamPlan::Rebuild {
                stream,
                staging_key,
                stored_bytes,
                ..
            } => match rebuild_stream(settings, &layout, &stream, &staging_key, clients)
                .instrument(tracing::info_span!("stream", stream = stream.as_str()))
                .await
            {
                Ok(replayed) => StreamOutcome {
                    events_replayed: replayed.events,
                    bytes_replayed: replayed.message_bytes,
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
            },
        };
        outcomes.push(outcome);
    }
    write_outcomes(clients, settings, &layout, request.batch, &outcomes).await
}

/// Records every stream of a batch whose retries ran out as failed.
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
    let outcomes: Vec<StreamOutcome> = failure
        .batch
        .streams
        .iter()
        .map(|s| StreamOutcome::new(&s.stream, "failed", Some(reason.clone())))
        .collect();
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
        outcome_key: key,
        failed: outcomes.iter().filter(|o| o.action == "failed").count() as u64,
    })
}

/// Counts of a replay.
#[derive(Debug, Clone, Copy, Default)]
struct Replayed {
    events: u64,
    message_bytes: u64,
}

/// The multiset of staged events, by (timestamp, message hash).
fn fingerprint(event: &LogEvent) -> (i64, u64) {
    let mut hasher = DefaultHasher::new();
    event.message.hash(&mut hasher);
    (event.timestamp, hasher.finish())
}

/// Rebuilds one stream from its staging object:
///
/// 1. write the rebuilding marker (from now on the staging object is the truth);
/// 2. delete the stream, recreate it, replay the staged events in valid batches;
/// 3. read the stream back and check every staged event is there;
/// 4. delete the staging object, then the marker.
///
/// A retry after a crash anywhere finds the marker and starts again at 2,
/// unless the stream already holds every staged event (then only 3 and 4).
async fn rebuild_stream(
    settings: &RunSettings,
    layout: &GroupLayout,
    stream: &str,
    staging_key: &str,
    clients: &Clients,
) -> Result<Replayed> {
    let bucket = settings.bucket.as_str();
    let group = settings.log_group_name.as_str();
    let marker = layout.rebuilding_marker(stream);
    let Some(staged) = clients.archive.get(bucket, staging_key).await? else {
        if clients.archive.exists(bucket, &marker).await? {
            // Verified and staging removed by an earlier attempt; only the marker was left.
            clients.archive.delete(bucket, &marker).await?;
        }
        return Ok(Replayed::default());
    };
    let corrupt = |detail: String| ArchiverError::StagingCorrupt {
        bucket: bucket.to_string(),
        key: staging_key.to_string(),
        detail,
    };
    // Decode fully before touching the stream: a corrupt object must stop us here.
    let decoder = StagingDecoder::new(staged.as_ref()).map_err(|e| corrupt(e.to_string()))?;
    let events: Vec<LogEvent> = decoder
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| corrupt(e.to_string()))?;
    let mut expected: HashMap<(i64, u64), u64> = HashMap::new();
    for event in &events {
        *expected.entry(fingerprint(event)).or_default() += 1;
    }
    let replayed = Replayed {
        events: events.len() as u64,
        message_bytes: events.iter().map(|e| e.message.len() as u64).sum(),
    };

    let resuming = clients.archive.exists(bucket, &marker).await?;
    let already_complete =
        resuming && compare_with_staged(clients, group, stream, &expected).await? == Some(Comparison::EXACT);
    if !already_complete {
        let note = serde_json::json!({"stagingKey": staging_key, "events": replayed.events});
        clients
            .archive
            .put(bucket, &marker, Bytes::from(note.to_string()))
            .await?;
        clients.logs.delete_stream(group, stream).await?;
        if !clients.logs.create_stream(group, stream).await? {
            // Something recreated it between our delete and create: start clean.
            clients.logs.delete_stream(group, stream).await?;
            clients.logs.create_stream(group, stream).await?;
        }
        replay(clients, group, stream, events).await?;
    }
    match compare_with_staged(clients, group, stream, &expected).await? {
        Some(Comparison::EXACT) => {}
        Some(Comparison { missing, .. }) if missing > 0 => {
            return Err(ArchiverError::VerificationPending {
                stream: stream.to_string(),
                missing,
            });
        }
        Some(Comparison { duplicated, .. }) => {
            return Err(ArchiverError::ReplayDuplicated {
                stream: stream.to_string(),
                duplicates: duplicated,
            });
        }
        None => {
            return Err(ArchiverError::VerificationFailed {
                subject: stream.to_string(),
                detail: "the rebuilt stream disappeared before verification".into(),
            });
        }
    }
    clients.archive.delete(bucket, staging_key).await?;
    clients.archive.delete(bucket, &marker).await?;
    tracing::info!(stream, events = replayed.events, "stream rebuilt and verified");
    Ok(replayed)
}

async fn replay(clients: &Clients, group: &str, stream: &str, events: Vec<LogEvent>) -> Result<()> {
    let mut packer = BatchPacker::new();
    for event in events {
        if let Some(batch) = packer
            .push(event)
            .map_err(|e| ArchiverError::Internal(format!("packing {stream}: {e}")))?
        {
            clients.logs.put_events(group, stream, &batch).await?;
        }
    }
    if let Some(batch) = packer.finish() {
        clients.logs.put_events(group, stream, &batch).await?;
    }
    Ok(())
}

/// How the stream's events compare with the staged ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comparison {
    /// Staged events not in the stream.
    missing: u64,
    /// Staged events in the stream more often than staged.
    duplicated: u64,
}

impl Comparison {
    const EXACT: Comparison = Comparison {
        missing: 0,
        duplicated: 0,
    };
}

/// Reads the stream back and compares it with the staged events; `None` if
/// the stream is gone. Events that are not staged ones were written by
/// someone else meanwhile: they are kept and not counted.
async fn compare_with_staged(
    clients: &Clients,
    group: &str,
    stream: &str,
    expected: &HashMap<(i64, u64), u64>,
) -> Result<Option<Comparison>> {
    let mut remaining: HashMap<(i64, u64), i64> = expected.iter().map(|(k, v)| (*k, *v as i64)).collect();
    let progress = read_events(
        clients.logs.as_ref(),
        group,
        stream,
        0,
        None,
        None,
        ReadLimits::UNBOUNDED,
        |event| {
            if let Some(count) = remaining.get_mut(&fingerprint(&event)) {
                *count -= 1;
            }
            Ok(())
        },
    )
    .await?;
    Ok(match progress {
        ReadProgress::StreamMissing => None,
        _ => Some(Comparison {
            missing: remaining.values().filter(|v| **v > 0).map(|v| *v as u64).sum(),
            duplicated: remaining.values().filter(|v| **v < 0).map(|v| v.unsigned_abs()).sum(),
        }),
    })
}
