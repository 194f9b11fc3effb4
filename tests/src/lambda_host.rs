//! A local Lambda Invoke API for the four handlers.
//!
//! The emulator forwards the Task states' Lambda invocations here
//! (`POST /2015-03-31/functions/{name}/invocations`), and this host calls the
//! real handler functions of the four crates, in process. It answers like the
//! Lambda service: the handler's JSON on success, or
//! `X-Amz-Function-Error: Unhandled` with `{"errorType", "errorMessage"}`.

use std::net::SocketAddr;

use archiver::workflow::Clients;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::interpose::Interposer;

/// The function names the state machine uses, and their handlers.
pub const FUNCTIONS: [&str; 4] = ["start-export", "check-export", "scan-stream", "rebuild-stream"];

/// Calls the handler named `function` the way the Lambda runtime would.
pub async fn invoke(function: &str, event: Value, clients: Clients) -> Result<Value, (String, String)> {
    let result = match function {
        "start-export" => start_export::handler(event, clients).await,
        "check-export" => check_export::handler(event, clients).await,
        "scan-stream" => scan_stream::handler(event, clients).await,
        "rebuild-stream" => rebuild_stream::handler(event, clients).await,
        other => {
            return Err((
                "ResourceNotFoundException".into(),
                format!("no function {other:?}; this host serves {FUNCTIONS:?}"),
            ));
        }
    };
    result.map_err(|e| (e.name().as_str().to_string(), e.to_string()))
}

/// What the host serves with: the product's clients, wrapped per invocation
/// by the interposer that injects crashes and hooks.
#[derive(Clone)]
pub struct HostState {
    /// The product's clients.
    pub clients: Clients,
    /// The rules tests arm, and the record of every call.
    pub interposer: Interposer,
}

/// Runs one invocation as its own task, so that a crash (a panic) ends only
/// that invocation, reported as Lambda reports a process that died.
async fn invoke_isolated(function: String, event: Value, state: HostState) -> Result<Value, (String, String)> {
    let clients = state.interposer.wrap(&function, &state.clients);
    let task = tokio::spawn(async move { invoke(&function, event, clients).await });
    match task.await {
        Ok(result) => result,
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the handler panicked".into()),
                Err(e) => e.to_string(),
            };
            Err((
                "Runtime.ExitError".into(),
                format!("RequestId: local Error: Runtime exited: {message}"),
            ))
        }
    }
}

async fn invocation(State(state): State<HostState>, Path(function): Path<String>, body: String) -> Response {
    // Accept a full ARN or a name with a qualifier, as Lambda does.
    let name = function.rsplit(":function:").next().unwrap_or(&function);
    let name = name.split(':').next().unwrap_or(name).to_string();
    let event: Value = if body.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"Type": "User", "message": format!("payload is not JSON: {e}")})),
                )
                    .into_response();
            }
        }
    };
    state.interposer.note_payload(body.len());
    let interposer = state.interposer.clone();
    match invoke_isolated(name.clone(), event, state).await {
        Ok(value) => {
            interposer.note_payload(value.to_string().len());
            (StatusCode::OK, Json(value)).into_response()
        }
        Err((error_type, error_message)) => {
            tracing::warn!(function = name, error_type, error_message, "handler failed");
            let mut headers = HeaderMap::new();
            headers.insert("X-Amz-Function-Error", HeaderValue::from_static("Unhandled"));
            (
                StatusCode::OK,
                headers,
                Json(json!({"errorType": error_type, "errorMessage": error_message})),
            )
                .into_response()
        }
    }
}

/// Binds the host on 127.0.0.1 (port 0 for a free one). Returns the address
/// and a future that serves until dropped.
pub async fn bind(port: u16) -> std::io::Result<(SocketAddr, TcpListener)> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    Ok((listener.local_addr()?, listener))
}

/// Serves the handlers on `listener`.
pub async fn serve(listener: TcpListener, state: HostState) -> std::io::Result<()> {
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invocation))
        .with_state(state);
    axum::serve(listener, app).await
}
