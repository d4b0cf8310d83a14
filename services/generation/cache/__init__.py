"""The sample cache: sample id -> latent and metadata, with a TTL, shared by replicas; the
rendered-output cache: (model, version, latent, output parameters) -> encoded image bytes; and
style statistics: (model, version, style id) -> a style's mean and std, with the samples' TTL.

One interface (``SampleCache``), two implementations:

* ``RedisSampleCache`` - Redis via ``redis.asyncio``; key ``<namespace>:v1:sample:<id>`` holds a
  hash with the latent as float32 little-endian bytes and the metadata as JSON; rendered outputs
  are plain values under ``<namespace>:v1:render:<key>``; every key gets a TTL. For several
  replicas.
* ``MemorySampleCache`` - in-process LRUs bounded by bytes and TTL; the default when no Redis
  URL is configured (one replica).

A rendered output is only an optimisation: a lookup that fails counts as a miss and a store that
fails is dropped (both counted as cache errors), so a request never fails because of it.

The cache is not the source of truth: when it fails, operations raise ``CacheUnavailable`` and
callers decide (Generate still answers; calls that need an id fail with UNAVAILABLE). A Redis
that hangs instead of refusing connections (a frozen process, a black-holed network) would
make every operation wait out its timeout; a circuit breaker (``breaker``) stops calling it
after a few failures in a row and probes it in the background instead.

Modules, one job each:

* ``record`` - ``SampleRecord`` (what the cache keeps about one sample, and its stored form),
  ``SAMPLE_ID_PATTERN``, ``new_sample_id``, ``render_key``, ``STYLE_ID_PATTERN``, ``style_key``.
* ``base`` - the interface, ``SampleCache`` (hit/miss/error counting around the backend's
  operations), and ``CacheUnavailable``.
* ``memory`` - ``MemorySampleCache``, the in-process LRU.
* ``coalescer`` - ``WriteCoalescer``, which joins concurrent writes into one backend call.
* ``redis_cache`` - ``RedisSampleCache`` (keys, TTLs, TLS, outage logging, the breaker, coalesced
  writes) and ``redact_url``. Not named ``redis``, so that it is never mistaken for the library.
* ``breaker`` - ``CircuitBreaker`` and ``BreakerSettings``: the Redis cache's circuit breaker;
  the settings are also ``latentforge serve``'s ``redis_breaker_*`` fields.
* ``factory`` - ``make_cache``: Redis when a URL is given, else the in-process LRU.

The names below are importable from the package itself (``from services.generation.cache
import SampleRecord``).
"""

from __future__ import annotations

from services.generation.cache.base import CacheUnavailable, SampleCache
from services.generation.cache.coalescer import MAX_WRITE_BATCH, WriteCoalescer
from services.generation.cache.factory import make_cache
from services.generation.cache.memory import MemorySampleCache
from services.generation.cache.record import (
    SAMPLE_ID_PATTERN,
    STYLE_ID_PATTERN,
    SampleRecord,
    new_sample_id,
    render_key,
    style_key,
)
from services.generation.cache.redis_cache import KEY_VERSION, RedisSampleCache, redact_url

__all__ = ["KEY_VERSION", "MAX_WRITE_BATCH", "SAMPLE_ID_PATTERN", "STYLE_ID_PATTERN", "CacheUnavailable", "MemorySampleCache",
           "RedisSampleCache", "SampleCache", "SampleRecord", "WriteCoalescer", "make_cache", "new_sample_id",
           "redact_url", "render_key", "style_key"]
