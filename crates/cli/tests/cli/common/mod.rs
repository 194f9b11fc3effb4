//! What the CLI's end-to-end tests share: running the binary against the
//! local stack, an archive bucket as the template creates it, and a small
//! proxy that answers the calls the emulator does not implement
//! (GetDataProtectionPolicy, RedriveExecution, ...) and forwards the rest.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use cwl_archiver_e2e::stack::Stack;

/// The region of the stack.
pub const REGION: &str = "us-east-1";

/// The binary, with the stack's environment; `env` adds or overrides variables.
pub fn command(endpoint: &str, stack: Option<&Stack>) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cwl-archiver"));
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", endpoint)
        // No profile or config file of the machine running the tests.
        .env("HOME", std::env::temp_dir().join("cwl-archiver-cli-tests-home"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("CWL_ARCHIVER_BUCKET")
        .env_remove("CWL_ARCHIVER_STATE_MACHINE_ARN")
        .env("NO_COLOR", "1");
    if let Some(stack) = stack {
        cmd.env("CWL_ARCHIVER_STATE_MACHINE_ARN", &stack.state_machine_arn);
    }
    cmd
}

/// Runs the CLI against the stack, off the async runtime.
pub async fn cli(stack: &Stack, args: &[&str]) -> Output {
    run(command(stack.emulator.endpoint(), Some(stack)), args).await
}

/// [`cli`] with owned arguments.
pub async fn cli_owned(stack: &Stack, args: Vec<String>) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(stack, &refs).await
}

/// Runs a prepared command with `args`, off the async runtime.
pub async fn run(mut cmd: std::process::Command, args: &[&str]) -> Output {
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("the CLI runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Rust `Debug` formatting that must never reach the user.
pub const DEBUG_MARKS: [&str; 8] = [
    "{ ",
    "Some(",
    "ServiceError",
    "raw:",
    "DispatchFailure",
    "Response {",
    "source:",
    "None,",
];

/// A failed command: the exit code, one `error:` line on stderr with every
/// `needle`, and no Debug formatting.
pub fn assert_one_line_error(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code\nstdout: {}\nstderr: {err}",
        stdout(o)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for mark in DEBUG_MARKS {
        assert!(!err.contains(mark), "Debug formatting ({mark:?}) on stderr:\n{err}");
    }
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}

/// The bucket policy the template gives the archive bucket.
pub fn logs_policy(bucket: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": format!("logs.{REGION}.amazonaws.com")},
             "Action": "s3:GetBucketAcl", "Resource": format!("arn:aws:s3:::{bucket}")},
            {"Effect": "Allow", "Principal": {"Service": format!("logs.{REGION}.amazonaws.com")},
             "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/cwl-archiver/*")}
        ]
    })
    .to_string()
}

/// An archive bucket as the template creates it: with the logs service's policy.
pub async fn archive_bucket(stack: &Stack, bucket: &str) {
    cwl_archiver_e2e::scenario::create_bucket(stack, bucket).await;
    stack
        .emulator
        .s3()
        .put_bucket_policy()
        .bucket(bucket)
        .policy(logs_policy(bucket))
        .send()
        .await
        .expect("PutBucketPolicy");
}

/// Writes an object.
pub async fn put(stack: &Stack, bucket: &str, key: &str, body: &serde_json::Value) {
    stack
        .emulator
        .s3()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_string().into_bytes().into())
        .send()
        .await
        .expect("PutObject");
}

/// Reads an object's JSON.
pub async fn get(stack: &Stack, bucket: &str, key: &str) -> serde_json::Value {
    stack.read_json(bucket, key).await.expect("a JSON object")
}

/// A proxy in front of the emulator: JSON-protocol calls whose
/// `X-Amz-Target` ends with a key of `answers` get that answer (status and
/// body); everything else is forwarded. Calls answered are counted.
pub struct Proxy {
    pub endpoint: String,
    pub answered: Arc<Mutex<BTreeMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    answers: Arc<BTreeMap<String, (u16, serde_json::Value)>>,
    answered: Arc<Mutex<BTreeMap<String, u64>>>,
    http: reqwest::Client,
}

async fn handle(State(state): State<ProxyState>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some((operation, (status, answer))) =
        state.answers.iter().find(|(op, _)| target.ends_with(&format!(".{op}")))
    {
        *state.answered.lock().unwrap().entry(operation.clone()).or_default() += 1;
        return Response::builder()
            .status(*status)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(answer.to_string()))
            .unwrap();
    }
    forward(&state, parts.method, parts.uri, parts.headers, bytes).await
}

async fn forward(state: &ProxyState, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let url = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = state.http.request(method, url).body(body.to_vec());
    for (name, value) in &headers {
        if name.as_str() != "host" && name.as_str() != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = request.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap();
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name.as_str() != "content-length" && name.as_str() != "transfer-encoding" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(body.to_vec())).unwrap()
}

impl Proxy {
    /// A proxy to `upstream` answering the operations in `answers`.
    pub async fn start(upstream: &str, answers: &[(&str, u16, serde_json::Value)]) -> Proxy {
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            answers: Arc::new(
                answers
                    .iter()
                    .map(|(op, status, v)| (op.to_string(), (*status, v.clone())))
                    .collect(),
            ),
            answered: Arc::default(),
            http: reqwest::Client::new(),
        };
        let answered = state.answered.clone();
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            endpoint,
            answered,
            task,
        }
    }

    /// How often `operation` was answered.
    pub fn answered(&self, operation: &str) -> u64 {
        self.answered.lock().unwrap().get(operation).copied().unwrap_or(0)
    }
}
