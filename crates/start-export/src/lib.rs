//! start-export: validates the execution input, resolves the export window
//! from the group's checkpoint and starts the CloudWatch Logs export task.

use archiver::workflow::lambda::call_step;
use archiver::workflow::{Clients, StartRequest, start_export};
use serde_json::Value;

/// Handles `{"input": <execution input>, "executionStartTime": "..."}` and
/// returns the run state (`export.status` is `STARTED`, `BUSY`,
/// `NOTHING_TO_EXPORT` or `PLANNED`).
pub async fn handler(event: Value, clients: Clients) -> archiver::error::Result<Value> {
    call_step(event, |request: StartRequest| async move {
        start_export(request, &clients).await
    })
    .await
}
