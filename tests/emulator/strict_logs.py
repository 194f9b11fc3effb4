"""Strict CloudWatch Logs behaviour on top of moto's logs backend.

Imported by cwl_emulator.py after moto is configured. `install()` monkeypatches
moto's LogStream / LogsBackend / LogsResponse so that PutLogEvents,
GetLogEvents and the export-task APIs behave as AWS documents them (see
/work/shared/DESIGN.md, "Local stack", for the list of moto's leniencies).

Every mutation and read of stream events happens under LOCK: werkzeug serves
requests on threads, and moto's backends are not thread safe.
"""

from __future__ import annotations

import bisect
import gzip
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.logs import models as logs_models
from moto.logs import responses as logs_responses
from moto.logs.exceptions import (
    InvalidParameterException,
    LimitExceededException,
    ResourceNotFoundException,
)
from moto.logs.models import LogEvent, LogGroup, LogStream, LogsBackend, logs_backends
from moto.moto_api._internal import mock_random
from moto.s3.models import MissingBucket, s3_backends

LOCK = threading.RLock()

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_SPAN_MS = 24 * 3600 * 1000
TOO_OLD_MS = 14 * 24 * 3600 * 1000
TOO_NEW_MS = 2 * 3600 * 1000
PAGE_EVENTS = 10_000
PAGE_BYTES = 1_048_576

# Timestamps are shifted by this offset in tokens so that they stay positive.
TOKEN_TS_OFFSET = 10**15
TOKEN_RE = re.compile(r"^([fb])/(\d{19})(\d{37})$")

# Runtime configuration, changed through the control API.
CONFIG = {"export_delay_seconds": 2.0}

# Per-request context set by the middleware (fault injection of export outcomes).
REQUEST_CTX = threading.local()


class InvalidOperationException(JsonRESTError):
    code = 400

    def __init__(self, msg: str) -> None:
        super().__init__("InvalidOperationException", msg)


def now_ms() -> int:
    return int(time.time() * 1000)


def _ms_to_datetime(ms: int) -> datetime:
    # moto stores naive UTC datetimes (utcnow()); keep that convention.
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def _event_key(event: LogEvent) -> tuple[int, int]:
    return (event.timestamp, event.event_id)


def _event_ts(event: LogEvent) -> int:
    return event.timestamp


def _event_size(message: str) -> int:
    return len(message.encode("utf-8")) + EVENT_OVERHEAD


def format_export_line(ts: int, message: str) -> str:
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ts)
    return f"{dt.strftime('%Y-%m-%dT%H:%M:%S')}.{ts % 1000:03d}Z {message}"


# --------------------------------------------------------------------------
# Stream storage: events kept sorted by (timestamp, event id)
# --------------------------------------------------------------------------


def _new_event(ingestion_ms: int, timestamp: int, message: str) -> LogEvent:
    return LogEvent(ingestion_ms, {"timestamp": int(timestamp), "message": message})


def stream_store(stream: LogStream, new_events: list[LogEvent], ingestion_ms: int) -> None:
    """Adds events to a stream, keeping it sorted, and updates its statistics."""
    with LOCK:
        if not new_events:
            stream.last_ingestion_time = _ms_to_datetime(ingestion_ms)
            return
        events = stream.events
        already_sorted = all(
            _event_key(new_events[i]) <= _event_key(new_events[i + 1])
            for i in range(len(new_events) - 1)
        )
        if already_sorted and (not events or _event_key(events[-1]) <= _event_key(new_events[0])):
            events.extend(new_events)
        else:
            events.extend(new_events)
            events.sort(key=_event_key)
        stream.stored_bytes += sum(len(e.message.encode("utf-8")) for e in new_events)
        stream.last_ingestion_time = _ms_to_datetime(ingestion_ms)
        stream.upload_sequence_token += 1
        _stream_update(stream)


def _stream_update(self: LogStream) -> None:
    # Events are kept sorted, so the first/last timestamps are O(1).
    with LOCK:
        if self.events:
            self.first_event_timestamp = self.events[0].timestamp
            self.last_event_timestamp = self.events[-1].timestamp
        else:
            self.first_event_timestamp = None
            self.last_event_timestamp = None


