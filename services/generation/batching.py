"""Running graphs for requests: one contract for every graph, ``run(model, role, feeds)``.

A request hands the runner its feeds (input name -> array, the batch axis first) and gets the
graph's named outputs back, or, with ``finish``, what ``finish`` made of them on the worker
thread (e.g. encoded PNGs, one per row), and with ``respond`` what that made of the request's
result, also on the worker thread (e.g. its whole response, serialised). Feeds may be
``DeferredFeeds``: made on the worker thread when their batch runs (e.g. latents drawn from
seeds), so that the event loop only queues the request. The runner knows nothing of tasks:
images, latents, completion inputs and the stroke decoder's steps all queue the same way.

``BatchingRunner``: concurrent requests for one graph of one model version share ONNX Runtime
calls. Each (model, graph, feed layout) has a queue; a shared pool of ``max_concurrent`` batch
slots (the worker threads) serves all queues, oldest request first. A batch takes queued
requests in order while they fit in ``max_batch_size`` rows, concatenates each named input
along the batch axis and splits each output by rows. An idle model runs what is queued at
once, so batching costs nothing at low load; while another batch of the same queue is running,
a batch that is not full waits up to ``max_queue_delay_s`` for more (Triton's "max queue
delay"). When nothing at all is queued or running, the last batch held a single request and no
other request arrived in the same loop turn, a small request runs at once on the calling
thread (``inline_rows``): a batch of one gains nothing from the two thread hand-offs that a
queued request pays.

Everything on the event loop is constant work per request (a deque append, a check); there is
no task or timer per request. Requests larger than a batch are split. A request whose deadline
passes while it is queued is answered DEADLINE_EXCEEDED without running; a cancelled one (the
client went away) is dropped, also when its batch was already waiting for a worker thread. A
full queue answers RESOURCE_EXHAUSTED at once. Graphs whose inputs and outputs are not all
batch-major run one request per call.

Queues belong to model objects, not names: when a version is swapped (a new folder, or the same
version re-exported), requests that resolved the old object drain on it while new ones queue on
the new one; the queue of a version the repository unloaded (``retired``) is dropped once empty.

``DirectRunner`` (``--no-batching``) sends each request to the worker threads on its own.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from latentforge.runtime import FeedError, ModelRuntime
from services.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from services.generation.metrics import Metrics, version_child
from services.rpc.metrics import OwnedChildren

Feeds = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
# Runs on a worker thread on one request's output rows (output name -> rows); its list (one
# item per row) is what the request gets back instead of the outputs, e.g. encoded PNGs.
Finish = Callable[[Outputs], list]
# Runs on a worker thread on one request's whole result (its outputs, or its finish's list);
# what it returns is what the request gets back.
Respond = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class DeferredFeeds:
    """A request's feeds, made by ``make`` on the worker thread that runs its batch.

    ``like`` has the feeds' names, dtypes and shapes after the batch axis (arrays of zero rows),
    so the request queues with the requests whose feeds it will match; ``rows`` is their batch
    size. ``make`` is called once, on the worker thread, or on the event loop when the request
    runs at once or is split into several batches.
    """

    rows: int
    like: Feeds
    make: Callable[[], Feeds]


AnyFeeds = Feeds | DeferredFeeds


def rows_of(feeds: AnyFeeds) -> int:
    """The batch size of a request: the leading axis of its feeds."""
    if isinstance(feeds, DeferredFeeds):
        return feeds.rows
    return len(next(iter(feeds.values())))


def made(feeds: AnyFeeds) -> Feeds:
    """The arrays of ``feeds`` (a deferred one's made now)."""
    return feeds.make() if isinstance(feeds, DeferredFeeds) else feeds


def take_rows(arrays: Mapping[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows start..stop of every array."""
    return {name: value[start:stop] for name, value in arrays.items()}


def concat_outputs(parts: list[Outputs]) -> Outputs:
    """Outputs of consecutive row ranges, joined."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def expired(model: ModelRuntime) -> DeadlineExceeded:
    """The error of a request whose deadline passed while it waited to run."""
    return DeadlineExceeded(f"the deadline passed while the request waited for model {model.name} "
                            f"v{model.version}; it was not run (allow more time or retry later)")


class InferenceRunner(abc.ABC):
    """What the pipeline awaits to run a graph. Implementations decide how rows are batched.

    ``deadline`` (``loop.time()`` seconds) is when a request that has not started yet stops
    being worth running.
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int) -> None:
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        # (batch size, inference time) children per model object and graph; a version unloaded
        # and loaded again gets fresh ones (the repository removes an unloaded version's series).
        self._run_children: OwnedChildren[tuple[Any, Any]] = OwnedChildren(lambda model, graph: (
            version_child(model, metrics.batch_size, model.name, str(model.version), graph),
            version_child(model, metrics.inference_duration, model.name, str(model.version), graph, model.provider)))

    @abc.abstractmethod
    async def run(self, model: ModelRuntime, role: str, feeds: AnyFeeds, finish: Finish | None = None,
                  deadline: float | None = None, respond: Respond | None = None) -> Any:
        """Graph ``role`` of ``model`` on ``feeds``: its outputs by name, or ``finish``'s list,
        or what ``respond`` made of that."""

    def run_now(self, model: ModelRuntime, role: str, feeds: Feeds) -> Outputs:
        """Blocking, on the calling thread: the graph on ``feeds``, with the same metrics (e.g.
        a small graph a worker thread needs while it makes a batch's feeds)."""
        return self._timed(model, role, feeds)

    async def close(self) -> None:
        """Stop background work."""

    def _timed(self, model: ModelRuntime, role: str, feeds: Feeds) -> Outputs:
        """Blocking: run the graph in chunks of max_batch_size rows, recording metrics."""
        size, duration = self._run_children.get(model, role)
        if not model.batchable(role):
            t0 = time.perf_counter()
            out = model.run(role, feeds)
            size.observe(1)
            duration.observe(time.perf_counter() - t0)
            return out
        n, step, parts = rows_of(feeds), self.max_batch_size, []
        for start in range(0, n, step):
            chunk = feeds if n <= step else take_rows(feeds, start, start + step)
            t0 = time.perf_counter()
            parts.append(model.run(role, chunk))
            size.observe(min(step, n - start))
            duration.observe(time.perf_counter() - t0)
        return concat_outputs(parts)


class DirectRunner(InferenceRunner):
    """Each request runs on its own in a worker thread (no merging across requests).

    At most ``max_queue_size`` requests per model version wait for a worker; one more is
    answered RESOURCE_EXHAUSTED at once, as with the batcher.
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int,
                 max_queue_size: int = 1024) -> None:
        super().__init__(executor, metrics, max_batch_size)
        self.max_queue_size = max_queue_size
        self._pending: dict[tuple[str, str], int] = {}  # (model, version) -> requests waiting for a worker
        self._pending_lock = threading.Lock()
        # depth, wait, rejected children per model object (see _run_children)
        self._queue_children: OwnedChildren[tuple[Any, ...]] = OwnedChildren(lambda model: tuple(
            version_child(model, metric, model.name, str(model.version))
            for metric in (metrics.queue_depth, metrics.queue_wait, metrics.queue_rejected)))

    async def run(self, model: ModelRuntime, role: str, feeds: AnyFeeds, finish: Finish | None = None,
                  deadline: float | None = None, respond: Respond | None = None) -> Any:
        labels = (model.name, str(model.version))
        depth, wait, rejected = self._queue_children.get(model)
        loop = asyncio.get_running_loop()
        queued_at = time.perf_counter()
        state = {"left_queue": False, "cancelled": False}
        pending = self._pending

        with self._pending_lock:
            if pending.get(labels, 0) >= self.max_queue_size:
                rejected.inc()
                raise ResourceExhausted(
                    f"the queue of model {model.name} v{model.version} is full "
                    f"({self.max_queue_size} requests); retry with backoff")
            pending[labels] = pending.get(labels, 0) + 1

        def leave_queue() -> None:
            with self._pending_lock:
                if not state["left_queue"]:
                    state["left_queue"] = True
                    depth.dec()
                    left = pending.get(labels, 1) - 1
                    if left > 0:
                        pending[labels] = left
                    else:
                        pending.pop(labels, None)

        def call() -> Any:
            leave_queue()
            if state["cancelled"]:
                return None
            if deadline is not None and loop.time() >= deadline:
                raise expired(model)
            wait.observe(time.perf_counter() - queued_at)
            out = self._timed(model, role, made(feeds))
            result = finish(out) if finish is not None else out
            return respond(result) if respond is not None else result

        depth.inc()
        try:
            return await loop.run_in_executor(self.executor, call)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            leave_queue()  # a cancelled request that never ran


@dataclass(eq=False)
class _Pending:
    """One request's rows (at most a batch), waiting for a batch."""

    feeds: AnyFeeds  # a deferred one is replaced by its arrays on the worker thread
    rows: int
    finish: Finish | None
    future: asyncio.Future
    deadline: float | None  # loop.time() after which it is not started
    respond: Respond | None = None
    enqueued: float = field(default_factory=time.perf_counter)


class _Queue:
    """The waiting requests of one (model, graph, feed layout)."""

    def __init__(self, key: tuple, model: ModelRuntime, graph: str, metrics: Metrics) -> None:
        self.key, self.model, self.graph = key, model, graph
        self.merge = model.batchable(graph)
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
            if batch and (rows + p.rows > limit or not self.merge):
                break
            items.popleft()
            left += 1
            batch.append(p)
            rows += p.rows
        if left:
            self.depth.dec(left)  # one update for all that left the queue
        return batch

    def rows_queued(self, limit: int) -> int:
        """Rows waiting, counted up to ``limit``."""
        rows = 0
        for p in self.items:
            rows += p.rows
            if rows >= limit:
                break
        return rows


class BatchingRunner(InferenceRunner):
    """An InferenceRunner that merges concurrent requests per model version and graph."""

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int, max_queue_delay_s: float,
                 max_queue_size: int, max_concurrent: int = 1, inline_rows: int = 0) -> None:
        super().__init__(executor, metrics, max_batch_size)
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self.max_concurrent = max(1, max_concurrent)
        self.inline_rows = inline_rows
        self._free = self.max_concurrent
        self._arriving = 0  # requests looking whether they may run at once (see run)
        self._last_batch = 1  # requests in the batch launched last: more than one means load
        self._queues: dict[tuple, _Queue] = {}  # (id(model), graph, layout); the queue holds the model
        self._scheduled = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- the pipeline's side ------------------------------------------------------------------

    async def run(self, model: ModelRuntime, role: str, feeds: AnyFeeds, finish: Finish | None = None,
                  deadline: float | None = None, respond: Respond | None = None) -> Any:
        if self._closed:
            raise Unavailable("the server is shutting down; retry on another replica")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        merge, optional = model.batchable(role), model.optional_inputs(role)
        rows = rows_of(feeds) if merge else 1
        # One queue per feed layout: requests with and without an optional input still merge.
        layout = feeds.like if isinstance(feeds, DeferredFeeds) else feeds
        key = (id(model), role, *((n, a.shape[1:], a.dtype.char) for n, a in layout.items() if n not in optional))
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _Queue(key, model, role, self.metrics)
        if rows <= self.inline_rows and self._idle(q):
            # Let the tasks that are ready now run first: requests arriving in the same loop turn
            # (concurrent drawings' steps, a burst of calls) queue and batch together.
            self._arriving += 1
            try:
                await asyncio.sleep(0)
                alone = self._arriving == 1
            finally:
                self._arriving -= 1
            if alone and self._idle(q) and not self._closed:
                return self._inline(q, feeds, finish, deadline, respond)
        step = self.max_batch_size if merge else rows
        chunks = (rows + step - 1) // step
        if len(q.items) + chunks > self.max_queue_size:
            q.rejected.inc()
            raise ResourceExhausted(
                f"the queue of model {model.name} v{model.version} is full "
                f"({self.max_queue_size} requests); retry with backoff")
        q.depth.inc(chunks)
        if chunks == 1:  # the common case: no slicing, one future
            fut = loop.create_future()
            q.items.append(_Pending(feeds, rows, finish, fut, deadline, respond))
            self._schedule()
            try:
                return await fut
            except BaseException:
                fut.cancel()
                raise
        futures = []
        feeds = made(feeds)  # a request of several batches: its feeds are sliced here
        for start in range(0, rows, step):
            fut = loop.create_future()
            q.items.append(_Pending(take_rows(feeds, start, start + step), min(step, rows - start), finish, fut,
                                    deadline))
            futures.append(fut)
        self._schedule()
        try:
            parts = list(await asyncio.gather(*futures))
        except BaseException:
            # Cancelled, or one chunk failed (expired, ORT error): the request is answered, so
            # its other chunks must not run.
            for fut in futures:
                fut.cancel()
            raise
        result = [item for part in parts for item in part] if finish is not None else concat_outputs(parts)
        return respond(result) if respond is not None else result

    def _idle(self, q: _Queue) -> bool:
        """Nothing runs, nothing is about to be dispatched, nothing waits in ``q``, and the last
        batch held one request (under load, when batches hold many, a lone request at the start
        of a burst is the first of its batch, not alone)."""
        return self._free == self.max_concurrent and not self._scheduled and not q.items and self._last_batch <= 1

    def _inline(self, q: _Queue, feeds: AnyFeeds, finish: Finish | None, deadline: float | None,
                respond: Respond | None) -> Any:
        """Run a lone small request now, on the calling (event loop) thread: nothing else waits
        or runs, so no batch can form, and a queued request would only add two thread hand-offs."""
        if deadline is not None and self._loop is not None and self._loop.time() >= deadline:
            q.expired.inc()
            raise expired(q.model)
        q.wait.observe(0.0)
        out = self._timed(q.model, q.graph, made(feeds))
        result = finish(out) if finish is not None else out
        return respond(result) if respond is not None else result

    def _drop_if_retired(self, q: _Queue) -> None:
        """Forget the queue of an unloaded version once nothing waits or runs on it."""
        if q.model.retired and not q.items and not q.running:
            if q.timer is not None:
                q.timer.cancel()
                q.timer = None
            self._queues.pop(q.key, None)

    # ---- batch formation (event loop) ---------------------------------------------------------

    def _schedule(self) -> None:
        """Form batches on the next loop iteration, so requests arriving together batch together.
        While every batch slot is busy there is nothing to form: the next finished batch looks."""
        if not self._scheduled and self._free > 0 and self._loop is not None:
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

    def _ready_queue(self, loop: asyncio.AbstractEventLoop) -> _Queue | None:
        """The queue whose oldest request is oldest among those allowed to start now."""
        best: _Queue | None = None
        now = time.perf_counter()
        for q in list(self._queues.values()):
            if not q.items:
                self._drop_if_retired(q)
                continue
            head = q.items[0]
            if q.running and self.max_queue_delay_s > 0 and q.merge:
                waited = now - head.enqueued
                if waited < self.max_queue_delay_s and q.rows_queued(self.max_batch_size) < self.max_batch_size:
                    if q.timer is None:  # look again when the oldest has waited long enough
                        q.timer = loop.call_later(self.max_queue_delay_s - waited, self._timer_fired, q)
                    continue
            if best is None or head.enqueued < best.items[0].enqueued:
                best = q
        return best

    def _timer_fired(self, q: _Queue) -> None:
        q.timer = None
        self._schedule()

    def _launch(self, q: _Queue, batch: list[_Pending]) -> None:
        self._free -= 1
        self._last_batch = len(batch)
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

    def _run_batch(self, q: _Queue, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """One ONNX Runtime call for the batch, then each request's finish on its rows.

        Deadlines are checked again here: a batch may have waited behind other work for a
        worker thread, and a request that can no longer be answered in time is not run. Feeds
        that do not fit the graph fail their own request only: the batch is run again one
        request at a time to find whose they are.
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
        made_live = []
        for k in live:  # deferred feeds are made here; a make that fails fails its own request
            p = batch[k]
            if isinstance(p.feeds, DeferredFeeds):
                try:
                    p.feeds = p.feeds.make()
                except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                    results[k] = (False, exc)
                    continue
            made_live.append(k)
        live = made_live
        if not live:
            return results
        run = [batch[k] for k in live]
        try:
            feeds = run[0].feeds if len(run) == 1 else _merged(q, run)
            out = self._timed(q.model, q.graph, feeds)
        except FeedError as exc:
            if len(run) == 1:
                results[live[0]] = (False, exc)
                return results
            for k in live:
                try:
                    results[k] = _split([batch[k]], self._timed(q.model, q.graph, batch[k].feeds))[0]
                except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                    results[k] = (False, exc)
            return results
        for k, part in zip(live, _split(run, out)):
            results[k] = part
        return results

    # ---- results (event loop) ---------------------------------------------------------------------

    def _completed(self, q: _Queue, batch: list[_Pending], job: Future) -> None:
        exc = job.exception()
        self._finished(q, batch, None if exc else job.result(), exc)

    def _finished(self, q: _Queue, batch: list[_Pending], results: list[tuple[bool, Any]] | None,
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

    def _fail(self, q: _Queue, exc: Exception) -> None:
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


def _merged(q: _Queue, run: list[_Pending]) -> dict[str, np.ndarray]:
    """The feeds of a batch: each input's rows of every request, in order; an optional input
    some requests left out is filled with the zeros it stands for."""
    names = set().union(*(p.feeds.keys() for p in run))
    parts = [p.feeds if names == p.feeds.keys() else q.model.fill_optional(q.graph, p.feeds) for p in run]
    return {name: np.concatenate([f[name] for f in parts]) for name in parts[0]}


def _post(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    """Hand a finished batch back to the loop; a loop already closed (shutdown) has no one waiting."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


def _split(batch: list[_Pending], out: Outputs) -> list[tuple[bool, Any]]:
    """Each request's rows of a batch's outputs, passed through its finish when it has one, then
    through its respond when it has one.

    Neighbouring requests with the same finish object (e.g. every PNG request of a model) are
    finished in one call on their rows together, then split again: a finish works row by row.
    When that call fails, each request of the run is finished on its own, so that an error is
    only its own request's.
    """
    result: list[tuple[bool, Any]] = []
    offset, k, size = 0, 0, len(batch)
    whole = size == 1
    while k < size:
        fn = batch[k].finish
        end, rows = k + 1, batch[k].rows
        while fn is not None and end < size and batch[end].finish is fn:
            rows += batch[end].rows
            end += 1
        items = None
        if end - k > 1:
            try:
                items = fn(take_rows(out, offset, offset + rows))  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - finished one request at a time below
                items = None
        if items is not None and len(items) == rows:
            start = 0
            for p in batch[k:end]:
                result.append(_responded(p, items[start:start + p.rows]))
                start += p.rows
            offset += rows
        else:
            for p in batch[k:end]:
                part = out if whole else take_rows(out, offset, offset + p.rows)
                offset += p.rows
                if fn is None:
                    result.append(_responded(p, part))
                    continue
                try:
                    finished = fn(part)
                except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
                    result.append((False, exc))
                    continue
                result.append(_responded(p, finished))
        k = end
    return result


def _responded(p: _Pending, value: Any) -> tuple[bool, Any]:
    """A request's result after its respond (the respond's error is its own)."""
    if p.respond is None:
        return True, value
    try:
        return True, p.respond(value)
    except Exception as exc:  # noqa: BLE001 - this request's error, not the batch's
        return False, exc
