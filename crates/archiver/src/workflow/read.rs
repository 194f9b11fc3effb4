//! Reading a stream with GetLogEvents, by hand: the SDK paginator errors on
//! the repeated token that marks the end of a stream.

use crate::error::Result;
use crate::event::LogEvent;
use crate::store::LogStore;

/// Bounds on one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Stop after this many events (the last page may overshoot by one page).
    pub max_events: Option<u64>,
    /// Events per page asked for (GetLogEvents allows up to 10,000).
    pub page_size: Option<i32>,
}

impl ReadLimits {
    /// Read to the end in full pages.
    pub const UNBOUNDED: ReadLimits = ReadLimits {
        max_events: None,
        page_size: None,
    };
    /// Only the first event.
    pub const FIRST: ReadLimits = ReadLimits {
        max_events: Some(1),
        page_size: Some(1),
    };
}

/// How a read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadProgress {
    /// Reached the end of the stream.
    Finished {
        /// Events read.
        events: u64,
    },
    /// Stopped at a limit; continue from the token.
    Paused {
        /// Events read.
        events: u64,
        /// The forward token to continue with.
        token: String,
    },
    /// The stream does not exist.
    StreamMissing,
}

/// Reads the events of `stream` with `start_ms <= t < end_ms`, oldest first,
/// handing each to `on_event`. Pages may be empty before the end; the end is
/// the page whose forward token equals the token sent. `resume` continues a
/// read that [`ReadProgress::Paused`].
#[allow(clippy::too_many_arguments)]
pub async fn read_events(
    logs: &dyn LogStore,
    group: &str,
    stream: &str,
    start_ms: i64,
    end_ms: Option<i64>,
    resume: Option<String>,
    limits: ReadLimits,
    mut on_event: impl FnMut(LogEvent) -> Result<()> + Send,
) -> Result<ReadProgress> {
    let mut token: Option<String> = resume;
    let mut events = 0u64;
    loop {
        let Some(page) = logs
            .get_events_page(group, stream, start_ms, end_ms, token.as_deref(), limits.page_size)
            .await?
        else {
            return Ok(ReadProgress::StreamMissing);
        };
        for event in page.events {
            events += 1;
            on_event(event)?;
        }
        match page.next_forward_token {
            Some(next) if Some(&next) != token.as_ref() => {
                if limits.max_events.is_some_and(|max| events >= max) {
                    return Ok(ReadProgress::Paused { events, token: next });
                }
                token = Some(next);
            }
            _ => return Ok(ReadProgress::Finished { events }),
        }
    }
}
