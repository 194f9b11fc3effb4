//! Packing log events into `PutLogEvents` batches.
//!
//! CloudWatch Logs rejects a whole `PutLogEvents` request when the batch breaks
//! any of these rules (see the API reference of `PutLogEvents`):
//!
//! * at most [`MAX_BATCH_EVENTS`] events;
//! * at most [`MAX_BATCH_BYTES`] bytes, counted as the UTF-8 length of every
//!   message plus [`EVENT_OVERHEAD_BYTES`] per event;
//! * the events are in chronological order (equal timestamps are fine);
//! * the batch does not span more than 24 hours ([`MAX_BATCH_SPAN_MS`]).
//!
//! On the span rule: the API reference says a batch "cannot span more than
//! 24 hours" (newer revisions: the span "cannot exceed 24 hours"). A batch
//! whose last event is exactly 86,400,000 ms after its first one therefore
//! spans 24 hours, not more, and is accepted: the rule implemented here is
//! `last.timestamp - first.timestamp <= MAX_BATCH_SPAN_MS`. The local
//! emulator wrapper applies the same test (it rejects a span above 24 h).
//!
//! Packing is greedy: each batch takes events until the next one would break
//! a rule. Greedy packing gives the minimum number of batches here because
//! every rule is closed under taking a contiguous sub-range of a valid batch
//! (fewer events, fewer bytes, a span no wider, order kept). Exchange
//! argument: if the greedy batch `k` ends at `g_k` and some optimal packing's
//! batch `k` ends at `o_k <= g_k`, then the optimal batch `k + 1`,
//! `[o_k, o_{k+1})`, contains `[g_k, o_{k+1})`, which is therefore valid, so
//! the greedy batch `k + 1` reaches at least `o_{k+1}`. By induction greedy
//! never falls behind and uses no more batches than the optimum. The tests
//! check this against an exhaustive minimum on small inputs.
//!
//! [`LogBatch`] is a batch that passed these checks: its only constructors
//! ([`LogBatch::new`], [`BatchPacker::push`], [`BatchPacker::finish`]) check
//! them, and [`crate::store::LogStore::put_events`] accepts nothing else, so
//! an oversized or misordered batch cannot reach `PutLogEvents`.
//!
//! The other `PutLogEvents` rules (events older than 14 days or than the
//! group's retention, or more than 2 hours in the future, are dropped) depend
//! on the clock and the log group, not on the batch; they are not checked here.

use std::ops::Range;

use crate::domain::event::LogEvent;

/// Most events one `PutLogEvents` request may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Most bytes one `PutLogEvents` request may carry, counted by [`event_size`].
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// Bytes CloudWatch Logs adds to every event's UTF-8 message length when it
/// sizes a batch.
pub const EVENT_OVERHEAD_BYTES: usize = 26;

/// Widest allowed distance, in milliseconds, between the first and the last
/// timestamp of a batch (24 hours, inclusive: see the module documentation).
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3600 * 1000;

/// Longest message, in UTF-8 bytes, that fits in a batch on its own. A longer
/// message can never be sent and is reported as [`BatchError::EventTooLarge`].
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES;

/// The limits a batch must respect.
///
/// [`BatchLimits::AWS`] (also the [`Default`]) holds the `PutLogEvents`
/// limits; smaller limits are useful in tests and for emulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events in one batch.
    pub max_events: usize,
    /// Most bytes in one batch, counted by [`event_size`].
    pub max_bytes: usize,
    /// Widest allowed `last.timestamp - first.timestamp`, inclusive, in ms.
    pub max_span_ms: i64,
}

impl BatchLimits {
    /// The limits of the CloudWatch Logs `PutLogEvents` API.
    pub const AWS: BatchLimits = BatchLimits {
        max_events: MAX_BATCH_EVENTS,
        max_bytes: MAX_BATCH_BYTES,
        max_span_ms: MAX_BATCH_SPAN_MS,
    };

    /// Longest message, in UTF-8 bytes, that fits in a batch on its own.
    pub fn max_message_bytes(&self) -> usize {
        self.max_bytes.saturating_sub(EVENT_OVERHEAD_BYTES)
    }

