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

import data_protection
import emulator_config

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

# Runtime configuration, changed through the control API (emulator_config.py).
CONFIG = emulator_config.CONFIG

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
    unmask = bool(getattr(REQUEST_CTX, "unmask", False))
    with LOCK:
        now = now_ms()
        purge_stream(self, now)
        events = self.events
        lo = first_visible_index(self, now)
        hi = len(events)
        if start_time is not None:
            lo = max(lo, bisect.bisect_left(events, int(start_time), key=_event_ts))
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
            {
                "timestamp": ev.timestamp,
                "message": display_message(self, ev, unmask),
                "ingestionTime": ev.ingestion_time,
            }
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
# Retention: events past the group's retention are invisible, then purged
# --------------------------------------------------------------------------

DAY_MS = 24 * 3600 * 1000
VALID_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)


def retention_cutoff(group: LogGroup, now: int) -> int | None:
    """Events with a timestamp before this are past retention (invisible), or None."""
    days = group.retention_in_days
    if not days:
        return None
    return now - int(days) * DAY_MS


def purge_cutoff(group: LogGroup, now: int) -> int | None:
    """Events with a timestamp before this are deleted for good, or None.

    AWS: events past retention are marked for deletion (no longer billed, not in
    storedBytes) and deleted "typically within 72 hours"; until then a longer
    retention set in time keeps them. `retentionExpiryDelaySeconds` (default 0)
    is that window: 0 deletes them as soon as they pass retention."""
    cutoff = retention_cutoff(group, now)
    if cutoff is None:
        return None
    return cutoff - int(float(CONFIG["retention_expiry_delay_seconds"]) * 1000)


def purge_stream(stream: LogStream, now: int, group: LogGroup | None = None) -> None:
    group = group or stream.log_group
    cutoff = purge_cutoff(group, now)
    if cutoff is None:
        return
    with LOCK:
        events = stream.events
        hi = bisect.bisect_left(events, cutoff, key=_event_ts)
        if hi:
            stream.stored_bytes -= sum(len(e.message.encode("utf-8")) for e in events[:hi])
            del events[:hi]
            _stream_update(stream)


def purge_group(group: LogGroup, now: int) -> None:
    with LOCK:
        for stream in list(group.streams.values()):
            purge_stream(stream, now, group)


def first_visible_index(stream: LogStream, now: int) -> int:
    cutoff = retention_cutoff(stream.log_group, now)
    if cutoff is None:
        return 0
    return bisect.bisect_left(stream.events, cutoff, key=_event_ts)


def visible_events(stream: LogStream, now: int) -> list[LogEvent]:
    with LOCK:
        purge_stream(stream, now)
        return stream.events[first_visible_index(stream, now) :]


def _backend_put_retention_policy(self: LogsBackend, log_group_name: str, retention_in_days: Any) -> None:
    """PutRetentionPolicy accepts only AWS's listed values."""
    try:
        days = int(retention_in_days)
    except (TypeError, ValueError):
        days = None
    if days not in VALID_RETENTION_DAYS or isinstance(retention_in_days, bool):
        raise InvalidParameterException(
            constraint="Member must satisfy enum value set: [" + ", ".join(map(str, VALID_RETENTION_DAYS)) + "]",
            parameter="retentionInDays",
            value=retention_in_days,
        )
    with LOCK:
        if log_group_name not in self.groups:
            raise ResourceNotFoundException("The specified log group does not exist.")
        group = self.groups[log_group_name]
        purge_group(group, now_ms())  # what the old retention already deleted stays deleted
        group.set_retention_policy(days)


def _backend_delete_retention_policy(self: LogsBackend, log_group_name: str) -> None:
    with LOCK:
        if log_group_name not in self.groups:
            raise ResourceNotFoundException("The specified log group does not exist.")
        group = self.groups[log_group_name]
        purge_group(group, now_ms())
        group.set_retention_policy(None)


# --------------------------------------------------------------------------
# Masking (data_protection.py) at every read
# --------------------------------------------------------------------------


