"""Atomic S3 conditional writes.

moto checks `If-None-Match: *` / `If-Match: <etag>` and then writes, with
nothing in between held: on the threaded server two concurrent conditional
writes of one key can both pass the check. AWS ("Add preconditions to S3
operations with conditional requests", "How to prevent object overwrites with
conditional writes"): the first conditional write to finish wins, the others
answer 412 PreconditionFailed; If-Match on a missing key answers 404
NoSuchKey; a 409 ConditionalRequestConflict may answer concurrent requests
(retry on 409).

The emulator runs every object write (PutObject, CopyObject, DeleteObject,
DeleteObjects, CompleteMultipartUpload) under one lock, so moto's check and
write are atomic. With `s3ConflictOnContention` (default on), a conditional
write that finds another write of the same key in progress answers 409
ConditionalRequestConflict when it is an `If-Match` write or the write in
progress is a delete (the cases AWS names); an `If-None-Match` write waits and
then gets 412 if the key now exists.

`s3WriteDelayMs` (default 0) adds that much latency to every object write,
after moto's precondition check and before the object is stored, as S3's own
write latency does: with the atomic writes switched off, concurrent
conditional writes then visibly race (which is how the tests show the rule).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import Any

import emulator_config

WRITE_OPERATIONS = {"PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload"}


def object_key(environ: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of a path-style or virtual-hosted request."""
    path = urllib.parse.unquote(environ.get("PATH_INFO", "/"))
    host = (environ.get("HTTP_HOST") or "").split(":", 1)[0]
    parts = path.lstrip("/").split("/", 1)
    if host.count(".") >= 1 and not host.replace(".", "").isdigit() and not host.startswith("localhost"):
        # virtual-hosted style: bucket.s3... or bucket.localhost
        return host.split(".", 1)[0], path.lstrip("/")
    bucket = parts[0] if parts else ""
    key = parts[1] if len(parts) > 1 else ""
    return bucket, key


class S3Writes:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = threading.Lock()
        self.holder: tuple[str, str, str] | None = None  # bucket, key, operation

    def run(self, environ: dict[str, Any], operation: str, call: Any) -> Any:
        """Runs `call()` (the moto request) atomically; returns its result, or
        the string "conflict" when the request must answer 409."""
        if operation not in WRITE_OPERATIONS or not emulator_config.get("s3_atomic_conditional_writes"):
            return call()
        bucket, key = object_key(environ)
        if_match = environ.get("HTTP_IF_MATCH")
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        conditional = bool(if_match or if_none_match)
        if not self.lock.acquire(blocking=False):
            with self.state:
                holder = self.holder
            contended = holder is not None and holder[0] == bucket and holder[1] == key
            if (
                conditional
                and contended
                and emulator_config.get("s3_conflict_on_contention")
                and (if_match or holder[2] in ("DeleteObject", "DeleteObjects"))
            ):
                return "conflict"
            self.lock.acquire()
        try:
            with self.state:
                self.holder = (bucket, key, operation)
            return call()
        finally:
            with self.state:
                self.holder = None
            self.lock.release()


def install() -> None:
    from moto.s3.models import S3Backend

    original_put = S3Backend.put_object

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        delay = emulator_config.get("s3_write_delay_ms")
        if delay:
            time.sleep(float(delay) / 1000.0)
        return original_put(self, *args, **kwargs)

    S3Backend.put_object = put_object  # type: ignore[method-assign]
