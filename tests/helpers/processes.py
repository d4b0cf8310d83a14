"""Real processes the tests start: redis-server, `latentforge serve`; ports and waits."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float, what: str) -> None:
    """Poll ``condition()`` until true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def health_status(channel: grpc.Channel, service: str = "") -> int:
    """grpc.health.v1 status of ``service`` ("" = the whole server)."""
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


class RedisProcess:
    """A throwaway redis-server on a loopback port, no persistence; can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = shutil.which("redis-server")
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisProcess":
        assert self.binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(self):
        """A synchronous redis-py client, for looking at keys from the test."""
        import redis

        return redis.Redis.from_url(self.url)


class ServeProcess:
    """`latentforge serve` as a child process on loopback ports, its JSON log lines read by a
    thread (so that a busy log never blocks the server on a full pipe)."""

    def __init__(self, models: Path, *args: str, env: dict[str, str] | None = None,
                 ready_event: str = "server_started") -> None:
        """``ready_event``: the log line that says it serves (``processes_serving`` for a
        ``--processes N`` supervisor)."""
        self.ready_event = ready_event
        full_env = {**os.environ, "LATENTFORGE_RELOAD_INTERVAL_S": "0", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "latentforge", "serve", "--models", str(models), "--host", "127.0.0.1",
             "--port", "0", "--metrics-port", "0", *args],
            cwd=ROOT, env=full_env, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self.not_json: list[str] = []  # log lines that are not one JSON object (there should be none)
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self._started.wait(60)
        if not started or self.not_json:
            self.kill()
        assert started, f"serve did not start (exit {self.proc.poll()}): {self.lines[-5:]}"
        assert not self.not_json, f"serve wrote log lines that are not JSON: {self.not_json[:3]}"
        # The port and metrics port: the supervisor's first line, or the lone server's.
        started = next((e for e in self.lines if e["event"] == "processes_started"), None) or next(
            e for e in self.lines if e["event"] == "server_started")
        self.target = f"127.0.0.1:{started['port']}"
        self.metrics_url = f"http://127.0.0.1:{started['metrics_port']}/metrics"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.lines) < 200_000 and line.strip():  # bounded
                try:
                    entry = json.loads(line)  # every log line is one JSON object
                except ValueError:
                    self.not_json.append(line.rstrip("\n"))
                    self._started.set()  # fail the start at once, naming the line
                    continue
                self.lines.append(entry)
                if entry["event"] == self.ready_event:
                    self._started.set()
        self._started.set()

    def events(self, name: str) -> list[dict]:
        return [e for e in self.lines if e["event"] == name]

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def wait(self, timeout_s: float) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(10)


class TrainingServeProcess:
    """`latentforge serve-training` as a child process on loopback ports; its log lines (JSON,
    plus whatever else a forked job's runtime prints) are read by a thread."""

    def __init__(self, data_dir: Path, models: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "latentforge", "serve-training", "--data-dir", str(data_dir), "--models",
             str(models), "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--min-free-disk-bytes", "0",
             "--poll-interval-s", "0.1", *args],
            cwd=ROOT, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict] = []
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(60) or self.proc.poll() is not None:
            self.kill()
            raise AssertionError(f"serve-training did not start (exit {self.proc.poll()}): {self.lines[-5:]}")
        started = next(e for e in self.lines if e["event"] == "server_started")
        self.target = f"127.0.0.1:{started['port']}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and len(self.lines) < 100_000:
                self.lines.append(entry)
                if entry.get("event") == "server_started":
                    self._started.set()
        self._started.set()

    def kill(self, sig: int = 9) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self._reader.join(10)
