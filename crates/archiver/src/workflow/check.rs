//! check-export: poll the export task; once COMPLETED list the group's
//! streams, verify the export against the listing, advance the checkpoint
//! (compare-and-swap) and write the manifest of candidate streams.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::lease;
use super::read::EventCursor;
use super::start::load_checkpoint;
use super::{BudgetClock, Clients, ExportState, ManifestBatch, ManifestRef, ManifestStream, RunState, VerifiedExport};
use crate::domain::export_format::parse_export_key;
use crate::domain::input::{Mode, RunSettings};
use crate::domain::layout::{GroupLayout, StagingKeyKind};
use crate::domain::retention::RetentionStatus;
use crate::domain::window::{Checkpoint, ExportRecord, ExportWindow};
use crate::error::{ArchiverError, Result};
use crate::store::{ExportStatus, StreamInfo, WriteCondition};

/// How many streams with events in the window but no export object are read
/// when the export wrote no object at all, to tell an incomplete export from
/// stale stream statistics.
const ZERO_OBJECT_CHECKS: usize = 10;
/// How often the checkpoint's compare-and-swap is tried against other writers.
const CHECKPOINT_CAS_TRIES: u32 = 8;

/// One poll of the workflow's export step. Returns the state unchanged while
/// the task is PENDING or RUNNING (the state machine waits and polls again),
/// `LISTING` while the group's streams are being listed (it calls again at
/// once), `READY` once the export is verified, the checkpoint advanced and
/// the manifest written, and `ExportFailed` when the task failed or was
/// cancelled (nothing deleted, checkpoint not advanced).
pub async fn check_export(run: RunState, clients: &Clients) -> Result<RunState> {
    let settings = &run.settings;
    if settings.mode != Mode::Plan {
        lease::confirm(clients, settings).await?;
    }
    let layout = GroupLayout::of(settings);
    let listing = match &run.export {
        ExportState::Started {
            task_id,
            window,
            destination_prefix,
            started_at_ms,
        } => {
            let task =
                clients
                    .logs
                    .describe_export_task(task_id)
                    .await?
                    .ok_or_else(|| ArchiverError::ExportFailed {
                        task_id: task_id.clone(),
                        status: "UNKNOWN".into(),
                        message: "DescribeExportTasks does not know the task".into(),
                    })?;
            match task.status {
                ExportStatus::Completed => {}
                ExportStatus::Failed | ExportStatus::Cancelled => {
                    return Err(ArchiverError::ExportFailed {
                        task_id: task_id.clone(),
                        status: format!("{:?}", task.status).to_uppercase(),
                        message: task.message,
                    });
                }
                _ => return Ok(run),
            }
            // One listing of the day's exports serves the duplicate check and the verification.
            let day = ExportObjects::list(clients, &settings.bucket, task_id, destination_prefix).await?;
            if !remove_duplicate_tasks(clients, &settings.bucket, &task.task_name, day.others).await? {
                return Ok(run); // a duplicate still runs: poll again
            }
            let export = VerifiedExport {
                task_id: task_id.clone(),
                window: *window,
                destination_prefix: destination_prefix.clone(),
                objects: day.objects,
                bytes: day.bytes,
                // The earliest the task can have started reading.
                started_at_ms: task.creation_ms.map_or(*started_at_ms, |c| c.min(*started_at_ms)),
            };
            Listing {
                exported: Some(day.streams),
                ..Listing::start(Some(export), None)
            }
        }
        ExportState::NothingToExport => Listing::start(None, None),
        ExportState::Planned { window } => Listing::start(None, *window),
        ExportState::Listing {
            export,
            planned_window,
            token,
            parts,
            streams_in_group,
        } => Listing {
            export: export.clone(),
            exported: None,
            planned_window: *planned_window,
            token: token.clone(),
            parts: *parts,
            streams_in_group: *streams_in_group,
        },
        ExportState::Ready { .. } | ExportState::GroupBusy { .. } => return Ok(run),
        ExportState::Busy { .. } => {
            return Err(ArchiverError::Internal(
                "check-export called while the export has not started".into(),
            ));
        }
    };
    let (export, retention) = list_streams(listing, &run, &layout, clients).await?;
    Ok(RunState {
        export,
        retention,
        ..run
    })
}

/// Where the listing of the group's streams stands.
struct Listing {
    export: Option<VerifiedExport>,
    /// The export's objects by stream (compressed bytes), when this
    /// invocation listed them (a later one lists them again).
    exported: Option<BTreeMap<String, u64>>,
    planned_window: Option<ExportWindow>,
    token: Option<String>,
    parts: u32,
    streams_in_group: u64,
}

