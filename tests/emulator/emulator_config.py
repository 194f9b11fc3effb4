"""Runtime settings of the emulator's strict rules, shared by every patch module.

`POST /_emulator/config` (cwl_emulator.py) changes them; `GET /_emulator/config`
reads them. Each key is documented in RULES.md beside this file. The defaults
are AWS's values: every rule is ON unless a test switches it off.
"""

from __future__ import annotations

import threading
from typing import Any

LOCK = threading.RLock()

# Payload limits (bytes) and counts as AWS documents them.
SFN_PAYLOAD_LIMIT = 262_144  # 256 KiB, UTF-8
SFN_HISTORY_LIMIT = 25_000
LAMBDA_PAYLOAD_LIMIT = 6_291_456  # 6 MB, synchronous invocation request and response

CONFIG: dict[str, Any] = {
    # CloudWatch Logs export tasks: PENDING/RUNNING for this long.
    "export_delay_seconds": 2.0,
    # An export holds only the events ingested before its task was created,
    # minus this lag (AWS: data "can take up to 12 hours to become available
    # for export"); 0 keeps every event ingested before the task.
    "export_availability_lag_seconds": 0.0,
    # DescribeLogStreams metadata lag: None = off (metadata reflects every event).
    "metadata_lag_seconds": None,
    "metadata_frozen_at_ms": None,
    # Retention: events past retention are invisible at once; physically purged
    # this many seconds later (a later retention increase can still rescue them).
    "retention_expiry_delay_seconds": 0.0,
    # S3 conditional writes are atomic; a conditional write that contends with
    # another write of the same key may answer 409 ConditionalRequestConflict.
    "s3_atomic_conditional_writes": True,
    "s3_conflict_on_contention": True,
    # Latency added to every S3 object write (after the precondition check).
    "s3_write_delay_ms": 0.0,
    # Step Functions.
    "sfn_payload_limit_bytes": SFN_PAYLOAD_LIMIT,
    "sfn_history_limit": SFN_HISTORY_LIMIT,
    # Lambda synchronous invocation payloads.
    "lambda_payload_limit_bytes": LAMBDA_PAYLOAD_LIMIT,
}

# JSON name of the control API -> (CONFIG key, parser; None allowed?)
_FIELDS: dict[str, tuple[str, Any, bool]] = {
    "exportDelaySeconds": ("export_delay_seconds", float, False),
    "exportAvailabilityLagSeconds": ("export_availability_lag_seconds", float, False),
    "metadataLagSeconds": ("metadata_lag_seconds", float, True),
    "metadataFrozenAtMs": ("metadata_frozen_at_ms", int, True),
    "retentionExpiryDelaySeconds": ("retention_expiry_delay_seconds", float, False),
    "s3AtomicConditionalWrites": ("s3_atomic_conditional_writes", bool, False),
    "s3ConflictOnContention": ("s3_conflict_on_contention", bool, False),
    "s3WriteDelayMs": ("s3_write_delay_ms", float, False),
    "sfnPayloadLimitBytes": ("sfn_payload_limit_bytes", int, True),
    "sfnHistoryLimit": ("sfn_history_limit", int, True),
    "lambdaPayloadLimitBytes": ("lambda_payload_limit_bytes", int, True),
}

_DEFAULTS_WHEN_NULL = {
    "sfn_payload_limit_bytes": SFN_PAYLOAD_LIMIT,
    "sfn_history_limit": SFN_HISTORY_LIMIT,
    "lambda_payload_limit_bytes": LAMBDA_PAYLOAD_LIMIT,
}


def get(key: str) -> Any:
    with LOCK:
        return CONFIG[key]


def apply(body: dict[str, Any]) -> None:
    """Applies the known keys of a control API body; raises ValueError on a bad value."""
    with LOCK:
        for name, (key, parse, nullable) in _FIELDS.items():
            if name not in body:
                continue
            value = body[name]
            if value is None:
                if key in _DEFAULTS_WHEN_NULL:
                    CONFIG[key] = _DEFAULTS_WHEN_NULL[key]
                    continue
                if not nullable:
                    raise ValueError(f"{name} cannot be null")
                CONFIG[key] = None
                continue
            if parse is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            parsed = parse(value)
            if parse in (int, float) and parsed < 0:
                raise ValueError(f"{name} must not be negative")
            CONFIG[key] = parsed


def describe() -> dict[str, Any]:
    with LOCK:
        return {name: CONFIG[key] for name, (key, _, _) in _FIELDS.items()}
