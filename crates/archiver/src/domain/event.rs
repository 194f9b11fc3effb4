use serde::{Deserialize, Serialize};

/// One CloudWatch Logs event: what PutLogEvents accepts and GetLogEvents returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    /// Event time in milliseconds since the Unix epoch (UTC).
    pub timestamp: i64,
    /// The raw message, any UTF-8 text including newlines.
    pub message: String,
}

impl LogEvent {
    /// Builds an event from a timestamp and a message.
    pub fn new(timestamp: i64, message: impl Into<String>) -> Self {
        Self {
            timestamp,
            message: message.into(),
        }
    }
}

/// An event as GetLogEvents returns it: the event and when CloudWatch Logs
/// ingested it. The ingestion time decides whether an export can have missed
/// the event (data takes up to 12 hours to become exportable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestedEvent {
    /// The event.
    pub event: LogEvent,
    /// When CloudWatch Logs ingested it (ms since the Unix epoch).
    pub ingestion_ms: i64,
}
