"""Dynamic batching: concurrent requests for one model version share ONNX Runtime calls.

Each (model, version, graph) has a queue. A batch starts with the oldest waiting request and
takes more while they fit in ``max_batch_size`` rows; while another batch of the same model is
running it also waits up to ``max_queue_delay_s`` for more (Triton's "max queue delay"), whereas
an idle model runs a lone request at once, so batching costs nothing at low load. The batch then
runs on a worker thread and each request gets its own rows back. Requests larger than a batch
are split. A full queue answers RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.errors import ResourceExhausted
from services.inference import InferenceRunner, OnnxModel
from services.metrics import Metrics


@dataclass
class _Pending:
    """One request's rows, waiting for a batch."""

    inputs: np.ndarray
    labels: np.ndarray | None
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class _ModelQueue:
    """The queue and batch workers of one (model, version, graph)."""

    def __init__(self, runner: "BatchingRunner", model: OnnxModel, graph: str) -> None:
        self.runner, self.model, self.graph = runner, model, graph
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.depth = runner.metrics.queue_depth.labels(model.name, str(model.version))
        self.wait = runner.metrics.queue_wait.labels(model.name, str(model.version))
        self._carry: _Pending | None = None
        self.running = 0  # batches of this queue in ONNX Runtime now
        # As many batches in flight as there are worker threads: a busy pool lets batches grow.
        workers = max(1, getattr(runner.executor, "_max_workers", 1))
        self.tasks = [asyncio.create_task(self._work(), name=f"batch-{model.name}-{graph}") for _ in range(workers)]

    def put(self, item: _Pending) -> None:
        if self.queue.qsize() >= self.runner.max_queue_size:
            raise ResourceExhausted(
                f"the queue of model {self.model.name} v{self.model.version} is full "
                f"({self.runner.max_queue_size} requests); retry with backoff")
        self.depth.inc()
        self.queue.put_nowait(item)

    async def _next(self, timeout: float | None) -> _Pending | None:
        if self._carry is not None:
            item, self._carry = self._carry, None
            return item
        try:
            if timeout is None:
                item = await self.queue.get()
            elif timeout <= 0:
                item = self.queue.get_nowait()
            else:
                item = await asyncio.wait_for(self.queue.get(), timeout)
        except (asyncio.QueueEmpty, asyncio.TimeoutError):
            return None
        self.depth.dec()
        return item

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        limit = self.runner.max_batch_size
        while True:
            first = await self._next(None)
            assert first is not None
            batch, rows = [first], len(first.inputs)
            delay = self.runner.max_queue_delay_s if self.running else 0.0
            deadline = loop.time() + delay
            while rows < limit:
                item = await self._next(deadline - loop.time())
                if item is None:
                    break
                if rows + len(item.inputs) > limit:
                    self._carry = item
                    break
                batch.append(item)
                rows += len(item.inputs)
            batch = [p for p in batch if not p.future.done()]  # drop requests cancelled while queued
            if batch:
                self.running += 1
                try:
                    await self._run(batch)
                finally:
                    self.running -= 1

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        for item in batch:
            self.wait.observe(started - item.enqueued)
        inputs = np.concatenate([p.inputs for p in batch]) if len(batch) > 1 else batch[0].inputs
        labels = None
        if any(p.labels is not None for p in batch):
            labels = np.concatenate([p.labels if p.labels is not None else np.zeros(len(p.inputs), np.int64)
                                     for p in batch])
        runner, model = self.runner, self.model
        try:
            if self.graph == "encoder":
                result: Any = await asyncio.get_running_loop().run_in_executor(
                    runner.executor, runner._timed_encoder, model, inputs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    runner.executor, runner._timed_image, model, inputs, labels)
        except Exception as exc:  # every request of the batch gets the error
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        offset = 0
        for p in batch:
            n = len(p.inputs)
            part = tuple(r[offset:offset + n] for r in result) if isinstance(result, tuple) else result[offset:offset + n]
            offset += n
            if not p.future.done():
                p.future.set_result(part)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


class BatchingRunner(InferenceRunner):
    """An InferenceRunner that merges concurrent requests per model version."""

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int, max_queue_delay_s: float,
                 max_queue_size: int) -> None:
        super().__init__(executor, metrics, max_batch_size)
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max_queue_size
        self._queues: dict[tuple[str, int, str], _ModelQueue] = {}

    def _queue(self, model: OnnxModel, graph: str) -> _ModelQueue:
        key = (model.name, model.version, graph)
        q = self._queues.get(key)
        if q is None or q.model is not model:  # a reloaded version gets a fresh queue
            if q is not None:
                q.close()
            q = self._queues[key] = _ModelQueue(self, model, graph)
        return q

    async def _submit(self, model: OnnxModel, graph: str, inputs: np.ndarray, labels: np.ndarray | None) -> list[Any]:
        q = self._queue(model, graph)
        loop = asyncio.get_running_loop()
        futures = []
        for start in range(0, len(inputs), self.max_batch_size):
            stop = start + self.max_batch_size
            fut = loop.create_future()
            q.put(_Pending(inputs[start:stop], None if labels is None else labels[start:stop], fut))
            futures.append(fut)
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            for fut in futures:
                fut.cancel()
            raise

    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        parts = await self._submit(model, model.manifest.image_graph, z, labels)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def encode(self, model: OnnxModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = await self._submit(model, "encoder", images, None)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    async def close(self) -> None:
        for q in self._queues.values():
            q.close()
        self._queues.clear()
