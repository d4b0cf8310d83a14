"""``WriteCoalescer``: joins the writes that callers make in the same event-loop iteration into
one backend call (for Redis, one pipeline: one round trip instead of one per caller).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.generation.cache.base import CacheUnavailable

# Most items (sample records, rendered outputs) one coalesced Redis write carries: a bigger
# batch waits for the next write, so building and parsing one pipeline cannot stall the loop.
MAX_WRITE_BATCH = 512

W = TypeVar("W")


@dataclass(eq=False)
class _WriteBatch(Generic[W]):
    """Items of the callers that joined one write, and the future they all wait on."""

    future: asyncio.Future[None]
    items: list[W] = field(default_factory=list)


class WriteCoalescer(Generic[W]):
    """Joins concurrent writes into few backend calls: every caller that submits in the same
    event-loop iteration shares one ``write(items)`` call (one Redis pipeline, one round trip)
    instead of making its own.

    ``submit`` adds the caller's items to the open batch and waits for that batch's shared
    future; the first caller schedules a flusher task, which starts in the next loop iteration,
    so everyone who submits in this one joins. One flush is in flight at a time: what is
    submitted while it runs waits for it (one round trip; one timeout if the backend hangs) and
    goes out together in the next flush, so batches grow with the load, and a flood of writes
    keeps one connection busy instead of one per caller. A batch holds at most ``max_items``
    items; a caller that would overflow it starts the next one, and a caller with more than
    ``max_items`` items has a batch of its own (a caller's items are never split across writes).

    A caller returns only once its items are written, or raises what the write raised (the same
    exception for everyone in the batch). A caller cancelled while it waits leaves the write
    running for the others (the wait is shielded); its items may still be written.
    """

    def __init__(self, write: Callable[[list[W]], Awaitable[None]], max_items: int = MAX_WRITE_BATCH) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._write = write
        self.max_items = max_items
        self.flushes = 0  # write calls made (for tests and diagnostics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_WriteBatch[W]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: list[W]) -> None:
        """Write ``items`` together with whatever else is submitted now; return once written."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # State left by another, ended event loop: its callers and flusher ended with it.
            self._loop, self._pending, self._flusher = loop, deque(), None
        batch = self._pending[-1] if self._pending else None
        if batch is None or (batch.items and len(batch.items) + len(items) > self.max_items):
            batch = _WriteBatch(loop.create_future())
            self._pending.append(batch)
        batch.items.extend(items)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._drain(), name="cache-write-flush")
        # Shielded: cancelling this caller must not cancel the shared future.
        await asyncio.shield(batch.future)

    async def _drain(self) -> None:
        """Write pending batches one after another until none is left."""
        batch: _WriteBatch[W] | None = None
        try:
            while self._pending:
                batch = self._pending.popleft()
                self.flushes += 1
                try:
                    await self._write(batch.items)
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    _settle(batch.future, exc)
                else:
                    _settle(batch.future, None)
                batch = None
        except BaseException:
            # Cancelled (its loop is shutting down): no caller may be left waiting.
            error = CacheUnavailable("the cache write was cancelled before it was stored")
            for left in ([batch] if batch is not None else []) + list(self._pending):
                _settle(left.future, error)
            self._pending.clear()
            raise
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    async def close(self) -> None:
        """Write what is pending and wait for it, so that no caller is left waiting."""
        if self._loop is not asyncio.get_running_loop():
            self._pending.clear()  # another loop's callers: gone with it
            self._flusher = None
            return
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher])
        error = CacheUnavailable("the cache was closed before the write was stored")
        while self._pending:  # only when a flusher was cancelled before it started
            _settle(self._pending.popleft().future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve a write batch's future (result or exception) unless it is already done."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        # Marked retrieved: callers that still wait raise it all the same, and when every caller
        # was cancelled (a cancelled shield lets go of its future) no one is left to retrieve it.
        future.exception()
