//! A run measured against Step Functions' limits, for `limits_e2e` and the
//! benchmarks: history events, state transitions and the largest state
//! payload of each execution, from its history.
//!
//! The emulator keeps no history of a Distributed Map's child executions
//! (it counts their events against the limit, but no API returns them), so
//! their figures are derived from what they did: see [`archive_item_events`]
//! and [`PARENT_CHILD_EVENTS`].

use aws_sdk_sfn::types::HistoryEvent;

use crate::emulator::HarnessError;
use crate::stack::Stack;

/// What one execution's history shows.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFigures {
    /// The execution.
    pub arn: String,
    /// Events in its history.
    pub events: u64,
    /// States entered (Step Functions bills state transitions).
    pub transitions: u64,
    /// The largest state input or output, Task parameters or result,
    /// execution input or output, in bytes of UTF-8.
    pub largest_payload: usize,
    /// Seconds from the start to its (first) Map Run, the Map Run's, and
    /// from the Map Run to the end; all of it in `before_map` without one.
    pub before_map: f64,
    /// See `before_map`.
    pub map_run: f64,
    /// See `before_map`.
    pub after_map: f64,
}

fn seconds(t: &aws_sdk_sfn::primitives::DateTime) -> f64 {
    t.secs() as f64 + f64::from(t.subsec_nanos()) / 1e9
}

/// Where an execution's time went: before its Map Run, in it, after it.
fn phases(events: &[HistoryEvent]) -> (f64, f64, f64) {
    use aws_sdk_sfn::types::HistoryEventType as T;
    let at = |wanted: &[T]| {
        events
            .iter()
            .find(|e| wanted.contains(e.r#type()))
            .map(|e| seconds(e.timestamp()))
    };
    let (Some(start), Some(end)) = (
        events.first().map(|e| seconds(e.timestamp())),
        events.last().map(|e| seconds(e.timestamp())),
    ) else {
        return (0.0, 0.0, 0.0);
    };
    match (
        at(&[T::MapRunStarted]),
        at(&[T::MapRunSucceeded, T::MapRunFailed, T::MapRunAborted]),
    ) {
        (Some(map_start), Some(map_end)) => (map_start - start, map_end - map_start, end - map_end),
        _ => (end - start, 0.0, 0.0),
    }
}

/// The largest payload an event carries, in bytes.
pub fn event_payload(e: &HistoryEvent) -> usize {
    let sizes = [
        e.state_entered_event_details()
            .and_then(|d| d.input())
            .map_or(0, str::len),
        e.state_exited_event_details()
            .and_then(|d| d.output())
            .map_or(0, str::len),
        e.task_scheduled_event_details().map_or(0, |d| d.parameters().len()),
        e.task_succeeded_event_details()
            .and_then(|d| d.output())
            .map_or(0, str::len),
        e.lambda_function_succeeded_event_details()
            .and_then(|d| d.output())
            .map_or(0, str::len),
        e.execution_started_event_details()
            .and_then(|d| d.input())
            .map_or(0, str::len),
        e.execution_succeeded_event_details()
            .and_then(|d| d.output())
            .map_or(0, str::len),
    ];
    sizes.into_iter().max().unwrap_or(0)
}

/// The figures of one execution.
pub async fn execution_figures(stack: &Stack, arn: &str) -> Result<ExecutionFigures, HarnessError> {
    let events = stack.history(arn).await?;
    let (before_map, map_run, after_map) = phases(&events);
    Ok(ExecutionFigures {
        before_map,
        map_run,
        after_map,
        arn: arn.to_string(),
        events: events.len() as u64,
        transitions: events
            .iter()
            .filter(|e| e.state_entered_event_details().is_some())
            .count() as u64,
        largest_payload: events.iter().map(event_payload).max().unwrap_or(0),
    })
}

/// The figures of every execution of a state machine.
pub async fn all_figures(stack: &Stack, state_machine_arn: &str) -> Result<Vec<ExecutionFigures>, HarnessError> {
    let mut out = Vec::new();
    for arn in stack.executions(state_machine_arn).await? {
        out.push(execution_figures(stack, &arn).await?);
    }
    Ok(out)
}

/// History events of one child of the archive state machine's PruneStreams
/// Map that made `invocations` Lambda invocations without a retry:
/// ExecutionStarted and ExecutionSucceeded, five per Task state (entered,
/// scheduled, started, succeeded, exited), two per Choice after each Task
/// (ScanDone, RebuildDone), two for BatchDone.
pub fn archive_item_events(invocations: u64) -> u64 {
    2 + 7 * invocations + 2
}

/// History events of one child of the account-wide state machine's Groups
/// Map: ExecutionStarted, the Archive Task's entered, scheduled, started,
/// submitted, succeeded and exited, and ExecutionSucceeded.
pub const PARENT_CHILD_EVENTS: u64 = 8;

/// History events the account-wide state machine's former inline Map took
/// per group (Target, TagFilter?, Archive with its .sync task events,
/// Archived, and the iteration's own events): why it stopped near 1,750
/// groups under 25,000 events.
pub const OLD_PARENT_EVENTS_PER_GROUP: u64 = 14;
