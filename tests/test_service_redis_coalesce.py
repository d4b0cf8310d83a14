"""Coalesced Redis writes: concurrent ``put_many``/``put_rendered`` calls share one pipeline
(counted with Redis' own ``INFO commandstats`` and ``INFO stats``), every caller returns only
once its records are stored, a hung Redis fails every joined caller, a cancelled caller loses
nobody's write, and ``close`` answers every caller still waiting. Real redis-server processes."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Coroutine
from typing import Any

import numpy as np
import pytest

from services.generation.cache import (
    CacheUnavailable,
    RedisSampleCache,
    SampleRecord,
    WriteCoalescer,
    new_sample_id,
)
from services.generation.cache.breaker import BreakerSettings
from services.generation.metrics import Metrics
from tests.helpers.processes import RedisProcess
from tests.test_service_redis_breaker import frozen

REDIS = {"backend": "redis"}
TTL_S = 120


def _record(i: int, context: bytes | None = None) -> SampleRecord:
    return SampleRecord(new_sample_id(), "m", 1, np.arange(4, dtype=np.float32) + i, "generate", seed=i,
                        context=context)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on a fresh loop and fail on anything the loop reports to its exception
    handler, such as "Future exception was never retrieved" (checked after a collection)."""
    problems: list[str] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: problems.append(str(context.get("message"))))
    try:
        result = loop.run_until_complete(coro)
        gc.collect()
    finally:
        loop.close()
    gc.collect()
    assert problems == []
    return result


def _calls(redis: RedisProcess | Any, command: str) -> int:
    """Calls of ``command`` Redis has served (a RedisProcess or a client of it)."""
    client = redis.client() if isinstance(redis, RedisProcess) else redis
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def _connections(client: Any) -> int:
    return int(client.info("stats")["total_connections_received"])


def _errors(cache: RedisSampleCache, operation: str) -> float:
    return cache.metrics.registry.get_sample_value("latentforge_cache_errors_total",
                                                   {**REDIS, "operation": operation}) or 0.0


def _assert_stored(redis: RedisProcess, cache: RedisSampleCache, records: list[SampleRecord]) -> None:
    """Each record's hash is there, byte for byte, with the cache's TTL."""
    r = redis.client()
    for rec in records:
        key = cache.key(rec.sample_id)
        data = r.hgetall(key)
        assert data[b"latent"] == np.asarray(rec.latent, dtype="<f4").tobytes()
        assert data[b"meta"] == json.dumps(rec.meta(), separators=(",", ":")).encode()
        assert data.get(b"context") == rec.context
        assert TTL_S - 5 <= r.ttl(key) <= TTL_S


def test_concurrent_puts_share_one_transaction_and_all_are_stored(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=2.0)
    batches = [[_record(10 * i + j, context=b"ctx" if j else None) for j in range(1 + i % 3)] for i in range(50)]
    execs, multis = _calls(own_redis, "exec"), _calls(own_redis, "multi")

    async def go() -> None:
        await asyncio.gather(*(cache.put_many(b) for b in batches))
        # Each caller returned after its write: readable through the cache right away.
        for rec in (r for b in batches for r in b):
            got = await cache.get(rec.sample_id)
            assert got is not None and got.seed == rec.seed
        await cache.close()

    _run(go())
    assert _calls(own_redis, "exec") - execs == 1 and _calls(own_redis, "multi") - multis == 1
    assert _calls(own_redis, "hset") == sum(map(len, batches))
    assert cache._sample_writes.flushes == 1
    _assert_stored(own_redis, cache, [r for b in batches for r in b])


def test_a_flush_carries_at_most_max_items_and_writes_during_a_flush_go_in_the_next(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=2.0)
    writes = cache._sample_writes
    writes.max_items = 8
    singles = [[_record(i)] for i in range(20)]
    big = [_record(100 + i) for i in range(11)]
    during = [[_record(200 + i)] for i in range(3)], [[_record(300 + i)] for i in range(5)]
    execs = _calls(own_redis, "exec")

    async def go() -> None:
        # 8 + 8 + 4 single records, then the 11-record caller alone (a caller is never split).
        await asyncio.gather(*(cache.put_many(b) for b in singles), cache.put_many(big))
        assert writes.flushes == 4 and _calls(own_redis, "exec") - execs == 4
        first = [asyncio.create_task(cache.put_many(b)) for b in during[0]]
        await asyncio.sleep(0)  # the callers join; the flusher is scheduled
        await asyncio.sleep(0)  # the flush is on the wire
        assert writes.flushes == 5 and not any(t.done() for t in first)
        second = [asyncio.create_task(cache.put_many(b)) for b in during[1]]
        await asyncio.gather(*first, *second)
        assert writes.flushes == 6  # the five that came during the flush: one more, together
        await cache.close()

    _run(go())
    assert _calls(own_redis, "exec") - execs == 6
    _assert_stored(own_redis, cache, [r for b in singles + [big] + during[0] + during[1] for r in b])


