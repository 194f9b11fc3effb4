//! scan-stream: classifies each stream of a Map item and stages the events
//! to keep in S3 before anything is deleted.

use archiver::workflow::lambda::call_step;
use archiver::workflow::{BatchRequest, Clients, scan_batch};
use serde_json::Value;

/// Handles `{"run": ..., "batch": {...}}` and returns one plan per stream.
pub async fn handler(event: Value, clients: Clients) -> archiver::error::Result<Value> {
    call_step(event, |request: BatchRequest| async move {
        scan_batch(request, &clients).await
    })
    .await
}
