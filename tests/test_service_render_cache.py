"""The rendered-output cache: a repeated Generate with a named seed is served from the cache
(both backends), the outputs are byte-identical, keys are namespaced with a TTL, the in-process
store is memory-bounded, and a Redis outage only costs cache misses."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.generation.cache import MemorySampleCache, render_key
from services.generation.client import GenerationClient
from services.generation.metrics import Metrics
from tests.helpers.servers import start_server

GEN = {"model": "mnist-dcgan", "version": "1", "graph": "generator"}


@pytest.fixture(params=["memory", "redis"])
def render_server(request, model_repo):
    if request.param == "memory":
        server = start_server(model_repo)
    else:
        server = start_server(model_repo, redis_url=request.getfixturevalue("redis_proc").url,
                              cache_namespace="lfrender")
    yield server
    server.stop()


def _value(server, name: str, labels: dict) -> float:
    return server.server.registry.get_sample_value(name, labels) or 0.0


def test_a_repeated_seed_is_served_from_the_cache_byte_for_byte(render_server):
    backend = render_server.server.generation.cache.backend
    with GenerationClient(render_server.target) as client:
        first = client.generate("mnist-dcgan", 4, seed=4242)
        rows = _value(render_server, "latentforge_batch_size_sum", GEN)
        again = client.generate("mnist-dcgan", 4, seed=4242)
        assert _value(render_server, "latentforge_batch_size_sum", GEN) == rows  # nothing ran
        assert [s.image.png for s in again.samples] == [s.image.png for s in first.samples]
        assert {s.sample_id for s in again.samples}.isdisjoint(s.sample_id for s in first.samples)
        assert client.get_sample(again.samples[0].sample_id).seed == 4242  # still a stored sample
        # Overlapping seeds: only the new rows run.
        client.generate("mnist-dcgan", 6, seed=4244)
        assert _value(render_server, "latentforge_batch_size_sum", GEN) == rows + 4
        # Another output format is another entry.
        tensor = client.generate("mnist-dcgan", 1, seed=4242, fmt="tensor")
        assert tensor.samples[0].image.tensor.shape == (1, 28, 28)
        assert _value(render_server, "latentforge_batch_size_sum", GEN) == rows + 5
    assert _value(render_server, "latentforge_render_cache_hits_total", {"backend": backend}) == 4 + 2
    misses = _value(render_server, "latentforge_render_cache_misses_total", {"backend": backend})
    assert misses == 4 + 4 + 1


def test_random_seeds_skip_the_cache(render_server):
    backend = render_server.server.generation.cache.backend
    with GenerationClient(render_server.target) as client:
        client.generate("mnist-dcgan", 3)
    assert _value(render_server, "latentforge_render_cache_misses_total", {"backend": backend}) == 0


def test_redis_keys_are_namespaced_with_a_ttl(model_repo, redis_proc):
    server = start_server(model_repo, redis_url=redis_proc.url, cache_namespace="lfrkeys", render_cache_ttl_s=120)
    try:
        with GenerationClient(server.target) as client:
            client.generate("mnist-dcgan", 2, seed=77)
        keys = redis_proc.client().keys("lfrkeys:v1:render:*")
        assert len(keys) == 2
        assert all(b":mnist-dcgan:1:png1::" in k for k in keys)
        assert all(0 < redis_proc.client().ttl(k) <= 120 for k in keys)
    finally:
        server.stop()


def test_generate_works_when_redis_is_down_and_counts_the_errors(model_repo, own_redis):
    server = start_server(model_repo, redis_url=own_redis.url)
    try:
        own_redis.stop()
        with GenerationClient(server.target) as client:
            result = client.generate("mnist-dcgan", 2, seed=5)
            assert len(result.samples) == 2 and not result.stored
        errors = {op: _value(server, "latentforge_cache_errors_total", {"backend": "redis", "operation": op})
                  for op in ("get_rendered", "put_rendered")}
        assert errors == {"get_rendered": 1, "put_rendered": 1}
    finally:
        server.stop()


def test_the_in_process_store_is_bounded_by_bytes_and_ttl():
    cache = MemorySampleCache(Metrics(), ttl_s=60, max_bytes=1 << 20, render_ttl_s=60, render_max_bytes=20_000)
    z = np.zeros(8, np.float32)

    async def go():
        keys = [render_key("m", 1, z + k, None, "png1") for k in range(50)]
        await cache.put_rendered({k: bytes(1000) for k in keys})
        assert cache.rendered.size_bytes <= 20_000 and len(cache.rendered) < 50
        values = await cache.get_rendered(keys)
        assert values[-1] == bytes(1000) and values[0] is None  # least recently used went first
        cache.rendered.ttl_s = 0
        await cache.put_rendered({"k": b"x"})
        assert await cache.get_rendered(["k"]) == [None]  # expired

    asyncio.run(go())


def test_render_keys_depend_on_every_output_parameter():
    z = np.arange(8, dtype=np.float32)
    base = render_key("m", 1, z, None, "png1")
    assert base == render_key("m", 1, z.copy(), None, "png1")
    others = {render_key("m", 2, z, None, "png1"), render_key("n", 1, z, None, "png1"),
              render_key("m", 1, z, 3, "png1"), render_key("m", 1, z, None, "f32"),
              render_key("m", 1, z + np.float32(1e-6), None, "png1")}
    assert base not in others and len(others) == 5
