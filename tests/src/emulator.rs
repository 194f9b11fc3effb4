//! Harness for the strict local emulator (`tests/emulator/cwl_emulator.py`):
//! starts it on a free port, builds AWS SDK clients pointed at it, and drives
//! its control API (`/_emulator/...`: seeding, fault injection, call counts,
//! export settings, the strict rules' switches and the independent reader).
//! The rules, their AWS sources and their tests are listed in
//! `tests/emulator/RULES.md`; all are on by default at AWS's values (TPS
//! quotas included). `CWL_EMULATOR_CONFIG` (the JSON of `POST /_emulator/config`)
//! is passed on to every emulator a test starts.
//!
//! The child process is started with `--exit-on-stdin-eof` and its stdin pipe
//! is held open by [`Emulator`]: dropping the emulator (also while a test
//! panics) kills and reaps it, and if the test process itself dies the
//! emulator sees EOF on stdin and exits, so no orphan stays behind.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::{Credentials, SharedCredentialsProvider};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long to wait for the emulator's `READY port=` line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many stderr lines of the emulator to keep for error messages.
const STDERR_TAIL_LINES: usize = 60;

/// Errors of the harness itself (not of the AWS calls made through it).
#[derive(Debug)]
pub enum HarnessError {
    /// The Python interpreter of the emulator is missing.
    PythonMissing(PathBuf),
    /// Spawning the emulator process failed.
    Spawn(std::io::Error),
    /// The emulator exited (or closed stdout) before printing `READY`.
    ExitedEarly { status: String, stderr: String },
    /// No `READY` line within the timeout.
    ReadyTimeout { stderr: String },
    /// A control API request failed at the HTTP level.
    Http(reqwest::Error),
    /// The control API answered with an error status.
    Control { status: u16, body: String },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::PythonMissing(path) => write!(
                f,
                "the emulator's Python environment is missing: run `make venv` (looked for {}; \
                 set CWL_EMULATOR_PYTHON to use another interpreter)",
                path.display()
            ),
            HarnessError::Spawn(e) => write!(f, "could not start the emulator: {e}"),
            HarnessError::ExitedEarly { status, stderr } => write!(
                f,
                "the emulator exited before it was ready ({status}); its stderr ends with:\n{stderr}"
            ),
            HarnessError::ReadyTimeout { stderr } => write!(
                f,
                "the emulator was not ready within {}s; its stderr ends with:\n{stderr}",
                READY_TIMEOUT.as_secs()
            ),
            HarnessError::Http(e) => write!(f, "emulator control request failed: {e}"),
            HarnessError::Control { status, body } => {
                write!(f, "emulator control API answered {status}: {body}")
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Spawn(e) => Some(e),
            HarnessError::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for HarnessError {
    fn from(e: reqwest::Error) -> Self {
        HarnessError::Http(e)
    }
}

/// Options of [`Emulator::start`].
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Where Lambda Invoke calls (from Step Functions Task states) are forwarded,
    /// e.g. `http://127.0.0.1:9001` (a Lambda Invoke API such as `cargo lambda watch`).
    pub lambda_endpoint: Option<String>,
    /// How long an export task takes from creation to COMPLETED.
    pub export_delay_seconds: f64,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            lambda_endpoint: None,
            export_delay_seconds: 2.0,
        }
    }
}

/// Service a fault rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultService {
    Logs,
    S3,
    States,
    Lambda,
}

/// What the emulator does to a matching call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// logs/states: 400 ThrottlingException; s3: 503 SlowDown; lambda: 429.
    Throttle,
    /// logs/states: 503 ServiceUnavailableException; s3: 503 ServiceUnavailable; lambda: 500.
    Unavailable,
    /// The TCP connection is closed with no response.
    Drop,
    /// Lambda only: 200 with `X-Amz-Function-Error: Unhandled`, `Runtime.ExitError`.
    /// Default phase for a crash is `after` (the invocation runs first).
    Crash,
    /// CreateExportTask only: the created task ends FAILED.
    ExportFailed,
    /// CreateExportTask only: the created task ends CANCELLED.
    ExportCancelled,
}

