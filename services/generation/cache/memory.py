"""``MemorySampleCache``: in-process LRUs bounded by bytes and TTL; the default when no Redis URL
is configured (one replica).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from services.generation.cache.base import SampleCache
from services.generation.cache.record import SampleRecord
from services.generation.metrics import Metrics

# Rough per-entry overhead of the in-process cache beyond the latent bytes.
_ENTRY_OVERHEAD_BYTES = 512


class _BytesLru:
    """Key -> bytes with a TTL, evicting least recently used values beyond ``max_bytes``."""

    def __init__(self, ttl_s: int, max_bytes: int) -> None:
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[0]:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes, now: float) -> None:
        cost = len(value) + len(key) + _ENTRY_OVERHEAD_BYTES
        if cost > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = (now + self.ttl_s, value)
        self.size_bytes += cost
        while self.size_bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size_bytes -= len(entry[1]) + len(key) + _ENTRY_OVERHEAD_BYTES


class MemorySampleCache(SampleCache):
    """In-process LRU: evicts least recently used entries beyond ``max_bytes``; TTL on read.
    Rendered outputs live in a second LRU with their own TTL and bound; style statistics in a
    third, with the samples' TTL and a quarter of their bound."""

    backend = "memory"

    def __init__(self, metrics: Metrics, ttl_s: int, max_bytes: int, render_ttl_s: int = 3600,
                 render_max_bytes: int = 0) -> None:
        super().__init__(metrics, ttl_s)
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, tuple[float, int, SampleRecord]] = OrderedDict()
        self._bytes = 0
        self.rendered = _BytesLru(int(render_ttl_s), int(render_max_bytes))
        # Style statistics (a few KiB each) live as long as samples, in a quarter of their bound.
        self.styles = _BytesLru(self.ttl_s, max(self.max_bytes // 4, 1024))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def _put_many(self, records: list[SampleRecord]) -> None:
        expires = time.monotonic() + self.ttl_s
        for rec in records:
            self._drop(rec.sample_id)
            cost = int(rec.latent.nbytes) + len(rec.context or b"") + _ENTRY_OVERHEAD_BYTES
            latent = np.array(rec.latent, dtype=np.float32, copy=True)
            latent.setflags(write=False)
            self._entries[rec.sample_id] = (expires, cost, replace(rec, latent=latent))
            self._bytes += cost
        while self._bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    async def _get(self, sample_id: str) -> SampleRecord | None:
        entry = self._entries.get(sample_id)
        if entry is None:
            return None
        expires, _, record = entry
        if time.monotonic() >= expires:
            self._drop(sample_id)
            return None
        self._entries.move_to_end(sample_id)
        return record

    def _drop(self, sample_id: str) -> None:
        entry = self._entries.pop(sample_id, None)
        if entry is not None:
            self._bytes -= entry[1]

    async def _get_rendered(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        return [self.rendered.get(k, now) for k in keys]

    async def _put_rendered(self, items: dict[str, bytes]) -> None:
        now = time.monotonic()
        for key, value in items.items():
            self.rendered.put(key, value, now)

    async def _get_style(self, key: str) -> bytes | None:
        return self.styles.get(key, time.monotonic())

    async def _put_style(self, key: str, value: bytes) -> None:
        self.styles.put(key, value, time.monotonic())
