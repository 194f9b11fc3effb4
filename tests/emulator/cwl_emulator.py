#!/usr/bin/env python3
"""Strict local AWS emulator for cwl-archiver tests: moto (CloudWatch Logs, S3,
IAM, Lambda, Step Functions) behind a WSGI middleware that

* makes CloudWatch Logs strict (see strict_logs.py),
* forwards Lambda Invoke to a real Lambda Invoke API (--lambda-endpoint),
* injects faults and counts calls (control API under /_emulator/).

Usage:
  python cwl_emulator.py --port 0 [--host 127.0.0.1] [--lambda-endpoint URL]
      [--export-delay-seconds 2.0] [--exit-on-stdin-eof] [--pidfile PATH] [--config JSON]

`--config` (or the environment variable CWL_EMULATOR_CONFIG) takes the JSON body
of `POST /_emulator/config`, applied at start. The strict rules and their AWS
sources are listed in RULES.md beside this file.

Prints exactly one line `READY port=<port>` on stdout once listening; logs go to
stderr. A port in use: one line on stderr, exit code 2.

Control API (JSON in and out, never reaches moto):
  GET    /_emulator/health
  POST   /_emulator/seed     {"logGroupName", "logStreamName", "events": [{"timestamp", "message"}],
                              "lastIngestionTime"?}   any timestamps, no PutLogEvents rule
  POST   /_emulator/config   {"exportDelaySeconds": float, "lambdaEndpoint"?: url,
                              "metadataLagSeconds"?: s|null, "metadataFrozenAtMs"?: ms|null,
                              "retentionExpiryDelaySeconds"?: s,
                              "quotas"?: {"Operation": tps|null, ...}|"aws", "quotaScale"?: x,
                              "quotasEnabled"?: bool,
                              "s3AtomicConditionalWrites"?: bool, "s3ConflictOnContention"?: bool,
                              "s3WriteDelayMs"?: ms,
                              "sfnPayloadLimitBytes"?: n|null, "sfnHistoryLimit"?: n|null,
                              "lambdaPayloadLimitBytes"?: n|null}   (null: back to AWS's value)
  GET    /_emulator/config   every setting above, with its current value
  GET    /_emulator/throttled {"logs.DeleteLogStream": 3, ...} calls refused by a quota; DELETE resets
  GET    /_emulator/events?logGroupName=G[&logStreamName=S][&includeExpired=true]
                             every stored event, original text, ingestionTime; no quota, mask or lag
  POST   /_emulator/faults   {"service": "logs"|"s3"|"states"|"lambda", "operation": name|"*"
                              (lambda: the function name), "kind": "throttle"|"unavailable"|"drop"|
                              "crash"|"export-failed"|"export-cancelled", "nth"?, "rate"?, "seed"?,
                              "times"?, "phase"?: "before"|"after"}  -> {"id": n}
  GET    /_emulator/faults   rules with "matched" and "injected" counters;  DELETE clears them
  GET    /_emulator/calls    {"logs.PutLogEvents": 12, "s3.PutObject": 3, "lambda.Invoke": 4, ...}
  DELETE /_emulator/calls    resets the counters
  POST   /_emulator/occupy-export-slot {"seconds": s}  a RUNNING export task of another caller
"""

from __future__ import annotations

import argparse
import errno
import http.client
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Iterable

# moto formats some timestamps with local time: everything runs in UTC.
os.environ["TZ"] = "UTC"
time.tzset()

LOG = logging.getLogger("cwl_emulator")

StartResponse = Callable[..., Any]


# --------------------------------------------------------------------------
# Request classification
# --------------------------------------------------------------------------

LAMBDA_INVOKE_PREFIX = "/2015-03-31/functions/"


def credential_scope_service(environ: dict[str, Any]) -> str | None:
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    cred = None
    if "Credential=" in auth:
        cred = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
    else:
        qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if "X-Amz-Credential" in qs:
            cred = qs["X-Amz-Credential"][0]
    if not cred:
        return None
    parts = cred.split("/")
    if len(parts) >= 5:
        return parts[3].lower()
    return None


def lambda_function_name(raw: str) -> str:
    name = urllib.parse.unquote(raw)
    if "function:" in name:
        name = name.split("function:", 1)[1]
    return name.split(":", 1)[0]


