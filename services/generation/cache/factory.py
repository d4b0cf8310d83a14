"""``make_cache``: the cache the settings ask for (Redis when a URL is given, else in-process)."""

from __future__ import annotations

from services.generation.cache.base import SampleCache
from services.generation.cache.breaker import BreakerSettings
from services.generation.cache.memory import MemorySampleCache
from services.generation.cache.redis_cache import RedisSampleCache
from services.generation.metrics import Metrics
from services.rpc.logs import event, get_logger

log = get_logger("cache")


def make_cache(metrics: Metrics, *, redis_url: str | None, ttl_s: int, max_bytes: int, namespace: str, timeout_s: float,
               render_ttl_s: int = 3600, render_max_bytes: int = 0, redis_tls_ca: str | None = None,
               redis_tls_cert: str | None = None, redis_tls_key: str | None = None,
               breaker: BreakerSettings | None = None) -> SampleCache:
    """Redis when a URL is given (behind a circuit breaker, ``breaker`` or the default one),
    else the in-process LRU, which needs none. Logs which, without secrets."""
    cache: SampleCache
    if redis_url:
        settings = BreakerSettings() if breaker is None else breaker
        cache = RedisSampleCache(metrics, ttl_s, redis_url, namespace, timeout_s, render_ttl_s,
                                 tls_ca=redis_tls_ca, tls_cert=redis_tls_cert, tls_key=redis_tls_key,
                                 breaker=settings)
        event(log, "cache_configured", backend=cache.backend, url=cache.url, tls=cache.tls, namespace=namespace,
              ttl_s=ttl_s, timeout_s=timeout_s, breaker_threshold=settings.threshold,
              breaker_backoff_s=settings.backoff_s, breaker_backoff_max_s=settings.backoff_max_s)
    else:
        cache = MemorySampleCache(metrics, ttl_s, max_bytes, render_ttl_s, render_max_bytes)
        event(log, "cache_configured", backend=cache.backend, max_bytes=max_bytes, ttl_s=ttl_s)
    return cache
