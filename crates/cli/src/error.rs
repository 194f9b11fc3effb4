//! How the command line fails: one line on stderr that says what went
//! wrong and what to do about it, and an exit code that says which kind of
//! failure it was. `--debug` adds the detail (the SDK's chain of causes).
//!
//! Exit codes (also in `--help` and the README):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | a failure while running: an AWS call failed, the execution failed |
//! | 2 | bad input or a failed pre-flight check: nothing was started or changed |
//! | 3 | conflict: another run of the group is in progress (its lease is held); nothing was started |
//! | 130 | interrupted (Ctrl-C) while following a run: the run goes on in Step Functions |

use std::sync::OnceLock;

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// Exit code of a failure while running.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad input or a failed pre-flight check.
pub const EXIT_INPUT: u8 = 2;
/// Exit code of a conflict: the group's lease is held by another run.
pub const EXIT_BUSY: u8 = 3;
/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Which kind of failure; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The input is unusable or a pre-flight check failed; nothing was done.
    Input,
    /// Something failed while running.
    Failed,
    /// Another run of the group holds its lease.
    Busy,
    /// The user pressed Ctrl-C.
    Interrupted,
}

/// Why a command failed: one line for the user, the detail for `--debug`.
#[derive(Debug, Clone)]
pub struct CliError {
    /// The kind, for the exit code.
    pub kind: Kind,
    /// One line: what went wrong here and how to fix it.
    pub message: String,
    /// More lines for `--debug`: the SDK's chain of causes.
    pub detail: Option<String>,
}

impl CliError {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: one_line(&message.into()),
            detail: None,
        }
    }

    /// Bad input: the message names the flag and the fix.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Kind::Input, message)
    }

    /// A failure while running.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    /// Another run of the group is in progress.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(Kind::Busy, message)
    }

    /// Ctrl-C while following a run.
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(Kind::Interrupted, message)
    }

    /// Adds the detail `--debug` prints.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The process exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Input => EXIT_INPUT,
            Kind::Failed => EXIT_FAILURE,
            Kind::Busy => EXIT_BUSY,
            Kind::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What every command returns.
pub type CliResult<T = ()> = Result<T, CliError>;

