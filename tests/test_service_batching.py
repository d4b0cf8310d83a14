"""Dynamic batching: concurrent requests share ONNX Runtime calls and get exactly the rows
they would get alone."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from services.client import GenerationClient
from tests.conftest_service import start_server


def test_concurrent_requests_are_batched_and_answers_match_unbatched(model_repo):
    batched = start_server(model_repo, batching=True, max_queue_delay_ms=20.0, workers=1)
    direct = start_server(model_repo, batching=False)
    try:
        seeds = list(range(1000, 1024))
        with GenerationClient(batched.target) as bc, GenerationClient(direct.target) as dc:
            with ThreadPoolExecutor(12) as pool:
                results = list(pool.map(lambda s: bc.generate("mnist-dcgan", 2, seed=s, fmt="tensor"), seeds))
            reference = [dc.generate("mnist-dcgan", 2, seed=s, fmt="tensor") for s in seeds]
        for got, want in zip(results, reference):
            assert got.seed == want.seed
            for a, b in zip(got.samples, want.samples):
                np.testing.assert_allclose(a.image.tensor, b.image.tensor, atol=1e-5)
        reg = batched.server.metrics.registry
        labels = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}
        calls = reg.get_sample_value("latentforge_batch_size_count", labels)
        rows = reg.get_sample_value("latentforge_batch_size_sum", labels)
        assert rows == 2 * len(seeds)  # the load-time warm-up bypasses the runner
        assert 1 <= calls <= len(seeds)  # how many merge depends on timing; see the runner test below
        assert reg.get_sample_value("latentforge_queue_wait_seconds_count",
                                    {"model": "mnist-dcgan", "version": "1"}) == len(seeds)
    finally:
        batched.stop()
        direct.stop()


def test_requests_queued_together_run_as_one_batch(model_repo):
    """Deterministic: 24 requests enqueued in one loop turn form one ORT call of 48 rows."""
    from services.batching import BatchingRunner
    from services.metrics import Metrics
    from services.model_repository import ModelRepository

    metrics = Metrics()
    repo = ModelRepository(model_repo, metrics, ["CPUExecutionProvider"])
    repo.refresh()
    model = repo.resolve("mnist-dcgan")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((24, 2, model.manifest.latent_dim)).astype(np.float32)

    async def go():
        with ThreadPoolExecutor(2) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=64, max_queue_delay_s=0.05, max_queue_size=100)
            try:
                return await asyncio.gather(*(runner.decode(model, z[k], None) for k in range(24)))
            finally:
                await runner.close()

    outputs = asyncio.run(go())
    for k, out in enumerate(outputs):
        np.testing.assert_allclose(out, model.run_image(z[k]), atol=1e-5)
    labels = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}
    assert metrics.registry.get_sample_value("latentforge_batch_size_count", labels) == 1
    assert metrics.registry.get_sample_value("latentforge_batch_size_sum", labels) == 48


def test_full_queue_is_resource_exhausted(model_repo):
    from services.batching import BatchingRunner
    from services.errors import ResourceExhausted
    from services.metrics import Metrics
    from services.model_repository import ModelRepository

    metrics = Metrics()
    repo = ModelRepository(model_repo, metrics, ["CPUExecutionProvider"])
    repo.refresh()
    model = repo.resolve("mnist-dcgan")
    z = np.zeros((1, model.manifest.latent_dim), np.float32)

    async def go():
        with ThreadPoolExecutor(1) as pool:
            runner = BatchingRunner(pool, metrics, max_batch_size=1, max_queue_delay_s=0.0, max_queue_size=2)
            try:
                results = await asyncio.gather(*(runner.decode(model, z, None) for _ in range(6)),
                                               return_exceptions=True)
            finally:
                await runner.close()
        return results

    results = asyncio.run(go())
    assert any(isinstance(r, ResourceExhausted) for r in results)
    assert any(isinstance(r, np.ndarray) for r in results)


def test_a_request_larger_than_the_batch_limit_is_split(model_repo):
    server = start_server(model_repo, max_batch_size=4)
    try:
        with GenerationClient(server.target) as client:
            result = client.generate("mnist-dcgan", 10, seed=5, fmt="tensor")
            assert len(result.samples) == 10
        reg = server.server.metrics.registry
        labels = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}
        assert reg.get_sample_value("latentforge_batch_size_count", labels) == 3  # 4 + 4 + 2
    finally:
        server.stop()