    /// These limits, each lowered to the AWS limit where it is higher, so
    /// that anything valid under them is also a valid `PutLogEvents` batch.
    pub fn clamped_to_aws(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.max_events.min(MAX_BATCH_EVENTS),
            max_bytes: self.max_bytes.min(MAX_BATCH_BYTES),
            max_span_ms: self.max_span_ms.min(MAX_BATCH_SPAN_MS),
        }
    }

    fn within_span(&self, first: i64, last: i64) -> bool {
        i128::from(last) - i128::from(first) <= i128::from(self.max_span_ms)
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self::AWS
    }
}

/// Why a batch, or an event offered to the packer, is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A `PutLogEvents` request needs at least one event.
    #[error("a batch must hold at least one event")]
    Empty,
    /// The batch holds more events than allowed.
    #[error("batch holds {count} events, more than the limit of {limit}")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// The batch is larger than allowed.
    #[error("batch is {bytes} bytes, more than the limit of {limit}")]
    TooManyBytes {
        /// Size of the batch, counted by [`event_size`].
        bytes: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// The batch covers too long a time range.
    #[error("batch spans {span_ms} ms, more than the limit of {limit_ms} ms")]
    SpanTooLong {
        /// `last.timestamp - first.timestamp`.
        span_ms: i128,
        /// The limit that applied.
        limit_ms: i64,
    },
    /// An event has a lower timestamp than the one before it.
    #[error("event {index} has timestamp {timestamp}, earlier than the previous event's {previous}")]
    OutOfOrder {
        /// Position of the offending event (in the slice, or among the events
        /// pushed into a [`BatchPacker`]).
        index: usize,
        /// Timestamp of the event before it.
        previous: i64,
        /// Its own timestamp.
        timestamp: i64,
    },
    /// One event is too large to fit in any batch, so it can never be sent.
    #[error("event {index} is {bytes} bytes, more than a whole batch may hold ({limit})")]
    EventTooLarge {
        /// Position of the offending event (in the slice, or among the events
        /// pushed into a [`BatchPacker`]).
        index: usize,
        /// Its size, counted by [`event_size`].
        bytes: usize,
        /// The batch size limit that applied.
        limit: usize,
    },
}

/// Size of one event as `PutLogEvents` counts it: the UTF-8 length of the
/// message plus [`EVENT_OVERHEAD_BYTES`].
pub fn event_size(e: &LogEvent) -> usize {
    e.message.len().saturating_add(EVENT_OVERHEAD_BYTES)
}

/// Checks that `events` form one acceptable `PutLogEvents` batch under the
/// AWS limits: non-empty, not too many events or bytes, chronological, and
/// spanning at most [`MAX_BATCH_SPAN_MS`].
pub fn validate_batch(events: &[LogEvent]) -> Result<(), BatchError> {
    validate_batch_with(events, &BatchLimits::AWS)
}

/// [`validate_batch`] with explicit limits.
pub fn validate_batch_with(events: &[LogEvent], limits: &BatchLimits) -> Result<(), BatchError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(BatchError::Empty);
    };
    let mut bytes = 0usize;
    let mut previous = first.timestamp;
    for (index, e) in events.iter().enumerate() {
        let size = event_size(e);
        if size > limits.max_bytes {
            return Err(BatchError::EventTooLarge {
                index,
                bytes: size,
                limit: limits.max_bytes,
            });
        }
        if e.timestamp < previous {
            return Err(BatchError::OutOfOrder {
                index,
                previous,
                timestamp: e.timestamp,
            });
        }
        previous = e.timestamp;
        bytes = bytes.saturating_add(size);
    }
    if events.len() > limits.max_events {
        return Err(BatchError::TooManyEvents {
            count: events.len(),
            limit: limits.max_events,
        });
    }
    if bytes > limits.max_bytes {
        return Err(BatchError::TooManyBytes {
            bytes,
            limit: limits.max_bytes,
        });
    }
    if !limits.within_span(first.timestamp, last.timestamp) {
        return Err(BatchError::SpanTooLong {
            span_ms: i128::from(last.timestamp) - i128::from(first.timestamp),
            limit_ms: limits.max_span_ms,
        });
    }
    Ok(())
}

