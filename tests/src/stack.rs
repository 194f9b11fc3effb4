//! The whole local stack: the strict emulator, the Lambda host serving the
//! real handlers, and the state machine deployed into the emulator.

use std::path::PathBuf;
use std::time::Duration;

use archiver::workflow::Clients;
use aws_config::retry::RetryConfig;
use serde_json::Value;

use crate::emulator::{Emulator, EmulatorOptions, HarnessError};
use crate::interpose::Interposer;
use crate::lambda_host;
use crate::template::{Context, Template};

/// Account id moto uses.
pub const ACCOUNT_ID: &str = "123456789012";
/// Region of the stack.
pub const REGION: &str = "us-east-1";
/// The role the state machine is created with (the emulator does not check it).
pub const STATE_MACHINE_ROLE: &str = "arn:aws:iam::123456789012:role/cwl-archiver-state-machine";

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ARN of one of the four functions in the local stack.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
}

/// Replaces the `${...}` substitutions of a definition, as SAM's
/// `DefinitionSubstitutions` does, and fails on any left over.
pub fn render_definition(template: &str, substitutions: &[(&str, String)]) -> Result<String, String> {
    let mut text = template.to_string();
    for (name, value) in substitutions {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    match text.find("${") {
        Some(at) => Err(format!(
            "unreplaced substitution near {:?}",
            &text[at..(at + 40).min(text.len())]
        )),
        None => Ok(text),
    }
}

/// The template's functions and the names the local Lambda host serves them under.
pub const LOCAL_FUNCTIONS: [(&str, &str); 4] = [
    ("StartExportFunction", "start-export"),
    ("CheckExportFunction", "check-export"),
    ("ScanStreamFunction", "scan-stream"),
    ("RebuildStreamFunction", "rebuild-stream"),
];

/// The stack name the local stack resolves `AWS::StackName` to.
pub const LOCAL_STACK_NAME: &str = "cwl-archiver";

/// The template's context in the local stack: its parameter defaults, the
/// local function ARNs and the names of the stack's own log groups.
pub fn local_context(template: &Template) -> Context {
    let ctx = LOCAL_FUNCTIONS
        .iter()
        .fold(template.context(LOCAL_STACK_NAME), |ctx, (logical, name)| {
            ctx.resource(&format!("{logical}.Arn"), &function_arn(name))
        });
    with_log_group_names(template, ctx)
}

/// `ctx` with what a `Ref` to each of the template's log groups resolves to:
/// its name, as CloudFormation gives it.
pub fn with_log_group_names(template: &Template, ctx: Context) -> Context {
    template
        .resources_of_type("AWS::Logs::LogGroup")
        .iter()
        .fold(ctx, |ctx, logical| {
            let name = template
                .resolved_property(logical, "LogGroupName", &ctx)
                .ok()
                .flatten()
                .and_then(|v| v.as_str().map(str::to_string));
            match name {
                Some(name) => ctx.resource(logical, &name),
                None => ctx,
            }
        })
}

/// The stack's own log groups in the local stack, as the account-wide state
/// machine leaves them out.
pub fn own_log_groups() -> Vec<String> {
    let Ok(template) = Template::load() else {
        return Vec::new();
    };
    let ctx = local_context(&template);
    template
        .resources_of_type("AWS::Logs::LogGroup")
        .iter()
        .filter_map(|logical| ctx.resources.get(logical).cloned())
        .collect()
}

/// The archive state machine's definition as the template deploys it, with
/// the local function ARNs.
pub fn local_archive_definition() -> Result<String, String> {
    let template = Template::load()?;
    template.state_machine_definition("ArchiveStateMachine", &local_context(&template))
}

fn control_error(body: String) -> HarnessError {
    HarnessError::Control { status: 0, body }
}

/// The product's AWS configuration against an endpoint: what the Lambdas
/// get from `aws_config` in AWS, with the same retry policy.
pub fn product_clients(emulator: &Emulator) -> Clients {
    let config = emulator
        .sdk_config()
        .into_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(archiver::store::aws::MAX_ATTEMPTS))
        .build();
    Clients::from_config(&config)
}

/// A running local stack.
pub struct Stack {
    /// The emulator (CloudWatch Logs, S3, Step Functions).
    pub emulator: Emulator,
    /// The archive state machine's ARN.
    pub state_machine_arn: String,
    /// Crashes and hooks inside the Lambda functions, and the record of
    /// every call they made.
    pub interposer: Interposer,
    host: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.host.abort();
    }
}

/// How stale the stack's DescribeLogStreams timestamps are.
pub const STREAM_METADATA_LAG: Duration = Duration::from_secs(30 * 60);

impl Stack {
    /// Starts the emulator with the Lambda host in this process and deploys
    /// the archive state machine. Needs a multi-threaded tokio runtime.
    pub async fn start(export_delay_seconds: f64) -> Result<Stack, HarnessError> {
        let (addr, listener) = lambda_host::bind(0).await.map_err(HarnessError::Spawn)?;
        let emulator = Emulator::start(EmulatorOptions {
            lambda_endpoint: Some(format!("http://{addr}")),
            export_delay_seconds,
        })
        .await?;
        // DescribeLogStreams' timestamps lag ingestion on AWS ("typically
        // less than an hour"): every suite on the stack runs with them 30
        // minutes stale; a test that needs them current says so.
        emulator.set_metadata_lag(Some(STREAM_METADATA_LAG)).await?;
        let interposer = Interposer::default();
        let state = lambda_host::HostState {
            clients: product_clients(&emulator),
            interposer: interposer.clone(),
        };
        let host = tokio::spawn(async move {
            if let Err(e) = lambda_host::serve(listener, state).await {
                eprintln!("lambda host stopped: {e}");
            }
        });
        let definition = local_archive_definition().map_err(control_error)?;
        let state_machine_arn = create_state_machine(&emulator, "cwl-archiver", definition).await?;
        Ok(Stack {
            state_machine_arn,
            emulator,
            interposer,
            host,
        })
    }

