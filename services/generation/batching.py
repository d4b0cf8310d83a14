"""Dynamic batching: concurrent requests for one model version share ONNX Runtime calls.

Each (model, version, graph) has a queue; a shared pool of ``max_concurrent`` batch slots (the
worker threads) serves all queues, oldest request first. A batch takes queued requests in order
while they fit in ``max_batch_size`` rows. An idle model runs what is queued at once, so
batching costs nothing at low load; while another batch of the same model is running, a batch
that is not full waits up to ``max_queue_delay_s`` for more (Triton's "max queue delay"). The
batch runs on a worker thread - one ONNX Runtime call, then each request's ``finish`` (e.g. PNG
encoding) on its own rows - and one callback hands every request its result.

Everything on the event loop is constant work per request (a deque append, a check); there is no
task or timer per request. Requests larger than a batch are split. A request whose deadline
passes while it is queued is answered DEADLINE_EXCEEDED without running; a cancelled one (the
client went away) is dropped, also when its batch was already waiting for a worker thread. A full
queue answers RESOURCE_EXHAUSTED at once.

Queues belong to model objects, not names: when a version is swapped (a new folder, or the same
version re-exported), requests that resolved the old object drain on it while new ones queue on
the new one; the queue of a version the repository unloaded (``retired``) is dropped once empty.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.errors import ResourceExhausted, Unavailable
from services.generation.inference import (
    Finish,
    InferenceRunner,
    OnnxModel,
    concat_optional,
    expired,
)
from services.generation.metrics import Metrics, version_child


@dataclass(eq=False)
class _Pending:
    """One request's rows (at most a batch), waiting for a batch."""

    inputs: np.ndarray
    labels: np.ndarray | None
    finish: Finish | None
    future: asyncio.Future
    deadline: float | None  # loop.time() after which it is not started
    extra: dict[str, np.ndarray] | None = None  # further inputs, row for row (complete: mask, z)
    enqueued: float = field(default_factory=time.perf_counter)


class _ModelQueue:
    """The waiting requests of one (model, version, graph)."""

    def __init__(self, model: OnnxModel, graph: str, metrics: Metrics) -> None:
        self.model, self.graph = model, graph
        self.items: deque[_Pending] = deque()
        self.running = 0  # batches of this queue on worker threads now
        self.timer: asyncio.TimerHandle | None = None
        labels = (model.name, str(model.version))
        # A queue made for a version already unloaded must not export its removed series again.
        self.depth = version_child(model, metrics.queue_depth, *labels)
        self.wait = version_child(model, metrics.queue_wait, *labels)
        self.rejected = version_child(model, metrics.queue_rejected, *labels)
        self.expired = version_child(model, metrics.queue_expired, *labels)

    def take(self, limit: int, now: float) -> list[_Pending]:
        """Pop the next batch (up to ``limit`` rows), answering expired requests on the way."""
        batch: list[_Pending] = []
        rows = left = 0
        items = self.items
        while items:
            p = items[0]
            if p.future.done():  # cancelled while queued
                items.popleft()
                left += 1
                continue
            if p.deadline is not None and now >= p.deadline:
                items.popleft()
                left += 1
                self.expired.inc()
                p.future.set_exception(expired(self.model))
                continue
            n = len(p.inputs)
            if rows + n > limit:
                break
            items.popleft()
            left += 1
            batch.append(p)
            rows += n
        if left:
            self.depth.dec(left)  # one update for all that left the queue
        return batch

    def rows_queued(self, limit: int) -> int:
        """Rows waiting, counted up to ``limit``."""
        rows = 0
        for p in self.items:
            rows += len(p.inputs)
            if rows >= limit:
                break
        return rows


