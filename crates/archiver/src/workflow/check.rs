//! check-export: poll the export task; once COMPLETED verify its objects,
//! advance the checkpoint and write the manifest of candidate streams.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::start::load_checkpoint;
use super::{BudgetClock, Clients, ExportState, ManifestBatch, ManifestRef, ManifestStream, RunState, VerifiedExport};
use crate::domain::export_format::parse_export_key;
use crate::domain::layout::{GroupLayout, StagingKeyKind};
use crate::domain::window::{ExportRecord, ExportWindow};
use crate::error::{ArchiverError, Result};
use crate::store::ExportStatus;

/// One poll of the workflow's export step. Returns the state unchanged while
/// the task is PENDING or RUNNING (the state machine waits and polls again),
/// `LISTING` while the group's streams are being listed (it calls again at
/// once), `READY` once the manifest is written, and `ExportFailed` when the
/// task failed or was cancelled (nothing deleted, checkpoint not advanced).
pub async fn check_export(run: RunState, clients: &Clients) -> Result<RunState> {
    let settings = &run.settings;
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
            let verified = VerifiedExport {
                task_id: task_id.clone(),
                window: *window,
                destination_prefix: destination_prefix.clone(),
                objects: day.objects,
                bytes: day.bytes,
            };
            advance_checkpoint(clients, &layout, settings, &verified, *started_at_ms).await?;
            Listing {
                exported: Some(day.streams),
                ..Listing::start(Some(verified), None)
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
        ExportState::Ready { .. } => return Ok(run),
        ExportState::Busy { .. } => {
            return Err(ArchiverError::Internal(
                "check-export called while the export has not started".into(),
            ));
        }
    };
    let export = list_streams(listing, &run, &layout, clients).await?;
    Ok(RunState { export, ..run })
}

/// Where the listing of the group's streams stands.
struct Listing {
    export: Option<VerifiedExport>,
    /// The streams the export wrote objects for, when this invocation
    /// verified it (a later one lists them again).
    exported: Option<BTreeSet<String>>,
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

/// Lists the group's streams a page at a time within the invocation's
/// budget, saving the candidates (any event older than the cutoff) of each
/// invocation as a part in S3; hands back `LISTING` while pages remain, and
/// writes the manifest once the last page is read.
async fn list_streams(
    mut listing: Listing,
    run: &RunState,
    layout: &GroupLayout,
    clients: &Clients,
) -> Result<ExportState> {
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
        let part = layout.listing_part(&settings.run_id(), listing.parts);
        let body = serde_json::to_vec(&candidates).map_err(|e| ArchiverError::Internal(e.to_string()))?;
        clients.archive.put(&settings.bucket, &part, Bytes::from(body)).await?;
        tracing::info!(
            streams = listing.streams_in_group,
            "stream listing continues in the next invocation"
        );
        return Ok(ExportState::Listing {
            export: listing.export,
            planned_window: listing.planned_window,
            token: listing.token,
            parts: listing.parts,
            streams_in_group: listing.streams_in_group,
        });
    }
    let exported = listing.exported.take();
    let manifest = write_manifest(clients, run, layout, &listing, exported, candidates).await?;
    Ok(ExportState::Ready {
        export: listing.export,
        planned_window: listing.planned_window,
        manifest,
    })
}

/// The objects under an export's day prefix: this task's, counted and
/// named by stream, and other tasks' keys by task id.
struct ExportObjects {
    objects: u64,
    bytes: u64,
    streams: BTreeSet<String>,
    others: BTreeMap<String, Vec<String>>,
}

impl ExportObjects {
    async fn list(clients: &Clients, bucket: &str, task_id: &str, destination_prefix: &str) -> Result<Self> {
        let mut day = ExportObjects {
            objects: 0,
            bytes: 0,
            streams: BTreeSet::new(),
            others: BTreeMap::new(),
        };
        for object in clients.archive.list(bucket, &format!("{destination_prefix}/")).await? {
            let Some(key) = parse_export_key(destination_prefix, &object.key) else {
                continue;
            };
            if key.task_id == task_id {
                day.objects += 1;
                day.bytes += object.size.max(0) as u64;
                day.streams.insert(key.stream);
            } else {
                day.others.entry(key.task_id).or_default().push(object.key);
            }
        }
        Ok(day)
    }
}

