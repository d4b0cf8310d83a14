"""Faults under real load: Redis down at start and going down mid-load (a real redis-server the
test stops and restarts), model versions appearing (good, tampered, broken) and disappearing
while concurrent clients generate, and clients that go away before their work runs.

Figures (requests, failures, outcomes) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import GenerationClient
from tests.helpers.processes import wait_until
from tests.helpers.servers import (
    runner_decode,
    GEN,
    Gate,
    hold_a_batch_slot,
    load_model,
    publish_version,
    start_server,
)

pytestmark = pytest.mark.slow

UNAVAILABLE, NOT_FOUND = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND
DCGAN = {"model": "mnist-dcgan"}


def _metric(server, name: str, labels: dict | None = None) -> float:
    return server.server.registry.get_sample_value(name, labels or {}) or 0.0


# ---- Redis ------------------------------------------------------------------------------------


def test_redis_down_at_start_generate_works_ids_unavailable_then_recovers(model_repo, own_redis, caplog):
    own_redis.stop()
    with caplog.at_level(logging.INFO, logger="latentforge"):
        server = start_server(model_repo, redis_url=own_redis.url)
        try:
            with GenerationClient(server.target, timeout_s=30) as client:
                made = client.generate("mnist-dcgan", 3, seed=5)
                assert len(made.samples) == 3 and not made.stored
                assert len(list(client.generate_stream("mnist-dcgan", 2))) == 2
                for call in (lambda: client.get_sample(made.samples[0].sample_id),
                             lambda: client.variations(made.samples[0].sample_id, 1, 0.1)):
                    with pytest.raises(grpc.RpcError) as info:
                        call()
                    assert info.value.code() == UNAVAILABLE
                    assert "sample cache is unreachable" in info.value.details()
                assert _metric(server, "latentforge_cache_errors_total", {"backend": "redis", "operation": "put"}) >= 2
                own_redis.start()
                deadline = time.monotonic() + 10
                while not (after := client.generate("mnist-dcgan", 1)).stored:
                    assert time.monotonic() < deadline, "did not recover after Redis came up"
                    time.sleep(0.05)
                assert client.get_sample(after.samples[0].sample_id).model == "mnist-dcgan"
                with pytest.raises(grpc.RpcError) as info:  # never stored: now simply unknown
                    client.get_sample(made.samples[0].sample_id)
                assert info.value.code() == NOT_FOUND
        finally:
            server.stop()
    names = [r.getMessage() for r in caplog.records]
    # One line when the outage is seen and one when it ends, not one per failed operation.
    assert names.count("cache_unavailable") == 1 and names.count("cache_recovered") == 1


def test_redis_outage_mid_load_with_concurrent_clients(model_repo, own_redis):
    """Six clients generate (and look up what they made) while Redis goes down and comes back:
    no Generate fails; lookups answer OK, or UNAVAILABLE (clear message) while it is down."""
    server = start_server(model_repo, redis_url=own_redis.url)
    phase = ["up"]
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def note(key: tuple) -> None:
        with lock:
            outcomes[key] += 1

    def client_loop(k: int) -> None:
        with GenerationClient(server.target, timeout_s=30) as client:
            for n in range(5000):  # bounded; normally ended by `stop`
                if stop.is_set():
                    return
                current = phase[0]
                try:
                    made = client.generate("mnist-dcgan", 1 + (n + k) % 4)
                except grpc.RpcError as exc:
                    unexpected.append(f"Generate {exc.code().name}: {exc.details()}")
                    continue
                note(("Generate", "stored" if made.stored else "not stored", current))
                try:
                    client.get_sample(made.samples[0].sample_id)
                    note(("GetSample", "OK", current))
                except grpc.RpcError as exc:
                    code, details = exc.code(), exc.details()
                    note(("GetSample", code.name, current))
                    if not ((code == UNAVAILABLE and "sample cache is unreachable" in details)
                            or (code == NOT_FOUND and "unknown or expired sample id" in details)):
                        unexpected.append(f"GetSample {code.name}: {details}")

    try:
        with ThreadPoolExecutor(6) as pool:
            jobs = [pool.submit(client_loop, k) for k in range(6)]
            time.sleep(1.0)
            phase[0] = "down"
            own_redis.stop()
            time.sleep(1.5)
            phase[0] = "back"
            own_redis.start()
            wait_until(lambda: outcomes[("GetSample", "OK", "back")] >= 20, 15, "lookups to work again")
            time.sleep(0.5)
            stop.set()
            for job in jobs:
                job.result(60)
        errors = _metric(server, "latentforge_cache_errors_total", {"backend": "redis", "operation": "put"})
    finally:
        stop.set()
        server.stop()
    print(f"\nredis outage under load: {sum(outcomes.values())} calls; {dict(sorted(outcomes.items()))}; "
          f"cache put errors {errors:.0f}; unexpected {len(unexpected)}")
    assert not unexpected, unexpected[:5]
    generated = sum(v for k, v in outcomes.items() if k[0] == "Generate")
    assert generated > 100 and errors > 0
    assert outcomes[("Generate", "not stored", "down")] > 0 and outcomes[("GetSample", "UNAVAILABLE", "down")] > 0
    assert outcomes[("Generate", "stored", "up")] > 0 and outcomes[("GetSample", "OK", "back")] >= 20


# ---- model versions ---------------------------------------------------------------------------


def test_new_versions_swap_in_under_load_and_broken_ones_are_refused(model_repo, tmp_path, caplog):
    """Six clients generate from the newest version while v2 (good), v3 (bad sha256) and v4
    (cut-short ONNX) appear: every request succeeds, answers move from v1 to v2 and never back,
    v3 and v4 are refused, logged and counted."""
    repo = tmp_path / "models"
    shutil.copytree(model_repo / "mnist-dcgan", repo / "mnist-dcgan")
    server = start_server(repo, reload_interval_s=0.1, render_cache=False)
    versions: Counter = Counter()
    failures: list[str] = []
    went_back: list[int] = []
    stop = threading.Event()

    def client_loop(k: int) -> None:
        newest = 1
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            for n in range(5000):
                if stop.is_set():
                    return
                count = 1 + (n * 7 + k) % 8
                try:
                    r = stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=count), timeout=30)
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                if len(r.samples) != count:
                    failures.append(f"asked {count}, got {len(r.samples)}")
                versions[r.version] += 1
                if r.version < newest:
                    went_back.append(r.version)
                newest = max(newest, r.version)

    model_dir = repo / "mnist-dcgan"
    try:
        with caplog.at_level(logging.INFO, logger="latentforge"), ThreadPoolExecutor(6) as pool:
            jobs = [pool.submit(client_loop, k) for k in range(6)]
            time.sleep(0.7)
            publish_version(model_dir, 2)
            wait_until(lambda: versions[2] > 20, 15, "version 2 to serve")
            publish_version(model_dir, 3, tamper="sha256")
            publish_version(model_dir, 4, tamper="onnx")
            wait_until(lambda: _metric(server, "latentforge_model_load_failures_total", DCGAN) >= 2, 15, "refusals")
            seen = sum(versions.values())
            wait_until(lambda: sum(versions.values()) > seen + 100, 15, "more requests after the refusals")
            stop.set()
            for job in jobs:
                job.result(60)
        with GenerationClient(server.target) as client:
            listed = sorted(m.version for m in client.list_models())
        refused = {r.fields["version"]: r.fields["error"] for r in caplog.records
                   if r.getMessage() == "model_load_failed"}
        load_failures = _metric(server, "latentforge_model_load_failures_total", DCGAN)
    finally:
        stop.set()
        server.stop()
    total = sum(versions.values()) + len(failures)
    print(f"\nversion swap under load: {total} requests, {len(failures)} failed; answers by version "
          f"{dict(sorted(versions.items()))}; refused versions {sorted(refused)}")
    assert not failures, failures[:5]
    assert not went_back, "a client got an older version after a newer one"
    assert set(versions) == {1, 2} and versions[1] > 0 and versions[2] > 100
    assert listed == [1, 2] and load_failures == 2
    assert "fails its sha256 check" in refused[3]
    assert "not a valid ONNX file" in refused[4]


def test_a_deleted_version_is_unloaded_without_failing_its_requests_in_flight(model_repo, tmp_path):
    repo = tmp_path / "models"
    shutil.copytree(model_repo / "mnist-dcgan", repo / "mnist-dcgan")
    publish_version(repo / "mnist-dcgan", 2)
    server = start_server(repo, reload_interval_s=0.1, workers=1, render_cache=False)
    gate = Gate()
    v1 = {"model": "mnist-dcgan", "version": "1"}
    try:
        hold_a_batch_slot(server, gate)  # the only batch slot, on v2: v1 requests wait in its queue
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            pinned = [stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", version=1, count=2, seed=k),
                                           timeout=30) for k in range(4)]
            wait_until(lambda: _metric(server, "latentforge_queue_depth", v1) == 4, 10, "v1 requests to queue")
            shutil.rmtree(repo / "mnist-dcgan" / "1")
            wait_until(lambda: [m.version for m in server.server.generation.repository.all()] == [2], 10, "v1 to be unloaded")
            with pytest.raises(grpc.RpcError) as info:  # new requests for v1: it is gone
                stub.Generate(pb.GenerateRequest(model="mnist-dcgan", version=1, count=1), timeout=30)
            assert info.value.code() == NOT_FOUND and "has no version 1" in info.value.details()
            gate.release.set()
            answers = [f.result(30) for f in pinned]  # those in flight finish on v1
            assert [(a.version, len(a.samples)) for a in answers] == [(1, 2)] * 4
            assert stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1), timeout=30).version == 2
        # The batcher let go of the unloaded version's queue (and so of its ONNX Runtime sessions).
        queued_versions = server.call(_queue_versions(server.server.generation.runner))
        assert 1 not in queued_versions and 2 in queued_versions
        # The unloaded version's series are no longer exported; the serving version's are.
        get = server.server.registry.get_sample_value
        assert get("latentforge_batch_size_count", GEN) is None
        assert get("latentforge_queue_depth", v1) is None and get("latentforge_queue_wait_seconds_count", v1) is None
        assert get("latentforge_inference_duration_seconds_count", {**GEN, "provider": "CPUExecutionProvider"}) is None
        assert get("latentforge_model_info", {**v1, "provider": "CPUExecutionProvider", "kind": "gan"}) is None
        assert get("latentforge_batch_size_count", {**GEN, "version": "2"}) >= 1
    finally:
        gate.release.set()
        server.stop()


async def _queue_versions(runner) -> set[int]:
    return {q.model.version for q in runner._queues.values()}


# ---- clients that went away -------------------------------------------------------------------


def test_cancelled_requests_are_never_computed(model_repo):
    server = start_server(model_repo, workers=1, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            calls = [stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", count=5, seed=k), timeout=30)
                     for k in range(3)]
            stream = stub.GenerateStream(pb.GenerateRequest(model="mnist-dcgan", count=8, seed=9), timeout=30)
            labels = {"model": "mnist-dcgan", "version": "1"}
            wait_until(lambda: _metric(server, "latentforge_queue_depth", labels) == 3 + 1, 10, "requests to queue")
            for call in calls:
                call.cancel()
            stream.cancel()  # the client goes away before the stream's first chunk ran
            wait_until(lambda: _metric(server, "latentforge_requests_in_flight", {"method": "Generate", "protocol": "grpc"}) == 0
                  and _metric(server, "latentforge_requests_in_flight", {"method": "GenerateStream", "protocol": "grpc"}) == 0,
                  10, "the server to see the cancellations")
            gate.release.set()
            assert len(stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=2, seed=1), timeout=30).samples) == 2
        assert _metric(server, "latentforge_batch_size_sum", GEN) == 2 + 2  # the held rows, then the last call
        assert _metric(server, "latentforge_queue_depth", labels) == 0
        assert _metric(server, "latentforge_requests_total", {"method": "Generate", "code": "CANCELLED", "protocol": "grpc"}) == 3
    finally:
        gate.release.set()
        server.stop()


def test_a_cancelled_request_whose_batch_waits_for_a_thread_is_not_run(model_repo):
    """A batch already handed to the executor (all its threads busy) skips requests cancelled
    meanwhile."""
    from services.generation.batching import BatchingRunner

    model, metrics = load_model(model_repo, "mnist-dcgan")
    z = np.zeros((3, model.manifest.latent_dim), np.float32)
    gate = Gate()

    async def go():
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:  # one thread, two batch slots: the second batch waits
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.0, max_queue_size=100,
                                    max_concurrent=2)
            try:
                blocker = asyncio.ensure_future(runner_decode(runner, model, z[:1], None, finish=gate))
                await loop.run_in_executor(None, gate.entered.wait, 10)
                gone = asyncio.ensure_future(runner_decode(runner, model, z, None))
                await asyncio.sleep(0.05)
                assert runner._free == 0  # both batches launched; the second one waits for the thread
                gone.cancel()
                await asyncio.sleep(0.05)
                gate.release.set()
                return await asyncio.gather(blocker, gone, return_exceptions=True)
            finally:
                gate.release.set()
                await runner.close()

    blocker, gone = asyncio.run(go())
    assert len(blocker) == 1 and isinstance(gone, asyncio.CancelledError)
    assert metrics.registry.get_sample_value("latentforge_batch_size_sum", GEN) == 1  # the 3 rows never ran
