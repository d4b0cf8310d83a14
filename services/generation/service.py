"""The GenerationService as a service of an ``RpcServer``: its parts, wired, and the model loader.

Builds the model repository, the inference runner (dynamic batcher or direct), the sample cache,
the pipeline and its servicer from a ``ServeConfig``; loads the repository in the background
and looks for new versions every ``reload_interval_s``. Ready (health SERVING) while at least
one model version is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc

from latentforge.v1 import generation_pb2 as pb
from services.generation.cache import SampleCache, make_cache
from services.generation.config import ServeConfig
from services.generation.pipeline import GenerationPipeline
from services.generation.servicer import GenerationServicer
from latentforge.runtime import OrtSettings
from services.generation.batching import BatchingRunner, DirectRunner, InferenceRunner
from services.generation.metrics import Metrics
from services.generation.model_repository import ModelRepository
from services.rpc.handlers import add_handlers, method_handlers
from services.rpc.logs import event, get_logger
from services.rpc.server import RpcService

if TYPE_CHECKING:
    from services.rpc.server import RpcServer

log = get_logger("server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GenerationService"].full_name


def _lower_priority(increment: int) -> None:
    """Run this worker thread at a lower CPU priority, so that on a busy machine the event loop
    (accepting, refusing and answering RPCs) is not starved by inference. Linux threads have
    their own nice value (and threads they start, e.g. ONNX Runtime's pool, inherit it)."""
    if increment > 0 and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + increment)
        except OSError:
            pass


def make_runner(config: ServeConfig, executor: ThreadPoolExecutor, metrics: Metrics) -> InferenceRunner:
    """The dynamic batcher when enabled, else one ORT call per request."""
    if config.batching:
        return BatchingRunner(executor, metrics, config.max_batch_size, config.max_queue_delay_ms / 1000.0,
                              config.max_queue_size, max_concurrent=config.workers, inline_rows=config.inline_rows)
    return DirectRunner(executor, metrics, config.max_batch_size, config.max_queue_size)


class GenerationService(RpcService):
    """latentforge.v1.GenerationService with its repository, runner, cache and pipeline."""

    name = SERVICE_NAME

    def __init__(self, config: ServeConfig, host: "RpcServer") -> None:
        self.config = config
        self.metrics = Metrics(host.registry)
        self.executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="lf-infer",
                                           initializer=_lower_priority, initargs=(config.worker_nice,))
        self.ort_settings = OrtSettings.from_config(config)
        self.providers = list(self.ort_settings.providers)
        self.repository = ModelRepository(config.models, self.metrics, self.ort_settings)
        # Versions are verified, loaded and warmed up on a thread of their own, so that a new
        # version never takes an inference worker from requests being served.
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lf-loader",
                                          initializer=_lower_priority, initargs=(config.worker_nice,))
        self.cache: SampleCache = make_cache(
            self.metrics, redis_url=config.redis_url, ttl_s=config.cache_ttl_s,
            max_bytes=config.cache_max_bytes, namespace=config.cache_namespace, timeout_s=config.redis_timeout_s,
            render_ttl_s=config.render_cache_ttl_s, render_max_bytes=config.render_cache_max_bytes,
            redis_tls_ca=_path_str(config.redis_tls_ca), redis_tls_cert=_path_str(config.redis_tls_cert),
            redis_tls_key=_path_str(config.redis_tls_key), breaker=config.redis_breaker())
        self.runner = make_runner(config, self.executor, self.metrics)
        self.pipeline = GenerationPipeline(config, self.repository, self.runner, self.cache, self.metrics,
                                           self.executor)
        self.servicer = GenerationServicer(self.pipeline, host.calls)
        self._tasks: list[asyncio.Task] = []
        self._host: "RpcServer | None" = None
        self.models_ready = asyncio.Event()
        self._warmed: weakref.WeakSet = weakref.WeakSet()  # model versions warm-up ran on
        self.first_load_done = asyncio.Event()

    def add_to(self, server: grpc.aio.Server) -> None:
        # Generate's response is serialised with its batch, off the event loop.
        descriptor = pb.DESCRIPTOR.services_by_name["GenerationService"]
        add_handlers(server, descriptor,
                     method_handlers(descriptor, self.servicer, serialized={"Generate": "generate_serialized"}))

    def describe(self) -> dict[str, Any]:
        c = self.config
        return dict(providers=self.providers, cache=self.cache.backend, cache_url=getattr(self.cache, "url", None),
                    models=str(c.models), batching=c.batching, workers=c.workers,
                    intra_op_threads=self.ort_settings.intra_op_threads, max_batch_size=c.max_batch_size,
                    max_queue_delay_ms=c.max_queue_delay_ms, max_queue_size=c.max_queue_size)

    async def start(self, host: "RpcServer") -> None:
        self._tasks.append(asyncio.create_task(self._load_loop(host), name="model-loader"))

    async def wait_started(self) -> None:
        await self.first_load_done.wait()

    async def _load_loop(self, host: "RpcServer") -> None:
        """Load the repository now, then look for new versions every reload_interval_s."""
        self._host = host
        while True:
            await self.reload()
            self.first_load_done.set()
            if self.config.reload_interval_s <= 0:
                return
            await asyncio.sleep(self.config.reload_interval_s)

    async def reload(self) -> None:
        """Look for new, changed or removed versions now (e.g. one a training job just published)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._loader, self.repository.refresh)
        except Exception as exc:  # keep serving what is loaded
            event(log, "model_refresh_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
        ready = len(self.repository) > 0
        await self._warm_up()
        if self._host is not None:
            await self._host.health.set_ready(self.name, ready)
        if ready:
            self.models_ready.set()

    async def _warm_up(self) -> None:
        """Warm the versions not warmed yet before health says SERVING (see ``GenerationPipeline.warm_up``)."""
        for model in self.repository.all():
            if model in self._warmed:
                continue
            self._warmed.add(model)
            try:
                await self.pipeline.warm_up(model, every_worker=not self.models_ready.is_set())
            except Exception as exc:  # noqa: BLE001 - a version failing here fails its requests with their own errors
                event(log, "model_warm_up_failed", level=logging.WARNING, model=model.name, version=model.version,
                      error=f"{type(exc).__name__}: {exc}")

    def begin_drain(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.servicer.sessions.begin_drain()  # open Session streams stop reading, answer, end

    async def close(self) -> None:
        await self.runner.close()
        await self.cache.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._loader.shutdown(wait=True, cancel_futures=True)


def _path_str(path: Any) -> str | None:
    return None if path is None else str(path)