/// Deletes the objects of other tasks that bear this run's task name (a
/// create retried after its answer was lost exports the window twice).
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

/// The streams the export wrote objects for.
async fn exported_streams(clients: &Clients, bucket: &str, export: &VerifiedExport) -> Result<BTreeSet<String>> {
    let prefix = &export.destination_prefix;
    let objects = clients
        .archive
        .list(bucket, &format!("{prefix}/{}/", export.task_id))
        .await?;
    Ok(objects
        .iter()
        .filter_map(|o| parse_export_key(prefix, &o.key).map(|k| k.stream))
        .collect())
}

async fn advance_checkpoint(
    clients: &Clients,
    layout: &GroupLayout,
    settings: &crate::domain::input::RunSettings,
    export: &VerifiedExport,
    started_at_ms: i64,
) -> Result<()> {
    let key = layout.checkpoint();
    let mut checkpoint = load_checkpoint(clients, &settings.bucket, &key)
        .await?
        .unwrap_or_default();
    if checkpoint.exports.iter().any(|e| e.task_id == export.task_id) {
        return Ok(()); // a retried poll already recorded it
    }
    checkpoint.log_group_name = settings.log_group_name.clone();
    checkpoint.advance(ExportRecord {
        task_id: export.task_id.clone(),
        from_ms: export.window.from_ms,
        until_ms: export.window.until_ms,
        started_at_ms,
        destination_prefix: export.destination_prefix.clone(),
        objects: export.objects,
        bytes: export.bytes,
    });
    let body = serde_json::to_vec_pretty(&checkpoint).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    tracing::info!(
        task_id = export.task_id,
        until_ms = export.window.until_ms,
        "checkpoint advanced"
    );
    Ok(())
}

/// Writes the candidate streams (any event older than the cutoff, or a
/// rebuild in progress) as a JSON array of batches for the Map's ItemReader,
/// from the parts earlier invocations saved and this one's `last` page(s),
/// then removes the parts. `exported` names the export's streams when this
/// invocation already listed them.
async fn write_manifest(
    clients: &Clients,
    run: &RunState,
    layout: &GroupLayout,
    listing: &Listing,
    exported: Option<BTreeSet<String>>,
    last: Vec<crate::store::StreamInfo>,
) -> Result<ManifestRef> {
    let settings = &run.settings;
    let run_id = settings.run_id();
    let exported = match (exported, &listing.export) {
        (Some(streams), _) => Some(streams),
        (None, Some(export)) => Some(exported_streams(clients, &settings.bucket, export).await?),
        (None, None) => None,
    };
    let mut listed = Vec::new();
    for part in 1..=listing.parts {
        let key = layout.listing_part(&run_id, part);
        let body = clients.archive.get(&settings.bucket, &key).await?.ok_or_else(|| {
            ArchiverError::Internal(format!(
                "the stream listing part s3://{}/{key} is missing",
                settings.bucket
            ))
        })?;
        let streams: Vec<crate::store::StreamInfo> =
            serde_json::from_slice(&body).map_err(|e| ArchiverError::Internal(format!("{key}: {e}")))?;
        listed.extend(streams);
    }
    let mut candidates: BTreeMap<String, ManifestStream> = listed
        .into_iter()
        .chain(last)
        .map(|s| {
            let in_export = exported.as_ref().map(|set| set.contains(&s.name));
            let stream = ManifestStream {
                stream: s.name.clone(),
                info: Some(s),
                in_export,
            };
            (stream.stream.clone(), stream)
        })
        .collect();
    let streams_in_group = listing.streams_in_group;
    // A stream whose rebuild was interrupted may be gone or hold only part of
    // its events; its staging object is the truth and it must be finished.
    for object in clients.archive.list(&settings.bucket, &layout.staging_root()).await? {
        if let Some((stream, StagingKeyKind::RebuildingMarker)) = layout.parse_staging_key(&object.key) {
            candidates.entry(stream.clone()).or_insert(ManifestStream {
                stream,
                info: None,
                in_export: None,
            });
        }
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
    let key = layout.manifest(&run_id);
    let body = serde_json::to_vec(&batches).map_err(|e| ArchiverError::Internal(e.to_string()))?;
    clients.archive.put(&settings.bucket, &key, Bytes::from(body)).await?;
    for part in 1..=listing.parts {
        clients
            .archive
            .delete(&settings.bucket, &layout.listing_part(&run_id, part))
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