def _stream_put_log_events(self: LogStream, log_events: list[dict[str, Any]]) -> str:
    ingestion = now_ms()
    events = [_new_event(ingestion, e["timestamp"], e["message"]) for e in log_events]
    stream_store(self, events, ingestion)
    return f"{self.upload_sequence_token:056d}"


def _encode_token(direction: str, key: tuple[int, int]) -> str:
    ts, eid = key
    return f"{direction}/{ts + TOKEN_TS_OFFSET:019d}{eid:037d}"


START_KEY = (-TOKEN_TS_OFFSET, 0)
END_KEY = (10**17, 0)


def _decode_token(token: str) -> tuple[str, tuple[int, int]]:
    m = TOKEN_RE.match(token)
    if not m:
        raise InvalidParameterException("The specified nextToken is invalid.")
    return m.group(1), (int(m.group(2)) - TOKEN_TS_OFFSET, int(m.group(3)))


def _stream_get_log_events(
    self: LogStream,
    start_time: Any,
    end_time: Any,
    limit: Any,
    next_token: str | None,
    start_from_head: Any,
) -> tuple[list[dict[str, Any]], str, str]:
    """GetLogEvents as AWS does it: startTime inclusive, endTime exclusive,
    pages of at most 10,000 events / 1 MB, tokens that mark a position after
    (forward) or before (backward) an event, and at the end of the stream the
    token sent comes back unchanged."""
    if limit is None:
        limit = PAGE_EVENTS
    limit = int(limit)
    if limit < 1:
        raise InvalidParameterException(
            constraint="Member must have value greater than or equal to 1",
            parameter="limit",
            value=limit,
        )
    limit = min(limit, PAGE_EVENTS)
    with LOCK:
        events = self.events
        lo = 0
        hi = len(events)
        if start_time is not None:
            lo = bisect.bisect_left(events, int(start_time), key=_event_ts)
        if end_time is not None:
            hi = bisect.bisect_left(events, int(end_time), key=_event_ts)
        if hi < lo:
            hi = lo

        direction: str | None = None
        key: tuple[int, int] | None = None
        if next_token:
            direction, key = _decode_token(next_token)

        if direction == "f" or (direction is None and start_from_head):
            s = lo if key is None else max(lo, bisect.bisect_right(events, key, key=_event_key))
            e = s
            size = 0
            while e < hi and e - s < limit:
                sz = _event_size(events[e].message)
                if e > s and size + sz > PAGE_BYTES:
                    break
                size += sz
                e += 1
            page = events[s:e]
        else:
            end = hi if key is None else min(hi, bisect.bisect_left(events, key, key=_event_key))
            end = max(end, lo)
            s = end
            size = 0
            while s > lo and end - s < limit:
                sz = _event_size(events[s - 1].message)
                if s < end and size + sz > PAGE_BYTES:
                    break
                size += sz
                s -= 1
            e = end
            page = events[s:e]

        result = [
            {"timestamp": ev.timestamp, "message": ev.message, "ingestionTime": ev.ingestion_time}
            for ev in page
        ]
        if page:
            forward = _encode_token("f", _event_key(page[-1]))
            backward = _encode_token("b", _event_key(page[0]))
        else:
            # Position tokens for an empty page; the token sent comes back unchanged.
            before = _event_key(events[s - 1]) if s > 0 else START_KEY
            forward = _encode_token("f", before)
            after = _event_key(events[s]) if s < len(events) else END_KEY
            backward = _encode_token("b", after)
            if next_token and direction == "f":
                forward = next_token
            if next_token and direction == "b":
                backward = next_token
        return result, backward, forward


# --------------------------------------------------------------------------
# PutLogEvents
# --------------------------------------------------------------------------