impl Listing {
    fn start(export: Option<VerifiedExport>, planned_window: Option<ExportWindow>) -> Self {
        Self {
            export,
            exported: None,
            planned_window,
            token: None,
            parts: 0,
            streams_in_group: 0,
        }
    }
}

/// Whether the stream's statistics show events in the window.
fn shows_events_in(stream: &StreamInfo, window: &ExportWindow) -> bool {
    match (stream.first_event_timestamp, stream.last_event_timestamp) {
        (Some(first), Some(last)) => first < window.until_ms && last >= window.from_ms,
        (Some(first), None) => first < window.until_ms,
        _ => false,
    }
}

/// Lists the group's streams a page at a time within the invocation's
/// budget, saving the candidates (any event older than the cutoff, by the
/// listing) of each invocation as a part in S3; hands back `LISTING` while
/// pages remain. After the last page it verifies the export against the
/// listing, advances the checkpoint and writes the manifest.
async fn list_streams(
    mut listing: Listing,
    run: &RunState,
    layout: &GroupLayout,
    clients: &Clients,
) -> Result<(ExportState, RetentionStatus)> {
    let settings = &run.settings;
    let mut clock = BudgetClock::start(settings.budget);
    let mut candidates = Vec::new();
    loop {
        let (page, next) = clients
            .logs
            .list_streams_page(&settings.log_group_name, listing.token.as_deref())
            .await?;
        clock.spend(1);
        listing.streams_in_group += page.len() as u64;
        // Every stream with events in the export's window starts before the cutoff.
        candidates.extend(
            page.into_iter()
                .filter(|s| s.first_event_timestamp.is_some_and(|t| t < settings.cutoff_ms)),
        );
        listing.token = next;
        if listing.token.is_none() || clock.exhausted() {
            break;
        }
    }
    if listing.token.is_some() {
        // Saved for the invocation that writes the manifest.
        listing.parts += 1;
        let part = layout.listing_part(&settings.run_id, listing.parts);
        let body = serde_json::to_vec(&candidates).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        clients.archive.put(&settings.bucket, &part, Bytes::from(body)).await?;
        tracing::info!(
            streams = listing.streams_in_group,
            "stream listing continues in the next invocation"
        );
        let listing_state = ExportState::Listing {
            export: listing.export,
            planned_window: listing.planned_window,
            token: listing.token,
            parts: listing.parts,
            streams_in_group: listing.streams_in_group,
        };
        return Ok((listing_state, run.retention.clone()));
    }
    let listed = read_listing_parts(clients, settings, layout, listing.parts, candidates).await?;
    let exported = match (listing.exported.take(), &listing.export) {
        (Some(streams), _) => Some(streams),
        (None, Some(export)) => Some(exported_streams(clients, &settings.bucket, export).await?),
        (None, None) => None,
    };
    let mut retention = run.retention.clone();
    if let (Some(export), Some(exported)) = (&listing.export, &exported) {
        verify_export(clients, settings, export, exported, &listed).await?;
        advance_checkpoint(clients, layout, settings, export).await?;
    }
    if settings.mode != Mode::Plan {
        let exported_until = match &listing.export {
            Some(export) => export.window.until_ms,
            None => load_checkpoint(clients, &settings.bucket, &layout.checkpoint())
                .await?
                .map_or(0, |c| c.exported_until_ms),
        };
        retention
            .changes
            .extend(super::retention::after_export(clients, settings, exported_until).await?);
    }
    let manifest = write_manifest(clients, run, layout, &listing, exported, listed).await?;
    let group = clients.logs.describe_group(&settings.log_group_name).await?;
    let protection = clients.logs.data_protection(&settings.log_group_name).await?;
    let ready = ExportState::Ready {
        export: listing.export,
        planned_window: listing.planned_window,
        manifest,
        protection,
        retention_days: group.as_ref().and_then(|g| g.retention_in_days),
        group_stored_bytes: group.and_then(|g| g.stored_bytes),
    };
    Ok((ready, retention))
}

/// The candidates earlier invocations saved, then `last`; the parts are
/// removed once the manifest is written.
async fn read_listing_parts(
    clients: &Clients,
    settings: &RunSettings,
    layout: &GroupLayout,
    parts: u32,
    last: Vec<StreamInfo>,
) -> Result<Vec<StreamInfo>> {
    let mut listed = Vec::new();
    for part in 1..=parts {
        let key = layout.listing_part(&settings.run_id, part);
        let body = clients.archive.get(&settings.bucket, &key).await?.ok_or_else(|| {
            ArchiverError::Internal(format!(
                "the stream listing part s3://{}/{key} is missing",
                settings.bucket
            ))
        })?;
        let streams: Vec<StreamInfo> =
            serde_json::from_slice(&body).map_err(|e| ArchiverError::Internal(format!("{key}: {e}")))?;
        listed.extend(streams);
    }
    listed.extend(last);
    Ok(listed)
}

