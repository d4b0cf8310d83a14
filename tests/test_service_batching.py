"""Dynamic batching: concurrent requests share ONNX Runtime calls and get exactly the rows
they would get alone (bit for bit on CPU); deadlines expire in the queue without running; a full
queue answers RESOURCE_EXHAUSTED at once."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest

from latentforge.v1 import generation_pb2 as pb
from latentforge.v1 import generation_pb2_grpc as pb_grpc
from services.generation.client import GenerationClient
from tests.helpers.servers import (
    decode,
    runner_decode,
    GEN,
    Gate,
    hold_a_batch_slot,
    load_model,
    start_server,
    write_conditional_model,
)


@pytest.fixture(scope="module")
def mixed_repo(model_repo: Path, tmp_path_factory) -> Path:
    """mnist-dcgan (unconditional, trained) and cond-toy (10 classes) side by side."""
    import shutil

    repo = tmp_path_factory.mktemp("mixed")
    shutil.copytree(model_repo / "mnist-dcgan", repo / "mnist-dcgan")
    write_conditional_model(repo)
    return repo


def _generate(stub, model: str, count: int, seed: int, label: int | None, fmt: int) -> pb.GenerateResponse:
    request = pb.GenerateRequest(model=model, count=count, seed=seed, format=fmt)
    if label is not None:
        request.label = label
    return stub.Generate(request, timeout=30)


def test_concurrent_requests_with_different_seeds_counts_and_labels_get_their_own_outputs(mixed_repo):
    """Many concurrent requests through the batcher equal the same requests run one by one
    without batching, bit for bit, for PNG and tensor outputs."""
    batched = start_server(mixed_repo, batching=True, max_queue_delay_ms=20.0, workers=1, render_cache=False,
                           max_batch_size=16)
    direct = start_server(mixed_repo, batching=False, render_cache=False)
    rng = np.random.default_rng(1)
    requests = []
    for k in range(40):
        model = "cond-toy" if k % 2 else "mnist-dcgan"
        label = int(rng.integers(0, 10)) if model == "cond-toy" and k % 3 else None
        fmt = pb.OUTPUT_FORMAT_TENSOR if k % 4 < 2 else pb.OUTPUT_FORMAT_PNG
        requests.append((model, int(rng.integers(1, 24)), 10_000 + 97 * k, label, fmt))  # counts up to 23 > batch 16
    try:
        with grpc.insecure_channel(batched.target) as bc, grpc.insecure_channel(direct.target) as dc:
            bstub, dstub = pb_grpc.GenerationServiceStub(bc), pb_grpc.GenerationServiceStub(dc)
            with ThreadPoolExecutor(16) as pool:
                got = list(pool.map(lambda r: _generate(bstub, *r), requests))
            want = [_generate(dstub, *r) for r in requests]
        for (model, count, seed, label, fmt), g, w in zip(requests, got, want):
            assert g.model == model and len(g.samples) == count == len(w.samples)
            for i, (a, b) in enumerate(zip(g.samples, w.samples)):
                assert a.seed == b.seed == seed + i and a.index == i
                assert a.label == b.label
                if label is not None:
                    assert a.label == label
                assert a.image.SerializeToString() == b.image.SerializeToString(), (model, count, seed, i)
        reg = batched.server.registry
        rows = reg.get_sample_value("latentforge_batch_size_sum", GEN)
        calls = reg.get_sample_value("latentforge_batch_size_count", GEN)
        assert rows == sum(r[1] for r in requests if r[0] == "mnist-dcgan")
        assert calls >= rows / 16  # never more than max_batch_size rows per call
    finally:
        batched.stop()
        direct.stop()


def test_requests_queued_together_run_as_one_batch_and_match_alone(mixed_repo):
    """Deterministic: requests of mixed sizes and labels enqueued in one loop turn form one ORT
    call, and each gets exactly the rows the model gives it alone."""
    from services.generation.batching import BatchingRunner

    model, metrics = load_model(mixed_repo, "cond-toy")
    rng = np.random.default_rng(0)
    counts = [1, 3, 2, 5, 1, 4]
    zs = [rng.standard_normal((n, 8)).astype(np.float32) for n in counts]
    labels = [None if k == 2 else rng.integers(0, 10, n).astype(np.int64) for k, n in enumerate(counts)]

    async def go():
        with ThreadPoolExecutor(2) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.05, max_queue_size=100,
                                    max_concurrent=2)
            try:
                return await asyncio.gather(*(runner_decode(runner, model, z, lab) for z, lab in zip(zs, labels)))
            finally:
                await runner.close()

    outputs = asyncio.run(go())
    for z, lab, out in zip(zs, labels, outputs):
        np.testing.assert_array_equal(out, decode(model, z, lab))  # bit for bit
    cond = {"model": "cond-toy", "version": "1", "graph": "generator"}
    assert metrics.registry.get_sample_value("latentforge_batch_size_count", cond) == 1
    assert metrics.registry.get_sample_value("latentforge_batch_size_sum", cond) == sum(counts)


def test_a_deadline_that_passes_in_the_queue_is_answered_without_running(model_repo):
    from services.generation.batching import BatchingRunner
    from services.errors import DeadlineExceeded
    from services.rpc.status import status_code

    model, metrics = load_model(model_repo, "mnist-dcgan")
    z = np.zeros((3, model.manifest.latent_dim), np.float32)
    gate = Gate()

    async def go():
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.0, max_queue_size=100,
                                    max_concurrent=1)
            try:
                blocker = asyncio.ensure_future(runner_decode(runner, model, z[:1], None, finish=gate))
                await loop.run_in_executor(None, gate.entered.wait, 10)
                late = asyncio.ensure_future(runner_decode(runner, model, z, None, deadline=loop.time() + 0.05))
                on_time = asyncio.ensure_future(runner_decode(runner, model, z[:2], None, deadline=loop.time() + 30))
                await asyncio.sleep(0.2)
                gate.release.set()
                return await asyncio.gather(blocker, late, on_time, return_exceptions=True)
            finally:
                gate.release.set()
                await runner.close()

    blocker, late, on_time = asyncio.run(go())
    assert len(blocker) == 1
    assert isinstance(late, DeadlineExceeded) and status_code(late) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert on_time.shape == (2, *model.image_shape)
    reg = metrics.registry
    assert reg.get_sample_value("latentforge_batch_size_sum", GEN) == 1 + 2  # the late 3 rows never ran
    assert reg.get_sample_value("latentforge_queue_expired_total", {"model": "mnist-dcgan", "version": "1"}) == 1


def test_grpc_deadline_expiring_in_the_queue_is_deadline_exceeded_and_never_runs(model_repo):
    server = start_server(model_repo, workers=1, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=5, seed=1), timeout=0.3)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            gate.release.set()
            assert len(stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=2, seed=1), timeout=30).samples) == 2
        reg = server.server.registry
        assert reg.get_sample_value("latentforge_batch_size_sum", GEN) == 2 + 2  # the gate's and the last; the 5 rows never ran
        depth = reg.get_sample_value("latentforge_queue_depth", {"model": "mnist-dcgan", "version": "1"})
        assert depth == 0
    finally:
        gate.release.set()
        server.stop()


def test_a_full_queue_answers_resource_exhausted_at_once(model_repo):
    server = start_server(model_repo, workers=1, max_queue_size=2, render_cache=False)
    gate = Gate()
    try:
        hold_a_batch_slot(server, gate)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.GenerationServiceStub(channel)
            queued = [stub.Generate.future(pb.GenerateRequest(model="mnist-dcgan", count=1, seed=k), timeout=30)
                      for k in range(2)]
            deadline = time.monotonic() + 10
            labels = {"model": "mnist-dcgan", "version": "1"}
            while server.server.registry.get_sample_value("latentforge_queue_depth", labels) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            t0 = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(model="mnist-dcgan", count=1, seed=9), timeout=30)
            assert time.perf_counter() - t0 < 1.0  # refused at once, not after waiting
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "full" in info.value.details()
            gate.release.set()
            assert [len(f.result().samples) for f in queued] == [1, 1]
        assert server.server.registry.get_sample_value("latentforge_queue_rejected_total", labels) == 1
    finally:
        gate.release.set()
        server.stop()


def test_a_request_larger_than_the_batch_limit_is_split(model_repo):
    server = start_server(model_repo, max_batch_size=4, render_cache=False)
    try:
        with GenerationClient(server.target) as client:
            result = client.generate("mnist-dcgan", 10, seed=5, fmt="tensor")
            assert len(result.samples) == 10
            alone = [client.generate("mnist-dcgan", 1, seed=5 + i, fmt="tensor").samples[0] for i in range(10)]
        for a, b in zip(result.samples, alone):
            np.testing.assert_array_equal(a.image.tensor, b.image.tensor)
        reg = server.server.registry
        assert reg.get_sample_value("latentforge_batch_size_count", GEN) == 3 + 10  # 4 + 4 + 2, then the singles
    finally:
        server.stop()


def test_without_batching_each_request_runs_alone_with_the_same_answers(model_repo):
    server = start_server(model_repo, batching=False, render_cache=False)
    try:
        with GenerationClient(server.target) as client:
            a = client.generate("mnist-dcgan", 3, seed=21, fmt="tensor")
            b = client.generate("mnist-dcgan", 3, seed=21, fmt="tensor")
        for x, y in zip(a.samples, b.samples):
            np.testing.assert_array_equal(x.image.tensor, y.image.tensor)
        assert server.server.registry.get_sample_value("latentforge_batch_size_count", GEN) == 2
    finally:
        server.stop()


def test_without_batching_a_full_queue_answers_resource_exhausted_at_once(model_repo):
    from services.errors import ResourceExhausted
    from services.generation.batching import DirectRunner

    model, metrics = load_model(model_repo, "mnist-dcgan")
    z = np.zeros((1, model.manifest.latent_dim), np.float32)
    gate = Gate()
    labels = {"model": "mnist-dcgan", "version": "1"}

    async def go():
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            runner = DirectRunner(pool, metrics, max_batch_size=64, max_queue_size=2)
            try:
                blocker = asyncio.ensure_future(runner_decode(runner, model, z, None, finish=gate))
                await loop.run_in_executor(None, gate.entered.wait, 10)  # running: no longer queued
                queued = [asyncio.ensure_future(runner_decode(runner, model, z, None)) for _ in range(2)]
                await asyncio.sleep(0.05)
                assert metrics.registry.get_sample_value("latentforge_queue_depth", labels) == 2
                with pytest.raises(ResourceExhausted, match="full"):
                    await runner_decode(runner, model, z, None)
                gate.release.set()
                results = await asyncio.gather(blocker, *queued)
                # the queue drained: a new request is accepted again
                results.append(await runner_decode(runner, model, z, None))
                return results
            finally:
                gate.release.set()
                await runner.close()

    results = asyncio.run(go())
    assert len(results) == 4
    reg = metrics.registry
    assert reg.get_sample_value("latentforge_queue_rejected_total", labels) == 1
    assert reg.get_sample_value("latentforge_queue_depth", labels) == 0


def test_a_failed_chunk_cancels_the_other_chunks_of_its_request(model_repo):
    from services.generation.batching import BatchingRunner

    model, metrics = load_model(model_repo, "mnist-dcgan")
    z = np.zeros((8, model.manifest.latent_dim), np.float32)
    calls = []

    def fail_first(outputs):
        calls.append(len(outputs["image"]))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return list(outputs["image"])

    async def go():
        with ThreadPoolExecutor(1) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=2, max_queue_delay_s=0.0, max_queue_size=100,
                                    max_concurrent=1)
            try:
                with pytest.raises(RuntimeError, match="boom"):
                    await runner_decode(runner, model, z, None, finish=fail_first)  # 4 chunks of 2 rows
                await asyncio.sleep(0.2)  # a sibling would have run by now
                return sum(len(q.items) for q in runner._queues.values())
            finally:
                await runner.close()

    left = asyncio.run(go())
    assert left == 0
    assert len(calls) <= 2, calls  # the answered request's other chunks did not run (at most one had started)
    assert metrics.registry.get_sample_value("latentforge_queue_depth", {"model": "mnist-dcgan", "version": "1"}) == 0


def test_a_lone_small_request_runs_at_once_on_the_calling_thread_and_queues_when_others_run(mixed_repo):
    """inline_rows: with nothing queued or running, a request of at most that many rows runs on
    the event loop's thread (no hand-off); while a batch runs, the same request queues."""
    import threading

    from services.generation.batching import BatchingRunner

    model, metrics = load_model(mixed_repo, "cond-toy")
    z = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    threads: list[str] = []

    def where(out: dict) -> list:
        threads.append(threading.current_thread().name)
        return list(out["image"])

    async def go():
        gate = Gate()
        with ThreadPoolExecutor(1, thread_name_prefix="worker") as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.0, max_queue_size=100,
                                    max_concurrent=1, inline_rows=1)
            try:
                alone = await runner_decode(runner, model, z[:1], finish=where)
                two = await runner_decode(runner, model, z, finish=where)  # more rows than inline_rows: queued
                blocker = asyncio.ensure_future(runner_decode(runner, model, z, finish=gate))
                await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)
                behind = asyncio.ensure_future(runner_decode(runner, model, z[:1], finish=where))
                await asyncio.sleep(0.05)
                gate.release.set()
                await blocker
                return alone, two, await behind
            finally:
                gate.release.set()
                await runner.close()

    alone, two, behind = asyncio.run(go())
    assert threads[0] == threading.main_thread().name
    assert threads[1].startswith("worker") and threads[2].startswith("worker")
    np.testing.assert_array_equal(alone[0], decode(model, z[:1])[0])
    np.testing.assert_array_equal(behind[0], alone[0])