def is_lambda_invoke(environ: dict[str, Any]) -> str | None:
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") == "POST" and path.startswith(LAMBDA_INVOKE_PREFIX):
        rest = path[len(LAMBDA_INVOKE_PREFIX) :]
        if rest.endswith("/invocations"):
            return lambda_function_name(rest[: -len("/invocations")])
    return None


def s3_operation(environ: dict[str, Any]) -> str:
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    parts = [p for p in path.split("/", 2)[1:] if p != ""]
    has_key = len(parts) >= 2
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if not parts:
        return "ListBuckets"
    if not has_key:
        sub = {
            "versioning": "BucketVersioning",
            "policy": "BucketPolicy",
            "lifecycle": "BucketLifecycleConfiguration",
            "tagging": "BucketTagging",
            "encryption": "BucketEncryption",
            "notification": "BucketNotificationConfiguration",
            "acl": "BucketAcl",
            "cors": "BucketCors",
            "object-lock": "ObjectLockConfiguration",
            "publicAccessBlock": "PublicAccessBlock",
            "ownershipControls": "BucketOwnershipControls",
        }
        for q, suffix in sub.items():
            if q in query:
                return {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method) + suffix
        if method == "GET":
            if "location" in query:
                return "GetBucketLocation"
            if "uploads" in query:
                return "ListMultipartUploads"
            if "versions" in query:
                return "ListObjectVersions"
            if query.get("list-type", [""])[0] == "2":
                return "ListObjectsV2"
            return "ListObjects"
        if method == "HEAD":
            return "HeadBucket"
        if method == "PUT":
            return "CreateBucket"
        if method == "DELETE":
            return "DeleteBucket"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return f"{method}Bucket"
    if "tagging" in query:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"}.get(
            method, "ObjectTagging"
        )
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if copy:
            return "CopyObject"
        if "acl" in query:
            return "PutObjectAcl"
        return "PutObject"
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        if "attributes" in query:
            return "GetObjectAttributes"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "restore" in query:
            return "RestoreObject"
    return f"{method}Object"


def classify(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of a request; for Lambda Invoke the operation is the
    function name (what fault rules match) and the call key is lambda.Invoke."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    service = credential_scope_service(environ)
    fn = is_lambda_invoke(environ)
    if fn is not None:
        return "lambda", fn
    if service is None:
        if target.startswith("Logs_"):
            service = "logs"
        elif target.startswith("AWSStepFunctions"):
            service = "states"
        else:
            service = "unknown"
    if target and "." in target:
        return service, target.split(".", 1)[1]
    if service == "s3":
        return service, s3_operation(environ)
    return service, f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"


# --------------------------------------------------------------------------
# Faults and call counting
# --------------------------------------------------------------------------

KINDS = {"throttle", "unavailable", "drop", "crash", "export-failed", "export-cancelled"}
SERVICES = {"logs", "s3", "states", "lambda"}


class FaultRule:
    def __init__(self, rule_id: int, spec: dict[str, Any]) -> None:
        service = spec.get("service")
        kind = spec.get("kind")
        if service not in SERVICES:
            raise ValueError(f"service must be one of {sorted(SERVICES)}, got {service!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if kind == "crash" and service != "lambda":
            raise ValueError("kind 'crash' only applies to service 'lambda'")
        if kind in ("export-failed", "export-cancelled") and (
            service != "logs" or spec.get("operation", "CreateExportTask") != "CreateExportTask"
        ):
            raise ValueError(f"kind {kind!r} only applies to logs CreateExportTask")
        phase = spec.get("phase")
        if phase is None:
            phase = "after" if kind == "crash" else "before"
        if phase not in ("before", "after"):
            raise ValueError("phase must be 'before' or 'after'")
        self.id = rule_id
        self.service = service
        self.operation = spec.get("operation") or ("CreateExportTask" if kind.startswith("export-") else "*")
        self.kind = kind
        self.nth = spec.get("nth")
        self.rate = spec.get("rate")
        self.seed = spec.get("seed", 0)
        self.times = spec.get("times")
        self.phase = phase
        self.rng = random.Random(self.seed)
        self.matched = 0
        self.injected = 0

    def decide(self, service: str, operation: str) -> bool:
        if service != self.service or (self.operation != "*" and operation != self.operation):
            return False
        self.matched += 1
        if self.times is not None and self.injected >= int(self.times):
            return False
        fire = True
        if self.nth is not None:
            fire = self.matched == int(self.nth)
        if self.rate is not None:
            draw = self.rng.random()
            fire = fire and draw < float(self.rate)
        if fire:
            self.injected += 1
        return fire

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "operation": self.operation,
            "kind": self.kind,
            "nth": self.nth,
            "rate": self.rate,
            "seed": self.seed,
            "times": self.times,
            "phase": self.phase,
            "matched": self.matched,
            "injected": self.injected,
        }


class State:
    def __init__(self, lambda_endpoint: str | None) -> None:
        self.lock = threading.Lock()
        self.rules: list[FaultRule] = []
        self.next_id = 1
        self.calls: dict[str, int] = {}
        self.lambda_endpoint = lambda_endpoint
        self.quotas: Any = None  # quotas.Quotas, set after moto import
        self.s3_writes: Any = None  # strict_s3.S3Writes

    def add_rule(self, spec: dict[str, Any]) -> int:
        with self.lock:
            rule = FaultRule(self.next_id, spec)
            self.next_id += 1
            self.rules.append(rule)
            return rule.id

    def match(self, service: str, operation: str) -> FaultRule | None:
        with self.lock:
            hit = None
            for rule in self.rules:
                # every rule sees every call (so nth counts stay meaningful); the first firing one wins
                if rule.decide(service, operation) and hit is None:
                    hit = rule
            return hit

    def count(self, key: str) -> None:
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


def request_id() -> str:
    return str(uuid.uuid4())


def json_response(
    start_response: StartResponse,
    status: int,
    body: Any,
    content_type: str = "application/json",
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = json.dumps(body).encode("utf-8")
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", request_id()),
    ]
    if extra:
        headers.extend(extra)
    start_response(f"{status} {http.client.responses.get(status, 'Status')}", headers)
    return [data]


def s3_error(environ: dict[str, Any], start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
    rid = request_id()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{rid}</RequestId>"
        f"<HostId>emulator</HostId></Error>"
    ).encode("utf-8")
    headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid)]
    if environ.get("REQUEST_METHOD") == "HEAD":
        headers.append(("Content-Length", "0"))
        start_response(f"{status} {http.client.responses.get(status, 'Status')}", headers)
        return [b""]
    headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {http.client.responses.get(status, 'Status')}", headers)
    return [body]


