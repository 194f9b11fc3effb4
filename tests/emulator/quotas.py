"""Per-account TPS quotas of CloudWatch Logs: a token bucket per operation.

AWS throttles each CloudWatch Logs API per account and Region and answers
`ThrottlingException` (HTTP 400, "Rate exceeded"). The emulator serves one
account and Region, so one bucket per operation. A bucket holds at most one
second of tokens (rate, at least 1) and refills continuously at the rate.

Values (AWS "CloudWatch Logs quotas" page; where the page's current default is
higher than the earlier published one, the lower, stricter value is used; see
RULES.md): DeleteLogStream 5, DescribeLogStreams 5, GetLogEvents 10,
CreateLogStream 50, PutLogEvents 5000, CreateExportTask 5,
DescribeExportTasks 5, CancelExportTask 5, DescribeLogGroups 5,
FilterLogEvents 5, CreateLogGroup 10, DeleteLogGroup 10, PutRetentionPolicy 5,
DeleteRetentionPolicy 5, Put/Get/DeleteDataProtectionPolicy 5.

Control API: `POST /_emulator/config {"quotas": {"DeleteLogStream": 2, "GetLogEvents": null},
"quotaScale": 10.0, "quotasEnabled": false}`; `"quotas": "aws"` restores the
defaults. Throttled calls are counted per `service.Operation` and listed by
`GET /_emulator/throttled` (`DELETE` resets). Control API calls never count.
"""

from __future__ import annotations

import threading
import time
from typing import Any

AWS_QUOTAS: dict[str, float] = {
    "CreateLogStream": 50,
    "DeleteLogStream": 5,
    "DescribeLogStreams": 5,
    "GetLogEvents": 10,
    "PutLogEvents": 5000,
    "CreateExportTask": 5,
    "DescribeExportTasks": 5,
    "CancelExportTask": 5,
    "DescribeLogGroups": 5,
    "FilterLogEvents": 5,
    "CreateLogGroup": 10,
    "DeleteLogGroup": 10,
    "PutRetentionPolicy": 5,
    "DeleteRetentionPolicy": 5,
    "PutDataProtectionPolicy": 5,
    "GetDataProtectionPolicy": 5,
    "DeleteDataProtectionPolicy": 5,
}


class Bucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Quotas:
    """Token buckets for the `logs` operations; thread safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled = True
        self.scale = 1.0
        self.quotas: dict[str, float] = dict(AWS_QUOTAS)
        self.buckets: dict[str, Bucket] = {}
        self.throttled: dict[str, int] = {}

    def _reset_buckets(self) -> None:
        self.buckets.clear()

    def configure(self, body: dict[str, Any]) -> None:
        with self.lock:
            if "quotas" in body:
                spec = body["quotas"]
                if spec == "aws":
                    self.quotas = dict(AWS_QUOTAS)
                elif isinstance(spec, dict):
                    for op, tps in spec.items():
                        if tps is None:
                            self.quotas.pop(op, None)
                        elif float(tps) <= 0:
                            raise ValueError(f"quota of {op} must be positive (null removes it)")
                        else:
                            self.quotas[op] = float(tps)
                else:
                    raise ValueError('quotas must be an object of operation -> TPS, or "aws"')
            if "quotaScale" in body:
                scale = float(body["quotaScale"])
                if scale <= 0:
                    raise ValueError("quotaScale must be positive")
                self.scale = scale
            if "quotasEnabled" in body:
                if not isinstance(body["quotasEnabled"], bool):
                    raise ValueError("quotasEnabled must be true or false")
                self.enabled = body["quotasEnabled"]
            self._reset_buckets()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "quotasEnabled": self.enabled,
                "quotaScale": self.scale,
                "quotas": dict(sorted(self.quotas.items())),
            }

    def admit(self, service: str, operation: str) -> bool:
        """True if the call may proceed; False (and counted) if throttled."""
        if service != "logs":
            return True
        with self.lock:
            if not self.enabled:
                return True
            rate = self.quotas.get(operation)
            if rate is None:
                return True
            bucket = self.buckets.get(operation)
            if bucket is None:
                bucket = Bucket(rate * self.scale)
                self.buckets[operation] = bucket
            if bucket.take(time.monotonic()):
                return True
            key = f"{service}.{operation}"
            self.throttled[key] = self.throttled.get(key, 0) + 1
            return False

    def throttled_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(sorted(self.throttled.items()))

    def reset_throttled(self) -> None:
        with self.lock:
            self.throttled.clear()