def test_feeds_that_do_not_fit_fail_only_their_own_request_of_a_batch(mixed_repo):
    """The batcher merges by feed layout and knows no task; a request whose values the graph
    refuses (here labels out of the int64 kind) fails alone, its batch neighbours are answered."""
    from latentforge.runtime import FeedError
    from services.generation.batching import BatchingRunner

    model, metrics = load_model(mixed_repo, "cond-toy")
    z = np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32)
    role = model.graph_for("decode")

    async def go():
        with ThreadPoolExecutor(1) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.05, max_queue_size=100,
                                    max_concurrent=1)
            try:
                return await asyncio.gather(
                    runner.run(model, role, {"z": z[:1]}),
                    runner.run(model, role, {"z": z[1:], "labels": np.zeros(2, np.float32)}),  # floats: refused
                    runner.run(model, role, {"z": z[:2], "labels": np.array([3, 4])}),
                    return_exceptions=True)
            finally:
                await runner.close()

    ok_a, bad, ok_b = asyncio.run(go())
    assert isinstance(bad, FeedError) and "labels is float32" in str(bad)
    np.testing.assert_array_equal(ok_a["image"], decode(model, z[:1]))
    np.testing.assert_array_equal(ok_b["image"], decode(model, z[:2], np.array([3, 4])))