def _backend_put_log_events(
    self: LogsBackend,
    log_group_name: str,
    log_stream_name: str,
    log_events: list[dict[str, Any]] | None,
) -> tuple[str, dict[str, Any]]:
    log_events = log_events or []
    n = len(log_events)
    if n == 0:
        raise InvalidParameterException(
            "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    if n > MAX_BATCH_EVENTS:
        raise InvalidParameterException(
            f"1 validation error detected: Value at 'logEvents' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_BATCH_EVENTS}"
        )
    if log_group_name not in self.groups:
        raise ResourceNotFoundException("The specified log group does not exist.")
    group: LogGroup = self.groups[log_group_name]
    if log_stream_name not in group.streams:
        raise ResourceNotFoundException("The specified log stream does not exist.")

    size = 0
    for ev in log_events:
        if not isinstance(ev, dict) or "timestamp" not in ev or "message" not in ev:
            raise InvalidParameterException("Each log event must have a timestamp and a message.")
        size += _event_size(ev["message"])
    if size > MAX_BATCH_BYTES:
        raise InvalidParameterException(
            f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )
    prev = None
    for ev in log_events:
        ts = int(ev["timestamp"])
        if prev is not None and ts < prev:
            raise InvalidParameterException(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        prev = ts
    first = int(log_events[0]["timestamp"])
    last = int(log_events[-1]["timestamp"])
    if last - first > MAX_SPAN_MS:
        raise InvalidParameterException(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
        )

    now = now_ms()
    too_old_before = now - TOO_OLD_MS
    too_new_after = now + TOO_NEW_MS
    expired_before = None
    if group.retention_in_days:
        expired_before = now - int(group.retention_in_days) * 24 * 3600 * 1000

    rejected: dict[str, Any] = {}
    accepted: list[dict[str, Any]] = []
    too_old_end = None
    expired_end = None
    too_new_start = None
    for idx, ev in enumerate(log_events):
        ts = int(ev["timestamp"])
        if ts < too_old_before:
            too_old_end = idx + 1  # exclusive end index
        elif expired_before is not None and ts < expired_before:
            expired_end = idx + 1  # exclusive end index
        elif ts > too_new_after:
            if too_new_start is None:
                too_new_start = idx  # inclusive start index
        else:
            accepted.append(ev)
    if too_old_end is not None:
        rejected["tooOldLogEventEndIndex"] = too_old_end
    if expired_end is not None:
        rejected["expiredLogEventEndIndex"] = expired_end
    if too_new_start is not None:
        rejected["tooNewLogEventStartIndex"] = too_new_start

    stream = group.streams[log_stream_name]
    token = _stream_put_log_events(stream, accepted)
    return token, rejected


# --------------------------------------------------------------------------
# Seeding (control API): any timestamps, no rules
# --------------------------------------------------------------------------


def seed(
    account_id: str,
    region: str,
    group_name: str,
    stream_name: str,
    events: list[dict[str, Any]],
    last_ingestion_ms: int | None,
) -> dict[str, Any]:
    backend: LogsBackend = logs_backends[account_id][region]
    with LOCK:
        if group_name not in backend.groups:
            backend.create_log_group(group_name, tags={})
        group = backend.groups[group_name]
        if stream_name not in group.streams:
            group.create_log_stream(stream_name)
        stream = group.streams[stream_name]
        ingestion = now_ms() if last_ingestion_ms is None else int(last_ingestion_ms)
        new = [_new_event(ingestion, e["timestamp"], e["message"]) for e in events]
        new.sort(key=_event_key)
        stream_store(stream, new, ingestion)
        return {
            "logGroupName": group_name,
            "logStreamName": stream_name,
            "storedEvents": len(stream.events),
            "firstEventTimestamp": stream.first_event_timestamp,
            "lastEventTimestamp": stream.last_event_timestamp,
        }


# --------------------------------------------------------------------------
# Export tasks
# --------------------------------------------------------------------------

ACTIVE = ("PENDING", "RUNNING")


class StrictExportTask:
    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        partition: str,
        task_id: str,
        task_name: str | None,
        log_group_name: str,
        destination: str,
        destination_prefix: str,
        from_time: int,
        to: int,
        delay: float,
        outcome: str = "COMPLETED",
        writes: bool = True,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.partition = partition
        self.task_id = task_id
        self.task_name = task_name
        self.log_group_name = log_group_name
        self.destination = destination
        self.destination_prefix = destination_prefix
        self.from_time = from_time
        self.to = to
        self.delay = max(0.0, float(delay))
        self.outcome = outcome
        self.writes = writes
        self.created = time.time()
        self.creation_ms = now_ms()
        self.completion_ms: int | None = None
        self.final_code: str | None = None
        self.final_message: str | None = None
        self.objects_written: list[str] = []
        self.skip_pending = False

    # AWS: PENDING for a moment, RUNNING, then the final state.
    @property
    def pending_for(self) -> float:
        return 0.0 if self.skip_pending else min(1.0, self.delay * 0.2)

    def settle(self, now: float | None = None) -> None:
        with LOCK:
            if self.final_code is not None:
                return
            now = time.time() if now is None else now
            if now - self.created < self.delay:
                return
            self.completion_ms = self.creation_ms + int(self.delay * 1000)
            if self.outcome == "COMPLETED":
                try:
                    if self.writes:
                        self._write_objects()
                    self.final_code = "COMPLETED"
                    self.final_message = "Completed successfully"
                except Exception as exc:  # the group or bucket vanished
                    self.final_code = "FAILED"
                    self.final_message = f"Export failed: {exc}"
            elif self.outcome == "CANCELLED":
                self.final_code = "CANCELLED"
                self.final_message = "Cancelled by user"
            else:
                self.final_code = "FAILED"
                self.final_message = "Export task failed (injected fault)"

    def cancel(self) -> None:
        with LOCK:
            self.settle()
            if self.final_code is not None:
                raise InvalidOperationException("The specified export task has already finished.")
            self.final_code = "CANCELLED"
            self.final_message = "Cancelled by user"
            self.completion_ms = now_ms()

    def status_code(self) -> str:
        with LOCK:
            self.settle()
            if self.final_code is not None:
                return self.final_code
            if time.time() - self.created < self.pending_for:
                return "PENDING"
            return "RUNNING"

    def _key(self, rest: str) -> str:
        if self.destination_prefix:
            return f"{self.destination_prefix}/{rest}"
        return rest

    def _write_objects(self) -> None:
        s3 = s3_backends[self.account_id][self.partition]
        s3.get_bucket(self.destination)
        backend: LogsBackend = logs_backends[self.account_id][self.region]
        group = backend.groups.get(self.log_group_name)
        if group is None:
            raise ResourceNotFoundException("The specified log group does not exist.")
        for stream_name, stream in list(group.streams.items()):
            events = stream.events
            lo = bisect.bisect_left(events, self.from_time, key=_event_ts)
            hi = bisect.bisect_right(events, self.to, key=_event_ts)
            if hi <= lo:
                continue
            body = "".join(
                format_export_line(ev.timestamp, ev.message) + "\n" for ev in events[lo:hi]
            )
            key = self._key(f"{self.task_id}/{stream_name}/000000.gz")
            s3.put_object(
                bucket_name=self.destination,
                key_name=key,
                value=gzip.compress(body.encode("utf-8"), compresslevel=1),
            )
            self.objects_written.append(key)

    def to_json(self) -> dict[str, Any]:
        code = self.status_code()
        messages = {"PENDING": "Pending", "RUNNING": "Started successfully"}
        info: dict[str, Any] = {"creationTime": self.creation_ms}
        if self.completion_ms is not None and self.final_code is not None:
            info["completionTime"] = self.completion_ms
        out: dict[str, Any] = {
            "taskId": self.task_id,
            "logGroupName": self.log_group_name,
            "destination": self.destination,
            "destinationPrefix": self.destination_prefix,
            "from": self.from_time,
            "to": self.to,
            "status": {"code": code, "message": self.final_message or messages[code]},
            "executionInfo": info,
        }
        if self.task_name is not None:
            out["taskName"] = self.task_name
        return out


def _tasks(backend: LogsBackend) -> list[StrictExportTask]:
    return [t for t in backend.export_tasks.values() if isinstance(t, StrictExportTask)]


def _schedule_settle(task: StrictExportTask) -> None:
    timer = threading.Timer(task.delay + 0.01, task.settle)
    timer.daemon = True
    timer.start()


def _backend_create_export_task(
    self: LogsBackend,
    taskName: str | None,
    logGroupName: str,
    destination: str,
    destinationPrefix: str,
    fromTime: int,
    to: int,
) -> str:
    outcome = getattr(REQUEST_CTX, "export_outcome", None) or "COMPLETED"
    with LOCK:
        if fromTime is None or to is None:
            raise InvalidParameterException("Both 'from' and 'to' are required.")
        if fromTime > to:
            raise InvalidParameterException(
                "Specified time range is not valid: 'from' must not be later than 'to'."
            )
        try:
            s3_backends[self.account_id][self.partition].get_bucket(destination)
        except MissingBucket:
            raise InvalidParameterException(
                "The given bucket does not exist. Please make sure the bucket is valid."
            )
        if logGroupName not in self.groups:
            raise ResourceNotFoundException("The specified log group does not exist.")
        if any(t.status_code() in ACTIVE for t in _tasks(self)):
            raise LimitExceededException()
        task_id = str(mock_random.uuid4())
        task = StrictExportTask(
            account_id=self.account_id,
            region=self.region_name,
            partition=self.partition,
            task_id=task_id,
            task_name=taskName,
            log_group_name=logGroupName,
            destination=destination,
            destination_prefix=destinationPrefix,
            from_time=int(fromTime),
            to=int(to),
            delay=CONFIG["export_delay_seconds"],
            outcome=outcome,
        )
        self.export_tasks[task_id] = task  # type: ignore[assignment]
        # AWS writes a permission-check object when the task is created.
        s3_backends[self.account_id][self.partition].put_object(
            bucket_name=destination,
            key_name=task._key("aws-logs-write-test"),
            value=b"Permission Check Successful",
        )
    _schedule_settle(task)
    return task_id


def occupy_export_slot(account_id: str, region: str, seconds: float) -> str:
    """A RUNNING task owned by another caller: another group, another bucket."""
    backend: LogsBackend = logs_backends[account_id][region]
    with LOCK:
        task_id = str(mock_random.uuid4())
        task = StrictExportTask(
            account_id=account_id,
            region=region,
            partition=backend.partition,
            task_id=task_id,
            task_name="another-caller",
            log_group_name="/emulator/another-caller",
            destination="emulator-another-caller",
            destination_prefix="exportedlogs",
            from_time=0,
            to=now_ms(),
            delay=seconds,
            writes=False,
        )
        task.skip_pending = True  # already RUNNING
        backend.export_tasks[task_id] = task  # type: ignore[assignment]
    _schedule_settle(task)
    return task_id


def _backend_cancel_export_task(self: LogsBackend, task_id: str) -> None:
    task = self.export_tasks.get(task_id)
    if not isinstance(task, StrictExportTask):
        raise ResourceNotFoundException("The specified export task does not exist.")
    task.cancel()


def _response_describe_export_tasks(self: Any) -> str:
    import json

    task_id = self._get_param("taskId")
    status_code = self._get_param("statusCode")
    limit = self._get_param("limit") or 50
    next_token = self._get_param("nextToken")
    backend: LogsBackend = self.logs_backend
    with LOCK:
        tasks = _tasks(backend)
        if task_id:
            tasks = [t for t in tasks if t.task_id == task_id]
            if not tasks:
                raise ResourceNotFoundException("The specified export task does not exist.")
        items = [t.to_json() for t in tasks]
    if status_code:
        items = [i for i in items if i["status"]["code"] == status_code]
    start = 0
    if next_token:
        try:
            start = int(next_token)
        except ValueError:
            raise InvalidParameterException("The specified nextToken is invalid.")
    page = items[start : start + int(limit)]
    out: dict[str, Any] = {"exportTasks": page}
    if start + int(limit) < len(items):
        out["nextToken"] = str(start + int(limit))
    return json.dumps(out)


def settle_all() -> None:
    with LOCK:
        for account in list(logs_backends.keys()):
            for region in list(logs_backends[account].keys()):
                for t in _tasks(logs_backends[account][region]):
                    t.settle()


def install() -> None:
    LogStream._update = _stream_update  # type: ignore[method-assign]
    LogStream.put_log_events = _stream_put_log_events  # type: ignore[method-assign]
    LogStream.get_log_events = _stream_get_log_events  # type: ignore[method-assign]
    LogsBackend.put_log_events = _backend_put_log_events  # type: ignore[method-assign]
    LogsBackend.create_export_task = _backend_create_export_task  # type: ignore[method-assign]
    LogsBackend.cancel_export_task = _backend_cancel_export_task  # type: ignore[method-assign]
    logs_responses.LogsResponse.describe_export_tasks = _response_describe_export_tasks  # type: ignore[method-assign]
    _ = logs_models  # keep the module import explicit for readers
