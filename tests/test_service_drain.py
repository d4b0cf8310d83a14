"""Shutdown without losing a request: on SIGTERM `latentforge serve` turns NOT_SERVING, refuses
new calls with UNAVAILABLE and a message that says to retry elsewhere, lets every call in flight
finish within drain_grace_s, and exits 0 - what a Kubernetes rolling update needs. Calls that
outlive the grace period are cancelled and the server still stops.

Figures are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.rpc.calls import DRAINING_MESSAGE
from tests.helpers.processes import ServeProcess, health_status, wait_until
from tests.helpers.servers import Gate, hold_a_batch_slot, start_server

pytestmark = pytest.mark.slow

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def _in_flight(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("latentforge_requests_in_flight{"))


def test_sigterm_drains_every_call_in_flight_and_exits_0(model_repo: Path):
    """Large unary calls and long streams are running when SIGTERM arrives: all of them finish
    OK with every sample, a call made during the drain is refused with UNAVAILABLE, exit 0."""
    server = ServeProcess(
        model_repo, "--workers", "1", "--intra-op-threads", "1", "--max-batch-size", "16",
        env={"LATENTFORGE_DRAIN_GRACE_S": "30", "LATENTFORGE_MAX_COUNT": "4096", "LATENTFORGE_STREAM_CHUNK": "1",
             "LATENTFORGE_MAX_QUEUE_SIZE": "4096", "LATENTFORGE_RENDER_CACHE": "false",
             "LATENTFORGE_ACCESS_LOG": "false"})
    # Long streams (one sample per inference call) and large unary calls (256 batches each).
    streams, unary, stream_count, unary_count = 4, 4, 1024, 4096
    try:
        target, metrics_url = server.target, server.metrics_url
        with grpc.insecure_channel(target) as channel:
            wait_until(lambda: health_status(channel) == SERVING, 60, "SERVING")
            stub = pb_grpc.GenerationServiceStub(channel)
            started = [threading.Event() for _ in range(streams)]

            def stream(k: int) -> tuple[str, int]:
                got = 0
                try:
                    for _ in stub.GenerateStream(pb.GenerateRequest(model="mnist-dcgan", count=stream_count, seed=k),
                                                 timeout=60):
                        got += 1
                        started[k].set()
                    return "OK", got
                except grpc.RpcError as exc:
                    return exc.code().name, got
                finally:
                    started[k].set()

            def large(k: int) -> tuple[str, int]:
                try:
                    r = stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=unary_count, seed=100 + k),
                                      timeout=60)
                    return "OK", len(r.samples)
                except grpc.RpcError as exc:
                    return exc.code().name, 0

            with ThreadPoolExecutor(streams + unary) as pool:
                jobs = [pool.submit(stream, k) for k in range(streams)]
                for event in started:  # every stream is sending
                    assert event.wait(30)
                jobs += [pool.submit(large, k) for k in range(unary)]
                wait_until(lambda: _in_flight(metrics_url) >= streams + unary, 10, "every call to be in flight")
                in_flight_at_sigterm = _in_flight(metrics_url)
                t0 = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                wait_until(lambda: health_status(channel) == NOT_SERVING, 10, "NOT_SERVING")
                with grpc.insecure_channel(target) as fresh:  # a newcomer during the drain
                    with pytest.raises(grpc.RpcError) as info:
                        pb_grpc.GenerationServiceStub(fresh).Generate(
                            pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=10)
                refused_after_s = time.monotonic() - t0
                results = [job.result(60) for job in jobs]
        code = server.wait(60)
        exited_after_s = time.monotonic() - t0
        rest = server.lines
    finally:
        server.kill()
    drained = next(e for e in rest if e["event"] == "server_drained")
    print(f"\ndrain: {in_flight_at_sigterm:.0f} calls in flight at SIGTERM ({streams} streams and {unary} unary, "
          f"{stream_count} / {unary_count} samples each); refused a new call {refused_after_s:.2f} s after SIGTERM; drained "
          f"{drained['in_flight']} calls in {drained['seconds']} s, {drained['left']} left; exit {code} after "
          f"{exited_after_s:.2f} s; results {results}")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and info.value.details() == DRAINING_MESSAGE
    # No call in flight was lost or cut short.
    assert results == [("OK", stream_count)] * streams + [("OK", unary_count)] * unary
    assert code == 0
    assert drained["drained"] is True and drained["left"] == 0 and drained["in_flight"] >= streams + unary
    assert rest[-1]["event"] == "server_stopped"


def test_drain_refuses_newcomers_and_waits_only_as_long_as_calls_run(model_repo: Path):
    server = start_server(model_repo, workers=1, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            queued = [stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", count=3, seed=k), timeout=30)
                      for k in range(3)]
            wait_until(lambda: server.server.calls.in_flight == 3, 10, "calls in flight")
            t0 = time.monotonic()
            stopper = server.begin_stop(20.0)
            wait_until(lambda: health_status(channel) == NOT_SERVING, 10, "NOT_SERVING")
            for call in (lambda: stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=10),
                         lambda: list(stub.GenerateStream(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=10)),
                         lambda: stub.ListModels(pb.ListModelsRequest(), timeout=10)):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "shutting down; retry on another replica" in info.value.details()
            gate.release.set()
            assert [len(f.result(30).samples) for f in queued] == [3, 3, 3]
        stopper.join(30)
        assert not stopper.is_alive() and time.monotonic() - t0 < 10  # not the whole 20 s grace
        refused = server.server.registry.get_sample_value(
            "latentforge_requests_total", {"method": "Generate", "code": "UNAVAILABLE", "protocol": "grpc"})
        assert refused == 1
    finally:
        gate.release.set()
        server.stop()


def test_calls_outliving_the_grace_period_are_cancelled_and_the_server_stops(model_repo: Path):
    server = start_server(model_repo, workers=1, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            stuck = stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", count=2), timeout=30)
            wait_until(lambda: server.server.calls.in_flight == 1, 10, "the call in flight")
            t0 = time.monotonic()
            stopping = server.begin_stop(0.3)
            with pytest.raises(grpc.RpcError) as info:
                stuck.result(30)
            assert info.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
            gate.release.set()  # the worker thread itself is only released here
            stopping.join(30)
            assert not stopping.is_alive() and time.monotonic() - t0 < 5
    finally:
        gate.release.set()
        server.stop()