/// Whether the backend applies the call before the failure is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultPhase {
    /// The call never reaches the backend.
    Before,
    /// The backend applies the call, then the client gets the failure.
    After,
}

/// A fault rule, serialized as the JSON of `POST /_emulator/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub service: FaultService,
    /// The API operation (`PutLogEvents`, `PutObject`, ...); for Lambda, the
    /// function name; `*` for every operation of the service.
    pub operation: String,
    pub kind: FaultKind,
    /// Fail only the Nth matching call (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    /// Fail this fraction of the matching calls (deterministic with `seed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// At most this many injections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<FaultPhase>,
}

impl Fault {
    /// A rule failing every matching call (narrow it with the builder methods).
    pub fn new(service: FaultService, operation: impl Into<String>, kind: FaultKind) -> Fault {
        Fault {
            service,
            operation: operation.into(),
            kind,
            nth: None,
            rate: None,
            seed: None,
            times: None,
            phase: None,
        }
    }
    pub fn nth(mut self, n: u64) -> Fault {
        self.nth = Some(n);
        self
    }
    pub fn rate(mut self, rate: f64, seed: u64) -> Fault {
        self.rate = Some(rate);
        self.seed = Some(seed);
        self
    }
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }
    pub fn phase(mut self, phase: FaultPhase) -> Fault {
        self.phase = Some(phase);
        self
    }
}

/// A fault rule as listed by `GET /_emulator/faults`, with its counters.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultStatus {
    pub id: u64,
    pub service: FaultService,
    pub operation: String,
    pub kind: FaultKind,
    /// Calls that matched service and operation.
    pub matched: u64,
    /// Calls that were failed.
    pub injected: u64,
}

/// One stored event as the independent reader (`GET /_emulator/events`) returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub timestamp: i64,
    /// The original text, never masked.
    pub message: String,
    pub ingestion_time: i64,
    /// What reads without `unmask` show, when a data protection policy masks the event.
    #[serde(default)]
    pub masked_message: Option<String>,
    /// Past the group's retention but not yet deleted (only with `include_expired`).
    #[serde(default)]
    pub expired: bool,
}