impl From<archiver::ArchiverError> for CliError {
    fn from(e: archiver::ArchiverError) -> Self {
        let detail = format!("{e}");
        let error = match &e {
            archiver::ArchiverError::InvalidInput(problems) => CliError::input(
                problems
                    .iter()
                    .map(|p| format!("{}: {}", flag_of(&p.field), p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            archiver::ArchiverError::Throttled { operation, .. } => CliError::failed(format!(
                "{operation}: ThrottlingException: AWS kept refusing calls over the account's quota after retries; try again in a minute, or lower the concurrency"
            )),
            archiver::ArchiverError::Service { operation, message, .. } => {
                CliError::failed(format!("{operation} failed: {}", first_clause(message)))
            }
            _ => CliError::failed(e.to_string()),
        };
        error.with_detail(detail)
    }
}

/// The command-line flag of an execution input field (`quietMinutes` is
/// `--quiet-minutes`, `logGroupName` is `--group`).
pub fn flag_of(field: &str) -> String {
    match field {
        "logGroupName" | "group" => "--group".into(),
        "olderThanDays" => "--older-than".into(),
        "input" => "the input".into(),
        other => {
            let mut flag = String::from("--");
            for c in other.chars() {
                if c.is_ascii_uppercase() {
                    flag.push('-');
                    flag.push(c.to_ascii_lowercase());
                } else {
                    flag.push(c);
                }
            }
            flag
        }
    }
}

/// Collapses a text onto one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A service message without the nested SDK chain some messages carry.
fn first_clause(message: &str) -> String {
    let line = one_line(message);
    if looks_like_debug(&line) {
        // An SDK chain rendered into the message: keep the innermost cause,
        // which names what happened (e.g. "Connection refused (os error 111)").
        let last = line.rsplit(": ").next().unwrap_or(&line);
        if looks_like_debug(last) {
            return "the call failed (run with --debug for the detail)".into();
        }
        return last.to_string();
    }
    line
}

/// Whether a text carries Rust `Debug` formatting, which never reaches the user.
pub fn looks_like_debug(text: &str) -> bool {
    [
        "{ ",
        "Some(",
        "None,",
        "ServiceError",
        "raw:",
        "Response {",
        "DispatchFailure(",
    ]
    .iter()
    .any(|p| text.contains(p))
}

/// Where the command points and who it is, for the fix of an AWS error.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--endpoint-url`, if any.
    pub endpoint: Option<String>,
    /// The region in use.
    pub region: Option<String>,
    /// `--profile`, if any.
    pub profile: Option<String>,
    /// `--debug`.
    pub debug: bool,
}

static CONTEXT: OnceLock<Context> = OnceLock::new();

/// Sets the context once, at start-up.
pub fn set_context(context: Context) {
    let _ = CONTEXT.set(context);
}

/// The context (empty before [`set_context`]).
pub fn context() -> Context {
    CONTEXT.get().cloned().unwrap_or_default()
}

/// Whether `--debug` is on.
pub fn debug() -> bool {
    CONTEXT.get().is_some_and(|c| c.debug)
}

/// How a call failed below the service: the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Nothing listens at the endpoint.
    Refused,
    /// No answer in time.
    Timeout,
    /// The host name does not resolve.
    Dns,
    /// Another I/O failure (reset, TLS, ...).
    Io,
    /// The request could not be built (credentials, region, ...).
    Construction,
}

/// An AWS SDK error, taken apart.
#[derive(Debug, Clone)]
pub struct AwsFailure {
    /// The API operation, e.g. `StartExecution`.
    pub operation: &'static str,
    /// The AWS error code, when the service answered.
    pub code: Option<String>,
    /// The service's message.
    pub message: Option<String>,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The transport failure, when there was no answer.
    pub transport: Option<Transport>,
    /// The whole chain of causes, for `--debug`.
    pub detail: String,
}

impl AwsFailure {
    /// Takes an SDK error apart.
    pub fn of<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let detail = format!("{}", aws_smithy_types::error::display::DisplayErrorContext(err));
        let lower = detail.to_lowercase();
        let transport = match err {
            SdkError::TimeoutError(_) => Some(Transport::Timeout),
            SdkError::DispatchFailure(d) if d.is_timeout() => Some(Transport::Timeout),
            SdkError::DispatchFailure(_) if lower.contains("connection refused") => Some(Transport::Refused),
            SdkError::DispatchFailure(_)
                if lower.contains("dns error") || lower.contains("failed to lookup address") =>
            {
                Some(Transport::Dns)
            }
            SdkError::DispatchFailure(_) if lower.contains("timed out") || lower.contains("timeout") => {
                Some(Transport::Timeout)
            }
            SdkError::DispatchFailure(_) => Some(Transport::Io),
            SdkError::ConstructionFailure(_) => Some(Transport::Construction),
            _ => None,
        };
        Self {
            operation,
            code: err.code().map(str::to_string),
            message: err.message().map(one_line),
            status: err.raw_response().map(|r| r.status().as_u16()),
            transport,
            detail,
        }
    }

