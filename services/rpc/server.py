"""The gRPC server process scaffolding, shared by every service: one ``RpcServer`` hosts one or
more ``RpcService``s (registered with ``add``) on one port.

It owns what services share: grpc.aio server options, the bearer-token interceptor, TLS or
mutual TLS, grpc.health.v1 (readiness per service, ``liveness``), reflection, the metrics
registry and its /metrics HTTP endpoint, the HTTP/JSON surface on its own port
(``services.http``, with ``http_port``), the call tracker every servicer wraps its calls with,
and the drain: on ``stop`` (``run_until_signal``: SIGINT/SIGTERM, what a Kubernetes rolling
update sends) health turns NOT_SERVING, new calls are refused with UNAVAILABLE, calls in flight
finish within ``drain_grace_s``, then each service releases what it holds. Each server has its
own registry, so several can run in one process.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from typing import Any, Callable, TypeVar

import grpc
from grpc_reflection.v1alpha import reflection

from services.rpc.calls import CallTracker
from services.rpc.health import SERVICE_NAME as HEALTH_SERVICE_NAME
from services.rpc.health import Health
from services.rpc.logs import event, get_logger
from services.rpc.metrics import RpcMetrics, new_registry
from services.rpc.security import BearerTokenInterceptor, load_tokens, server_credentials
from services.rpc.settings import ServerSettings

log = get_logger("server")

_WRITE_OUT_S = 0.5  # after the drain, how long answers already made may take to leave

T = TypeVar("T", bound="RpcService")


class RpcService:
    """One gRPC service on an ``RpcServer``: its servicer and whatever it runs beside it.

    ``name`` is the service's full proto name (health and reflection use it). A service is
    not ready until it calls ``host.health.set_ready(name, True)``; the default ``start`` does
    so at once.
    """

    name: str = ""

    def add_to(self, server: grpc.aio.Server) -> None:
        """Register the servicer(s) on the grpc server."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Fields of the ``server_started`` log line (no secrets)."""
        return {}

    async def start(self, host: "RpcServer") -> None:
        """The port is serving: start background work, say when ready."""
        await host.health.set_ready(self.name, True)

    async def wait_started(self) -> None:
        """Until the work ``start`` began has had its first go (e.g. the first model scan)."""

    def begin_drain(self) -> None:
        """The server drains: stop background work (calls in flight still run)."""

    async def close(self) -> None:
        """No call runs any more: release threads, connections, caches."""


