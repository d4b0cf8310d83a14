"""The gRPC server process: wiring of repository, runner, cache, metrics, health, reflection.

``GenerationServer`` is one server instance (its own metrics registry, so several can run in
one process). ``serve()`` runs one until SIGINT/SIGTERM, then drains it (what a Kubernetes
rolling update needs): health NOT_SERVING, new calls refused with UNAVAILABLE, calls in flight
finish within ``drain_grace_s``, exit status 0. ``ServerThread`` runs one on a background event
loop for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.cache import SampleCache, make_cache
from services.config import ServeConfig
from services.inference import DirectRunner, InferenceRunner, OrtSettings
from services.logging_setup import event, get_logger
from services.metrics import Metrics
from services.model_repository import ModelRepository
from services.security import BearerTokenInterceptor, load_tokens, server_credentials
from services.servicer import GenerationServicer

log = get_logger("server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GenerationService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_WRITE_OUT_S = 0.5  # after the drain, how long answers already made may take to leave


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
        from services.batching import BatchingRunner

        return BatchingRunner(executor, metrics, config.max_batch_size, config.max_queue_delay_ms / 1000.0,
                              config.max_queue_size, max_concurrent=config.workers)
    return DirectRunner(executor, metrics, config.max_batch_size, config.max_queue_size)


class GenerationServer:
    """One running GenerationService with its health, reflection and /metrics endpoints."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.metrics = Metrics()
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
            redis_tls_key=_path_str(config.redis_tls_key))
        self.runner = make_runner(config, self.executor, self.metrics)
        self.health = health.aio.HealthServicer()
        self.servicer = GenerationServicer(config, self.repository, self.runner, self.cache, self.metrics, self.executor)
        self._server: grpc.aio.Server | None = None
        self._metrics_httpd: Any = None
        self._tasks: list[asyncio.Task] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.models_ready = asyncio.Event()
        self.first_load_done = asyncio.Event()

    async def start(self) -> None:
        """Bind the ports and start serving; models load in the background (health says when)."""
        options = [
            ("grpc.max_send_message_length", self.config.max_message_bytes),
            ("grpc.max_receive_message_length", self.config.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        tokens = load_tokens(self.config.auth_tokens, self.config.auth_tokens_file)
        interceptors = [BearerTokenInterceptor(tokens)] if tokens else []
        server = grpc.aio.server(options=options, interceptors=interceptors)
        pb_grpc.add_GenerationServiceServicer_to_server(self.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        address = f"{self.config.host}:{self.config.port}"
        if self.config.tls_cert is not None:
            credentials = server_credentials(self.config.tls_cert, self.config.tls_key, self.config.tls_client_ca)
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot bind gRPC to {self.config.host}:{self.config.port}")
        for name in ("", SERVICE_NAME):
            await self.health.set(name, NOT_SERVING)
        await server.start()
        try:
            if self.config.metrics_port is not None:
                from prometheus_client import start_http_server

                self._metrics_httpd, _ = start_http_server(
                    self.config.metrics_port, addr=self.config.metrics_host, registry=self.metrics.registry)
                self.metrics_port = self._metrics_httpd.server_port
        except BaseException:
            # e.g. the metrics port is taken: release the gRPC port and its threads before failing.
            await server.stop(0)
            raise
        self._server = server
        event(log, "server_started", port=self.port, host=self.config.host, metrics_port=self.metrics_port,
              providers=self.providers, cache=self.cache.backend, cache_url=getattr(self.cache, "url", None),
              models=str(self.config.models),
              tls="mutual" if self.config.tls_client_ca else ("on" if self.config.tls_cert else "off"),
              auth_tokens=len(tokens),
              batching=self.config.batching, workers=self.config.workers,
              intra_op_threads=self.ort_settings.intra_op_threads, max_batch_size=self.config.max_batch_size,
              max_queue_delay_ms=self.config.max_queue_delay_ms, max_queue_size=self.config.max_queue_size)
        self._tasks.append(asyncio.create_task(self._load_loop(), name="model-loader"))

    async def _load_loop(self) -> None:
        """Load the repository now, then look for new versions every reload_interval_s."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(self._loader, self.repository.refresh)
            except Exception as exc:  # keep serving what is loaded
                event(log, "model_refresh_failed", level=40, error=f"{type(exc).__name__}: {exc}")
            ready = len(self.repository) > 0
            for name in ("", SERVICE_NAME):
                await self.health.set(name, SERVING if ready else NOT_SERVING)
            if ready:
                self.models_ready.set()
            self.first_load_done.set()
            if self.config.reload_interval_s <= 0:
                return
            await asyncio.sleep(self.config.reload_interval_s)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain, then release everything: health NOT_SERVING, new calls refused (UNAVAILABLE,
        retry on another replica), calls in flight finish within ``grace_s`` (default
        ``config.drain_grace_s``); calls still running after it are cancelled."""
        grace = self.config.drain_grace_s if grace_s is None else grace_s
        started = time.monotonic()
        await self.health.enter_graceful_shutdown()
        self.servicer.start_draining()
        for task in self._tasks:
            task.cancel()
        in_flight = self.servicer.in_flight
        event(log, "server_draining", in_flight=in_flight, grace_s=grace)
        drained = await self.servicer.wait_idle(grace)
        event(log, "server_drained", in_flight=in_flight, left=self.servicer.in_flight, drained=drained,
              seconds=round(time.monotonic() - started, 3))
        if self._server is not None:
            # The last answers may still be on their way out: a moment for them, then whatever
            # outlived the grace period is cancelled.
            await self._server.stop(_WRITE_OUT_S)
        await self.runner.close()
        await self.cache.close()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._loader.shutdown(wait=True, cancel_futures=True)
        event(log, "server_stopped", port=self.port)

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()


async def _serve_until_signal(config: ServeConfig) -> None:
    server = GenerationServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    event(log, "server_stopping")
    await server.stop()


def serve(config: ServeConfig) -> int:
    """Run a server in the foreground until SIGINT or SIGTERM; returns the exit status."""
    asyncio.run(_serve_until_signal(config))
    return 0


class ServerThread:
    """A GenerationServer on its own event loop in a daemon thread (tests, benchmarks)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.server: GenerationServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="lf-server", daemon=True)

    def start(self, wait_for_models: bool = True, timeout_s: float = 60.0) -> "ServerThread":
        """Start, and (by default) wait until the first repository scan has finished."""
        self._thread.start()

        async def boot() -> GenerationServer:
            server = GenerationServer(self.config)
            await server.start()
            if wait_for_models:
                await asyncio.wait_for(server.first_load_done.wait(), timeout_s)
            return server

        self.server = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout_s + 10)
        return self

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        assert self.server is not None and self.server.metrics_port
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop(0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def loopback_config(**overrides: Any) -> ServeConfig:
    """Loopback, free ports, no reload: a config for tests and benchmarks."""
    base = dict(host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0, reload_interval_s=0.0)
    base.update(overrides)
    return dataclasses.replace(ServeConfig(), **base).validate()


def _path_str(path: Any) -> str | None:
    return None if path is None else str(path)
