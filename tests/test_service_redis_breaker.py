"""A Redis that hangs instead of dying: a real redis-server frozen with SIGSTOP under a real
server. The cache's circuit breaker opens after a few timeouts, so Generate answers without
storing and id lookups answer UNAVAILABLE without calling Redis; a background PING closes it
once the process resumes (SIGCONT), and samples are stored again. Plus the breaker's back-off
and settings on their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from services.generation.cache import (
    CacheUnavailable,
    RedisSampleCache,
    SampleRecord,
    new_sample_id,
)
from services.generation.cache.breaker import BreakerSettings, BreakerState, CircuitBreaker
from services.generation.client import GenerationClient
from services.generation.config import ConfigError, load_config
from services.generation.metrics import Metrics
from tests.helpers.processes import RedisProcess, wait_until
from tests.helpers.servers import start_server

REDIS = {"backend": "redis"}


def _metric(server, name: str, labels: dict | None = None) -> float | None:
    return server.server.registry.get_sample_value(name, labels or {})


def _state(server) -> float | None:
    return _metric(server, "latentforge_cache_breaker_state", REDIS)


def _refused(server) -> float:
    return _metric(server, "latentforge_cache_breaker_refused_total", REDIS) or 0.0


@contextlib.contextmanager
def frozen(redis: RedisProcess) -> Iterator[None]:
    """The redis-server process stopped (SIGSTOP): its socket accepts, nothing answers. Always
    resumed on the way out, so the fixture can stop it."""
    assert redis.proc is not None
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        redis.proc.send_signal(signal.SIGCONT)


def _breaker_events(caplog) -> list[tuple[str, str]]:
    """(event, previous state) of each breaker transition logged."""
    return [(r.getMessage(), getattr(r, "fields", {}).get("previous")) for r in caplog.records
            if r.getMessage().startswith("cache_breaker_")]


@pytest.mark.slow
def test_a_frozen_redis_opens_the_breaker_and_a_resumed_one_closes_it(model_repo, own_redis, caplog):
    caplog.set_level(logging.DEBUG, logger="latentforge")
    server = start_server(model_repo, redis_url=own_redis.url)
    try:
        with GenerationClient(server.target, timeout_s=30) as client:
            made = client.generate("mnist-dcgan", 1, seed=11)
            assert made.stored and _state(server) == BreakerState.CLOSED
            assert client.get_sample(made.samples[0].sample_id).seed == 11

            with frozen(own_redis):
                # The first operations wait out the Redis timeout; the third failure in a row opens it.
                wait_until(lambda: not client.generate("mnist-dcgan", 1, seed=12).stored
                           and _state(server) != BreakerState.CLOSED, 15, "the breaker to open")
                refused, put_errors = _refused(server), _metric(
                    server, "latentforge_cache_errors_total", {**REDIS, "operation": "put"})

                # Open: every Generate answers, unstored, and none of its three cache operations
                # (rendered-output lookup and store, sample store) reaches Redis.
                n = 10
                for k in range(n):
                    result = client.generate("mnist-dcgan", 1, seed=100 + k)
                    assert len(result.samples) == 1 and not result.stored
                assert _state(server) in (BreakerState.OPEN, BreakerState.HALF_OPEN)
                assert _refused(server) - refused == 3 * n
                assert _metric(server, "latentforge_cache_errors_total",
                               {**REDIS, "operation": "put"}) - put_errors == n

                # An id lookup is refused at once too: UNAVAILABLE, saying why, without calling Redis.
                with pytest.raises(grpc.RpcError) as info:
                    client.get_sample(made.samples[0].sample_id)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "sample cache is unreachable" in info.value.details()
                assert "retry later" in info.value.details()
                assert _refused(server) - refused == 3 * n + 1

                # While frozen only the probe tries Redis, and it keeps failing (open again after it).
                breaker = server.server.generation.cache.breaker
                probes = breaker.probes
                wait_until(lambda: breaker.probes >= probes + 2 and breaker.state is BreakerState.OPEN, 15,
                           "two more probes to fail")
                assert breaker.opened == 1

            # Resumed: the next probe answers and closes the breaker; samples are stored again.
            wait_until(lambda: _state(server) == BreakerState.CLOSED, 15, "the breaker to close")
            after = client.generate("mnist-dcgan", 1, seed=13)
            assert after.stored
            assert client.get_sample(after.samples[0].sample_id).seed == 13
            assert client.get_sample(made.samples[0].sample_id).seed == 11  # stored before the freeze
    finally:
        server.stop()
    events = _breaker_events(caplog)
    # One line per transition: closed -> open once, open <-> half-open per probe, half-open -> closed once.
    assert events[0] == ("cache_breaker_open", "closed")
    assert events[-1] == ("cache_breaker_closed", "half_open")
    assert events.count(("cache_breaker_open", "closed")) == 1
    assert events.count(("cache_breaker_closed", "half_open")) == 1
    probes = events.count(("cache_breaker_half_open", "open"))
    assert probes >= 3 and events.count(("cache_breaker_open", "half_open")) == probes - 1
    levels = {(r.getMessage(), r.fields.get("previous")): r.levelno for r in caplog.records
              if r.getMessage().startswith("cache_breaker_")}
    assert levels[("cache_breaker_open", "closed")] == logging.WARNING  # what an operator must see
    assert levels[("cache_breaker_closed", "half_open")] == logging.INFO
    assert levels[("cache_breaker_half_open", "open")] == logging.DEBUG  # each probe: detail
    names = [r.getMessage() for r in caplog.records]
    assert names.count("cache_unavailable") == 1 and names.count("cache_recovered") == 1


def _record() -> SampleRecord:
    return SampleRecord(new_sample_id(), "m", 1, np.zeros(4, np.float32), "generate")


def test_threshold_zero_is_no_breaker_every_operation_waits_for_redis(own_redis):
    """The behaviour without a breaker (threshold 0): each operation on a frozen Redis fails only
    after its timeout, however many failed before, and no breaker series is exported."""
    cache = RedisSampleCache(Metrics(), 60, own_redis.url, timeout_s=0.05, breaker=BreakerSettings(threshold=0))
    assert cache.breaker is None

    async def go() -> None:
        await cache.put_many([_record()])
        with frozen(own_redis):
            for _ in range(4):
                with pytest.raises(CacheUnavailable, match="Timeout"):
                    await cache.put_many([_record()])
        await cache.close()

    asyncio.run(go())
    registry = cache.metrics.registry
    assert registry.get_sample_value("latentforge_cache_errors_total", {**REDIS, "operation": "put"}) == 4
    assert registry.get_sample_value("latentforge_cache_breaker_state", REDIS) is None


def test_open_breaker_refuses_at_once_and_closes_on_a_live_redis(own_redis):
    """Directly on the cache: three timeouts open it, the fourth call is refused with a message
    naming the breaker, and the probe closes it once Redis answers again."""
    cache = RedisSampleCache(Metrics(), 60, own_redis.url, timeout_s=0.05,
                             breaker=BreakerSettings(threshold=3, backoff_s=0.05, backoff_max_s=0.1))
    registry = cache.metrics.registry

    async def go() -> None:
        with frozen(own_redis):
            for _ in range(3):
                with pytest.raises(CacheUnavailable, match="Timeout"):
                    await cache.get("abc")
            assert cache.breaker.state is not BreakerState.CLOSED
            with pytest.raises(CacheUnavailable, match="circuit breaker is open"):
                await cache.get("abc")
        for _ in range(200):
            if cache.breaker.state is BreakerState.CLOSED:
                break
            await asyncio.sleep(0.05)
        assert cache.breaker.state is BreakerState.CLOSED
        assert await cache.get("abc") is None  # a plain miss: Redis answers again
        await cache.close()

    asyncio.run(go())
    assert registry.get_sample_value("latentforge_cache_breaker_refused_total", REDIS) == 1
    assert registry.get_sample_value("latentforge_cache_errors_total", {**REDIS, "operation": "get"}) == 4
    assert registry.get_sample_value("latentforge_cache_breaker_state", REDIS) == BreakerState.CLOSED


def test_probe_back_off_doubles_to_its_cap_and_a_success_resets_the_count():
    """The breaker alone, with a probe that fails four times then answers: waits between probes
    double from backoff_s up to backoff_max_s; closing resets the failure count."""
    outcomes = iter([False, False, False, False, True])
    moves: list[tuple[str, str, dict]] = []

    async def probe() -> bool:
        return next(outcomes)

    breaker = CircuitBreaker(BreakerSettings(threshold=2, backoff_s=0.01, backoff_max_s=0.04), probe,
                             lambda old, new, facts: moves.append((old.name, new.name, facts)))

    async def go() -> None:
        breaker.failure()
        breaker.success()  # a success resets the run of failures
        breaker.failure()
        assert breaker.state is BreakerState.CLOSED and breaker.allow()
        breaker.failure()
        assert breaker.state is BreakerState.OPEN and not breaker.allow()
        breaker.failure()  # late failures while open change nothing
        for _ in range(500):
            if breaker.state is BreakerState.CLOSED:
                break
            await asyncio.sleep(0.01)
        await breaker.close()

    asyncio.run(go())
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0 and breaker.refused == 1
    waits = [facts["retry_in_s"] for _, new, facts in moves if new == "OPEN"]
    assert waits == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert [(old, new) for old, new, _ in moves][-2:] == [("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert breaker.opened == 1 and breaker.probes == 5


def test_breaker_settings_from_the_serve_config():
    config = load_config(environ={"LATENTFORGE_REDIS_BREAKER_THRESHOLD": "5"},
                         overrides={"redis_breaker_backoff_s": "0.5", "redis_breaker_backoff_max_s": "2"})
    assert config.redis_breaker() == BreakerSettings(threshold=5, backoff_s=0.5, backoff_max_s=2.0)
    assert not load_config(environ={}, overrides={"redis_breaker_threshold": 0}).redis_breaker().enabled
    for bad in ({"redis_breaker_threshold": -1}, {"redis_breaker_backoff_s": 0},
                {"redis_breaker_backoff_s": 2, "redis_breaker_backoff_max_s": 1}):
        with pytest.raises(ConfigError, match="redis_breaker"):
            load_config(environ={}, overrides=bad)


def test_an_error_reply_is_an_answer_and_does_not_open_the_breaker(redis_proc):
    """WRONGTYPE from Redis fails the lookup (CacheUnavailable) but Redis did answer: the breaker,
    which is about a Redis that does not answer, stays closed."""
    cache = RedisSampleCache(Metrics(), 60, redis_proc.url, namespace="lfbrk",
                             breaker=BreakerSettings(threshold=2))
    redis_proc.client().set("lfbrk:v1:sample:notahash", b"x", ex=60)

    async def go() -> None:
        for _ in range(4):
            with pytest.raises(CacheUnavailable, match="WRONGTYPE"):
                await cache.get("notahash")
        assert cache.breaker.state is BreakerState.CLOSED and cache.breaker.refused == 0
        await cache.close()

    asyncio.run(go())


def test_a_probe_lost_with_its_event_loop_is_started_again():
    """Opened under one event loop that then ends (its probe task cancelled): the next refused call
    on another loop starts the probe again, so the breaker cannot stay open for good."""
    async def probe() -> bool:
        return True

    breaker = CircuitBreaker(BreakerSettings(threshold=1, backoff_s=0.01, backoff_max_s=0.01), probe)

    async def open_it() -> None:
        breaker.failure()

    async def recover() -> None:
        assert not breaker.allow()
        for _ in range(300):
            if breaker.state is BreakerState.CLOSED:
                break
            await asyncio.sleep(0.01)
        await breaker.close()

    asyncio.run(open_it())
    assert breaker.state is BreakerState.OPEN
    asyncio.run(recover())
    assert breaker.state is BreakerState.CLOSED and breaker.probes == 1