class RpcServer:
    """One gRPC server with its health, reflection and /metrics endpoints, hosting services."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.registry = new_registry()
        self.calls = CallTracker(RpcMetrics(self.registry), access_log=settings.access_log)
        self.health = Health()
        self.services: list[RpcService] = []
        self._server: grpc.aio.Server | None = None
        self._metrics_httpd: Any = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.http: Any = None  # services.http.server.HttpSurface, with settings.http_port
        self.http_port: int | None = None

    def add(self, service: T) -> T:
        """Host ``service`` on this server (before ``start``); returns it."""
        if self._server is not None:
            raise RuntimeError("add services before the server starts")
        self.services.append(service)
        self.health.declare(service.name)
        return service

    async def start(self) -> None:
        """Bind the ports and start serving; then each service starts its own work.

        With ``reuse_port`` (one of several processes behind the port) the services start and
        finish their first startup work (models loaded, warmed up) before the port is bound: the
        kernel hands new connections only to processes that listen, so none reaches one that is
        not ready yet.
        """
        s = self.settings
        options = [
            ("grpc.max_send_message_length", s.max_message_bytes),
            ("grpc.max_receive_message_length", s.max_message_bytes),
            ("grpc.so_reuseport", int(s.reuse_port)),
        ]
        tokens = load_tokens(s.auth_tokens, s.auth_tokens_file)
        interceptors = [BearerTokenInterceptor(tokens)] if tokens else []
        server = grpc.aio.server(options=options, interceptors=interceptors)
        for service in self.services:
            service.add_to(server)
        self.health.add_to(server)
        reflection.enable_server_reflection(
            (*(service.name for service in self.services), HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)
        credentials = server_credentials(s.tls_cert, s.tls_key, s.tls_client_ca) if s.tls_cert is not None else None
        await self.health.start()
        if s.reuse_port:
            for service in self.services:
                await service.start(self)
            await self.wait_started()
        address = f"{s.host}:{s.port}"
        if credentials is not None:
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot bind gRPC to {s.host}:{s.port}")
        await server.start()
        try:
            if s.metrics_port is not None:
                from prometheus_client import start_http_server

                self._metrics_httpd, _ = start_http_server(s.metrics_port, addr=s.metrics_host, registry=self.registry)
                self.metrics_port = self._metrics_httpd.server_port
            if s.http_port is not None:
                from services.http.server import HttpSurface

                self.http = HttpSurface(self)
                await self.http.start()
                self.http_port = self.http.port
        except BaseException:
            # e.g. the metrics or HTTP port is taken: release the gRPC port and its threads before failing.
            await server.stop(0)
            if self._metrics_httpd is not None:
                self._metrics_httpd.shutdown()
                self._metrics_httpd.server_close()
            raise
        self._server = server
        described: dict[str, Any] = {}
        for service in self.services:
            described.update(service.describe())
        event(log, "server_started", port=self.port, host=s.host, metrics_port=self.metrics_port,
              http_port=self.http_port, playground=s.playground if self.http_port else None, **described,
              tls="mutual" if s.tls_client_ca else ("on" if s.tls_cert else "off"), auth_tokens=len(tokens))
        if not s.reuse_port:
            for service in self.services:
                await service.start(self)

    async def wait_started(self) -> None:
        """Until every service has had the first go at its startup work."""
        for service in self.services:
            await service.wait_started()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain, then release everything: health NOT_SERVING, new calls refused (UNAVAILABLE,
        retry on another replica), calls in flight finish within ``grace_s`` (default
        ``settings.drain_grace_s``); calls still running after it are cancelled."""
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        started = time.monotonic()
        await self.health.drain()
        self.calls.start_draining()
        for service in self.services:
            service.begin_drain()
        in_flight = self.calls.in_flight
        event(log, "server_draining", in_flight=in_flight, grace_s=grace)
        drained = await self.calls.wait_idle(grace)
        event(log, "server_drained", in_flight=in_flight, left=self.calls.in_flight, drained=drained,
              seconds=round(time.monotonic() - started, 3))
        if self.http is not None:  # open event streams end with an error event; then the port closes
            await self.http.close()
        if self._server is not None:
            # The last answers may still be on their way out: a moment for them, then whatever
            # outlived the grace period is cancelled.
            await self._server.stop(_WRITE_OUT_S)
        for service in self.services:
            await service.close()
        if self._metrics_httpd is not None:
            self._metrics_httpd.shutdown()
            self._metrics_httpd.server_close()
        event(log, "server_stopped", port=self.port)

    async def wait_for_termination(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()


async def _serve_until_signal(build: Callable[[], RpcServer], on_serving: Callable[[], None] | None) -> None:
    server = build()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start: a signal while starting still drains
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await server.start()
    started = asyncio.ensure_future(server.wait_started())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({started, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (started, stopped):
        waiter.cancel()
    if not stop.is_set():
        freeze_heap()
        if on_serving is not None:
            on_serving()
    await stop.wait()
    event(log, "server_stopping")
    await server.stop()


def freeze_heap() -> None:
    """Once a server has started (models loaded, sessions made): collect, then move every object
    alive into the garbage collector's permanent generation (``gc.freeze``), so that the
    collections the requests' allocations trigger no longer walk the whole heap of modules,
    sessions and model metadata. Under many small calls that walk was about a twentieth of the
    event-loop thread's CPU (docs/benchmarks/serving_profile.md)."""
    gc.collect()
    gc.freeze()


def run_until_signal(build: Callable[[], RpcServer], on_serving: Callable[[], None] | None = None,
                     event_loop: str = "asyncio", runs_jobs: bool = False) -> int:
    """Build a server on a new event loop (``event_loop``: see ``loop_factory``) and run it
    until SIGINT or SIGTERM, then drain it; returns the exit status. ``on_serving`` is called
    once its services have started (a supervisor's signal that this process is up)."""
    with asyncio.Runner(loop_factory=loop_factory(event_loop, runs_jobs)) as runner:
        runner.run(_serve_until_signal(build, on_serving))
    return 0


def loop_factory(event_loop: str, runs_jobs: bool = False) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the event loop named ``event_loop`` (None: asyncio's default); "auto" is
    uvloop, or asyncio for a server that ``runs_jobs`` (the TrainingService's job, publish and
    upload-check processes exited with SIGSEGV when started from uvloop).

    uvloop wakes the loop from another thread (a finished batch) through libuv's async handle
    instead of asyncio's self-pipe and runs its loop in C: under many small calls the event-loop
    thread spends markedly less CPU per call (docs/benchmarks/serving_profile.md)."""
    if event_loop == "auto":
        event_loop = "asyncio" if runs_jobs else "uvloop"
    if event_loop == "asyncio":
        return None
    if event_loop != "uvloop":
        raise ValueError(f"unknown event loop {event_loop!r}; use uvloop or asyncio")
    try:
        import uvloop
    except ImportError:
        raise ValueError("event loop uvloop is not installed (pip install uvloop); or run with "
                         "--event-loop asyncio") from None
    return uvloop.new_event_loop
