"""A process per core behind one port: ``latentforge serve --processes N``.

One Python process answers gRPC from one event loop, and gRPC's own per-call work runs on that
loop's thread; with a small model on a machine of several cores that thread, not the cores, is
what limits images/s (docs/benchmarks/serving_before_after.md, ``python -m scripts.serving_ab``).
With ``--processes N`` the command becomes a supervisor of N server processes that each bind the
same port with SO_REUSEPORT (Linux) and each run their own event loop, batches and ONNX Runtime
sessions.

What they share and what they don't:

* Connections, not calls, are spread: the kernel hands each new TCP connection to one process,
  and an HTTP/2 connection carries all of a channel's calls. A client with one channel talks to
  one process; spread load with several channels, or put an L7 (gRPC-aware) balancer in front.
* Samples: through Redis (``--redis-url`` is required), so an id made by one process is found by
  the others. Each process keeps its own rendered-output cache.
* Metrics: every process writes its metric values into one directory (prometheus_client's
  multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``); the supervisor serves them, summed over the
  processes, on the metrics port. Gauges say how they combine (``services.generation.metrics``); the
  ``latentforge_model_info`` series and the ``process_*`` metrics are not exported in this mode
  (prometheus_client cannot share them), and series of retired model versions stay until restart.
* Model repository: each process loads and reloads it on its own.
* The port: SO_REUSEPORT lets any process of the same user bind it too, so a second
  ``--processes`` server started on the same port joins the first instead of failing.

The supervisor reserves the port first (a bound, never listening socket: a taken port fails
here, in one line, and port 0 is settled once for all processes), forwards SIGTERM/SIGINT so each
process drains as a lone server does (a process joins the port only once its models are loaded
and warmed up, so no connection reaches one that is not ready), replaces a process that dies
(after a back-off that grows while replacements die before coming up), and stops everything with
exit status 1 when one dies before all first came up (a broken model repository or TLS file
would otherwise restart forever). A supervisor killed outright takes its processes with it
(on Linux they are sent SIGTERM, and drain).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from latentforge.cpus import available_cpus
from services.generation.config import ServeConfig
from services.rpc.logs import configure_logging, event, get_logger

log = get_logger("processes")

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Between a process's death and its replacement: 1 s, doubled for each replacement in a row that
# died before it came up (a model repository that no longer loads, memory that no longer suffices),
# up to 30 s; the other processes go on serving meanwhile.
RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0


def process_count(config: ServeConfig) -> int:
    """How many server processes ``config`` asks for (``processes`` 0: one per CPU)."""
    return config.processes or available_cpus()


def child_config(config: ServeConfig, port: int, http_port: int | None = None) -> ServeConfig:
    """One server process's settings: the reserved ports (gRPC, and HTTP when on) shared with
    SO_REUSEPORT, no metrics endpoint of its own (the supervisor serves everyone's), and ONNX
    Runtime threads sized so that all processes together use the machine's CPUs once."""
    n = process_count(config)
    threads = config.intra_op_threads or max(1, available_cpus() // (max(1, config.workers) * n))
    return dataclasses.replace(config, processes=1, reuse_port=True, port=port, metrics_port=None,
                               intra_op_threads=threads, http_port=http_port)


def reserve_port(host: str, port: int, what: str = "gRPC") -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with SO_REUSEPORT: the servers can bind
    beside it, nothing else can, and port 0 becomes one free port. Raises OSError if taken."""
    infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot bind {what} to {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _die_with_supervisor(supervisor: int) -> None:
    """Linux: have the kernel send this process SIGTERM when the supervisor dies, even by
    SIGKILL (the OOM killer), so that no server is left behind on the port without it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop is all there is
        return
    if os.getppid() != supervisor:  # it died before the request above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _run_server(config: ServeConfig, index: int, up: Any, supervisor: int) -> None:
    """A server process's body (spawned): serve until SIGTERM/SIGINT, set ``up`` once serving."""
    _die_with_supervisor(supervisor)
    configure_logging(config.log_level, config.log_json)
    from services.generation.server import serve

    try:
        code = serve(config, on_serving=lambda: setattr(up, "value", 1))
    except (ValueError, OSError) as exc:
        event(log, "process_failed", level=logging.ERROR, index=index, error=str(exc))
        code = 2
    sys.exit(code)


class _Server:
    """One supervised server process: its index, the process, when it started, whether it came
    up (a flag in shared memory, without a lock: a process killed while setting it cannot leave
    the supervisor waiting on one), and when a dead one is to be replaced."""

    def __init__(self, ctx: Any, config: ServeConfig, index: int) -> None:
        self.index = index
        self.up = ctx.RawValue("b", 0)
        self.process = ctx.Process(target=_run_server, args=(config, index, self.up, os.getpid()),
                                   name=f"lf-serve-{index}", daemon=False)
        self.process.start()
        self.started = time.monotonic()
        self.announced = False  # "process_serving" logged
        self.restart_at: float | None = None  # set once it has died

    @property
    def is_up(self) -> bool:
        return bool(self.up.value)


class Supervisor:
    """N server processes behind one port, their shared metrics endpoint, their lifecycle."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.count = process_count(config)
        self.stopping = False
        self.servers: list[_Server] = []
        self._owned_metrics_dir: Path | None = None
        self._httpd: Any = None
        self._port_socket: socket.socket | None = None
        self._http_socket: socket.socket | None = None

    def _metrics_dir(self) -> Path:
        """The multiprocess metrics directory: ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied:
        values of an earlier run would be summed in), else a new temporary one."""
        given = os.environ.get(METRICS_DIR_ENV)
        if given:
            path = Path(given)
            path.mkdir(parents=True, exist_ok=True)
            for f in path.glob("*.db"):
                f.unlink()
            return path
        self._owned_metrics_dir = Path(tempfile.mkdtemp(prefix="latentforge-metrics-"))
        return self._owned_metrics_dir

    def _serve_metrics(self, metrics_dir: Path) -> int | None:
        if self.config.metrics_port is None:
            return None
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(metrics_dir))
        self._httpd, _ = start_http_server(self.config.metrics_port, addr=self.config.metrics_host, registry=registry)
        return self._httpd.server_port

    def run(self) -> int:
        """Start the processes and supervise them until SIGTERM/SIGINT; the exit status."""
        config = self.config
        self._port_socket = reserve_port(config.host, config.port)
        port = self._port_socket.getsockname()[1]
        http_port = None
        if config.http_port is not None:  # the HTTP/JSON port is shared the same way
            self._http_socket = reserve_port(config.http_host or config.host, config.http_port, "HTTP")
            http_port = self._http_socket.getsockname()[1]
        metrics_dir = self._metrics_dir()
        # Read by prometheus_client when a server process imports it: set before they start.
        os.environ[METRICS_DIR_ENV] = str(metrics_dir)
        try:
            metrics_port = self._serve_metrics(metrics_dir)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
            ctx = multiprocessing.get_context("spawn")  # not fork: no copy of this process's threads or locks
            child = child_config(config, port, http_port)
            self.servers = [_Server(ctx, child, i) for i in range(self.count)]
            event(log, "processes_started", processes=self.count, port=port, host=config.host, http_port=http_port,
                  metrics_port=metrics_port, pids=[s.process.pid for s in self.servers],
                  intra_op_threads=child.intra_op_threads, workers=child.workers)
            return self._supervise(ctx, child, metrics_dir)
        finally:
            self._stop_all()
            self._close(metrics_dir)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _supervise(self, ctx: Any, child: ServeConfig, metrics_dir: Path) -> int:
        from prometheus_client.multiprocess import mark_process_dead

        all_up = False
        failures = [0] * self.count  # deaths in a row before coming up, per index: the restart back-off
        while not self.stopping:
            live = [s.process.sentinel for s in self.servers if s.process.exitcode is None]
            if live:
                multiprocessing.connection.wait(live, timeout=0.2)
            else:
                time.sleep(0.2)
            now = time.monotonic()
            for k, server in enumerate(self.servers):
                if not server.announced and server.is_up:
                    server.announced = True
                    failures[k] = 0
                    event(log, "process_serving", index=server.index, pid=server.process.pid,
                          seconds=round(now - server.started, 2))
                code = server.process.exitcode
                if code is None or self.stopping:
                    continue
                if server.restart_at is None:  # just died
                    mark_process_dead(server.process.pid, str(metrics_dir))
                    if not all_up and not server.announced:
                        event(log, "process_failed_to_start", level=logging.ERROR, index=server.index, pid=server.process.pid,
                              exit_code=code)
                        return 1
                    failures[k] = 0 if server.announced else failures[k] + 1
                    delay = min(RESTART_MAX_DELAY_S, RESTART_DELAY_S * 2 ** failures[k])
                    server.restart_at = now + delay
                    event(log, "process_exited", level=logging.WARNING, index=server.index, pid=server.process.pid,
                          exit_code=code, seconds=round(now - server.started, 1), restart_in_s=delay,
                          came_up=server.announced)
                elif now >= server.restart_at:
                    self.servers[k] = _Server(ctx, child, server.index)
                    event(log, "process_restarted", index=server.index, pid=self.servers[k].process.pid)
            if not all_up and all(s.announced for s in self.servers):
                all_up = True
                event(log, "processes_serving", processes=self.count, pids=[s.process.pid for s in self.servers])
        event(log, "processes_stopping", processes=len(self.servers))
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every server process (each drains), then wait; SIGKILL what outlives its grace."""
        live = [s.process for s in self.servers if s.process.exitcode is None]
        for p in live:
            p.terminate()
        deadline = time.monotonic() + self.config.drain_grace_s + 10.0
        for p in live:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.exitcode is None:
                event(log, "process_killed", level=logging.WARNING, pid=p.pid)
                p.kill()
                p.join(5.0)

    def _close(self, metrics_dir: Path) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for reserved in (self._port_socket, self._http_socket):
            if reserved is not None:
                reserved.close()
        if self._owned_metrics_dir is not None:
            shutil.rmtree(self._owned_metrics_dir, ignore_errors=True)
        event(log, "processes_stopped")


def serve_processes(config: ServeConfig) -> int:
    """Run ``config.processes`` server processes behind one port until SIGINT or SIGTERM."""
    return Supervisor(config).run()
