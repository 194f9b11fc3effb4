//! Reading a stream with GetLogEvents, by hand: the SDK paginator errors on
//! the repeated token that marks the end of a stream.

use std::collections::VecDeque;

use crate::domain::event::{IngestedEvent, LogEvent};
use crate::error::Result;
use crate::store::{EventsQuery, LogStore};

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
        /// The forward token at the end: a later read from it returns only
        /// events appended since.
        token: Option<String>,
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

/// What one GetLogEvents call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Events (possibly none: AWS may return empty pages before the end).
    Events(Vec<IngestedEvent>),
    /// The end of the stream: the token came back unchanged.
    End,
    /// The stream does not exist.
    StreamMissing,
}

/// A forward read of `start_ms <= t < end_ms`, page by page or event by
/// event, that can stop anywhere and resume from [`EventCursor::token`].
pub struct EventCursor<'a> {
    logs: &'a dyn LogStore,
    group: &'a str,
    stream: &'a str,
    start_ms: i64,
    end_ms: Option<i64>,
    page_size: Option<i32>,
    unmask: bool,
    token: Option<String>,
    buffer: VecDeque<IngestedEvent>,
    ended: bool,
    missing: bool,
    pages: u64,
}

impl<'a> EventCursor<'a> {
    /// A read from `start_ms` (or from `resume`, a token of an earlier read
    /// with the same bounds).
    pub fn new(
        logs: &'a dyn LogStore,
        group: &'a str,
        stream: &'a str,
        start_ms: i64,
        end_ms: Option<i64>,
        resume: Option<String>,
    ) -> Self {
        Self {
            logs,
            group,
            stream,
            start_ms,
            end_ms,
            page_size: None,
            unmask: false,
            token: resume,
            buffer: VecDeque::new(),
            ended: false,
            missing: false,
            pages: 0,
        }
    }

    /// Asks for pages of at most `events` events.
    pub fn with_page_size(mut self, events: i32) -> Self {
        self.page_size = Some(events);
        self
    }

    /// Reads the original text of a data-protected group (`unmask=true`).
    pub fn unmasked(mut self, unmask: bool) -> Self {
        self.unmask = unmask;
        self
    }

    /// The next page. After [`Page::End`] or [`Page::StreamMissing`] every
    /// call returns the same without calling AWS again.
    pub async fn next_page(&mut self) -> Result<Page> {
        if self.missing {
            return Ok(Page::StreamMissing);
        }
        if self.ended {
            return Ok(Page::End);
        }
        let page = self
            .logs
            .get_events_page(EventsQuery {
                group: self.group,
                stream: self.stream,
                start_ms: self.start_ms,
                end_ms: self.end_ms,
                token: self.token.as_deref(),
                limit: self.page_size,
                unmask: self.unmask,
            })
            .await?;
        self.pages += 1;
        let Some(page) = page else {
            self.missing = true;
            return Ok(Page::StreamMissing);
        };
        match page.next_forward_token {
            Some(next) if Some(&next) != self.token.as_ref() => self.token = Some(next),
            _ => self.ended = true,
        }
        if self.ended && page.events.is_empty() {
            return Ok(Page::End);
        }
        Ok(Page::Events(page.events))
    }

    /// The next event, oldest first; `None` at the end or if the stream is missing.
    pub async fn next_event(&mut self) -> Result<Option<LogEvent>> {
        Ok(self.next_ingested().await?.map(|e| e.event))
    }

    /// The next event with its ingestion time, oldest first; `None` at the
    /// end or if the stream is missing.
    pub async fn next_ingested(&mut self) -> Result<Option<IngestedEvent>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(Some(event));
            }
            match self.next_page().await? {
                Page::Events(events) => self.buffer.extend(events),
                Page::End | Page::StreamMissing => return Ok(None),
            }
        }
    }

    /// The token to resume from after the events handed out so far (only
    /// meaningful between pages, when no fetched event is left unread).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the stream turned out not to exist.
    pub fn is_missing(&self) -> bool {
        self.missing
    }

    /// Whether the end of the stream was reached.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// GetLogEvents calls made.
    pub fn pages(&self) -> u64 {
        self.pages
    }
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
    let mut cursor = EventCursor::new(logs, group, stream, start_ms, end_ms, resume);
    if let Some(size) = limits.page_size {
        cursor = cursor.with_page_size(size);
    }
    let mut events = 0u64;
    loop {
        match cursor.next_page().await? {
            Page::StreamMissing => return Ok(ReadProgress::StreamMissing),
            Page::End => {
                return Ok(ReadProgress::Finished {
                    events,
                    token: cursor.token().map(str::to_string),
                });
            }
            Page::Events(page) => {
                for event in page {
                    events += 1;
                    on_event(event.event)?;
                }
                if cursor.is_ended() {
                    return Ok(ReadProgress::Finished {
                        events,
                        token: cursor.token().map(str::to_string),
                    });
                }
                if limits.max_events.is_some_and(|max| events >= max) {
                    let token = cursor.token().unwrap_or_default().to_string();
                    return Ok(ReadProgress::Paused { events, token });
                }
            }
        }
    }
}
