"""Dynamic batching: concurrent requests share ONNX Runtime calls and get exactly the rows
they would get alone."""

from __future__ import annotations

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
        assert calls < len(seeds), f"{calls} ORT calls for {len(seeds)} concurrent requests: nothing was batched"
        assert reg.get_sample_value("latentforge_queue_wait_seconds_count",
                                    {"model": "mnist-dcgan", "version": "1"}) == len(seeds)
    finally:
        batched.stop()
        direct.stop()


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