/// One `PutLogEvents` batch that respects every rule of the AWS API: between
/// 1 and [`MAX_BATCH_EVENTS`] events, at most [`MAX_BATCH_BYTES`] bytes
/// counted by [`event_size`], chronological, spanning at most
/// [`MAX_BATCH_SPAN_MS`].
///
/// The events cannot be changed once the batch exists; build one with
/// [`LogBatch::new`] (or `TryFrom<Vec<LogEvent>>`) or get them from a
/// [`BatchPacker`]. It dereferences to a slice of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch(Vec<LogEvent>);

impl LogBatch {
    /// Checks `events` against the AWS limits ([`validate_batch`]) and wraps
    /// them; the error says which rule the events break.
    pub fn new(events: Vec<LogEvent>) -> Result<LogBatch, BatchError> {
        validate_batch(&events)?;
        Ok(LogBatch(events))
    }

    /// Wraps events the packer already checked against limits no wider than
    /// the AWS ones.
    fn packed(events: Vec<LogEvent>) -> LogBatch {
        debug_assert_eq!(validate_batch(&events), Ok(()));
        LogBatch(events)
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[LogEvent] {
        &self.0
    }

    /// The events, giving up the batch.
    pub fn into_events(self) -> Vec<LogEvent> {
        self.0
    }

    /// Size of the batch as `PutLogEvents` counts it.
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(event_size).sum()
    }

    /// Timestamp of the first (oldest) event.
    pub fn first_timestamp(&self) -> i64 {
        self.0.first().map_or(0, |e| e.timestamp)
    }

    /// Timestamp of the last (newest) event.
    pub fn last_timestamp(&self) -> i64 {
        self.0.last().map_or(0, |e| e.timestamp)
    }
}

impl std::ops::Deref for LogBatch {
    type Target = [LogEvent];

    fn deref(&self) -> &[LogEvent] {
        &self.0
    }
}

impl TryFrom<Vec<LogEvent>> for LogBatch {
    type Error = BatchError;

    fn try_from(events: Vec<LogEvent>) -> Result<LogBatch, BatchError> {
        LogBatch::new(events)
    }
}

impl From<LogBatch> for Vec<LogEvent> {
    fn from(batch: LogBatch) -> Vec<LogEvent> {
        batch.0
    }
}

/// The running totals of the batch being filled.
#[derive(Debug, Clone, Copy)]
struct OpenBatch {
    first_timestamp: i64,
    count: usize,
    bytes: usize,
}

impl OpenBatch {
    fn start(timestamp: i64, size: usize) -> Self {
        Self {
            first_timestamp: timestamp,
            count: 1,
            bytes: size,
        }
    }

    /// Whether an event (already known to be in order and not oversized) can
    /// join this batch without breaking a rule.
    fn admits(&self, timestamp: i64, size: usize, limits: &BatchLimits) -> bool {
        self.count < limits.max_events
            && self.bytes.saturating_add(size) <= limits.max_bytes
            && limits.within_span(self.first_timestamp, timestamp)
    }

    fn add(&mut self, size: usize) {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(size);
    }
}

/// Checks the per-event rules shared by the slice packer and [`BatchPacker`].
fn check_event(
    index: usize,
    timestamp: i64,
    size: usize,
    previous: Option<i64>,
    limits: &BatchLimits,
) -> Result<(), BatchError> {
    if size > limits.max_bytes {
        return Err(BatchError::EventTooLarge {
            index,
            bytes: size,
            limit: limits.max_bytes,
        });
    }
    match previous {
        Some(previous) if timestamp < previous => Err(BatchError::OutOfOrder {
            index,
            previous,
            timestamp,
        }),
        _ => Ok(()),
    }
}

/// Splits a chronological slice into the fewest valid batches under the AWS
/// limits, returned as index ranges into `events`, in order, covering every
/// event exactly once. An empty slice gives no batches.
///
/// Fails on the first event that is out of order or too large to send.
pub fn pack_batches(events: &[LogEvent]) -> Result<Vec<Range<usize>>, BatchError> {
    pack_batches_with(events, &BatchLimits::AWS)
}