def display_message(stream: LogStream, event: LogEvent, unmask: bool) -> str:
    if unmask:
        return event.message
    group = stream.log_group
    text = data_protection.masked(group.account_id, group.region, group.name, event.ingestion_time, event.message)
    return event.message if text is None else text


# --------------------------------------------------------------------------
# DescribeLogStreams / DescribeLogGroups metadata
# --------------------------------------------------------------------------


def metadata_cutoff(now: int) -> int | None:
    """Ingestion time up to which DescribeLogStreams metadata reflects events, or None (no lag).

    AWS: lastEventTimestamp/lastIngestionTime "updates on an eventual consistency
    basis ... typically within an hour"; `metadataLagSeconds` makes them stale by
    that much, `metadataFrozenAtMs` freezes them at an instant."""
    cutoff = None
    frozen = CONFIG.get("metadata_frozen_at_ms")
    lag = CONFIG.get("metadata_lag_seconds")
    if frozen is not None:
        cutoff = int(frozen)
    if lag is not None:
        stale = now - int(float(lag) * 1000)
        cutoff = stale if cutoff is None else min(cutoff, stale)
    return cutoff


def _stream_describe(self: LogStream) -> dict[str, Any]:
    """storedBytes of a stream is always 0 (AWS, since June 2019); the event
    metadata honours retention and the configured lag."""
    now = now_ms()
    res: dict[str, Any] = {
        "arn": self.arn,
        "creationTime": int((self.creation_time - datetime(1970, 1, 1)).total_seconds() * 1000),
        "logStreamName": self.log_stream_name,
        "storedBytes": 0,
    }
    with LOCK:
        purge_stream(self, now)
        events = self.events
        lo = first_visible_index(self, now)
        cutoff = metadata_cutoff(now)
        if cutoff is None:
            if lo >= len(events):
                return res
            first, last = events[lo].timestamp, events[-1].timestamp
            if self.last_ingestion_time is not None:
                last_ingestion = int((self.last_ingestion_time - datetime(1970, 1, 1)).total_seconds() * 1000)
            else:
                last_ingestion = max(e.ingestion_time for e in events[lo:])
        else:
            seen = [e for e in events[lo:] if e.ingestion_time <= cutoff]
            if not seen:
                return res
            first = min(e.timestamp for e in seen)
            last = max(e.timestamp for e in seen)
            last_ingestion = max(e.ingestion_time for e in seen)
    res.update(
        {
            "firstEventTimestamp": first,
            "lastEventTimestamp": last,
            "lastIngestionTime": last_ingestion,
            "uploadSequenceToken": str(self.upload_sequence_token),
        }
    )
    return res


_original_group_describe = LogGroup.to_describe_dict


def _group_describe(self: LogGroup) -> dict[str, Any]:
    """The group's storedBytes is real: the bytes of its events within retention.
    dataProtectionStatus is ACTIVATED with a group policy; an account-level data
    protection policy shows as inheritedProperties ACCOUNT_DATA_PROTECTION."""
    now = now_ms()
    with LOCK:
        out = _original_group_describe(self)
        stored = 0
        for stream in self.streams.values():
            purge_stream(stream, now, self)
            stored += stream.stored_bytes
            hidden = first_visible_index(stream, now)  # past retention, not yet deleted
            if hidden:
                stored -= sum(len(e.message.encode("utf-8")) for e in stream.events[:hidden])
        out["storedBytes"] = stored
    if data_protection.get_group_policy(self.account_id, self.region, self.name) is not None:
        out["dataProtectionStatus"] = "ACTIVATED"
    if data_protection.account_dp_active(self.account_id, self.region):
        out["inheritedProperties"] = ["ACCOUNT_DATA_PROTECTION"]
    return out


def _stream_filter_log_events(
    self: LogStream, start_time: int, end_time: int, filter_pattern: str
) -> list[dict[str, Any]]:
    """FilterLogEvents over the visible events, masked unless `unmask`."""
    from moto.logs.utils import EventMessageFilter

    unmask = bool(getattr(REQUEST_CTX, "unmask", False))
    matcher = EventMessageFilter(filter_pattern)
    out = []
    for event in visible_events(self, now_ms()):
        if start_time and event.timestamp < start_time:
            continue
        if end_time and event.timestamp > end_time:
            continue
        if not matcher.matches(event.message):
            continue
        item = event.to_filter_dict()
        item["message"] = display_message(self, event, unmask)
        item["logStreamName"] = self.log_stream_name
        out.append(item)
    return out


