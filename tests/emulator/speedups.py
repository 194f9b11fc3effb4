"""Three places where moto's server does work proportional to the whole
account on every request, made proportional to the answer instead. The
answers are moto's, but for the one difference named below; only the cost
moves.

- `ListObjectsV2` with a prefix walks every key of the bucket (moto's
  `S3Backend.list_objects`). A 100,000-stream run keeps one export object and
  a few staging objects per stream in one bucket and lists a prefix per
  stream, so the listing alone grew quadratically with the run. Here a
  sorted index of the bucket's key names, kept up to date on every insert and
  removal, hands moto only the keys under the prefix.
- `DescribeLogStreams` builds the description of every stream of the group
  (moto's `LogGroup.describe_log_streams`, with the strict metadata of
  strict_logs.py) and sorts them, then returns 50: listing a 100,000-stream
  group took 2,000 pages times 100,000 descriptions. Ordered by name (how
  the archiver lists), only the page's streams are described now. One
  difference: moto answers a token whose last stream has been deleted since
  with an empty last page, which silently ends the listing; here the
  listing goes on after that name, as an opaque AWS token does.
- Every request resolves its backend from the host header by scanning moto's
  package directory (`list_of_moto_modules`, an `os.path.isdir` per entry)
  and then matching every service's URL patterns, under one server-wide
  lock. The answer depends only on the host string, so it is remembered per
  host.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any, Iterator

_INDEX_LOCK = threading.Lock()
_INDEX_ATTR = "_speedups_sorted_names"


def _index(store: Any) -> list[str] | None:
    return store.__dict__.get(_INDEX_ATTR)


def _sorted_stream_names(group: Any) -> list[str]:
    """The group's stream names in order, sorted again only when the set of
    names changed since the last listing (comparing sets is linear and in C;
    sorting 100,000 names per page was most of a listing's cost)."""
    cached = group.__dict__.get("_speedups_stream_names")
    if cached is not None and cached[0] == group.streams.keys():
        return cached[1]
    names = set(group.streams)
    ordered = sorted(names)
    group.__dict__["_speedups_stream_names"] = (names, ordered)
    return ordered


class _PrefixKeys:
    """The part of a bucket's key store under one prefix, as moto iterates it."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def items(self) -> Iterator[tuple[str, Any]]:
        with _INDEX_LOCK:
            names = _index(self.store)
            if names is None:
                names = sorted(dict.keys(self.store))
                self.store.__dict__[_INDEX_ATTR] = names
            start = bisect.bisect_left(names, self.prefix)
            end = start
            while end < len(names) and names[end].startswith(self.prefix):
                end += 1
            selected = names[start:end]
        for name in selected:
            try:
                yield name, self.store[name]
            except (KeyError, IndexError):
                continue  # removed since the index was read


class _PrefixBucket:
    """Stands in for a bucket inside moto's `list_objects`, which only reads
    `bucket.keys.items()` once it has checked the bucket's type."""

    def __init__(self, bucket: Any, prefix: str) -> None:
        self.keys = _PrefixKeys(bucket.keys, prefix)


def install() -> None:
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3.models import FakeBucket, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    # -- the key-name index -------------------------------------------------
    original_pop = _VersionedKeyStore.pop

    def tracking_insert(original: Any) -> Any:
        """`__setitem__` and `setlist`: a new name joins the index."""

        def insert(self: Any, key: str, value: Any) -> Any:
            with _INDEX_LOCK:
                existed = dict.__contains__(self, key)
                result = original(self, key, value)
                names = _index(self)
                if names is not None and not existed:
                    bisect.insort(names, key)
                return result

        return insert

    def pop(self: Any, key: str) -> None:
        with _INDEX_LOCK:
            original_pop(self, key)
            names = _index(self)
            if names is not None:
                at = bisect.bisect_left(names, key)
                if at < len(names) and names[at] == key:
                    del names[at]

    _VersionedKeyStore.__setitem__ = tracking_insert(_VersionedKeyStore.__setitem__)  # type: ignore[method-assign]
    _VersionedKeyStore.setlist = tracking_insert(_VersionedKeyStore.setlist)  # type: ignore[method-assign]
    _VersionedKeyStore.pop = pop  # type: ignore[method-assign]

    original_list_objects = S3Backend.list_objects

    def list_objects(self: Any, bucket: Any, prefix: Any, *args: Any, **kwargs: Any) -> Any:
        if prefix and type(bucket) is FakeBucket and isinstance(bucket.keys, _VersionedKeyStore):
            return original_list_objects(self, _PrefixBucket(bucket, prefix), prefix, *args, **kwargs)
        return original_list_objects(self, bucket, prefix, *args, **kwargs)

    S3Backend.list_objects = list_objects  # type: ignore[method-assign]

    # -- stream listings by name --------------------------------------------
    from moto.logs.models import LogGroup

    original_describe_streams = LogGroup.describe_log_streams

    def describe_log_streams(
        self: Any,
        descending: bool,
        log_group_name: str,
        log_stream_name_prefix: str,
        order_by: str,
        limit: int,
        next_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        if order_by != "LogStreamName":
            return original_describe_streams(
                self,
                descending=descending,
                log_group_name=log_group_name,
                log_stream_name_prefix=log_stream_name_prefix,
                order_by=order_by,
                limit=limit,
                next_token=next_token,
            )
        prefix = log_stream_name_prefix or ""
        names = _sorted_stream_names(self)
        if prefix:
            start = bisect.bisect_left(names, prefix)
            end = start
            while end < len(names) and names[end].startswith(prefix):
                end += 1
            names = names[start:end]
        else:
            names = list(names)
        first = 0
        if next_token:
            group, _, after = next_token.partition("@")
            if group != log_group_name or not after:
                return [], None  # moto's answer to a token it did not issue
            first = len(names) - bisect.bisect_left(names, after) if descending else bisect.bisect_right(names, after)
        if descending:
            names.reverse()
        page_names = names[first : first + limit]
        page = [stream.to_describe_dict() for stream in (self.streams.get(n) for n in page_names) if stream is not None]
        more = first + limit < len(names)
        token = f"{log_group_name}@{page_names[-1]}" if page_names and more else None
        return page, token

    LogGroup.describe_log_streams = describe_log_streams  # type: ignore[method-assign]

    # -- backend per host ---------------------------------------------------
    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]

    original_backend_for_host = DomainDispatcherApplication.get_backend_for_host
    by_host: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        try:
            return by_host[host]
        except KeyError:
            backend = original_backend_for_host(self, host)
            by_host[host] = backend
            return backend

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