/// [`pack_batches`] with explicit limits.
pub fn pack_batches_with(events: &[LogEvent], limits: &BatchLimits) -> Result<Vec<Range<usize>>, BatchError> {
    let mut ranges = Vec::new();
    let mut open: Option<OpenBatch> = None;
    let mut start = 0;
    let mut previous = None;
    for (index, e) in events.iter().enumerate() {
        let size = event_size(e);
        check_event(index, e.timestamp, size, previous, limits)?;
        previous = Some(e.timestamp);
        match open.as_mut() {
            Some(batch) if batch.admits(e.timestamp, size, limits) => batch.add(size),
            Some(_) => {
                ranges.push(start..index);
                start = index;
                open = Some(OpenBatch::start(e.timestamp, size));
            }
            None => open = Some(OpenBatch::start(e.timestamp, size)),
        }
    }
    if open.is_some() {
        ranges.push(start..events.len());
    }
    Ok(ranges)
}

/// Incremental greedy packer for events that arrive one at a time (for
/// example while reading a staging object), holding at most one batch.
///
/// Push events in chronological order; [`push`](Self::push) hands back a
/// complete batch whenever the pushed event does not fit in the current one
/// (that event then opens the next batch), and [`finish`](Self::finish)
/// returns the last, partial batch. The batches come out exactly as
/// [`pack_batches`] would cut the same sequence.
#[derive(Debug, Clone)]
pub struct BatchPacker {
    limits: BatchLimits,
    current: Vec<LogEvent>,
    open: Option<OpenBatch>,
    previous: Option<i64>,
    accepted: usize,
}

impl Default for BatchPacker {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchPacker {
    /// A packer using the AWS limits.
    pub fn new() -> Self {
        Self::with_limits(BatchLimits::AWS)
    }

    /// A packer using the given limits, lowered to the AWS ones where they
    /// are wider ([`BatchLimits::clamped_to_aws`]): every batch it hands out
    /// is a valid [`LogBatch`].
    pub fn with_limits(limits: BatchLimits) -> Self {
        Self {
            limits: limits.clamped_to_aws(),
            current: Vec::new(),
            open: None,
            previous: None,
            accepted: 0,
        }
    }

    /// Adds one event. Returns `Some(batch)` when the event did not fit in the
    /// batch being filled: the returned batch is complete and valid, and the
    /// event starts the next one.
    ///
    /// An event with a lower timestamp than the previously accepted one
    /// ([`BatchError::OutOfOrder`]) or too large for any batch
    /// ([`BatchError::EventTooLarge`]) is refused and leaves the packer
    /// unchanged; the error's `index` counts accepted events.
    pub fn push(&mut self, event: LogEvent) -> Result<Option<LogBatch>, BatchError> {
        let size = event_size(&event);
        check_event(self.accepted, event.timestamp, size, self.previous, &self.limits)?;
        self.accepted += 1;
        self.previous = Some(event.timestamp);
        let full = match self.open.as_mut() {
            Some(batch) if batch.admits(event.timestamp, size, &self.limits) => {
                batch.add(size);
                None
            }
            Some(_) => {
                self.open = Some(OpenBatch::start(event.timestamp, size));
                Some(LogBatch::packed(std::mem::take(&mut self.current)))
            }
            None => {
                self.open = Some(OpenBatch::start(event.timestamp, size));
                None
            }
        };
        self.current.push(event);
        Ok(full)
    }

    /// Returns the last batch, or `None` when no event is waiting.
    pub fn finish(self) -> Option<LogBatch> {
        if self.current.is_empty() {
            None
        } else {
            Some(LogBatch::packed(self.current))
        }
    }

    /// Number of events in the batch being filled.
    pub fn pending_events(&self) -> usize {
        self.current.len()
    }

    /// Size, counted by [`event_size`], of the batch being filled.
    pub fn pending_bytes(&self) -> usize {
        self.open.map_or(0, |b| b.bytes)
    }