# --------------------------------------------------------------------------
# Independent reader (control API): every stored event, original text
# --------------------------------------------------------------------------


def stored_events(
    account_id: str, region: str, group_name: str, stream_name: str | None, include_expired: bool
) -> dict[str, Any]:
    """Every event of every stream (or one stream) with its ORIGINAL text and
    ingestion time: no quota, no masking, no metadata lag. Events past
    retention are left out unless `include_expired` (then marked expired)."""
    backend: LogsBackend = logs_backends[account_id][region]
    now = now_ms()
    with LOCK:
        group = backend.groups.get(group_name)
        if group is None:
            raise KeyError(f"no log group {group_name}")
        purge_group(group, now)
        cutoff = retention_cutoff(group, now)
        streams: dict[str, list[dict[str, Any]]] = {}
        for name, stream in sorted(group.streams.items()):
            if stream_name is not None and name != stream_name:
                continue
            items = []
            for ev in stream.events:
                expired = cutoff is not None and ev.timestamp < cutoff
                if expired and not include_expired:
                    continue
                item: dict[str, Any] = {
                    "timestamp": ev.timestamp,
                    "message": ev.message,
                    "ingestionTime": ev.ingestion_time,
                }
                masked = data_protection.masked(account_id, region, group_name, ev.ingestion_time, ev.message)
                if masked is not None:
                    item["maskedMessage"] = masked
                if expired:
                    item["expired"] = True
                items.append(item)
            streams[name] = items
        if stream_name is not None and stream_name not in streams:
            raise KeyError(f"no log stream {stream_name} in {group_name}")
        return {"logGroupName": group_name, "streams": streams}

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
        now = now_ms()
        # Only what was exportable when the task was created: events ingested
        # later (or within the availability lag before) are not in it.
        exportable_until = self.creation_ms - int(emulator_config.get("export_availability_lag_seconds") * 1000)
        for stream_name, stream in list(group.streams.items()):
            # Events past retention are gone; masked events are exported masked
            # (AWS masks "at all egress points"; the strict reading counts exports).
            events = visible_events(stream, now)
            lo = bisect.bisect_left(events, self.from_time, key=_event_ts)
            hi = bisect.bisect_right(events, self.to, key=_event_ts)
            exported = [ev for ev in events[lo:hi] if ev.ingestion_time <= exportable_until]
            if not exported:
                continue
            body = "".join(
                format_export_line(ev.timestamp, display_message(stream, ev, False)) + "\n"
                for ev in exported
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



# --------------------------------------------------------------------------
# Data protection API (moto 5.2.5 has none) and `unmask` on reads
# --------------------------------------------------------------------------


def _group_name_of(identifier: str | None) -> str:
    """A log group name from a logGroupIdentifier (a name or an ARN)."""
    if not identifier:
        raise InvalidParameterException("logGroupIdentifier is required.")
    if identifier.startswith("arn:"):
        rest = identifier.split(":log-group:", 1)
        if len(rest) != 2:
            raise InvalidParameterException(f"Invalid log group ARN {identifier}.")
        name = rest[1]
        return name[:-2] if name.endswith(":*") else name
    return identifier


def _existing_group(response: Any, identifier: str | None) -> LogGroup:
    name = _group_name_of(identifier)
    backend: LogsBackend = response.logs_backend
    group = backend.groups.get(name)
    if group is None:
        raise ResourceNotFoundException("The specified log group does not exist.")
    return group


def _response_put_data_protection_policy(self: Any) -> str:
    import json

    identifier = self._get_param("logGroupIdentifier")
    document = self._get_param("policyDocument")
    group = _existing_group(self, identifier)
    at = data_protection.put_group_policy(group.account_id, group.region, group.name, document)
    return json.dumps({"logGroupIdentifier": identifier, "policyDocument": document, "lastUpdatedTime": at})


def _response_get_data_protection_policy(self: Any) -> str:
    """A group without a policy answers 200 with no policyDocument (the strict
    reading: callers must check the field, not only catch an error)."""
    import json

    identifier = self._get_param("logGroupIdentifier")
    group = _existing_group(self, identifier)
    version = data_protection.get_group_policy(group.account_id, group.region, group.name)
    out: dict[str, Any] = {"logGroupIdentifier": identifier}
    if version is not None:
        out["policyDocument"] = version.document
        out["lastUpdatedTime"] = version.start_ms
    return json.dumps(out)


def _response_delete_data_protection_policy(self: Any) -> str:
    identifier = self._get_param("logGroupIdentifier")
    group = _existing_group(self, identifier)
    data_protection.delete_group_policy(group.account_id, group.region, group.name)
    return ""


def _response_put_account_policy(self: Any) -> str:
    import json

    policy = data_protection.put_account_policy(
        self.current_account,
        self.region,
        self._get_param("policyName"),
        self._get_param("policyType"),
        self._get_param("policyDocument"),
        self._get_param("scope"),
        self._get_param("selectionCriteria"),
    )
    return json.dumps({"accountPolicy": data_protection.account_policy_json(self.current_account, policy)})


def _response_describe_account_policies(self: Any) -> str:
    import json

    policy_type = self._get_param("policyType")
    if not policy_type:
        raise InvalidParameterException("policyType is required.")
    policies = data_protection.describe_account_policies(
        self.current_account, self.region, policy_type, self._get_param("policyName")
    )
    return json.dumps(
        {"accountPolicies": [data_protection.account_policy_json(self.current_account, p) for p in policies]}
    )


def _response_delete_account_policy(self: Any) -> str:
    data_protection.delete_account_policy(
        self.current_account, self.region, self._get_param("policyName"), self._get_param("policyType")
    )
    return ""


def _with_unmask(original: Any) -> Any:
    def handler(self: Any) -> Any:
        REQUEST_CTX.unmask = bool(self._get_param("unmask", False))
        try:
            return original(self)
        finally:
            REQUEST_CTX.unmask = False

    handler.__name__ = original.__name__
    return handler


_original_delete_log_group = LogsBackend.delete_log_group


def _backend_delete_log_group(self: LogsBackend, log_group_name: str) -> None:
    _original_delete_log_group(self, log_group_name)
    data_protection.delete_group_policy(self.account_id, self.region_name, log_group_name, missing_ok=True)


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
    # Retention, stream metadata, storedBytes.
    LogsBackend.put_retention_policy = _backend_put_retention_policy  # type: ignore[method-assign]
    LogsBackend.delete_retention_policy = _backend_delete_retention_policy  # type: ignore[method-assign]
    LogsBackend.delete_log_group = _backend_delete_log_group  # type: ignore[method-assign]
    LogStream.to_describe_dict = _stream_describe  # type: ignore[method-assign]
    LogStream.filter_log_events = _stream_filter_log_events  # type: ignore[method-assign]
    LogGroup.to_describe_dict = _group_describe  # type: ignore[method-assign]
    # Data protection.
    resp = logs_responses.LogsResponse
    resp.put_data_protection_policy = _response_put_data_protection_policy  # type: ignore[attr-defined]
    resp.get_data_protection_policy = _response_get_data_protection_policy  # type: ignore[attr-defined]
    resp.delete_data_protection_policy = _response_delete_data_protection_policy  # type: ignore[attr-defined]
    resp.put_account_policy = _response_put_account_policy  # type: ignore[attr-defined]
    resp.describe_account_policies = _response_describe_account_policies  # type: ignore[attr-defined]
    resp.delete_account_policy = _response_delete_account_policy  # type: ignore[attr-defined]
    resp.get_log_events = _with_unmask(resp.get_log_events)  # type: ignore[method-assign]
    resp.filter_log_events = _with_unmask(resp.filter_log_events)  # type: ignore[method-assign]
    _ = logs_models  # keep the module import explicit for readers
