"""`latentforge serve --processes N`: several server processes behind one port (SO_REUSEPORT).

Real parts: the supervisor and its server processes as started by the command line, a real
redis-server shared by them, real gRPC connections on loopback, the supervisor's /metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from tests.helpers.processes import (
    ROOT,
    SERVING,
    ServeProcess,
    free_port,
    health_status,
    wait_until,
)

CONNECTIONS = 16  # separate HTTP/2 connections: the kernel spreads connections, not calls


def _stubs(target: str, n: int) -> list[tuple[grpc.Channel, pb_grpc.GenerationServiceStub]]:
    """``n`` channels that do not share a connection (a local subchannel pool each)."""
    channels = [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(n)]
    return [(ch, pb_grpc.GenerationServiceStub(ch)) for ch in channels]


def _generate(stub: pb_grpc.GenerationServiceStub) -> tuple[str, str]:
    """One count=1 Generate: (sample id, the server-made request id from the trailers)."""
    reply, call = stub.Generate.with_call(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=30)
    request_id = dict(call.trailing_metadata())["x-request-id"]
    return reply.samples[0].sample_id, request_id


def _metric(url: str, name: str, **labels: str) -> float:
    """A sample's value from a /metrics endpoint, parsed as Prometheus reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"no {name}{labels} in /metrics")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture()
def two_processes(model_repo: Path, redis_proc):
    http_port = free_port()
    server = ServeProcess(model_repo, "--processes", "2", "--redis-url", redis_proc.url, "--workers", "1",
                          "--http-port", str(http_port), ready_event="processes_serving")
    server.http_port = http_port  # type: ignore[attr-defined]
    yield server
    server.kill()
    for pid in _server_pids(server):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _server_pids(server: ServeProcess) -> list[int]:
    """Every server process the supervisor started, replacements included."""
    return [*server.events("processes_started")[0]["pids"], *(e["pid"] for e in server.events("process_restarted"))]


def test_two_processes_share_the_port_the_samples_and_the_metrics(two_processes: ServeProcess):
    started = two_processes.events("processes_started")[0]
    assert started["processes"] == 2 and len(started["pids"]) == 2
    assert started["intra_op_threads"] >= 1
    stubs = _stubs(two_processes.target, CONNECTIONS)
    try:
        made = [_generate(stub) for _, stub in stubs for _ in range(3)]
        # Each process makes request ids with its own random prefix: both processes answered.
        prefixes = {request_id[:16] for _, request_id in made}
        assert len(prefixes) == 2, f"{CONNECTIONS} connections all went to one process: {prefixes}"
        # A sample made by one process is found by every connection, whichever process it reaches.
        for k, (_, stub) in enumerate(stubs):
            sample_id = made[(k * 7) % len(made)][0]
            got = stub.GetSample(pb.GetSampleRequest(sample_id=sample_id), timeout=10)
            assert got.sample_id == sample_id
        # The supervisor's /metrics sums both processes' counters.
        url = two_processes.metrics_url
        assert _metric(url, "latentforge_requests_total", method="Generate", code="OK", protocol="grpc") == len(made)
        assert _metric(url, "latentforge_requests_total", method="GetSample", code="OK", protocol="grpc") == len(stubs)
        assert _metric(url, "latentforge_models_loaded") == 2  # the fewest any process has (livemin)
        # The HTTP/JSON port is shared the same way: new connections reach both processes.
        import httpx

        http_ids = set()
        for _ in range(CONNECTIONS):
            with httpx.Client(base_url=f"http://127.0.0.1:{two_processes.http_port}", timeout=30) as http:
                answer = http.post("/v1/generate", json={"model": "mnist-dcgan", "count": 1})
                assert answer.status_code == 200
                http_ids.add(answer.headers["x-request-id"][:16])
        assert len(http_ids) == 2, f"{CONNECTIONS} HTTP connections all went to one process"
        assert _metric(url, "latentforge_requests_total", method="Generate", code="OK", protocol="http") == CONNECTIONS
    finally:
        for ch, _ in stubs:
            ch.close()


def test_a_dead_process_is_replaced_and_sigterm_drains_all(two_processes: ServeProcess):
    pids = two_processes.events("processes_started")[0]["pids"]
    os.kill(pids[0], signal.SIGKILL)
    wait_until(lambda: two_processes.events("process_restarted"), 30, "the supervisor to restart the process")
    exited = two_processes.events("process_exited")[0]
    assert exited["pid"] == pids[0] and exited["exit_code"] == -signal.SIGKILL
    new_pid = two_processes.events("process_restarted")[0]["pid"]
    assert new_pid not in pids and _alive(new_pid)
    # A process joins the port only once it is ready: while the replacement loads, every new
    # connection reaches the process that serves, and no call fails.
    stubs = _stubs(two_processes.target, CONNECTIONS)
    try:
        for _, stub in stubs:
            _generate(stub)
    finally:
        for ch, _ in stubs:
            ch.close()
    # The replacement serves: fresh connections reach both processes again.
    wait_until(lambda: any(e["pid"] == new_pid for e in two_processes.events("process_serving")), 60,
               "the new process to serve")
    stubs = _stubs(two_processes.target, CONNECTIONS)
    try:
        for ch, stub in stubs:
            assert health_status(ch) == SERVING
            _generate(stub)
    finally:
        for ch, _ in stubs:
            ch.close()
    two_processes.proc.send_signal(signal.SIGTERM)
    assert two_processes.wait(60) == 0
    assert len(two_processes.events("server_drained")) >= 2
    for pid in (pids[1], new_pid):
        wait_until(lambda pid=pid: not _alive(pid), 10, f"server process {pid} to exit")