def test_deferred_feeds_are_made_on_the_worker_and_batch_with_ready_feeds(mixed_repo):
    """DeferredFeeds queue by the layout of their ``like`` arrays and are made on the worker
    thread that runs their batch: one ORT call for deferred and ready requests together, each
    answered with its own rows (and its respond's result, made on that worker thread); a make
    that fails fails only its own request."""
    import threading

    from services.generation.batching import BatchingRunner, DeferredFeeds

    model, metrics = load_model(mixed_repo, "cond-toy")
    role = model.graph_for("decode")
    rng = np.random.default_rng(5)
    z = rng.standard_normal((6, 8)).astype(np.float32)
    labels = rng.integers(0, 10, 6).astype(np.int64)
    like = {"z": np.empty((0, 8), np.float32), "labels": np.empty(0, np.int64)}
    made_on: list[str] = []

    def maker(rows: slice):
        def make():
            made_on.append(threading.current_thread().name)
            return {"z": z[rows], "labels": labels[rows]}
        return make

    def broken():
        raise ValueError("no latents for this one")

    def respond(out):
        return threading.current_thread().name, out["image"]

    async def go():
        gate = Gate()
        with ThreadPoolExecutor(1, thread_name_prefix="worker") as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.05, max_queue_size=100,
                                    max_concurrent=1)
            try:
                blocker = asyncio.ensure_future(runner_decode(runner, model, z[:2], labels[:2], finish=gate))
                await asyncio.get_running_loop().run_in_executor(None, gate.entered.wait, 10)
                queued = [
                    runner.run(model, role, DeferredFeeds(2, like, maker(slice(0, 2)))),
                    runner.run(model, role, {"z": z[2:3], "labels": labels[2:3]}),
                    runner.run(model, role, DeferredFeeds(1, like, broken)),
                    runner.run(model, role, DeferredFeeds(3, like, maker(slice(3, 6))), respond=respond),
                ]
                answers = asyncio.ensure_future(asyncio.gather(*queued, return_exceptions=True))
                await asyncio.sleep(0.05)
                gate.release.set()
                await blocker
                return await answers
            finally:
                gate.release.set()
                await runner.close()

    before = metrics.registry.get_sample_value("latentforge_batch_size_count",
                                               {"model": "cond-toy", "version": "1", "graph": "generator"}) or 0
    first, ready, failed, last = asyncio.run(go())
    assert made_on and all(name.startswith("worker") for name in made_on)
    np.testing.assert_array_equal(first["image"], decode(model, z[:2], labels[:2]))
    np.testing.assert_array_equal(ready["image"], decode(model, z[2:3], labels[2:3]))
    assert isinstance(failed, ValueError) and "no latents" in str(failed)
    thread, image = last
    assert thread.startswith("worker")
    np.testing.assert_array_equal(image, decode(model, z[3:6], labels[3:6]))
    after = metrics.registry.get_sample_value("latentforge_batch_size_count",
                                              {"model": "cond-toy", "version": "1", "graph": "generator"})
    assert after == before + 2  # the blocker's batch, then one batch for the three that made feeds
