//! rebuild-stream: deletes expired streams and rebuilds mixed ones from
//! their staging segments; records the outcome of every stream in S3.

use archiver::workflow::lambda::call_step;
use archiver::workflow::{BatchFailure, Clients, RebuildRequest, rebuild_batch, record_batch_failure};
use serde::Deserialize;
use serde_json::Value;

/// The two calls the state machine makes.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
enum Request {
    /// Carry out scan-stream's plans (the Map item after the scan).
    Rebuild(RebuildRequest),
    /// Record a batch whose retries ran out (from the Map's Catch).
    RecordFailure(BatchFailure),
}

/// Handles `{"action": "rebuild", "run", "batch", "scan", "rebuild"?}` and
/// `{"action": "record-failure", "run", "batch", "error"}`.
pub async fn handler(event: Value, clients: Clients) -> archiver::error::Result<Value> {
    call_step(event, |request: Request| async move {
        match request {
            Request::Rebuild(r) => serde_json::to_value(rebuild_batch(r, &clients).await?),
            Request::RecordFailure(f) => serde_json::to_value(record_batch_failure(f, &clients).await?),
        }
        .map_err(|e| archiver::ArchiverError::Internal(e.to_string()))
    })
    .await
}