def json_error_content_type(service: str) -> str:
    return "application/x-amz-json-1.0" if service == "states" else "application/x-amz-json-1.1"


def fault_response(
    environ: dict[str, Any], start_response: StartResponse, service: str, kind: str
) -> list[bytes]:
    if service == "s3":
        if kind == "throttle":
            return s3_error(environ, start_response, 503, "SlowDown", "Please reduce your request rate.")
        return s3_error(environ, start_response, 503, "ServiceUnavailable", "Service is unable to handle request.")
    if service == "lambda":
        if kind == "throttle":
            return json_response(
                start_response,
                429,
                {"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                extra=[("X-Amzn-ErrorType", "TooManyRequestsException")],
            )
        return json_response(
            start_response,
            500,
            {"Type": "Service", "message": "Injected fault: service unavailable"},
            extra=[("X-Amzn-ErrorType", "ServiceException")],
        )
    ctype = json_error_content_type(service)
    if kind == "throttle":
        return json_response(
            start_response, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}, ctype
        )
    return json_response(
        start_response,
        503,
        {"__type": "ServiceUnavailableException", "message": "The service is unavailable. Please try again later."},
        ctype,
    )


class DropConnection(Exception):
    pass


def drop_connection(environ: dict[str, Any]) -> None:
    """Closes the client connection with no response at all."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        raise DropConnection("no socket in environ")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def read_body(environ: dict[str, Any]) -> bytes:
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.isdigit():
        return stream.read(int(length)) if int(length) else b""
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def consume(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    captured: dict[str, Any] = {}

    def sr(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"] = status
        captured["headers"] = headers
        return lambda _b: None

    it = app(environ, sr)
    try:
        body = b"".join(it)
    finally:
        if hasattr(it, "close"):
            it.close()
    return captured.get("status", "500 Internal Server Error"), captured.get("headers", []), body


# --------------------------------------------------------------------------
# Middleware
# --------------------------------------------------------------------------


class Middleware:
    def __init__(self, state: State) -> None:
        self.state = state
        self.moto_app: Callable[..., Iterable[bytes]] | None = None
        self.strict: Any = None  # strict_logs module, set after moto import
        self.emulator_config: Any = None  # emulator_config module, set after moto import

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/") or path == "/_emulator":
            return self.control(environ, start_response)
        service, operation = classify(environ)
        key = "lambda.Invoke" if is_lambda_invoke(environ) is not None else f"{service}.{operation}"
        self.state.count(key)
        if self.state.quotas is not None and not self.state.quotas.admit(service, operation):
            read_body(environ)
            return fault_response(environ, start_response, service, "throttle")
        rule = self.state.match(service, operation)
        if self.strict is not None:
            self.strict.REQUEST_CTX.export_outcome = None
        if service == "lambda" and is_lambda_invoke(environ) is not None:
            return self.lambda_invoke(environ, start_response, operation, rule)
        assert self.moto_app is not None
        if rule is None:
            if service == "s3" and self.state.s3_writes is not None:
                return self.s3_write(environ, start_response, operation)
            return self.moto_app(environ, start_response)
        LOG.info("injecting %s (%s) into %s.%s", rule.kind, rule.phase, service, operation)
        if rule.kind in ("export-failed", "export-cancelled"):
            self.strict.REQUEST_CTX.export_outcome = "FAILED" if rule.kind == "export-failed" else "CANCELLED"
            try:
                return list(self.moto_app(environ, start_response))
            finally:
                self.strict.REQUEST_CTX.export_outcome = None
        if rule.phase == "after":
            consume(self.moto_app, environ)
        else:
            read_body(environ)
        if rule.kind == "drop":
            drop_connection(environ)
            raise ConnectionAbortedError("emulator fault: connection dropped")
        return fault_response(environ, start_response, service, rule.kind)

    # -- S3 ------------------------------------------------------------------

    def s3_write(self, environ: dict[str, Any], start_response: StartResponse, operation: str) -> Iterable[bytes]:
        assert self.moto_app is not None
        app = self.moto_app
        result = self.state.s3_writes.run(environ, operation, lambda: list(app(environ, start_response)))
        if isinstance(result, str) and result == "conflict":
            read_body(environ)
            return s3_error(
                environ,
                start_response,
                409,
                "ConditionalRequestConflict",
                "A conflicting conditional operation is currently in progress against this resource. Please try again.",
            )
        return result

    # -- Lambda --------------------------------------------------------------

    def lambda_invoke(
        self, environ: dict[str, Any], start_response: StartResponse, fn: str, rule: FaultRule | None
    ) -> Iterable[bytes]:
        body = read_body(environ)
        crash_payload = {"errorType": "Runtime.ExitError", "errorMessage": "injected crash after side effects"}
        if rule is not None:
            LOG.info("injecting %s (%s) into lambda %s", rule.kind, rule.phase, fn)
            if rule.kind == "crash":
                if rule.phase == "after":
                    self.forward_ignoring_errors(environ, fn, body)
                return json_response(
                    start_response,
                    200,
                    crash_payload,
                    extra=[("X-Amz-Function-Error", "Unhandled"), ("X-Amz-Executed-Version", "$LATEST")],
                )
            if rule.phase == "after":
                self.forward_ignoring_errors(environ, fn, body)
            if rule.kind == "drop":
                drop_connection(environ)
                raise ConnectionAbortedError("emulator fault: connection dropped")
            return fault_response(environ, start_response, "lambda", rule.kind)
        limit = int(self.emulator_config.get("lambda_payload_limit_bytes")) if self.emulator_config else None
        if limit is not None and len(body) > limit:
            # AWS: 6 MB per synchronous request; the Lambda API refuses it (413).
            return json_response(
                start_response,
                413,
                {
                    "Type": "User",
                    "message": f"{len(body)} byte payload is too large for the RequestResponse invocation type "
                    f"(limit {limit} bytes)",
                },
                extra=[("X-Amzn-ErrorType", "RequestTooLargeException")],
            )
        try:
            status, headers, data = self.forward(environ, fn, body)
        except LambdaUnreachable as exc:
            return json_response(
                start_response,
                502,
                {"__type": "ServiceException", "message": str(exc)},
                extra=[("X-Amzn-ErrorType", "ServiceException")],
            )
        if limit is not None and len(data) > limit and 200 <= status < 300:
            # AWS: 6 MB per synchronous response; the invocation ends in a function error.
            return json_response(
                start_response,
                200,
                {
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": f"Response payload size ({len(data)} bytes) exceeded maximum allowed "
                    f"payload size ({limit} bytes).",
                },
                extra=[("X-Amz-Function-Error", "Unhandled"), ("X-Amz-Executed-Version", "$LATEST")],
            )
        out = [("Content-Length", str(len(data))), ("X-Amz-Executed-Version", "$LATEST")]
        ctype = "application/json"
        for k, v in headers:
            lk = k.lower()
            if lk == "x-amz-function-error":
                out.append(("X-Amz-Function-Error", v))
            elif lk == "content-type":
                ctype = v
            elif lk in ("x-amz-log-result", "x-amzn-errortype", "x-amzn-requestid"):
                out.append((k, v))
        out.append(("Content-Type", ctype))
        start_response(f"{status} {http.client.responses.get(status, 'Status')}", out)
        return [data]

    def forward_ignoring_errors(self, environ: dict[str, Any], fn: str, body: bytes) -> None:
        try:
            self.forward(environ, fn, body)
        except LambdaUnreachable as exc:
            LOG.warning("%s", exc)

    def forward(self, environ: dict[str, Any], fn: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        endpoint = self.state.lambda_endpoint
        if not endpoint:
            raise LambdaUnreachable(
                f"Function {fn}: lambda endpoint not reachable: the emulator was started without --lambda-endpoint"
            )
        url = urllib.parse.urlsplit(endpoint)
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        base = url.path.rstrip("/")
        target = f"{base}/2015-03-31/functions/{urllib.parse.quote(fn, safe='')}/invocations"
        headers = {"Content-Type": environ.get("CONTENT_TYPE") or "application/json"}
        for env_key, header in (
            ("HTTP_X_AMZ_INVOCATION_TYPE", "X-Amz-Invocation-Type"),
            ("HTTP_X_AMZ_LOG_TYPE", "X-Amz-Log-Type"),
            ("HTTP_X_AMZ_CLIENT_CONTEXT", "X-Amz-Client-Context"),
        ):
            if environ.get(env_key):
                headers[header] = environ[env_key]
        try:
            conn = conn_cls(url.hostname or "127.0.0.1", url.port, timeout=900)
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            result = (resp.status, resp.getheaders(), data)
            conn.close()
            return result
        except (OSError, http.client.HTTPException) as exc:
            raise LambdaUnreachable(f"Function {fn}: lambda endpoint not reachable: {endpoint}: {exc}") from exc

    # -- control API ---------------------------------------------------------

    def control(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "").rstrip("/")
        try:
            raw = read_body(environ)
            body = json.loads(raw) if raw.strip() else {}
            if method == "GET" and environ.get("QUERY_STRING"):
                query = urllib.parse.parse_qs(environ["QUERY_STRING"])
                body = {k: v[-1] for k, v in query.items()}
            result = self.control_dispatch(method, path, body)
            if result is None:
                return json_response(start_response, 404, {"error": f"no control route {method} {path}"})
            return json_response(start_response, 200, result)
        except LookupError as exc:
            if isinstance(exc, KeyError):
                return json_response(start_response, 400, {"error": f"{type(exc).__name__}: {exc}"})
            return json_response(start_response, 404, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return json_response(start_response, 400, {"error": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:  # pragma: no cover - surfaced to the test
            LOG.exception("control API failure")
            return json_response(start_response, 500, {"error": f"{type(exc).__name__}: {exc}"})

    def configure(self, body: dict[str, Any]) -> None:
        if not isinstance(body, dict):
            raise ValueError("the config body must be a JSON object")
        known = set(self.emulator_config.describe()) | {"lambdaEndpoint", "quotas", "quotaScale", "quotasEnabled"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        self.emulator_config.apply(body)
        self.state.quotas.configure(body)
        if "lambdaEndpoint" in body:
            self.state.lambda_endpoint = body["lambdaEndpoint"]

    def describe_config(self) -> dict[str, Any]:
        return {
            **self.emulator_config.describe(),
            **self.state.quotas.describe(),
            "lambdaEndpoint": self.state.lambda_endpoint,
        }

    def control_dispatch(self, method: str, path: str, body: dict[str, Any]) -> Any:
        strict = self.strict
        st = self.state
        account = body.get("accountId", "123456789012") if isinstance(body, dict) else "123456789012"
        region = body.get("region", "us-east-1") if isinstance(body, dict) else "us-east-1"
        if path == "/_emulator/health" and method == "GET":
            return {"status": "ok", "lambdaEndpoint": st.lambda_endpoint, **{"exportDelaySeconds": strict.CONFIG["export_delay_seconds"]}}
        if path == "/_emulator/seed" and method == "POST":
            events = body["events"]
            return strict.seed(
                account,
                region,
                body["logGroupName"],
                body["logStreamName"],
                events,
                body.get("lastIngestionTime"),
            )
        if path == "/_emulator/config" and method == "POST":
            self.configure(body)
            return self.describe_config()
        if path == "/_emulator/config" and method == "GET":
            return self.describe_config()
        if path == "/_emulator/throttled":
            if method == "GET":
                return st.quotas.throttled_counts()
            if method == "DELETE":
                st.quotas.reset_throttled()
                return {}
        if path == "/_emulator/events" and method == "GET":
            include = str(body.get("includeExpired", "false")).lower() in ("true", "1", "yes")
            try:
                return strict.stored_events(
                    account, region, body["logGroupName"], body.get("logStreamName"), include
                )
            except KeyError as exc:
                if "logGroupName" not in body:
                    raise
                raise LookupError(str(exc)) from exc
        if path == "/_emulator/faults":
            if method == "POST":
                return {"id": st.add_rule(body)}
            if method == "DELETE":
                with st.lock:
                    st.rules.clear()
                return {}
            if method == "GET":
                with st.lock:
                    return {"faults": [r.to_json() for r in st.rules]}
        if path == "/_emulator/calls":
            if method == "GET":
                with st.lock:
                    return dict(sorted(st.calls.items()))
            if method == "DELETE":
                with st.lock:
                    st.calls.clear()
                return {}
        if path == "/_emulator/occupy-export-slot" and method == "POST":
            return {"taskId": strict.occupy_export_slot(account, region, float(body.get("seconds", 5.0)))}
        return None


class LambdaUnreachable(Exception):
    pass


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            print(f"cwl_emulator: error: {host}:{port} is already in use", file=sys.stderr, flush=True)
        else:
            print(f"cwl_emulator: error: cannot bind {host}:{port}: {exc.strerror}", file=sys.stderr, flush=True)
        sys.exit(2)
    sock.listen(128)
    return sock


def watch_stdin() -> None:
    try:
        while True:
            chunk = sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1)
            if not chunk:
                break
    except Exception:
        pass
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lambda-endpoint", default=None)
    parser.add_argument("--export-delay-seconds", type=float, default=2.0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--config",
        default=os.environ.get("CWL_EMULATOR_CONFIG"),
        help="JSON body of POST /_emulator/config applied at start (default: $CWL_EMULATOR_CONFIG)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s cwl_emulator %(levelname)s %(message)s",
    )
    if args.host not in ("127.0.0.1", "localhost"):
        print("cwl_emulator: error: the emulator only binds 127.0.0.1", file=sys.stderr, flush=True)
        sys.exit(2)

    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    sock = bind("127.0.0.1", args.port)
    port = sock.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)

    # Only now import moto: it reads MOTO_PORT (Step Functions calls back on it).
    from moto.core.config import default_user_config
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
    default_user_config.setdefault("lambda", {})["use_docker"] = False

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import emulator_config
    import quotas
    import sfn_patches
    import speedups
    import strict_logs
    import strict_s3

    strict_logs.install()
    sfn_patches.install()
    strict_s3.install()
    speedups.install()
    strict_logs.CONFIG["export_delay_seconds"] = args.export_delay_seconds

    state = State(args.lambda_endpoint)
    state.quotas = quotas.Quotas()
    state.s3_writes = strict_s3.S3Writes()
    middleware = Middleware(state)
    middleware.strict = strict_logs
    middleware.emulator_config = emulator_config
    middleware.moto_app = DomainDispatcherApplication(create_backend_app)
    if args.config:
        try:
            middleware.configure(json.loads(args.config))
        except (ValueError, TypeError) as exc:
            print(f"cwl_emulator: error: --config: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = make_server(
        "127.0.0.1",
        port,
        middleware,
        threaded=True,
        request_handler=MotoRequestHandler,
        fd=sock.fileno(),
    )
    sock.close()  # make_server dup'ed the descriptor

    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    print(f"READY port={port}", flush=True)
    LOG.info("listening on 127.0.0.1:%d (lambda endpoint: %s)", port, args.lambda_endpoint)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