class BatchingRunner(InferenceRunner):
    """An InferenceRunner that merges concurrent requests per model version."""

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int, max_queue_delay_s: float,
                 max_queue_size: int, max_concurrent: int = 1) -> None:
        super().__init__(executor, metrics, max_batch_size)
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.max_concurrent = max(1, max_concurrent)
        self._free = self.max_concurrent
        self._queues: dict[tuple[int, str], _ModelQueue] = {}  # (id(model), graph); the queue holds the model
        self._scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- the servicer's side ------------------------------------------------------------------

    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None,
                     finish: Finish | None = None, deadline: float | None = None) -> Any:
        parts = await self._submit(model, model.graph_for("decode"), z, labels, finish, deadline)
        if len(parts) == 1:
            return parts[0]
        if finish is not None:
            return [item for part in parts for item in part]
        return np.concatenate(parts)

    async def encode(self, model: OnnxModel, images: np.ndarray,
                     deadline: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        parts = await self._submit(model, model.graph_for("encode"), images, None, None, deadline)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), concat_optional([p[1] for p in parts])

    async def complete(self, model: OnnxModel, images: np.ndarray, masks: np.ndarray, z: np.ndarray,
                       finish: Finish | None = None, deadline: float | None = None) -> Any:
        parts = await self._submit(model, model.graph_for("complete"), images, None, finish, deadline,
                                   {"mask": masks, "z": z})
        if len(parts) == 1:
            return parts[0]
        if finish is not None:
            return [item for part in parts for item in part]
        return np.concatenate(parts)

    async def _submit(self, model: OnnxModel, graph: str, inputs: np.ndarray, labels: np.ndarray | None,
                      finish: Finish | None, deadline: float | None,
                      extra: dict[str, np.ndarray] | None = None) -> list[Any]:
        if self._closed:
            raise Unavailable("the server is shutting down; retry on another replica")
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        q = self._queue(model, graph)
        step = self.max_batch_size
        chunks = (len(inputs) + step - 1) // step
        if len(q.items) + chunks > self.max_queue_size:
            q.rejected.inc()
            raise ResourceExhausted(
                f"the queue of model {model.name} v{model.version} is full "
                f"({self.max_queue_size} requests); retry with backoff")
        q.depth.inc(chunks)
        if chunks == 1:  # the common case: no slicing, one future
            fut = loop.create_future()
            q.items.append(_Pending(inputs, labels, finish, fut, deadline, extra))
            self._schedule()
            try:
                return [await fut]
            except BaseException:
                fut.cancel()
                raise
        futures = []
        for start in range(0, len(inputs), step):
            fut = loop.create_future()
            rows = slice(start, start + step)
            q.items.append(_Pending(inputs[rows], None if labels is None else labels[rows], finish, fut, deadline,
                                    None if extra is None else {k: v[rows] for k, v in extra.items()}))
            futures.append(fut)
        self._schedule()
        try:
            if len(futures) == 1:
                return [await futures[0]]
            return list(await asyncio.gather(*futures))
        except BaseException:
            # Cancelled, or one chunk failed (expired, ORT error): the request is answered, so
            # its other chunks must not run.
            for fut in futures:
                fut.cancel()
            raise

    def _queue(self, model: OnnxModel, graph: str) -> _ModelQueue:
        key = (id(model), graph)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _ModelQueue(model, graph, self.metrics)
        return q

    def _drop_if_retired(self, q: _ModelQueue) -> None:
        """Forget the queue of an unloaded version once nothing waits or runs on it."""
        if q.model.retired and not q.items and not q.running:
            if q.timer is not None:
                q.timer.cancel()
                q.timer = None
            self._queues.pop((id(q.model), q.graph), None)

    # ---- batch formation (event loop) ---------------------------------------------------------

    def _schedule(self) -> None:
        """Form batches on the next loop iteration, so requests arriving together batch together."""
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        loop = self._loop
        assert loop is not None
        while self._free > 0 and not self._closed:
            q = self._ready_queue(loop)
            if q is None:
                return
            batch = q.take(self.max_batch_size, loop.time())
            if batch:
                self._launch(q, batch)

    def _ready_queue(self, loop: asyncio.AbstractEventLoop) -> _ModelQueue | None:
        """The queue whose oldest request is oldest among those allowed to start now."""
        best: _ModelQueue | None = None
        now = time.perf_counter()
        for q in list(self._queues.values()):
            if not q.items:
                self._drop_if_retired(q)
                continue
            head = q.items[0]
            if q.running and self.max_queue_delay_s > 0:
                waited = now - head.enqueued
                if waited < self.max_queue_delay_s and q.rows_queued(self.max_batch_size) < self.max_batch_size:
                    if q.timer is None:  # look again when the oldest has waited long enough
                        q.timer = loop.call_later(self.max_queue_delay_s - waited, self._timer_fired, q)
                    continue
            if best is None or head.enqueued < best.items[0].enqueued:
                best = q
        return best

    def _timer_fired(self, q: _ModelQueue) -> None:
        q.timer = None
        self._schedule()

    def _launch(self, q: _ModelQueue, batch: list[_Pending]) -> None:
        self._free -= 1
        q.running += 1
        started = time.perf_counter()
        for p in batch:
            q.wait.observe(started - p.enqueued)
        loop = self._loop
        assert loop is not None
        try:
            job = self.executor.submit(self._run_batch, q, batch)
        except RuntimeError as exc:  # executor shut down
            self._finished(q, batch, None, exc)
            return
        job.add_done_callback(lambda f: _post(loop, self._completed, q, batch, f))

    # ---- the batch itself (worker thread) -------------------------------------------------------

    def _run_batch(self, q: _ModelQueue, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """One ONNX Runtime call for the batch, then each request's finish on its rows.

        Deadlines are checked again here: a batch may have waited behind other work for a
        worker thread, and a request that can no longer be answered in time is not run.
        """
        now = self._loop.time() if self._loop is not None else time.monotonic()  # a monotonic clock
        results: list[tuple[bool, Any]] = [(False, None)] * len(batch)
        live = []
        for k, p in enumerate(batch):
            if p.future.done():  # cancelled (client gone) while the batch waited; a plain read of its state
                continue
            if p.deadline is not None and now >= p.deadline:
                q.expired.inc()
                results[k] = (False, expired(q.model))
            else:
                live.append(k)
        if not live:
            return results
        run = [batch[k] for k in live]
        inputs = np.concatenate([p.inputs for p in run]) if len(run) > 1 else run[0].inputs
        tasks = q.model.manifest.tasks
        if q.graph == tasks.get("encode"):
            mu, logvar = self._timed_encoder(q.model, inputs)
            parts = _split(run, lambda a, b: (mu[a:b], None if logvar is None else logvar[a:b]))
        elif q.graph == tasks.get("complete"):
            masks, z = (np.concatenate([p.extra[name] for p in run]) for name in ("mask", "z"))  # type: ignore[index]
            images = self._timed_completer(q.model, inputs, masks, z)
            parts = _split(run, lambda a, b: images[a:b], finish=True)
        else:
            labels = None
            if any(p.labels is not None for p in run):
                labels = np.concatenate([p.labels if p.labels is not None else np.zeros(len(p.inputs), np.int64)
                                         for p in run])
            images = self._timed_image(q.model, inputs, labels)
            parts = _split(run, lambda a, b: images[a:b], finish=True)
        for k, part in zip(live, parts):
            results[k] = part
        return results

    # ---- results (event loop) ---------------------------------------------------------------------

    def _completed(self, q: _ModelQueue, batch: list[_Pending], job: Future) -> None:
        exc = job.exception()
        self._finished(q, batch, None if exc else job.result(), exc)

    def _finished(self, q: _ModelQueue, batch: list[_Pending], results: list[tuple[bool, Any]] | None,
                  exc: BaseException | None) -> None:
        self._free += 1
        q.running -= 1
        self._drop_if_retired(q)
        for k, p in enumerate(batch):
            if p.future.done():
                continue
            if results is None:
                p.future.set_exception(exc or RuntimeError("batch failed"))
            else:
                ok, value = results[k]
                if ok:
                    p.future.set_result(value)
                else:
                    p.future.set_exception(value)
        if any(qq.items for qq in self._queues.values()):
            self._schedule()

    def _fail(self, q: _ModelQueue, exc: Exception) -> None:
        if q.timer is not None:
            q.timer.cancel()
            q.timer = None
        while q.items:
            p = q.items.popleft()
            q.depth.dec()
            if not p.future.done():
                p.future.set_exception(exc)

    async def close(self) -> None:
        self._closed = True
        for q in self._queues.values():
            self._fail(q, Unavailable("the server is shutting down; retry on another replica"))
        self._queues.clear()


def _post(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Hand a finished batch back to the loop; a loop already closed (shutdown) has no one waiting."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


def _split(batch: list[_Pending], rows_of: Any, finish: bool = False) -> list[tuple[bool, Any]]:
    """Each request's rows of a batch result, passed through its finish when asked.

    Neighbouring requests with the same finish object (e.g. every PNG request of a model) are
    finished in one call on their rows together, then split again: a finish works row by row.
    When that call fails, each request of the run is finished on its own, so that an error is
    only its own request's.
    """
    out: list[tuple[bool, Any]] = []
    offset, k, size = 0, 0, len(batch)
    while k < size:
        fn = batch[k].finish if finish else None
        end, rows = k + 1, len(batch[k].inputs)
        while fn is not None and end < size and batch[end].finish is fn:
            rows += len(batch[end].inputs)
            end += 1
        items = None
        if end - k > 1:
            try:
                items = fn(rows_of(offset, offset + rows))  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - finished one request at a time below
                items = None
        if items is not None and len(items) == rows:
            start = 0
            for p in batch[k:end]:
                out.append((True, items[start:start + len(p.inputs)]))
                start += len(p.inputs)
            offset += rows
        else:
            for p in batch[k:end]:
                n = len(p.inputs)
                part = rows_of(offset, offset + n)
                offset += n
                if fn is None:
                    out.append((True, part))
                    continue
                try:
                    out.append((True, fn(part)))
                except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                    out.append((False, exc))
        k = end
    return out