    /// Number of events accepted so far, over all batches.
    pub fn accepted_events(&self) -> usize {
        self.accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(timestamp: i64, message: &str) -> LogEvent {
        LogEvent {
            timestamp,
            message: message.to_string(),
        }
    }

    fn sized(timestamp: i64, message_bytes: usize) -> LogEvent {
        LogEvent {
            timestamp,
            message: "x".repeat(message_bytes),
        }
    }

    /// Fewest valid batches, by dynamic programming over every split point.
    fn min_batches(events: &[LogEvent], limits: &BatchLimits) -> usize {
        let n = events.len();
        let mut best = vec![usize::MAX; n + 1];
        best[0] = 0;
        for end in 1..=n {
            for start in 0..end {
                if best[start] != usize::MAX && validate_batch_with(&events[start..end], limits).is_ok() {
                    best[end] = best[end].min(best[start] + 1);
                }
            }
        }
        best[n]
    }

    fn run_packer(events: &[LogEvent], limits: BatchLimits) -> Vec<Vec<LogEvent>> {
        let mut packer = BatchPacker::with_limits(limits);
        let mut out = Vec::new();
        for e in events {
            if let Some(batch) = packer.push(e.clone()).unwrap() {
                out.push(batch.into_events());
            }
        }
        out.extend(packer.finish().map(LogBatch::into_events));
        out
    }

    /// Checks everything the packers promise about one input.
    fn check_packing(events: &[LogEvent], limits: &BatchLimits) -> Vec<Range<usize>> {
        let ranges = pack_batches_with(events, limits).unwrap();
        // Contiguous, non-empty, in order, covering the input exactly once.
        let mut next = 0;
        for r in &ranges {
            assert_eq!(r.start, next);
            assert!(r.end > r.start);
            next = r.end;
            validate_batch_with(&events[r.clone()], limits).unwrap();
        }
        assert_eq!(next, events.len());
        // Maximal: no batch could have taken the event after it.
        for r in ranges.iter().take(ranges.len().saturating_sub(1)) {
            assert!(validate_batch_with(&events[r.start..=r.end], limits).is_err());
        }
        // The streaming packer cuts the same batches.
        let batches = run_packer(events, *limits);
        let from_ranges: Vec<Vec<LogEvent>> = ranges.iter().map(|r| events[r.clone()].to_vec()).collect();
        assert_eq!(batches, from_ranges);
        ranges
    }

    const ALPHABET: &[&str] = &["a", "Z", " ", "\n", "é", "ß", "日本", "🦀", "\u{0}", "\t"];

    fn small_message(max_pieces: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(ALPHABET), 0..=max_pieces).prop_map(|pieces| pieces.concat())
    }

    /// Sorted timestamps, with duplicates, built from chosen increments.
    fn timestamps(steps: Vec<i64>) -> Vec<i64> {
        let mut t = 1_700_000_000_000i64;
        steps
            .into_iter()
            .map(|s| {
                t += s;
                t
            })
            .collect()
    }

    fn aws_step() -> impl Strategy<Value = i64> {
        prop_oneof![
            4 => Just(0i64),
            4 => 1i64..1_000,
            2 => Just(MAX_BATCH_SPAN_MS),
            2 => Just(MAX_BATCH_SPAN_MS + 1),
            2 => Just(MAX_BATCH_SPAN_MS / 2),
            1 => 0i64..3 * MAX_BATCH_SPAN_MS,
        ]
    }

