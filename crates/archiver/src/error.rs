//! Typed errors of the library and the stable names the state machine matches.

use std::fmt;

use crate::domain::input::InputProblem;

/// Every error the workflow can raise.
///
/// The state machine's `Retry` and `Catch` match on [`ArchiverError::name`],
/// so those names are part of the public contract and never change.
#[derive(Debug, thiserror::Error)]
pub enum ArchiverError {
    /// The execution input is unusable; nothing was touched.
    #[error("invalid execution input: {}", InputProblems(.0))]
    InvalidInput(Vec<InputProblem>),

    /// Another export task is PENDING or RUNNING in the account (one at a time).
    #[error("another export task is active ({0}); the state machine waits and tries again")]
    ExportSlotBusy(String),

    /// The service kept throttling after the SDK's own retries.
    #[error("{operation} was throttled after retries: {message}")]
    Throttled {
        /// The API operation, e.g. `DeleteLogStream`.
        operation: &'static str,
        /// What the service said.
        message: String,
    },

    /// The export task ended FAILED or CANCELLED; nothing was deleted.
    #[error("export task {task_id} ended {status}: {message}; nothing was deleted and the checkpoint was not advanced")]
    ExportFailed {
        /// The CloudWatch Logs export task id.
        task_id: String,
        /// FAILED or CANCELLED.
        status: String,
        /// The status message of the task.
        message: String,
    },

    /// PutLogEvents refused some events of a replay (too old, expired or too new).
    #[error("PutLogEvents rejected events while replaying {stream}: {detail}; the staging object is kept")]
    ReplayRejected {
        /// The stream being rebuilt.
        stream: String,
        /// The rejectedLogEventsInfo, rendered.
        detail: String,
    },

    /// A check after a destructive step did not match; the staging object is kept.
    #[error("verification failed for {subject}: {detail}")]
    VerificationFailed {
        /// What was verified (stream, export task).
        subject: String,
        /// What differed.
        detail: String,
    },

    /// A staging object could not be read back completely.
    #[error("staging object s3://{bucket}/{key} is unusable: {detail}")]
    StagingCorrupt {
        /// Bucket of the staging object.
        bucket: String,
        /// Key of the staging object.
        key: String,
        /// Why it is unusable.
        detail: String,
    },

    /// A call to AWS failed for a reason other than throttling.
    #[error("{operation} failed: {message}")]
    Service {
        /// The API operation, e.g. `PutObject`.
        operation: &'static str,
        /// What the service or the transport said.
        message: String,
        /// Whether trying again may succeed (5xx, timeouts, dropped connections).
        retryable: bool,
    },

    /// Replayed events are not all visible yet; GetLogEvents is eventually
    /// consistent, so the state machine retries the verification later.
    #[error("replayed events of {stream} are not all readable yet ({missing} missing); retrying verifies again")]
    VerificationPending {
        /// The rebuilt stream.
        stream: String,
        /// Events not seen yet.
        missing: u64,
    },

    /// The rebuilt stream holds some staged events more than once (a
    /// PutLogEvents applied twice, e.g. retried after a dropped connection).
    /// The retry rebuilds the stream again from the staging object.
    #[error(
        "the rebuilt stream {stream} holds {duplicates} staged event(s) twice; retrying rebuilds it again from the staging object"
    )]
    ReplayDuplicated {
        /// The rebuilt stream.
        stream: String,
        /// Events seen more often than staged.
        duplicates: u64,
    },

    /// Some streams of the run failed; the report has the causes.
    #[error("{count} stream(s) failed: {streams}; full report at s3://{bucket}/{report_key}")]
    StreamsFailed {
        /// How many streams failed.
        count: u64,
        /// The first failed streams with their causes.
        streams: String,
        /// The report's bucket.
        bucket: String,
        /// The report's key.
        report_key: String,
    },

    /// Another run took the group's lease: this run stops before it touches
    /// anything more (a live run renews its lease long before it lapses, so
    /// this means the run was paused for longer than the lease lasts).
    #[error("the lease on {group} is held by run {holder}; this run stops without touching anything more")]
    LeaseLost {
        /// The log group.
        group: String,
        /// The run that holds the lease now.
        holder: String,
    },

    /// The export task completed but its objects do not hold what CloudWatch
    /// Logs shows in its window; nothing was deleted and the checkpoint was
    /// not advanced.
    #[error("export task {task_id} is incomplete: {detail}; nothing was deleted and the checkpoint was not advanced")]
    ExportIncomplete {
        /// The export task.
        task_id: String,
        /// What is missing.
        detail: String,
    },

    /// The group's retention could expire events no export holds yet and
    /// the input says to refuse rather than raise it; nothing was touched.
    #[error(
        "log group {group} keeps events for {current}, but events newer than its archive need {required}; \
         raise its retention, or run with retentionConflict \"raise\" to let the archiver do it"
    )]
    RetentionConflict {
        /// The log group.
        group: String,
        /// Its retention, worded.
        current: String,
        /// The retention it needs, worded.
        required: String,
    },

    /// A bug or an impossible state; never expected.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The stable error names the state machine's Retry and Catch match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorName {
    /// Bad execution input, a missing log group or bucket.
    InvalidInput,
    /// One export task per account is already active.
    ExportSlotBusy,
    /// Throttled after the SDK's retries.
    Throttled,
    /// A transient service failure (5xx, timeouts, dropped connections).
    ServiceUnavailable,
    /// A non-retryable service failure.
    ServiceError,
    /// The export task failed or was cancelled.
    ExportFailed,
    /// PutLogEvents rejected events.
    ReplayRejected,
    /// A verification after a destructive step failed.
    VerificationFailed,
    /// A staging object is truncated or corrupt.
    StagingCorrupt,
    /// Replayed events are not all visible yet.
    VerificationPending,
    /// A replay was applied twice; rebuild again.
    ReplayDuplicated,
    /// Some streams of the run failed.
    StreamsFailed,
    /// Another run holds the group's lease.
    LeaseLost,
    /// The export's objects miss events of its window.
    ExportIncomplete,
    /// The group's retention conflicts with the archive and the input refuses to raise it.
    RetentionConflict,
    /// A bug.
    InternalError,
}