def _serve_fails(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentforge", "serve", "--host", "127.0.0.1", "--metrics-port",
                           "0", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
                          env={**os.environ, "LATENTFORGE_RELOAD_INTERVAL_S": "0"})


def test_processes_need_redis_and_no_training(model_repo: Path, redis_proc):
    done = _serve_fails("--models", str(model_repo), "--port", "0", "--processes", "2")
    assert done.returncode == 2
    assert "redis_url" in done.stderr and "Traceback" not in done.stderr
    done = _serve_fails("--models", str(model_repo), "--port", "0", "--processes", "2", "--redis-url", redis_proc.url,
                        "--training")
    assert done.returncode == 2
    assert "--training runs in one process" in done.stderr and "Traceback" not in done.stderr


def test_a_taken_port_fails_in_one_line(model_repo: Path, redis_proc):
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = _serve_fails("--models", str(model_repo), "--port", str(port), "--processes", "2",
                            "--redis-url", redis_proc.url)
    assert done.returncode == 2
    assert f"cannot bind gRPC to 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_a_process_that_cannot_start_stops_the_supervisor(model_repo: Path):
    # Redis is refused here (nothing listens on the port), which a lone server survives; a
    # server process that exits before serving is what the supervisor must not restart forever.
    # An unknown execution provider makes each server process exit while starting.
    t0 = time.monotonic()
    done = _serve_fails("--models", str(model_repo), "--port", "0", "--processes", "2",
                        "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--provider", "NoSuchExecutionProvider")
    assert done.returncode == 1, done.stderr[-2000:]
    assert '"process_failed_to_start"' in done.stderr and "NoSuchExecutionProvider" in done.stderr
    assert time.monotonic() - t0 < 60


def test_a_killed_supervisor_takes_its_processes_with_it(two_processes: ServeProcess):
    pids = _server_pids(two_processes)
    two_processes.proc.kill()  # SIGKILL: no chance to stop them itself
    two_processes.wait(10)
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(pid), 30, f"server process {pid} to exit after its supervisor")


def test_each_process_gets_its_share_of_the_cpus():
    from latentforge.cpus import available_cpus
    from services.generation.config import ServeConfig
    from services.generation.processes import child_config, process_count

    config = ServeConfig(processes=2, workers=1, redis_url="redis://127.0.0.1:1/0", port=0, metrics_port=9)
    child = child_config(config, 50123)
    assert (child.processes, child.port, child.reuse_port, child.metrics_port) == (1, 50123, True, None)
    assert child.intra_op_threads == max(1, available_cpus() // 2)
    assert child_config(ServeConfig(processes=2, intra_op_threads=3, redis_url="redis://x/0"), 1).intra_op_threads == 3
    assert process_count(ServeConfig(processes=0, redis_url="redis://x/0")) == available_cpus()


def test_a_replacement_that_cannot_start_is_retried_with_back_off(model_repo: Path, redis_proc, tmp_path: Path):
    from tests.helpers.pki import make_pki

    pki = make_pki(tmp_path)
    server = ServeProcess(model_repo, "--processes", "2", "--redis-url", redis_proc.url, "--workers", "1",
                          "--tls-cert", str(pki["server"]), "--tls-key", str(pki["server_key"]),
                          ready_event="processes_serving")
    try:
        pids = server.events("processes_started")[0]["pids"]
        key = pki["server_key"]
        hidden = key.with_suffix(".hidden")
        key.rename(hidden)  # a replacement cannot read its TLS key: it dies before coming up
        os.kill(pids[0], signal.SIGKILL)
        wait_until(lambda: len(server.events("process_exited")) >= 3, 60, "two failed replacements")
        exited = server.events("process_exited")
        assert [e["came_up"] for e in exited[:3]] == [True, False, False]
        assert [e["restart_in_s"] for e in exited[:3]] == [1.0, 2.0, 4.0]  # the back-off grows
        assert server.events("process_failed") and server.proc.poll() is None  # the supervisor goes on
        assert _alive(pids[1])  # and so does the other process
        hidden.rename(key)
        wait_until(lambda: any(e["pid"] not in pids for e in server.events("process_serving")), 60,
                   "a replacement to come up once the key is back")
    finally:
        server.kill()
        for pid in _server_pids(server):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