def test_rendered_outputs_share_one_pipeline(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, namespace="lfco", timeout_s=2.0, render_ttl_s=300)
    items = [{f"k{i}-{j}": bytes([i, j]) * 50 for j in range(1 + i % 2)} for i in range(30)]
    r = own_redis.client()  # one connection for the test's own looks
    sets, connections = _calls(r, "set"), _connections(r)

    async def go() -> None:
        await asyncio.gather(*(cache.put_rendered(d) for d in items))
        keys = [k for d in items for k in d]
        values = await cache.get_rendered(keys)
        assert values == [v for d in items for v in d.values()]
        await cache.close()

    _run(go())
    assert _calls(r, "set") - sets == sum(map(len, items))
    assert cache._render_writes.flushes == 1
    # One pipeline needs one connection; a pipeline per caller would have opened one each.
    assert _connections(r) - connections == 1
    assert r.get("lfco:v1:render:k0-0") == bytes([0, 0]) * 50 and 290 <= r.ttl("lfco:v1:render:k0-0") <= 300


def test_a_frozen_redis_fails_every_joined_caller_once_per_flush(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=0.1,
                             breaker=BreakerSettings(threshold=1, backoff_s=30, backoff_max_s=30))
    n = 20

    async def go() -> None:
        await cache.put_many([_record(0)])  # connected before the freeze
        with frozen(own_redis):
            outcomes = await asyncio.gather(*(cache.put_many([_record(i)]) for i in range(n)),
                                            return_exceptions=True)
            assert all(isinstance(o, CacheUnavailable) and "Timeout" in str(o) for o in outcomes), outcomes
            assert cache.breaker.opened == 1  # one flush: one failure, which opens it at threshold 1
            # Open: one refused flush answers every joined caller at once.
            outcomes = await asyncio.gather(*(cache.put_many([_record(i)]) for i in range(n)),
                                            return_exceptions=True)
            assert all(isinstance(o, CacheUnavailable) and "circuit breaker is open" in str(o) for o in outcomes)
        await cache.close()

    _run(go())
    registry = cache.metrics.registry
    assert _errors(cache, "put") == 2 * n  # counted per caller
    assert registry.get_sample_value("latentforge_cache_breaker_refused_total", REDIS) == 1  # per flush


def test_a_cancelled_caller_loses_nobody_elses_write(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=2.0)
    batches = [[_record(i)] for i in range(10)]

    async def go() -> None:
        tasks = [asyncio.create_task(cache.put_many(b)) for b in batches]
        await asyncio.sleep(0)  # all joined
        tasks[3].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(outcomes[3], asyncio.CancelledError)
        assert [o for i, o in enumerate(outcomes) if i != 3] == [None] * 9
        await cache.close()

    _run(go())
    assert cache._sample_writes.flushes == 1
    # The others' records are stored; the cancelled caller's joined the same write, so it is too.
    _assert_stored(own_redis, cache, [r for b in batches for r in b])


def test_a_cancelled_caller_of_a_failing_flush_leaves_no_unretrieved_error(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=0.1, breaker=BreakerSettings(threshold=0))

    async def go() -> None:
        await cache.put_many([_record(0)])
        with frozen(own_redis):
            tasks = [asyncio.create_task(cache.put_many([_record(i)])) for i in range(5)]
            await asyncio.sleep(0)
            for t in tasks:  # every caller gone: the batch's error has no one waiting for it
                t.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
            await asyncio.sleep(0.3)  # the flush times out with nobody left to tell
        await cache.close()

    _run(go())  # fails on "Future exception was never retrieved"
    assert cache._sample_writes.flushes == 2


def test_close_writes_what_is_pending_and_leaves_no_caller_waiting(own_redis):
    cache = RedisSampleCache(Metrics(), TTL_S, own_redis.url, timeout_s=2.0)
    batches = [[_record(i)] for i in range(12)]

    async def go() -> None:
        tasks = [asyncio.create_task(cache.put_many(b)) for b in batches]
        await asyncio.sleep(0)  # joined, flush not started yet
        await asyncio.wait_for(cache.close(), 10)
        assert all(t.done() for t in tasks)
        assert [t.result() for t in tasks] == [None] * len(tasks)

    _run(go())
    _assert_stored(own_redis, cache, [r for b in batches for r in b])


def test_a_write_error_reaches_every_caller_of_its_batch_and_the_next_batch_still_runs():
    """The coalescer alone: a failing write raises in each of its callers; the batch queued
    behind it is written; a flusher lost with its event loop does not stall the next loop."""
    written: list[list[int]] = []

    async def write(items: list[int]) -> None:
        await asyncio.sleep(0.01)
        if -1 in items:
            raise CacheUnavailable("boom")
        written.append(items)

    coalescer: WriteCoalescer[int] = WriteCoalescer(write, max_items=3)

    async def go() -> list[Any]:
        return await asyncio.gather(coalescer.submit([1]), coalescer.submit([-1]), coalescer.submit([2]),
                                    coalescer.submit([3, 4]), return_exceptions=True)

    outcomes = _run(go())
    assert [type(o) for o in outcomes] == [CacheUnavailable] * 3 + [type(None)]
    assert outcomes[0] is outcomes[1] is outcomes[2]  # one error for the batch
    assert written == [[3, 4]]

    async def abandoned() -> None:
        asyncio.get_running_loop().create_task(coalescer.submit([5]))
        await asyncio.sleep(0)  # joined, flusher scheduled; the loop ends before it runs

    asyncio.run(abandoned())
    written.clear()
    _run(coalescer.submit([6]))
    assert written == [[6]]
    with pytest.raises(ValueError):
        WriteCoalescer(write, max_items=0)