impl ErrorName {
    /// The name as the state machine sees it in `ErrorEquals`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidInput => "InvalidInput",
            ErrorName::ExportSlotBusy => "ExportSlotBusy",
            ErrorName::Throttled => "Throttled",
            ErrorName::ServiceUnavailable => "ServiceUnavailable",
            ErrorName::ServiceError => "ServiceError",
            ErrorName::ExportFailed => "ExportFailed",
            ErrorName::ReplayRejected => "ReplayRejected",
            ErrorName::VerificationFailed => "VerificationFailed",
            ErrorName::StagingCorrupt => "StagingCorrupt",
            ErrorName::VerificationPending => "VerificationPending",
            ErrorName::ReplayDuplicated => "ReplayDuplicated",
            ErrorName::StreamsFailed => "StreamsFailed",
            ErrorName::LeaseLost => "LeaseLost",
            ErrorName::ExportIncomplete => "ExportIncomplete",
            ErrorName::RetentionConflict => "RetentionConflict",
            ErrorName::InternalError => "InternalError",
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ArchiverError {
    /// The stable name of this error for the state machine.
    pub fn name(&self) -> ErrorName {
        match self {
            ArchiverError::InvalidInput(_) => ErrorName::InvalidInput,
            ArchiverError::ExportSlotBusy(_) => ErrorName::ExportSlotBusy,
            ArchiverError::Throttled { .. } => ErrorName::Throttled,
            ArchiverError::ExportFailed { .. } => ErrorName::ExportFailed,
            ArchiverError::ReplayRejected { .. } => ErrorName::ReplayRejected,
            ArchiverError::VerificationFailed { .. } => ErrorName::VerificationFailed,
            ArchiverError::StagingCorrupt { .. } => ErrorName::StagingCorrupt,
            ArchiverError::Service { retryable: true, .. } => ErrorName::ServiceUnavailable,
            ArchiverError::Service { .. } => ErrorName::ServiceError,
            ArchiverError::VerificationPending { .. } => ErrorName::VerificationPending,
            ArchiverError::ReplayDuplicated { .. } => ErrorName::ReplayDuplicated,
            ArchiverError::StreamsFailed { .. } => ErrorName::StreamsFailed,
            ArchiverError::LeaseLost { .. } => ErrorName::LeaseLost,
            ArchiverError::ExportIncomplete { .. } => ErrorName::ExportIncomplete,
            ArchiverError::RetentionConflict { .. } => ErrorName::RetentionConflict,
            ArchiverError::Internal(_) => ErrorName::InternalError,
        }
    }

    /// Whether the same call may succeed later (the state machine retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.name(),
            ErrorName::Throttled
                | ErrorName::ServiceUnavailable
                | ErrorName::ExportSlotBusy
                | ErrorName::VerificationPending
                | ErrorName::ReplayDuplicated
        )
    }

    /// An input error about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ArchiverError::InvalidInput(vec![InputProblem::new(field, message)])
    }
}

struct InputProblems<'a>(&'a [InputProblem]);

impl fmt::Display for InputProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", problem.field, problem.message)?;
        }
        Ok(())
    }
}

/// Result alias of the library.
pub type Result<T, E = ArchiverError> = std::result::Result<T, E>;
