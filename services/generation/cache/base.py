"""The cache interface: ``SampleCache`` (sample id -> record with a TTL, the rendered-output
cache, and style statistics by style id) and ``CacheUnavailable``, what its operations raise when the backend fails.

A rendered output is only an optimisation: a lookup that fails counts as a miss and a store that
fails is dropped (both counted as cache errors), so a request never fails because of it.

The cache is not the source of truth: when it fails, operations raise ``CacheUnavailable`` and
callers decide (Generate still answers; calls that need an id fail with UNAVAILABLE).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any

from services.generation.cache.record import SampleRecord
from services.generation.metrics import Metrics
from services.rpc.metrics import Children


class CacheUnavailable(Exception):
    """The cache backend could not be reached or answered with an error."""


class SampleCache(abc.ABC):
    """Stores and finds samples by id. Implementations count hits/misses/errors."""

    backend: str = "abstract"

    def __init__(self, metrics: Metrics, ttl_s: int) -> None:
        self.metrics = metrics
        self.ttl_s = int(ttl_s)
        self._children = Children(lambda kind, *extra: getattr(metrics, kind).labels(self.backend, *extra))

    def _counter(self, kind: str, *extra: str) -> Any:
        """This backend's child of the ``kind`` counter (cache_hits, cache_errors, ...)."""
        return self._children.get(kind, *extra)

    async def put_many(self, records: Iterable[SampleRecord]) -> None:
        """Store records (TTL applied); raises CacheUnavailable."""
        records = list(records)
        if not records:
            return
        try:
            await self._put_many(records)
        except CacheUnavailable:
            self._count_error("put")
            raise

    async def get(self, sample_id: str) -> SampleRecord | None:
        """The record, or None when unknown/expired; raises CacheUnavailable."""
        try:
            record = await self._get(sample_id)
        except CacheUnavailable:
            self._count_error("get")
            raise
        self._counter("cache_hits" if record else "cache_misses").inc()
        return record

    def _count_error(self, operation: str) -> None:
        self._counter("cache_errors", operation).inc()

    async def get_rendered(self, keys: list[str]) -> list[bytes | None]:
        """Cached rendered outputs of ``keys`` (None where absent); never raises."""
        try:
            values = await self._get_rendered(keys)
        except CacheUnavailable:
            self._count_error("get_rendered")
            return [None] * len(keys)
        hits = sum(v is not None for v in values)
        if hits:
            self._counter("render_cache_hits").inc(hits)
        if hits < len(keys):
            self._counter("render_cache_misses").inc(len(keys) - hits)
        return values

    async def put_rendered(self, items: dict[str, bytes]) -> None:
        """Store rendered outputs under their keys (TTL applied); never raises."""
        if not items:
            return
        try:
            await self._put_rendered(items)
        except CacheUnavailable:
            self._count_error("put_rendered")

    async def put_style(self, key: str, value: bytes) -> None:
        """Store a style's statistics under ``key`` (``style_key``; the sample TTL applied), so
        any replica sharing the cache finds the style by id; raises CacheUnavailable."""
        try:
            await self._put_style(key, value)
        except CacheUnavailable:
            self._count_error("put_style")
            raise

    async def get_style(self, key: str) -> bytes | None:
        """A style's stored statistics, or None when unknown or expired; raises CacheUnavailable."""
        try:
            return await self._get_style(key)
        except CacheUnavailable:
            self._count_error("get_style")
            raise

    @abc.abstractmethod
    async def _put_style(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    async def _get_style(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _put_many(self, records: list[SampleRecord]) -> None: ...

    @abc.abstractmethod
    async def _get(self, sample_id: str) -> SampleRecord | None: ...

    @abc.abstractmethod
    async def _get_rendered(self, keys: list[str]) -> list[bytes | None]: ...

    @abc.abstractmethod
    async def _put_rendered(self, items: dict[str, bytes]) -> None: ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        return True

    async def close(self) -> None:
        """Release connections."""