    /// The AWS error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether the endpoint does not implement the operation (an emulator;
    /// AWS implements every operation the CLI calls, and its 5xx answers
    /// carry an error code): 501, a "not implemented" message, or a 500
    /// without an AWS error code from an endpoint other than AWS.
    pub fn is_not_implemented(&self) -> bool {
        let bare_500 = self.status == Some(500) && self.code.is_none() && context().endpoint.is_some();
        bare_500
            || self.status == Some(501)
            || self.code().is_some_and(|c| c.contains("NotImplemented"))
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.contains("not been implemented"))
            || self.detail.contains("has not been implemented")
    }

    /// Whether the caller lacks the permission.
    pub fn is_access_denied(&self) -> bool {
        self.code()
            .is_some_and(|c| matches!(c, "AccessDenied" | "AccessDeniedException" | "Forbidden"))
            || (self.status == Some(403) && !self.is_credentials())
    }

    fn is_credentials(&self) -> bool {
        self.code().is_some_and(|c| {
            matches!(
                c,
                "UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch"
                    | "IncompleteSignature"
                    | "ExpiredToken"
                    | "ExpiredTokenException"
                    | "InvalidAccessKeyId"
                    | "InvalidToken"
                    | "AuthFailure"
                    | "MissingAuthenticationToken"
            )
        })
    }

    /// A failure with this message; the SDK chain as the detail.
    pub fn fail(self, kind: Kind, message: impl Into<String>) -> CliError {
        CliError::new(kind, message).with_detail(self.detail)
    }

    /// Input problem: the message says which flag and the fix.
    pub fn input(self, message: impl Into<String>) -> CliError {
        self.fail(Kind::Input, message)
    }

    /// What the error means in general, with the fix: transport,
    /// credentials, permissions, throttling, or the service's own words.
    pub fn generic(self, what: &str) -> CliError {
        let ctx = context();
        let op = self.operation;
        let place = match &ctx.endpoint {
            Some(url) => url.clone(),
            None => format!("AWS in {}", ctx.region.as_deref().unwrap_or("the default region")),
        };
        let endpoint_fix = match &ctx.endpoint {
            Some(_) => {
                "check --endpoint-url (or AWS_ENDPOINT_URL); for the local stack run `make stack-up` and export what it prints"
            }
            None => "check your network and proxy (HTTPS_PROXY), and --region",
        };
        let who = match &ctx.profile {
            Some(p) => format!("profile {p}"),
            None => "your credentials".into(),
        };
        let (kind, message) = match (self.transport, self.code.clone()) {
            (Some(Transport::Refused), _) => (
                Kind::Failed,
                format!("{op}: connection refused by {place}: nothing answers there; {endpoint_fix}"),
            ),
            (Some(Transport::Timeout), _) => (
                Kind::Failed,
                format!("{op}: no answer from {place} in time; {endpoint_fix}"),
            ),
            (Some(Transport::Dns), _) => (
                Kind::Failed,
                format!(
                    "{op}: the host name of {place} does not resolve; check --region (a region name such as eu-west-1) and --endpoint-url"
                ),
            ),
            (Some(Transport::Io), _) => (
                Kind::Failed,
                format!("{op}: the connection to {place} failed; {endpoint_fix} (run with --debug for the detail)"),
            ),
            (Some(Transport::Construction), _) => (
                Kind::Input,
                format!(
                    "{op}: the request could not be built: check --region, your credentials (AWS_ACCESS_KEY_ID or --profile) and --endpoint-url (run with --debug for the detail)"
                ),
            ),
            (None, Some(code)) if self.is_credentials() => (
                Kind::Input,
                format!(
                    "{op}: {code}: AWS did not accept {who}; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile, refresh expired credentials (aws sso login), and that --region is one your account uses"
                ),
            ),
            (None, Some(code)) if self.is_access_denied() => (
                Kind::Failed,
                format!(
                    "{op}: {code}: {who} may not call {op} on {what}; grant the permission to the role or user (see docs/deploy.md)"
                ),
            ),
            (None, Some(code))
                if matches!(
                    code.as_str(),
                    "ThrottlingException"
                        | "Throttling"
                        | "TooManyRequestsException"
                        | "SlowDown"
                        | "RequestLimitExceeded"
                ) =>
            {
                (
                    Kind::Failed,
                    format!("{op}: {code}: the account's request rate for {op} is exceeded; try again in a minute"),
                )
            }
            (None, Some(code)) => {
                let message = self.message.clone().unwrap_or_default();
                let message = if looks_like_debug(&message) {
                    String::new()
                } else {
                    format!(": {message}")
                };
                (Kind::Failed, format!("{op} on {what} failed: {code}{message}"))
            }
            (None, None) => {
                let status = self.status.map(|s| format!("HTTP {s} ")).unwrap_or_default();
                (
                    Kind::Failed,
                    format!(
                        "{op}: {status}answer from {place} without an AWS error code; is --endpoint-url an AWS endpoint? (run with --debug for the detail)"
                    ),
                )
            }
        };
        self.fail(kind, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_debug_free() {
        let e = CliError::failed("a\n  b\tc");
        assert_eq!(e.message, "a b c");
        assert_eq!(
            first_clause("dispatch failure: io error: tcp connect error: Connection refused (os error 111)"),
            "dispatch failure: io error: tcp connect error: Connection refused (os error 111)"
        );
        assert_eq!(first_clause("ServiceError(ServiceError { source: x }): boom"), "boom");
        assert!(!looks_like_debug(&first_clause("Some(Response { raw: 1 })")));
    }

    #[test]
    fn input_problems_name_the_flags() {
        let e = CliError::from(archiver::ArchiverError::InvalidInput(vec![
            archiver::domain::input::InputProblem::new("quietMinutes", "must be between 0 and 10080"),
            archiver::domain::input::InputProblem::new("logGroupName", "is required"),
        ]));
        assert_eq!(
            e.message,
            "--quiet-minutes: must be between 0 and 10080; --group: is required"
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(flag_of("into-group"), "--into-group");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(CliError::input("x").exit_code(), 2);
        assert_eq!(CliError::failed("x").exit_code(), 1);
        assert_eq!(CliError::busy("x").exit_code(), 3);
        assert_eq!(CliError::interrupted("x").exit_code(), 130);
    }
}
