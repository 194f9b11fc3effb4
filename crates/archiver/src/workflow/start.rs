//! start-export: validate the input, resolve the window, start the export.

use serde::{Deserialize, Serialize};

use super::lease::{self, Acquired};
use super::retention;
use super::{Clients, ExportState, LeaseHolder, RunState, clients_now};
use crate::domain::input::{ExecutionInput, InputProblem, Mode, RunSettings, group_name_token};
use crate::domain::layout::GroupLayout;
use crate::domain::retention::RetentionStatus;
use crate::domain::window::{Checkpoint, ExportWindow};
use crate::error::{ArchiverError, Result};
use crate::store::{ExportRequest, ExportStart};

/// What the state machine hands start-export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    /// The execution input as the user gave it.
    pub input: serde_json::Value,
    /// `$$.Execution.StartTime`.
    pub execution_start_time: Option<String>,
    /// `$$.Execution.Id`, carried in the settings so every step logs it.
    #[serde(default)]
    pub execution_id: Option<String>,
    /// `$$.Execution.Name`: the run id.
    #[serde(default)]
    pub execution_name: Option<String>,
}

/// Validates the input, checks that the group and bucket exist, takes the
/// group's lease (a group held by another run ends here as `GROUP_BUSY`,
/// touching nothing), and starts the export of `[checkpoint, cutoff - 1]`
/// unless another task holds the account's slot, nothing is new, or the mode
/// is `plan` (which takes no lease: it touches nothing).
pub async fn start_export(request: StartRequest, clients: &Clients) -> Result<RunState> {
    let mut input = ExecutionInput::from_json(request.input)?;
    if request.execution_start_time.is_some() {
        input.execution_start_time = request.execution_start_time;
    }
    if request.execution_name.is_some() {
        input.execution_name = request.execution_name;
    }
    let mut settings = input.validate(clients_now(clients))?;
    settings.execution_id = request.execution_id;
    check_resources_exist(&settings, clients).await?;

    if settings.mode != Mode::Plan
        && let Acquired::Busy(holder) = lease::acquire(clients, &settings).await?
    {
        tracing::warn!(holder = holder.run_id, "another run holds the group");
        let held_by = LeaseHolder {
            run_id: holder.run_id,
            execution_arn: holder.execution_arn,
            since: holder.acquired_at,
            expires_at: holder.expires_at,
        };
        return Ok(RunState {
            settings,
            export: ExportState::GroupBusy { held_by },
            retention: RetentionStatus::default(),
        });
    }

    let layout = GroupLayout::of(&settings);
    let checkpoint = load_checkpoint(clients, &settings.bucket, &layout.checkpoint()).await?;
    // Before anything else: no event newer than the checkpoint may be on a
    // path to expiry while this run (or a failed one) leaves it unexported.
    let exported_until = checkpoint.as_ref().map_or(0, |c| c.exported_until_ms);
    let (at_start, change) = match retention::guard(clients, &settings, exported_until).await {
        Ok(guarded) => guarded,
        Err(e) => {
            if settings.mode != Mode::Plan {
                lease::release(clients, &settings).await?;
            }
            return Err(e);
        }
    };
    let window = ExportWindow::resolve(checkpoint.as_ref(), settings.cutoff_ms);
    let export = match (settings.mode, window) {
        (Mode::Plan, window) => ExportState::Planned { window },
        (_, None) => ExportState::NothingToExport,
        (_, Some(window)) => begin_export(&settings, &layout, window, clients).await?,
    };
    Ok(RunState {
        settings,
        export,
        retention: RetentionStatus {
            at_start,
            changes: change.into_iter().collect(),
        },
    })
}

async fn check_resources_exist(settings: &RunSettings, clients: &Clients) -> Result<()> {
    let mut problems = Vec::new();
    if clients.logs.describe_group(&settings.log_group_name).await?.is_none() {
        problems.push(InputProblem::new(
            "logGroupName",
            format!(
                "log group {:?} does not exist in this account and region: check the name and the region",
                settings.log_group_name
            ),
        ));
    }
    if !clients.archive.bucket_exists(&settings.bucket).await? {
        problems.push(InputProblem::new(
            "bucket",
            format!(
                "bucket {:?} does not exist or is not reachable: create it in the log group's region, or fix the name",
                settings.bucket
            ),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ArchiverError::InvalidInput(problems))
    }
}

/// Reads the group's checkpoint, `None` before the first export.
pub(crate) async fn load_checkpoint(clients: &Clients, bucket: &str, key: &str) -> Result<Option<Checkpoint>> {
    match clients.archive.get(bucket, key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ArchiverError::Internal(format!(
                "checkpoint s3://{bucket}/{key} is not valid JSON ({e}); restore it from a previous version"
            ))
        }),
    }
}

/// The task name: derived from the run id (unique per execution) and the
/// group, so that a retried start-export recognises the task an earlier
/// attempt of the same run created, and never another run's.
fn task_name(settings: &RunSettings) -> String {
    let name = format!(
        "cwl-archiver-{}-{}",
        settings.run_id,
        group_name_token(&settings.log_group_name)
    );
    name.chars().take(512).collect()
}

async fn begin_export(
    settings: &RunSettings,
    layout: &GroupLayout,
    window: ExportWindow,
    clients: &Clients,
) -> Result<ExportState> {
    let name = task_name(settings);
    let destination_prefix = layout.export_prefix(settings.cutoff_ms);
    if let Some(active) = clients.logs.active_export_task().await? {
        if active.task_name == name {
            // An earlier attempt of this step created it and then failed to
            // report it. Its creation time is unknown; the execution start is
            // earlier, which only makes the late-arrival check stricter.
            return Ok(ExportState::Started {
                task_id: active.task_id,
                window,
                destination_prefix,
                started_at_ms: settings.started_at_ms,
            });
        }
        return Ok(ExportState::Busy {
            active_task_id: Some(active.task_id),
        });
    }
    let request = ExportRequest {
        task_name: name,
        log_group_name: settings.log_group_name.clone(),
        from_ms: window.from_ms,
        to_ms: window.export_to_ms(),
        bucket: settings.bucket.clone(),
        prefix: destination_prefix.clone(),
    };
    let started_at_ms = clients.logs.now_ms();
    Ok(match clients.logs.create_export_task(&request).await? {
        ExportStart::Started(task_id) => {
            tracing::info!(
                task_id,
                from_ms = window.from_ms,
                to_ms = request.to_ms,
                "export task created"
            );
            ExportState::Started {
                task_id,
                window,
                destination_prefix,
                started_at_ms,
            }
        }
        ExportStart::SlotBusy => match clients.logs.active_export_task().await? {
            // The SDK's retry of a create that took effect meets our own task.
            Some(active) if active.task_name == request.task_name => ExportState::Started {
                task_id: active.task_id,
                window,
                destination_prefix,
                started_at_ms,
            },
            active => ExportState::Busy {
                active_task_id: active.map(|t| t.task_id),
            },
        },
    })
}
