//! What the four Lambda binaries share: JSON in and out, errors named for the
//! state machine, JSON logs, and the runtime loop.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use tracing::Instrument;

use crate::error::{ArchiverError, Result};
use crate::workflow::Clients;

/// Runs one workflow step on a JSON event: parses the request, calls the
/// step, serializes the response.
pub async fn call_step<Req, Resp, Fut>(event: Value, step: impl FnOnce(Req) -> Fut) -> Result<Value>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: Future<Output = Result<Resp>>,
{
    let span = step_span(&event);
    let request: Req = serde_json::from_value(event).map_err(|e| {
        ArchiverError::Internal(format!(
            "the event does not match this function ({e}); is the state machine definition from the same release?"
        ))
    })?;
    let response = step(request).instrument(span).await?;
    serde_json::to_value(response).map_err(|e| ArchiverError::Internal(e.to_string()))
}

/// The span of one step: the execution and the group, taken from the
/// request wherever the state machine put them, so every log line of the
/// step carries them.
fn step_span(event: &Value) -> tracing::Span {
    let text = |pointers: &[&str]| {
        pointers
            .iter()
            .find_map(|p| event.pointer(p).and_then(Value::as_str))
            .unwrap_or("")
            .to_string()
    };
    let execution_id = text(&["/run/settings/executionId", "/executionId", "/request/executionId"]);
    let group = text(&[
        "/run/settings/logGroupName",
        "/input/logGroupName",
        "/request/logGroupNamePrefix",
    ]);
    tracing::info_span!("step", execution_id, group)
}

/// The error as the Lambda service reports it: `errorType` is the stable
/// name the state machine's Retry and Catch match.
pub fn diagnostic(error: &ArchiverError) -> Diagnostic {
    Diagnostic {
        error_type: error.name().as_str().to_string(),
        error_message: error.to_string(),
    }
}

/// JSON logs through tracing, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        // Every span's fields on every line: the step's execution and group,
        // and the stream being worked on.
        .with_span_list(true)
        .without_time()
        .try_init();
}

/// The body of every Lambda `main`: serve `handler` with SDK clients from the
/// environment.
pub async fn run<F, Fut>(handler: F) -> std::result::Result<(), lambda_runtime::Error>
where
    F: Fn(Value, Clients) -> Fut,
    Fut: Future<Output = Result<Value>>,
{
    init_tracing();
    let clients = Clients::from_env().await;
    let handler = &handler;
    let clients = &clients;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler(event.payload, clients.clone())
            .await
            .map_err(|e| diagnostic(&e))
    }))
    .await
}