    /// Deploys the account-wide state machine of the template over this
    /// stack's archive state machine, archiving into `bucket`; `context`
    /// may override parameters (a tag filter, for instance). Returns its ARN.
    pub async fn deploy_parent(
        &self,
        bucket: &str,
        context: impl FnOnce(Context) -> Context,
    ) -> Result<String, HarnessError> {
        let template = Template::load().map_err(control_error)?;
        let ctx = context(
            local_context(&template)
                .resource("ArchiveStateMachine", &self.state_machine_arn)
                .resource("ArchiveBucket", bucket),
        );
        let definition = template
            .state_machine_definition("ParentStateMachine", &ctx)
            .map_err(control_error)?;
        create_state_machine(&self.emulator, "cwl-archiver-all-groups", definition).await
    }

    /// Clients as the product uses them, for checks and for driving steps directly.
    pub fn clients(&self) -> Clients {
        product_clients(&self.emulator)
    }

    /// Starts an execution with `input` and waits for it to end; returns its
    /// status, output (or error and cause).
    pub async fn run(
        &self,
        name: &str,
        input: &Value,
        timeout: std::time::Duration,
    ) -> Result<Execution, HarnessError> {
        self.run_on(&self.state_machine_arn, name, input, timeout).await
    }

    /// [`Stack::run`] on another state machine of the stack.
    pub async fn run_on(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Value,
        timeout: std::time::Duration,
    ) -> Result<Execution, HarnessError> {
        let arn = self.start_on(state_machine_arn, name, input).await?;
        self.wait_for(&arn, timeout).await
    }

    /// Starts an execution of a state machine of the stack; returns its ARN
    /// without waiting.
    pub async fn start_on(&self, state_machine_arn: &str, name: &str, input: &Value) -> Result<String, HarnessError> {
        let started = self
            .emulator
            .sfn()
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| HarnessError::Control {
                status: 0,
                body: format!("StartExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)),
            })?;
        Ok(started.execution_arn().to_string())
    }

    /// Waits for an execution to end; returns its status, output (or error and cause).
    pub async fn wait_for(&self, arn: &str, timeout: std::time::Duration) -> Result<Execution, HarnessError> {
        let sfn = self.emulator.sfn();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let d = sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .map_err(|e| HarnessError::Control {
                    status: 0,
                    body: format!("DescribeExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)),
                })?;
            let status = d.status().as_str().to_string();
            if status != "RUNNING" {
                return Ok(Execution {
                    status,
                    output: d.output().and_then(|o| serde_json::from_str(o).ok()),
                    error: d.error().map(str::to_string),
                    cause: d.cause().map(str::to_string),
                });
            }
            if std::time::Instant::now() > deadline {
                return Err(HarnessError::Control {
                    status: 0,
                    body: format!(
                        "execution {arn} still RUNNING after {timeout:?}; emulator log:\n{}",
                        self.emulator.stderr_tail()
                    ),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The whole history of an execution, by ARN.
    pub async fn history(&self, arn: &str) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>, HarnessError> {
        let pages = self
            .emulator
            .sfn()
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .into_paginator()
            .items()
            .send();
        pages
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| HarnessError::Control {
                status: 0,
                body: format!("GetExecutionHistory: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)),
            })
    }

    /// Every execution of a state machine (ARN), any status.
    pub async fn executions(&self, state_machine_arn: &str) -> Result<Vec<String>, HarnessError> {
        let pages = self
            .emulator
            .sfn()
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .max_results(1000)
            .into_paginator()
            .items()
            .send();
        let executions = pages
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| HarnessError::Control {
                status: 0,
                body: format!("ListExecutions: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)),
            })?;
        Ok(executions.iter().map(|e| e.execution_arn().to_string()).collect())
    }

    /// A JSON object of the archive bucket (or any bucket).
    pub async fn read_json(&self, bucket: &str, key: &str) -> Result<Value, HarnessError> {
        let object = self
            .emulator
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                control_error(format!(
                    "GetObject {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| control_error(format!("GetObject {key}: {e}")))?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(|e| control_error(format!("{key} is not JSON: {e}")))
    }
}

async fn create_state_machine(emulator: &Emulator, name: &str, definition: String) -> Result<String, HarnessError> {
    let created = emulator
        .sfn()
        .create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn(STATE_MACHINE_ROLE)
        .send()
        .await
        .map_err(|e| {
            control_error(format!(
                "CreateStateMachine {name}: {}",
                aws_sdk_sfn::error::DisplayErrorContext(&e)
            ))
        })?;
    Ok(created.state_machine_arn().to_string())
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Execution {
    /// SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    /// The output, when it succeeded.
    pub output: Option<Value>,
    /// The error name, when it failed.
    pub error: Option<String>,
    /// The cause, when it failed.
    pub cause: Option<String>,
}
