//! The failure path of a run (the state machine's Catch): nothing of the run
//! is undone (every step leaves the archive and the streams consistent), but
//! the retention guard runs again (a failed export must not leave
//! unexported events on a path to expiry) and the group is let go at once,
//! so the next run need not wait for the lease to lapse.

use super::start::load_checkpoint;
use super::{Clients, RunState, StartRequest, clients_now, lease, retention};
use crate::domain::input::{ExecutionInput, Mode, RunSettings};
use crate::domain::layout::GroupLayout;
use crate::error::{ArchiverError, Result};

/// The failure path once the run state exists.
pub async fn abandon_run(run: RunState, clients: &Clients) -> Result<RunState> {
    abandon(&run.settings, clients).await?;
    Ok(run)
}

/// The failure path of start-export: the run state does not exist, so the
/// settings are worked out from the request again. An input that does not
/// validate never took the lease: nothing to let go.
pub async fn abandon_start(request: StartRequest, clients: &Clients) -> Result<()> {
    let Ok(mut input) = ExecutionInput::from_json(request.input) else {
        return Ok(());
    };
    input.execution_start_time = request.execution_start_time.or(input.execution_start_time);
    input.execution_name = request.execution_name.or(input.execution_name);
    match input.validate(clients_now(clients)) {
        Ok(settings) => abandon(&settings, clients).await,
        Err(_) => Ok(()),
    }
}

async fn abandon(settings: &RunSettings, clients: &Clients) -> Result<()> {
    if settings.mode == Mode::Plan {
        return Ok(());
    }
    let layout = GroupLayout::of(settings);
    let checkpoint = load_checkpoint(clients, &settings.bucket, &layout.checkpoint()).await?;
    let exported_until = checkpoint.map_or(0, |c| c.exported_until_ms);
    match retention::guard(clients, settings, exported_until).await {
        // Refusing is the input's choice: the run already failed for it.
        Ok(_) | Err(ArchiverError::RetentionConflict { .. }) => {}
        Err(e) => return Err(e),
    }
    lease::release(clients, settings).await
}
