//! scan-stream: classify each stream of a batch and stage the events to keep
//! in S3 before anything is deleted.

use bytes::Bytes;
use tracing::Instrument;

use super::read::{ReadLimits, ReadProgress, read_events};
use super::start::load_checkpoint;
use super::{BatchRequest, Clients, ExportState, ManifestStream, RunState, ScanResult, StreamOutcome, StreamPlan};
use crate::classify::{ClassifyContext, SkipReason, StreamClass, classify};
use crate::error::{ArchiverError, Result};
use crate::input::{Mode, RunSettings};
use crate::layout::GroupLayout;
use crate::staging::{StagingEncoder, StagingError, StagingHeader, StagingSummary};
use crate::store::StreamInfo;
use crate::window::{Checkpoint, ExportRecord};

/// Multipart part size for staging objects: S3 needs at least 5 MiB per part
/// but the last; 8 MiB keeps a Lambda's memory small and bounded.
pub const STAGING_PART_BYTES: usize = 8 * 1024 * 1024;

/// Events read per GetLogEvents call while staging.
const STAGING_READ_EVENTS: u64 = 10_000;

/// Plans every stream of the batch; mixed streams are staged to S3 first.
pub async fn scan_batch(request: BatchRequest, clients: &Clients) -> Result<ScanResult> {
    let BatchRequest { run, batch } = request;
    let settings = &run.settings;
    let layout = GroupLayout::of(settings);
    let checkpoint = effective_checkpoint(&run, clients, &layout).await?;
    let retention_days = clients
        .logs
        .describe_group(&settings.log_group_name)
        .await?
        .and_then(|g| g.retention_in_days);
    let mut plans = Vec::with_capacity(batch.streams.len());
    for stream in &batch.streams {
        let ctx = ClassifyContext {
            settings,
            checkpoint: &checkpoint,
            retention_days,
        };
        let span = tracing::info_span!("stream", stream = stream.stream.as_str());
        let plan = plan_stream(&run, stream, ctx, &layout, clients).instrument(span);
        plans.push(plan.await?);
    }
    Ok(ScanResult {
        batch: batch.batch,
        plans,
    })
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

async fn plan_stream(
    run: &RunState,
    candidate: &ManifestStream,
    ctx: ClassifyContext<'_>,
    layout: &GroupLayout,
    clients: &Clients,
) -> Result<StreamPlan> {
    let settings = &run.settings;
    let name = candidate.stream.as_str();
    let staging_key = layout.staging(name);
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
        return Ok(StreamPlan::Rebuild {
            stream: name.to_string(),
            staging_key,
            events: None,
            message_bytes: None,
            stored_bytes: stored_bytes(candidate.info.as_ref()),
        });
    }
    let Some(info) = &candidate.info else {
        return Ok(leave("gone", Some("the stream no longer exists".into())));
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
    if progress == ReadProgress::StreamMissing {
        return Ok(leave("gone", Some("the stream was deleted before the scan".into())));
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
        StreamClass::Mixed { .. } => {
            let summary = stage_kept_events(settings, name, &staging_key, clients).await?;
            StreamPlan::Rebuild {
                stream: name.to_string(),
                staging_key,
                events: Some(summary.events),
                message_bytes: Some(summary.message_bytes),
                stored_bytes: stored_bytes(Some(info)),
            }
        }
    };
    Ok(plan)
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

fn staging_error(settings: &RunSettings, key: &str, e: StagingError) -> ArchiverError {
    ArchiverError::StagingCorrupt {
        bucket: settings.bucket.clone(),
        key: key.to_string(),
        detail: e.to_string(),
    }
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

/// Streams the events `>= cutoff` of a stream into its staging object:
/// multipart parts as the compressed data grows, so memory stays bounded by
/// the part size, whatever the stream's size. A staging object left by an
/// earlier attempt is simply overwritten: without a rebuilding marker the
/// stream itself is still complete.
async fn stage_kept_events(
    settings: &RunSettings,
    stream: &str,
    key: &str,
    clients: &Clients,
) -> Result<StagingSummary> {
    let archive = clients.archive.as_ref();
    let bucket = settings.bucket.as_str();
    let mut encoder = StagingEncoder::new(StagingHeader {
        log_group_name: settings.log_group_name.clone(),
        log_stream_name: stream.to_string(),
        cutoff_ms: settings.cutoff_ms,
    });
    let mut upload: Option<(String, Vec<String>)> = None;
    let mut token = None;
    let result: Result<()> = async {
        loop {
            let mut push_error = None;
            let progress = read_events(
                clients.logs.as_ref(),
                &settings.log_group_name,
                stream,
                settings.cutoff_ms,
                None,
                token.take(),
                ReadLimits {
                    max_events: Some(STAGING_READ_EVENTS),
                    page_size: None,
                },
                |event| {
                    if push_error.is_none() {
                        push_error = encoder.push(&event).err();
                    }
                    Ok(())
                },
            )
            .await?;
            if let Some(e) = push_error {
                return Err(staging_error(settings, key, e));
            }
            if let Some(chunk) = encoder.take_ready_chunk(STAGING_PART_BYTES) {
                let (upload_id, etags) = match &mut upload {
                    Some(u) => u,
                    None => upload.insert((archive.start_upload(bucket, key).await?, Vec::new())),
                };
                let part = i32::try_from(etags.len() + 1).unwrap_or(i32::MAX);
                etags.push(
                    archive
                        .upload_part(bucket, key, upload_id, part, Bytes::from(chunk))
                        .await?,
                );
            }
            match progress {
                ReadProgress::Paused { token: next, .. } => token = Some(next),
                ReadProgress::Finished { .. } => return Ok(()),
                ReadProgress::StreamMissing => {
                    return Err(ArchiverError::VerificationFailed {
                        subject: stream.to_string(),
                        detail: "the stream disappeared while it was being staged".into(),
                    });
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        if let Some((upload_id, _)) = &upload {
            let _ = archive.abort_upload(bucket, key, upload_id).await;
        }
        return Err(e);
    }
    let (rest, summary) = encoder.finish().map_err(|e| staging_error(settings, key, e))?;
    match upload {
        None => archive.put(bucket, key, Bytes::from(rest)).await?,
        Some((upload_id, mut etags)) => {
            let part = i32::try_from(etags.len() + 1).unwrap_or(i32::MAX);
            etags.push(
                archive
                    .upload_part(bucket, key, &upload_id, part, Bytes::from(rest))
                    .await?,
            );
            archive.complete_upload(bucket, key, &upload_id, etags).await?;
        }
    }
    tracing::info!(stream, events = summary.events, key, "kept events staged");
    Ok(summary)
}
