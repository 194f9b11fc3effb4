//! check-export: polls the export task; once it completed, verifies its
//! objects, advances the checkpoint and writes the manifest. At the end of
//! the run it also writes the report.

use archiver::workflow::lambda::call_step;
use archiver::workflow::{Clients, RunState, StartRequest, abandon_run, abandon_start, check_export, report_run};
use serde::Deserialize;
use serde_json::Value;

/// The two calls the state machine makes.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
enum Request {
    /// Poll the export; write the manifest when it is done.
    Check { run: RunState },
    /// Aggregate the outcomes into the run report; let the group go.
    Report { run: RunState },
    /// The failure path: let the group go.
    Abandon { run: RunState },
    /// The failure path of start-export, before the run state exists.
    AbandonStart { request: StartRequest },
}

/// Handles `{"action": "check" | "report" | "abandon", "run": ...}` and
/// `{"action": "abandon-start", "request": ...}`.
pub async fn handler(event: Value, clients: Clients) -> archiver::error::Result<Value> {
    call_step(event, |request: Request| async move {
        match request {
            Request::Check { run } => serde_json::to_value(check_export(run, &clients).await?),
            Request::Report { run } => serde_json::to_value(report_run(run, &clients).await?),
            Request::Abandon { run } => serde_json::to_value(abandon_run(run, &clients).await?),
            Request::AbandonStart { request } => serde_json::to_value(abandon_start(request, &clients).await?),
        }
        .map_err(|e| archiver::ArchiverError::Internal(e.to_string()))
    })
    .await
}