/// Checks the export against the listing before anything relies on it. A
/// stream the listing shows with events in the window but without an
/// export object is left to the per-stream proof (its whole window is
/// proven event by event before it is deleted). An export with no object at
/// all while the listing shows such streams is only accepted if reading
/// them finds no event the export must hold (one ingested long enough
/// before the task): stream statistics are eventually consistent, but zero
/// objects for events that exist is a broken export.
async fn verify_export(
    clients: &Clients,
    settings: &RunSettings,
    export: &VerifiedExport,
    exported: &BTreeMap<String, u64>,
    listed: &[StreamInfo],
) -> Result<()> {
    let missing: Vec<&StreamInfo> = listed
        .iter()
        .filter(|s| shows_events_in(s, &export.window) && !exported.contains_key(&s.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        streams = missing.len(),
        objects = export.objects,
        "streams the listing shows with events in the window have no export object"
    );
    if export.objects > 0 {
        return Ok(());
    }
    let record = export_record(export);
    for stream in missing.iter().take(ZERO_OBJECT_CHECKS) {
        let mut cursor = EventCursor::new(
            clients.logs.as_ref(),
            &settings.log_group_name,
            &stream.name,
            export.window.from_ms,
            Some(export.window.until_ms),
            None,
        )
        .with_page_size(1);
        if let Some(event) = cursor.next_ingested().await?
            && event.ingestion_ms < record.complete_before_ms()
        {
            return Err(ArchiverError::ExportIncomplete {
                task_id: export.task_id.clone(),
                detail: format!(
                    "it wrote no object, yet stream {:?} holds an event of its window (at {} ms) ingested long \
                     enough before the task to be in it; check the bucket policy and the task's status message",
                    stream.name, event.event.timestamp
                ),
            });
        }
    }
    Ok(())
}

/// The objects under an export's day prefix: this task's, counted and
/// sized by stream, and other tasks' keys by task id.
struct ExportObjects {
    objects: u64,
    bytes: u64,
    streams: BTreeMap<String, u64>,
    others: BTreeMap<String, Vec<String>>,
}

impl ExportObjects {
    async fn list(clients: &Clients, bucket: &str, task_id: &str, destination_prefix: &str) -> Result<Self> {
        let mut day = ExportObjects {
            objects: 0,
            bytes: 0,
            streams: BTreeMap::new(),
            others: BTreeMap::new(),
        };
        for object in clients.archive.list(bucket, &format!("{destination_prefix}/")).await? {
            let Some(key) = parse_export_key(destination_prefix, &object.key) else {
                continue;
            };
            let size = object.size.max(0) as u64;
            if key.task_id == task_id {
                day.objects += 1;
                day.bytes += size;
                *day.streams.entry(key.stream).or_default() += size;
            } else if key.supplement.is_none() {
                day.others.entry(key.task_id).or_default().push(object.key);
            }
        }
        Ok(day)
    }
}

/// Deletes the objects of other tasks that bear this run's task name: a
/// create retried after its answer was lost exports the window twice. Task
/// names carry the run id, so another run's export is never touched.
/// Returns `false` while such a task is still running.
async fn remove_duplicate_tasks(
    clients: &Clients,
    bucket: &str,
    task_name: &str,
    others: BTreeMap<String, Vec<String>>,
) -> Result<bool> {
    for (other, keys) in others {
        let Some(task) = clients.logs.describe_export_task(&other).await? else {
            continue;
        };
        if task.task_name != task_name {
            continue; // another run's export on the same day
        }
        if task.status.is_active() {
            return Ok(false);
        }
        tracing::warn!(
            task_id = other,
            objects = keys.len(),
            "removing a duplicate export of this run"
        );
        for key in keys {
            clients.archive.delete(bucket, &key).await?;
        }
    }
    Ok(true)
}

/// The streams the export wrote objects for, with their compressed bytes.
async fn exported_streams(clients: &Clients, bucket: &str, export: &VerifiedExport) -> Result<BTreeMap<String, u64>> {
    let prefix = &export.destination_prefix;
    let objects = clients
        .archive
        .list(bucket, &format!("{prefix}/{}/", export.task_id))
        .await?;
    let mut streams = BTreeMap::new();
    for object in objects {
        if let Some(key) = parse_export_key(prefix, &object.key).filter(|k| k.supplement.is_none()) {
            *streams.entry(key.stream).or_default() += object.size.max(0) as u64;
        }
    }
    Ok(streams)
}

/// The checkpoint record of a verified export.
pub(crate) fn export_record(export: &VerifiedExport) -> ExportRecord {
    ExportRecord {
        task_id: export.task_id.clone(),
        from_ms: export.window.from_ms,
        until_ms: export.window.until_ms,
        started_at_ms: export.started_at_ms,
        destination_prefix: export.destination_prefix.clone(),
        objects: export.objects,
        bytes: export.bytes,
    }
}

/// Records the export in the group's checkpoint with a compare-and-swap, so
/// that a concurrent writer can neither be overwritten nor move it back.
async fn advance_checkpoint(
    clients: &Clients,
    layout: &GroupLayout,
    settings: &RunSettings,
    export: &VerifiedExport,
) -> Result<()> {
    let key = layout.checkpoint();
    for _ in 0..CHECKPOINT_CAS_TRIES {
        let current = clients.archive.get_versioned(&settings.bucket, &key).await?;
        let (mut checkpoint, condition) = match &current {
            None => (Checkpoint::default(), WriteCondition::IfAbsent),
            Some(version) => (
                serde_json::from_slice::<Checkpoint>(&version.body).map_err(|e| {
                    ArchiverError::Internal(format!(
                        "checkpoint s3://{}/{key} is not valid JSON ({e}); restore it from a previous version",
                        settings.bucket
                    ))
                })?,
                WriteCondition::IfMatch(version.etag.clone()),
            ),
        };
        if checkpoint.exports.iter().any(|e| e.task_id == export.task_id) {
            return Ok(()); // a retried poll already recorded it
        }
        checkpoint.log_group_name = settings.log_group_name.clone();
        checkpoint.advance(export_record(export));
        let body = serde_json::to_vec_pretty(&checkpoint).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        if clients
            .archive
            .put_if(&settings.bucket, &key, Bytes::from(body), condition)
            .await?
            .is_some()
        {
            tracing::info!(
                task_id = export.task_id,
                until_ms = export.window.until_ms,
                "checkpoint advanced"
            );
            return Ok(());
        }
    }
    Err(ArchiverError::Service {
        operation: "PutObject",
        message: format!("the checkpoint s3://{}/{key} kept changing", settings.bucket),
        retryable: true,
    })
}

/// Writes the candidate streams (any event older than the cutoff, or an
/// earlier run's interrupted rebuild) as a JSON array of batches for the
/// Map's ItemReader, then removes the listing parts. `exported` maps the
/// export's streams to their compressed bytes.
async fn write_manifest(
    clients: &Clients,
    run: &RunState,
    layout: &GroupLayout,
    listing: &Listing,
    exported: Option<BTreeMap<String, u64>>,
    listed: Vec<StreamInfo>,
) -> Result<ManifestRef> {
    let settings = &run.settings;
    let run_id = &settings.run_id;
    let mut candidates: BTreeMap<String, ManifestStream> = listed
        .into_iter()
        .map(|s| {
            let bytes = exported.as_ref().and_then(|set| set.get(&s.name).copied());
            let stream = ManifestStream {
                stream: s.name.clone(),
                info: Some(s),
                in_export: exported.as_ref().map(|_| bytes.is_some()),
                export_bytes: bytes.unwrap_or(0),
                unfinished_runs: Vec::new(),
            };
            (stream.stream.clone(), stream)
        })
        .collect();
    let streams_in_group = listing.streams_in_group;
    // An earlier run's interrupted rebuild: the stream may be gone or hold
    // only part of its events; that run's staging is the truth and it must
    // be finished first.
    let mut unfinished: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for object in clients.archive.list(&settings.bucket, &layout.staging_root()).await? {
        if let Some(key) = layout.parse_staging_key(&object.key)
            && key.kind == StagingKeyKind::RebuildingMarker
            && key.run_id != *run_id
        {
            unfinished.entry(key.stream).or_default().insert(key.run_id);
        }
    }
    for (stream, runs) in unfinished {
        candidates
            .entry(stream.clone())
            .or_insert(ManifestStream {
                stream,
                info: None,
                in_export: None,
                export_bytes: 0,
                unfinished_runs: Vec::new(),
            })
            .unfinished_runs = runs.into_iter().collect();
    }

    let per_batch = usize::try_from(settings.streams_per_batch).unwrap_or(1).max(1);
    let candidates: Vec<ManifestStream> = candidates.into_values().collect();
    let batches: Vec<ManifestBatch> = candidates
        .chunks(per_batch)
        .enumerate()
        .map(|(i, chunk)| ManifestBatch {
            batch: i as u32,
            streams: chunk.to_vec(),
        })
        .collect();
    let key = layout.manifest(run_id);
    let body = serde_json::to_vec(&batches).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    for part in 1..=listing.parts {
        clients
            .archive
            .delete(&settings.bucket, &layout.listing_part(run_id, part))
            .await?;
    }
    Ok(ManifestRef {
        bucket: settings.bucket.clone(),
        key,
        batches: batches.len() as u64,
        streams: candidates.len() as u64,
        streams_in_group,
    })
}
