"""The sample cache: one interface test set for both backends, Redis key layout and TTL,
ids shared by replicas, and Generate surviving a Redis outage."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import pytest

from services.generation.cache import (
    CacheUnavailable,
    MemorySampleCache,
    RedisSampleCache,
    SampleRecord,
    new_sample_id,
)
from services.generation.client import Endpoint, GenerationClient
from services.generation.metrics import Metrics
from tests.helpers.servers import start_server


def _record(dim: int = 8, **kw) -> SampleRecord:
    return SampleRecord(new_sample_id(), "m", 3, np.arange(dim, dtype=np.float32) / 7, "generate", **kw)


@pytest.fixture(params=["memory", "redis"])
def cache_factory(request):
    """Build a cache of either backend (same interface tests for both)."""
    made = []

    def make(ttl_s: int = 60, max_bytes: int = 1 << 20, namespace: str = "lftest"):
        metrics = Metrics()
        if request.param == "memory":
            cache = MemorySampleCache(metrics, ttl_s, max_bytes)
        else:
            url = request.getfixturevalue("redis_proc").url
            cache = RedisSampleCache(metrics, ttl_s, url, namespace=namespace)
        made.append(cache)
        return cache, metrics

    yield make
    for cache in made:
        asyncio.run(cache.close())


def test_round_trip_hits_and_misses(cache_factory):
    cache, metrics = cache_factory()

    async def go():
        rec = _record(seed=2**64 - 1, label=3, truncation=0.7, parent_id="p1")
        await cache.put_many([rec, _record()])
        got = await cache.get(rec.sample_id)
        assert got is not None and got.latent.dtype == np.float32
        np.testing.assert_array_equal(got.latent, rec.latent)
        assert (got.model, got.version, got.seed, got.label, got.parent_id) == ("m", 3, 2**64 - 1, 3, "p1")
        assert got.truncation == pytest.approx(0.7) and got.created == pytest.approx(rec.created)
        assert await cache.get("unknown") is None
        await cache.close()

    asyncio.run(go())
    backend = cache.backend
    assert metrics.registry.get_sample_value("latentforge_cache_hits_total", {"backend": backend}) == 1
    assert metrics.registry.get_sample_value("latentforge_cache_misses_total", {"backend": backend}) == 1


def test_entries_expire_after_the_ttl(cache_factory):
    cache, _ = cache_factory(ttl_s=1)

    async def go():
        rec = _record()
        await cache.put_many([rec])
        assert await cache.get(rec.sample_id) is not None
        await asyncio.sleep(1.2)
        assert await cache.get(rec.sample_id) is None
        await cache.close()

    asyncio.run(go())


def test_memory_cache_stays_within_its_byte_bound():
    cache = MemorySampleCache(Metrics(), 60, max_bytes=10_000)

    async def go():
        records = [_record(dim=256) for _ in range(7)]  # 1024 latent bytes + overhead: 6 fit
        await cache.put_many(records[:5])
        await cache.get(records[0].sample_id)  # now the most recently used
        await cache.put_many(records[5:])
        assert len(cache) == 6 and cache.size_bytes <= 10_000
        assert await cache.get(records[1].sample_id) is None  # least recently used went first
        for kept in (records[0], *records[2:]):
            assert await cache.get(kept.sample_id) is not None

    asyncio.run(go())


def test_redis_key_layout_float32_bytes_and_ttl(redis_proc):
    cache = RedisSampleCache(Metrics(), 300, redis_proc.url, namespace="ns1")
    rec = _record(dim=5)

    async def go():
        await cache.put_many([rec])
        await cache.close()

    asyncio.run(go())
    r = redis_proc.client()
    key = f"ns1:v1:sample:{rec.sample_id}"
    assert r.exists(key)
    assert 0 < r.ttl(key) <= 300
    assert r.hget(key, "latent") == rec.latent.astype("<f4").tobytes()
    # Every key the service writes carries a TTL.
    assert all(r.ttl(k) > 0 for k in r.scan_iter("ns1:*"))


def test_redis_unreachable_raises_cache_unavailable_and_counts(own_redis):
    cache = RedisSampleCache(Metrics(), 60, own_redis.url)
    own_redis.stop()

    async def go():
        with pytest.raises(CacheUnavailable):
            await cache.put_many([_record()])
        with pytest.raises(CacheUnavailable):
            await cache.get("abc")
        await cache.close()

    asyncio.run(go())
    reg = cache.metrics.registry
    assert reg.get_sample_value("latentforge_cache_errors_total", {"backend": "redis", "operation": "put"}) == 1
    assert reg.get_sample_value("latentforge_cache_errors_total", {"backend": "redis", "operation": "get"}) == 1


def test_ids_from_one_replica_resolve_on_another(redis_servers):
    a, b = redis_servers
    with GenerationClient(a.target) as ca, GenerationClient(b.target) as cb:
        made = ca.generate("mnist-dcgan", 2, seed=77, return_latents=True)
        stored = cb.get_sample(made.samples[1].sample_id)
        assert stored.seed == 78
        np.testing.assert_array_equal(stored.latent, made.samples[1].latent)
        frames = cb.interpolate("mnist-dcgan", Endpoint(sample_id=made.samples[0].sample_id),
                                Endpoint(sample_id=made.samples[1].sample_id), 3, return_latents=True)
        np.testing.assert_array_equal(frames.samples[0].latent, made.samples[0].latent)
        variation = cb.variations(made.samples[0].sample_id, 1, 0.2)
        assert ca.get_sample(variation.samples[0].sample_id).parent_sample_id == made.samples[0].sample_id


def test_generate_survives_a_redis_outage_and_recovers(model_repo, own_redis):
    server = start_server(model_repo, redis_url=own_redis.url)
    try:
        with GenerationClient(server.target) as client:
            before = client.generate("mnist-dcgan", 1, seed=1)
            assert before.stored
            own_redis.stop()
            during = client.generate("mnist-dcgan", 2, seed=1)
            assert not during.stored and len(during.samples) == 2
            assert len(list(client.generate_stream("mnist-dcgan", 2))) == 2
            with pytest.raises(grpc.RpcError) as info:
                client.get_sample(before.samples[0].sample_id)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "cache is unreachable" in info.value.details()
            errors = server.server.registry.get_sample_value(
                "latentforge_cache_errors_total", {"backend": "redis", "operation": "put"})
            assert errors >= 2
            own_redis.start()  # same port, empty: old ids are gone, new ones work again
            deadline = time.monotonic() + 10
            while not (after := client.generate("mnist-dcgan", 1)).stored:
                assert time.monotonic() < deadline, "did not recover after Redis came back"
                time.sleep(0.1)
            assert client.get_sample(after.samples[0].sample_id).model == "mnist-dcgan"
    finally:
        server.stop()
