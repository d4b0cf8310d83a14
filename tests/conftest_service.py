"""Fixtures of the generation-service tests: real redis-server processes and real servers.

Servers run on loopback ports in background threads, load the model repository that the
project's trainer and exporter produce (``model_repo`` in conftest.py), and use real ONNX
Runtime. Imported by tests/conftest.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisProcess]:
    """One redis-server shared by the session's Redis-backed servers."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make system-deps)")
    proc = RedisProcess().start()
    yield proc
    proc.stop()


@pytest.fixture()
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server of the test's own, which the test may stop and restart."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make system-deps)")
    proc = RedisProcess().start()
    yield proc
    proc.stop()


def broken_copy(model_repo: Path, dest: Path) -> Path:
    """The model repository plus a version 2 of mnist-dcgan whose file fails its checksum."""
    shutil.copytree(model_repo, dest)
    v2 = dest / "mnist-dcgan" / "2"
    shutil.copytree(dest / "mnist-dcgan" / "1", v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = 2
    (v2 / "manifest.json").write_text(json.dumps(manifest))
    with open(v2 / "generator.onnx", "ab") as f:
        f.write(b"corrupt")
    return dest


def start_server(models: Path, **overrides):
    from services.server import ServerThread, loopback_config

    return ServerThread(loopback_config(models=models, **overrides)).start()


@pytest.fixture(scope="session")
def memory_server(model_repo: Path):
    """A server with the in-process cache."""
    server = start_server(model_repo)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_servers(model_repo: Path, redis_proc: RedisProcess):
    """Two servers sharing one Redis (two replicas)."""
    a = start_server(model_repo, redis_url=redis_proc.url)
    b = start_server(model_repo, redis_url=redis_proc.url)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(params=["memory", "redis"])
def gen_server(request):
    """Each API test runs once per cache backend."""
    if request.param == "memory":
        return request.getfixturevalue("memory_server")
    return request.getfixturevalue("redis_servers")[0]


@pytest.fixture()
def gen_client(gen_server):
    """A client of ``gen_server``."""
    from services.client import GenerationClient

    with GenerationClient(gen_server.target, timeout_s=30) as c:
        yield c