/// A running emulator process.
pub struct Emulator {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    endpoint: String,
    port: u16,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    http: reqwest::Client,
    sdk_config: SdkConfig,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The interpreter that runs the emulator: `$CWL_EMULATOR_PYTHON`, else the
/// workspace's `.venv/bin/python`.
pub fn python_path() -> PathBuf {
    match std::env::var_os("CWL_EMULATOR_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join(".venv").join("bin").join("python"),
    }
}

/// Path of the emulator script.
pub fn script_path() -> PathBuf {
    workspace_root().join("tests").join("emulator").join("cwl_emulator.py")
}

fn tail(buf: &Mutex<VecDeque<String>>) -> String {
    let lines = buf.lock().map(|b| b.iter().cloned().collect::<Vec<_>>());
    lines.unwrap_or_default().join("\n")
}

impl Emulator {
    /// Starts the emulator on a free port; `lambda_endpoint` is where Lambda invokes are forwarded.
    pub async fn start(opts: EmulatorOptions) -> Result<Emulator, HarnessError> {
        let python = python_path();
        if !python.exists() {
            return Err(HarnessError::PythonMissing(python));
        }
        let mut cmd = Command::new(&python);
        cmd.arg("-u")
            .arg(script_path())
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .arg("--export-delay-seconds")
            .arg(opts.export_delay_seconds.to_string());
        if let Some(ep) = &opts.lambda_endpoint {
            cmd.arg("--lambda-endpoint").arg(ep);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(HarnessError::Spawn)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let echo = std::env::var_os("CWL_EMULATOR_LOG").is_some();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        {
            let tail_buf = Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("[emulator] {line}");
                    }
                    if let Ok(mut b) = tail_buf.lock() {
                        if b.len() >= STDERR_TAIL_LINES {
                            b.pop_front();
                        }
                        b.push_back(line);
                    }
                }
            });
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<u16>>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut tx = Some(tx);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Some(rest) = line.trim().strip_prefix("READY port=")
                            && let Some(tx) = tx.take()
                        {
                            let _ = tx.send(rest.parse().ok());
                        }
                    }
                }
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(None);
            }
        });

        let mut guard = KillOnDrop(Some(child));
        let port = match tokio::time::timeout(READY_TIMEOUT, rx).await {
            Ok(Ok(Some(port))) => port,
            Ok(_) => {
                // stdout closed: wait for the exit status and the last stderr lines.
                let status = guard.wait_status(Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(100));
                return Err(HarnessError::ExitedEarly {
                    status,
                    stderr: tail(&stderr_tail),
                });
            }
            Err(_) => {
                return Err(HarnessError::ReadyTimeout {
                    stderr: tail(&stderr_tail),
                });
            }
        };
        let child = guard.0.take();

        let endpoint = format!("http://127.0.0.1:{port}");
        let sdk_config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEMULATOR",
                "emulator-secret",
                None,
                None,
                "cwl-emulator",
            )))
            .endpoint_url(endpoint.clone())
            .retry_config(RetryConfig::standard())
            .build();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Emulator {
            child,
            stdin,
            endpoint,
            port,
            stderr_tail,
            http,
            sdk_config,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last lines the emulator wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr_tail)
    }

    /// Region us-east-1, static dummy credentials, the emulator's endpoint, standard retry.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config.clone()
    }

    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config)
    }

    /// A CloudWatch Logs client whose SDK retries are disabled (one attempt per call).
    pub fn logs_no_retry(&self) -> aws_sdk_cloudwatchlogs::Client {
        let conf = aws_sdk_cloudwatchlogs::config::Builder::from(&self.sdk_config)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_cloudwatchlogs::Client::from_conf(conf)
    }

    /// S3 client with path-style addressing.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// S3 client with path-style addressing and SDK retries disabled.
    pub fn s3_no_retry(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config)
            .force_path_style(true)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.sdk_config)
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, HarnessError> {
        let url = format!("{}/_emulator/{}", self.endpoint, path);
        let mut req = self.http.request(method, url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(HarnessError::Control {
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn control_query(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, HarnessError> {
        let base = format!("{}/_emulator/{}", self.endpoint, path);
        let url = reqwest::Url::parse_with_params(&base, query).map_err(|e| HarnessError::Control {
            status: 0,
            body: format!("bad control URL {base}: {e}"),
        })?;
        let resp = self.http.get(url).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(HarnessError::Control {
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /_emulator/config` with any of its keys (see `tests/emulator/RULES.md`);
    /// returns every setting after the change.
    pub async fn configure(&self, body: Value) -> Result<Value, HarnessError> {
        self.control(reqwest::Method::POST, "config", Some(body)).await
    }

    /// `GET /_emulator/config`: every setting with its current value.
    pub async fn config(&self) -> Result<Value, HarnessError> {
        self.control(reqwest::Method::GET, "config", None).await
    }

    /// Turns the CloudWatch Logs TPS quotas on or off (on by default, at AWS's values).
    pub async fn set_quotas_enabled(&self, enabled: bool) -> Result<(), HarnessError> {
        self.configure(json!({"quotasEnabled": enabled})).await.map(|_| ())
    }

    /// Sets the TPS quota of one CloudWatch Logs operation (`None` removes it).
    pub async fn set_quota(&self, operation: &str, tps: Option<f64>) -> Result<(), HarnessError> {
        self.configure(json!({"quotas": {operation: tps}})).await.map(|_| ())
    }

    /// Multiplies every quota (a benchmark's scale; 1.0 is AWS's).
    pub async fn set_quota_scale(&self, scale: f64) -> Result<(), HarnessError> {
        self.configure(json!({"quotaScale": scale})).await.map(|_| ())
    }

    /// Calls refused by a quota, per `service.Operation`, since start or the last reset.
    pub async fn throttled(&self) -> Result<BTreeMap<String, u64>, HarnessError> {
        let v = self.control(reqwest::Method::GET, "throttled", None).await?;
        serde_json::from_value(v).map_err(|e| HarnessError::Control {
            status: 200,
            body: format!("unexpected throttled listing: {e}"),
        })
    }

    pub async fn reset_throttled(&self) -> Result<(), HarnessError> {
        self.control(reqwest::Method::DELETE, "throttled", None)
            .await
            .map(|_| ())
    }

    /// DescribeLogStreams' firstEventTimestamp/lastEventTimestamp/lastIngestionTime
    /// reflect only events ingested at least `lag` ago (`None`: no lag).
    pub async fn set_metadata_lag(&self, lag: Option<Duration>) -> Result<(), HarnessError> {
        self.configure(json!({"metadataLagSeconds": lag.map(|d| d.as_secs_f64())}))
            .await
            .map(|_| ())
    }

    /// DescribeLogStreams' event metadata reflects only events ingested at or
    /// before `at_ms` (`None`: not frozen).
    pub async fn freeze_metadata_at(&self, at_ms: Option<i64>) -> Result<(), HarnessError> {
        self.configure(json!({"metadataFrozenAtMs": at_ms})).await.map(|_| ())
    }

    /// How long events past retention stay stored (invisible) before they are
    /// deleted for good; 0 (the default) deletes them at once.
    pub async fn set_retention_expiry_delay(&self, secs: f64) -> Result<(), HarnessError> {
        self.configure(json!({"retentionExpiryDelaySeconds": secs}))
            .await
            .map(|_| ())
    }

    /// Step Functions limits for a test (`None`: AWS's 262,144 bytes / 25,000 events).
    pub async fn set_sfn_limits(
        &self,
        payload_bytes: Option<u64>,
        history_events: Option<u64>,
    ) -> Result<(), HarnessError> {
        self.configure(json!({"sfnPayloadLimitBytes": payload_bytes, "sfnHistoryLimit": history_events}))
            .await
            .map(|_| ())
    }

    /// The independent reader: every stored event of every stream of `group`,
    /// oldest first, with its original text and ingestion time; no quota,
    /// masking or metadata lag. Events past retention are left out.
    pub async fn stored_events(&self, group: &str) -> Result<BTreeMap<String, Vec<StoredEvent>>, HarnessError> {
        self.stored_events_inner(group, None, false).await
    }

    /// [`Emulator::stored_events`] of one stream.
    pub async fn stored_stream_events(&self, group: &str, stream: &str) -> Result<Vec<StoredEvent>, HarnessError> {
        let mut all = self.stored_events_inner(group, Some(stream), false).await?;
        Ok(all.remove(stream).unwrap_or_default())
    }

    /// [`Emulator::stored_events`], with the events past retention that are not
    /// yet deleted (marked `expired`).
    pub async fn stored_events_with_expired(
        &self,
        group: &str,
    ) -> Result<BTreeMap<String, Vec<StoredEvent>>, HarnessError> {
        self.stored_events_inner(group, None, true).await
    }

    async fn stored_events_inner(
        &self,
        group: &str,
        stream: Option<&str>,
        include_expired: bool,
    ) -> Result<BTreeMap<String, Vec<StoredEvent>>, HarnessError> {
        let mut query = vec![("logGroupName", group)];
        if let Some(stream) = stream {
            query.push(("logStreamName", stream));
        }
        if include_expired {
            query.push(("includeExpired", "true"));
        }
        let v = self.control_query("events", &query).await?;
        let streams = v.get("streams").cloned().unwrap_or(Value::Object(Default::default()));
        serde_json::from_value(streams).map_err(|e| HarnessError::Control {
            status: 200,
            body: format!("unexpected events listing: {e}"),
        })
    }

    /// `GET /_emulator/health`
    pub async fn health(&self) -> Result<Value, HarnessError> {
        self.control(reqwest::Method::GET, "health", None).await
    }

    /// Stores events with any timestamps (no PutLogEvents rule applies), creating
    /// the group and stream if missing; lastIngestionTime is now.
    pub async fn seed(&self, group: &str, stream: &str, events: &[(i64, String)]) -> Result<(), HarnessError> {
        self.seed_inner(group, stream, events, None).await
    }

    /// Like [`Emulator::seed`], with the stream's lastIngestionTime set to `last_ingestion_ms`.
    pub async fn seed_with_ingestion(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
        last_ingestion_ms: i64,
    ) -> Result<(), HarnessError> {
        self.seed_inner(group, stream, events, Some(last_ingestion_ms)).await
    }

    async fn seed_inner(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
        last_ingestion_ms: Option<i64>,
    ) -> Result<(), HarnessError> {
        let events: Vec<Value> = events
            .iter()
            .map(|(ts, msg)| json!({"timestamp": ts, "message": msg}))
            .collect();
        let mut body = json!({
            "logGroupName": group,
            "logStreamName": stream,
            "events": events,
        });
        if let Some(ms) = last_ingestion_ms {
            body["lastIngestionTime"] = json!(ms);
        }
        self.control(reqwest::Method::POST, "seed", Some(body))
            .await
            .map(|_| ())
    }

    /// Adds a fault rule; returns its id.
    pub async fn inject(&self, fault: Fault) -> Result<u64, HarnessError> {
        let body = serde_json::to_value(&fault).expect("fault serializes");
        let v = self.control(reqwest::Method::POST, "faults", Some(body)).await?;
        Ok(v.get("id").and_then(Value::as_u64).unwrap_or_default())
    }

    /// The fault rules with their matched/injected counters.
    pub async fn faults(&self) -> Result<Vec<FaultStatus>, HarnessError> {
        let v = self.control(reqwest::Method::GET, "faults", None).await?;
        let list = v.get("faults").cloned().unwrap_or(Value::Array(vec![]));
        serde_json::from_value(list).map_err(|e| HarnessError::Control {
            status: 200,
            body: format!("unexpected faults listing: {e}"),
        })
    }

    pub async fn clear_faults(&self) -> Result<(), HarnessError> {
        self.control(reqwest::Method::DELETE, "faults", None).await.map(|_| ())
    }

    /// Requests per `service.Operation` since start or the last reset
    /// (`lambda.Invoke` for invocations).
    pub async fn calls(&self) -> Result<BTreeMap<String, u64>, HarnessError> {
        let v = self.control(reqwest::Method::GET, "calls", None).await?;
        serde_json::from_value(v).map_err(|e| HarnessError::Control {
            status: 200,
            body: format!("unexpected calls listing: {e}"),
        })
    }

    pub async fn reset_calls(&self) -> Result<(), HarnessError> {
        self.control(reqwest::Method::DELETE, "calls", None).await.map(|_| ())
    }

    /// Export tasks created from now on complete `secs` after their creation.
    pub async fn set_export_delay(&self, secs: f64) -> Result<(), HarnessError> {
        self.control(
            reqwest::Method::POST,
            "config",
            Some(json!({"exportDelaySeconds": secs})),
        )
        .await
        .map(|_| ())
    }

    /// Creates a RUNNING export task of another caller (another log group) that
    /// completes after `secs`; returns its task id.
    pub async fn occupy_export_slot(&self, secs: f64) -> Result<String, HarnessError> {
        let v = self
            .control(
                reqwest::Method::POST,
                "occupy-export-slot",
                Some(json!({"seconds": secs})),
            )
            .await?;
        Ok(v.get("taskId").and_then(Value::as_str).unwrap_or_default().to_string())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills and reaps a child that never became ready.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn wait_status(&mut self, timeout: Duration) -> String {
        let Some(child) = self.0.as_mut() else {
            return "unknown status".into();
        };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => return "still running, stdout closed".into(),
                Err(e) => return format!("unknown status: {e}"),
            }
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