    /// A message whose size is chosen from around the interesting boundaries,
    /// built from repeated multi-byte characters so generation stays cheap.
    fn aws_message() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => small_message(6),
            1 => (0usize..=MAX_MESSAGE_BYTES / 3).prop_map(|n| "é".repeat(n / 2)),
            1 => (MAX_MESSAGE_BYTES / 3..=MAX_MESSAGE_BYTES / 2).prop_map(|n| "a".repeat(n)),
            1 => (MAX_MESSAGE_BYTES - 64..=MAX_MESSAGE_BYTES).prop_map(|n| "b".repeat(n)),
            1 => Just("🦀".repeat(MAX_MESSAGE_BYTES / 4)),
        ]
    }

    fn aws_events() -> impl Strategy<Value = Vec<LogEvent>> {
        prop::collection::vec((aws_step(), aws_message()), 0..12).prop_map(|items| {
            let (steps, messages): (Vec<i64>, Vec<String>) = items.into_iter().unzip();
            timestamps(steps)
                .into_iter()
                .zip(messages)
                .map(|(timestamp, message)| LogEvent { timestamp, message })
                .collect()
        })
    }

    fn small_limits() -> impl Strategy<Value = BatchLimits> {
        (1usize..6, 26usize..160, 0i64..40).prop_map(|(max_events, max_bytes, max_span_ms)| BatchLimits {
            max_events,
            max_bytes,
            max_span_ms,
        })
    }

    /// Events that each fit the given small limits on their own.
    fn small_events(limits: BatchLimits) -> impl Strategy<Value = Vec<LogEvent>> {
        let room = limits.max_message_bytes();
        prop::collection::vec((0i64..15, small_message(12)), 0..24).prop_map(move |items| {
            let (steps, messages): (Vec<i64>, Vec<String>) = items.into_iter().unzip();
            timestamps(steps)
                .into_iter()
                .zip(messages)
                .map(|(timestamp, mut message)| {
                    while message.len() > room {
                        message.pop();
                    }
                    LogEvent { timestamp, message }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// With small limits every rule binds on short inputs, so the greedy
        /// count can be compared with the exhaustive minimum.
        #[test]
        fn greedy_is_minimal_under_small_limits(
            (limits, events) in small_limits().prop_flat_map(|l| (Just(l), small_events(l)))
        ) {
            let ranges = check_packing(&events, &limits);
            prop_assert_eq!(ranges.len(), min_batches(&events, &limits));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The real limits, with messages up to the largest sendable size and
        /// timestamps crossing the 24 h boundary.
        #[test]
        fn greedy_is_minimal_under_aws_limits(events in aws_events()) {
            let ranges = check_packing(&events, &BatchLimits::AWS);
            prop_assert_eq!(ranges.len(), min_batches(&events, &BatchLimits::AWS));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(6))]

        /// Around 10,000 small events: the count limit binds; the minimum is
        /// argued by maximality (checked in `check_packing`).
        #[test]
        fn many_small_events_pack_validly(
            items in prop::collection::vec(
                (prop_oneof![5_000 => 0i64..3, 1 => 0i64..2 * MAX_BATCH_SPAN_MS], small_message(3)),
                9_000..21_000,
            )
        ) {
            let (steps, messages): (Vec<i64>, Vec<String>) = items.into_iter().unzip();
            let events: Vec<LogEvent> = timestamps(steps)
                .into_iter()
                .zip(messages)
                .map(|(timestamp, message)| LogEvent { timestamp, message })
                .collect();
            let ranges = check_packing(&events, &BatchLimits::AWS);
            prop_assert!(ranges.len() >= events.len().div_ceil(MAX_BATCH_EVENTS));
        }
    }

    #[test]
    fn event_size_counts_utf8_bytes() {
        assert_eq!(event_size(&ev(0, "")), 26);
        assert_eq!(event_size(&ev(0, "abc")), 29);
        assert_eq!(event_size(&ev(0, "é")), 28);
        assert_eq!(event_size(&ev(0, "🦀")), 30);
    }

    #[test]
    fn exactly_max_events_is_one_batch() {
        let events: Vec<LogEvent> = (0..10_000).map(|i| ev(i, "m")).collect();
        assert_eq!(validate_batch(&events), Ok(()));
        assert_eq!(pack_batches(&events).unwrap(), vec![0..10_000]);
    }

    #[test]
    fn one_event_over_max_events_splits() {
        let events: Vec<LogEvent> = (0..10_001).map(|i| ev(i, "m")).collect();
        assert_eq!(
            validate_batch(&events),
            Err(BatchError::TooManyEvents {
                count: 10_001,
                limit: MAX_BATCH_EVENTS
            })
        );
        assert_eq!(pack_batches(&events).unwrap(), vec![0..10_000, 10_000..10_001]);
        let batches = run_packer(&events, BatchLimits::AWS);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1], vec![ev(10_000, "m")]);
    }

    #[test]
    fn exactly_max_bytes_is_one_batch() {
        // Two events, 1,048,576 bytes together.
        let second = 10;
        let first = MAX_BATCH_BYTES - 2 * EVENT_OVERHEAD_BYTES - second;
        let events = vec![sized(1, first), sized(2, second)];
        assert_eq!(events.iter().map(event_size).sum::<usize>(), MAX_BATCH_BYTES);
        assert_eq!(validate_batch(&events), Ok(()));
        assert_eq!(pack_batches(&events).unwrap(), vec![0..2]);
    }

    #[test]
    fn one_byte_over_max_bytes_splits() {
        let second = 11;
        let first = MAX_BATCH_BYTES - 2 * EVENT_OVERHEAD_BYTES - 10;
        let events = vec![sized(1, first), sized(2, second)];
        assert_eq!(
            validate_batch(&events),
            Err(BatchError::TooManyBytes {
                bytes: MAX_BATCH_BYTES + 1,
                limit: MAX_BATCH_BYTES
            })
        );
        assert_eq!(pack_batches(&events).unwrap(), vec![0..1, 1..2]);
    }

    #[test]
    fn largest_message_fits_alone_and_one_more_byte_never_fits() {
        let largest = vec![sized(5, MAX_MESSAGE_BYTES)];
        assert_eq!(validate_batch(&largest), Ok(()));
        assert_eq!(pack_batches(&largest).unwrap(), vec![0..1]);

        let too_large = vec![ev(1, "ok"), sized(5, MAX_MESSAGE_BYTES + 1)];
        let expected = BatchError::EventTooLarge {
            index: 1,
            bytes: MAX_BATCH_BYTES + 1,
            limit: MAX_BATCH_BYTES,
        };
        assert_eq!(validate_batch(&too_large), Err(expected.clone()));
        assert_eq!(pack_batches(&too_large), Err(expected.clone()));
        let mut packer = BatchPacker::new();
        assert_eq!(packer.push(ev(1, "ok")), Ok(None));
        assert_eq!(packer.push(too_large[1].clone()), Err(expected));
        // The refused event left the packer as it was.
        assert_eq!(packer.pending_events(), 1);
        assert_eq!(packer.finish().as_deref(), Some(&[ev(1, "ok")][..]));
    }

    #[test]
    fn span_of_exactly_24_hours_is_one_batch() {
        let events = vec![ev(1_000, "a"), ev(1_000 + MAX_BATCH_SPAN_MS, "b")];
        assert_eq!(validate_batch(&events), Ok(()));
        assert_eq!(pack_batches(&events).unwrap(), vec![0..2]);
    }

    #[test]
    fn span_one_ms_over_24_hours_splits() {
        let events = vec![ev(1_000, "a"), ev(2_000, "b"), ev(1_001 + MAX_BATCH_SPAN_MS, "c")];
        assert_eq!(
            validate_batch(&events),
            Err(BatchError::SpanTooLong {
                span_ms: i128::from(MAX_BATCH_SPAN_MS) + 1,
                limit_ms: MAX_BATCH_SPAN_MS
            })
        );
        assert_eq!(pack_batches(&events).unwrap(), vec![0..2, 2..3]);
    }

    #[test]
    fn span_never_overflows() {
        let events = vec![ev(i64::MIN, "a"), ev(i64::MAX, "b")];
        assert!(matches!(validate_batch(&events), Err(BatchError::SpanTooLong { .. })));
        assert_eq!(pack_batches(&events).unwrap(), vec![0..1, 1..2]);
    }

    #[test]
    fn out_of_order_input_is_an_error() {
        let events = vec![ev(5, "a"), ev(5, "b"), ev(4, "c")];
        let expected = BatchError::OutOfOrder {
            index: 2,
            previous: 5,
            timestamp: 4,
        };
        assert_eq!(validate_batch(&events), Err(expected.clone()));
        assert_eq!(pack_batches(&events), Err(expected.clone()));

        let mut packer = BatchPacker::new();
        assert_eq!(packer.push(ev(5, "a")), Ok(None));
        assert_eq!(packer.push(ev(5, "b")), Ok(None));
        assert_eq!(packer.push(ev(4, "c")), Err(expected));
        assert_eq!(packer.accepted_events(), 2);
        assert_eq!(packer.push(ev(6, "d")), Ok(None));
        assert_eq!(
            packer.finish().map(LogBatch::into_events),
            Some(vec![ev(5, "a"), ev(5, "b"), ev(6, "d")])
        );
    }

    #[test]
    fn order_is_checked_across_batches() {
        let mut packer = BatchPacker::new();
        assert_eq!(packer.push(ev(0, "a")), Ok(None));
        let batch = packer.push(ev(MAX_BATCH_SPAN_MS + 1, "b")).unwrap();
        assert_eq!(batch.map(LogBatch::into_events), Some(vec![ev(0, "a")]));
        assert_eq!(
            packer.push(ev(1, "c")),
            Err(BatchError::OutOfOrder {
                index: 2,
                previous: MAX_BATCH_SPAN_MS + 1,
                timestamp: 1
            })
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(validate_batch(&[]), Err(BatchError::Empty));
        assert_eq!(pack_batches(&[]).unwrap(), Vec::<Range<usize>>::new());
        assert_eq!(BatchPacker::new().finish(), None);
        assert_eq!(LogBatch::new(Vec::new()), Err(BatchError::Empty));
    }

    /// The largest batch AWS accepts: 10,000 events, exactly 1,048,576
    /// bytes, exactly 24 hours from first to last event.
    fn batch_at_the_limits() -> Vec<LogEvent> {
        let message_bytes = MAX_BATCH_BYTES - MAX_BATCH_EVENTS * EVENT_OVERHEAD_BYTES;
        let (base, longer) = (message_bytes / MAX_BATCH_EVENTS, message_bytes % MAX_BATCH_EVENTS);
        (0..MAX_BATCH_EVENTS)
            .map(|i| {
                let len = if i < longer { base + 1 } else { base };
                let t = i64::try_from(i).unwrap() * MAX_BATCH_SPAN_MS / (MAX_BATCH_EVENTS as i64 - 1);
                sized(1_000 + t, len)
            })
            .collect()
    }

    #[test]
    fn log_batch_accepts_exactly_the_limits() {
        let events = batch_at_the_limits();
        let batch = LogBatch::new(events.clone()).unwrap();
        assert_eq!(batch.len(), MAX_BATCH_EVENTS);
        assert_eq!(batch.byte_size(), MAX_BATCH_BYTES);
        assert_eq!(batch.last_timestamp() - batch.first_timestamp(), MAX_BATCH_SPAN_MS);
        assert_eq!(batch.events(), &events[..]);
        assert_eq!(Vec::from(batch), events);
    }

    #[test]
    fn log_batch_refuses_one_step_past_each_limit() {
        let mut more_events = batch_at_the_limits();
        more_events.truncate(MAX_BATCH_EVENTS - 1);
        more_events.extend([ev(2_000 + MAX_BATCH_SPAN_MS / 2, ""), ev(1_000 + MAX_BATCH_SPAN_MS, "")]);
        more_events.sort_by_key(|e| e.timestamp);
        assert!(matches!(
            LogBatch::new(more_events),
            Err(BatchError::TooManyEvents { count: 10_001, .. })
        ));

        let mut more_bytes = batch_at_the_limits();
        more_bytes[0].message.push('x');
        assert!(matches!(
            LogBatch::try_from(more_bytes),
            Err(BatchError::TooManyBytes { bytes, .. }) if bytes == MAX_BATCH_BYTES + 1
        ));

        let mut wider = batch_at_the_limits();
        wider[MAX_BATCH_EVENTS - 1].timestamp += 1;
        assert!(matches!(LogBatch::new(wider), Err(BatchError::SpanTooLong { .. })));

        let mut misordered = batch_at_the_limits();
        misordered.swap(10, 11);
        assert!(matches!(
            LogBatch::new(misordered),
            Err(BatchError::OutOfOrder { index: 11, .. })
        ));
    }

    #[test]
    fn packer_limits_never_exceed_the_aws_ones() {
        let wide = BatchLimits {
            max_events: 50_000,
            max_bytes: 10 * MAX_BATCH_BYTES,
            max_span_ms: 7 * MAX_BATCH_SPAN_MS,
        };
        assert_eq!(wide.clamped_to_aws(), BatchLimits::AWS);
        let events: Vec<LogEvent> = (0..10_001).map(|i| ev(i, "m")).collect();
        let batches = run_packer(&events, wide);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![10_000, 1]);
    }

    #[test]
    fn pending_counters_follow_the_open_batch() {
        let mut packer = BatchPacker::new();
        assert_eq!(packer.pending_bytes(), 0);
        packer.push(ev(1, "abc")).unwrap();
        packer.push(ev(2, "é")).unwrap();
        assert_eq!(packer.pending_events(), 2);
        assert_eq!(packer.pending_bytes(), 29 + 28);
    }
}
