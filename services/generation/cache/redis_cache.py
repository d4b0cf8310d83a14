"""``RedisSampleCache``: the cache in Redis via ``redis.asyncio``, for several replicas. Key
``<namespace>:v1:sample:<id>`` holds a hash with the latent as float32 little-endian bytes and
the metadata as JSON; rendered outputs are plain values under ``<namespace>:v1:render:<key>``,
style statistics under ``<namespace>:v1:style:<model>:<version>:<style id>``; every key gets a TTL.

A Redis that hangs instead of refusing connections (a frozen process, a black-holed network)
would make every operation wait out its timeout; a circuit breaker
(``services.generation.cache.breaker``) stops calling it after a few failures in a row and
probes it in the background instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import numpy as np

from services.generation.cache.base import CacheUnavailable, SampleCache
from services.generation.cache.breaker import BreakerSettings, BreakerState, CircuitBreaker
from services.generation.cache.coalescer import WriteCoalescer
from services.generation.cache.record import SampleRecord
from services.generation.metrics import Metrics
from services.rpc.logs import event, get_logger

log = get_logger("cache")

KEY_VERSION = "v1"
# Log level of each breaker transition: opening is what an operator must see; the probe's
# half-open/open cycles while Redis stays down are detail.
_BREAKER_LOG_LEVEL = {(BreakerState.CLOSED, BreakerState.OPEN): 30, (BreakerState.HALF_OPEN, BreakerState.CLOSED): 20}

T = TypeVar("T")


class RedisSampleCache(SampleCache):
    """Redis-backed cache; one hash per sample, TTL set in the same transaction.

    Any redis-py URL works: ``redis://[user:password@]host:port/db`` (ACL user or plain
    ``requirepass``), ``rediss://`` for TLS (CA, client certificate and key from ``tls_*`` or
    from the URL's ``ssl_ca_certs=``/``ssl_certfile=``/``ssl_keyfile=`` query), ``unix://``.
    Keys start with ``<namespace>:v1:``, so deployments with different namespaces share a Redis
    without seeing each other's ids. The password never reaches a log line (``redact_url``).

    An outage is logged once when it starts (``cache_unavailable``), every ``_REMIND_S`` while
    it lasts, and once when Redis answers again (``cache_recovered``); every failed operation is
    counted in ``latentforge_cache_errors_total``. No reconnect loop is needed: each operation
    takes a pooled connection or opens a new one.

    A circuit breaker (``breaker``; threshold 0 turns it off) opens after that many operations in
    a row found Redis unreachable or timed out (an error reply is an answer, not counted):
    operations then raise ``CacheUnavailable`` at once without calling Redis (counted in
    ``latentforge_cache_breaker_refused_total`` as well as in the errors), and a background PING
    with the same timeout closes it again when Redis answers. Its state is the gauge
    ``latentforge_cache_breaker_state``; each transition is one log line (``cache_breaker_*``).

    Writes (samples, rendered outputs) are coalesced (``WriteCoalescer``): the callers that store
    in the same event-loop iteration share one pipeline, one ``put``/``put_rendered`` operation
    for the breaker, the timeout and the outage log. Errors are still counted per caller (each
    failed ``put_many`` adds one to ``cache_errors{operation="put"}``); a breaker refusal is
    counted once per refused pipeline.
    """

    backend = "redis"
    _REMIND_S = 30.0

    def __init__(self, metrics: Metrics, ttl_s: int, url: str, namespace: str = "lf", timeout_s: float = 0.25,
                 render_ttl_s: int = 3600, *, tls_ca: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, breaker: BreakerSettings | None = None) -> None:
        super().__init__(metrics, ttl_s)
        self.timeout_s = float(timeout_s)
        self.render_ttl_s = int(render_ttl_s)
        self.render_prefix = f"{namespace}:{KEY_VERSION}:render:"
        import redis
        import redis.asyncio as redis_asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = redact_url(url)  # for logs and messages; the real URL is not kept
        self.namespace = namespace
        self.prefix = f"{namespace}:{KEY_VERSION}:sample:"
        self.style_prefix = f"{namespace}:{KEY_VERSION}:style:"
        parts = urlsplit(url)
        self._secrets = tuple(unquote(v) for v in (parts.password, *_query_secrets(parts.query)) if v)
        tls: dict[str, Any] = {k: str(v) for k, v in (("ssl_ca_certs", tls_ca), ("ssl_certfile", tls_cert),
                                                       ("ssl_keyfile", tls_key)) if v}
        if tls and parts.scheme != "rediss":
            raise ValueError(f"Redis TLS files are set but the URL {self.url} is not rediss://")
        self.tls = parts.scheme == "rediss"
        # No retries: an unreachable Redis must cost a Generate at most one timeout.
        self._client = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            **tls,
        )
        self._redis_errors: tuple[type[BaseException], ...] = (
            redis.exceptions.RedisError,
            OSError,
            TimeoutError,
        )
        # Errors meaning Redis did not answer (what the breaker counts); an error reply such as
        # OOM or WRONGTYPE is an answer: Redis is reachable, so it is not.
        self._unreachable_errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            OSError,
            TimeoutError,
        )
        self._sample_writes: WriteCoalescer[tuple[str, dict[str, Any]]] = WriteCoalescer(self._write_samples)
        self._render_writes: WriteCoalescer[tuple[str, bytes]] = WriteCoalescer(self._write_rendered)
        self._down_since: float | None = None  # monotonic time of the first failure of an outage
        self._down_errors = 0
        self._reminded = 0.0
        settings = BreakerSettings() if breaker is None else breaker
        self.breaker: CircuitBreaker | None = None
        if settings.enabled:
            self.breaker = CircuitBreaker(settings, self._probe, self._breaker_moved)
            self._breaker_gauge = metrics.cache_breaker_state.labels(self.backend)
            self._breaker_gauge.set(BreakerState.CLOSED)

    def key(self, sample_id: str) -> str:
        """The Redis key of a sample id."""
        return self.prefix + sample_id

    def _unavailable(self, operation: str, exc: BaseException) -> CacheUnavailable:
        """Log the outage (once, then reminders), return the exception to raise."""
        text = self._describe(exc)
        now = time.monotonic()
        self._down_errors += 1
        if self._down_since is None:
            self._down_since = self._reminded = now
            event(log, "cache_unavailable", level=logging.WARNING, backend=self.backend, url=self.url, operation=operation,
                  error=text)
        elif now - self._reminded >= self._REMIND_S:
            self._reminded = now
            event(log, "cache_still_unavailable", level=logging.WARNING, backend=self.backend, url=self.url,
                  seconds=round(now - self._down_since, 1), errors=self._down_errors, error=text)
        return CacheUnavailable(text)

    def _answered(self) -> None:
        if self._down_since is not None:
            event(log, "cache_recovered", backend=self.backend, url=self.url,
                  seconds=round(time.monotonic() - self._down_since, 3), errors=self._down_errors)
            self._down_since = None
            self._down_errors = 0

    async def _run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """One Redis operation through the breaker: refused at once while it is open; a failure
        or timeout is logged, fed to the breaker and raised as CacheUnavailable."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            self._counter("cache_breaker_refused").inc()
            raise CacheUnavailable(
                f"Redis at {self.url} is not called while its circuit breaker is open (opened after "
                f"{breaker.settings.threshold} failures in a row); it is retried in the background, "
                f"next in {breaker.retry_in_s():.2f} s")
        try:
            result = await call()
        except self._redis_errors as exc:
            if breaker is not None:
                (breaker.failure if isinstance(exc, self._unreachable_errors) else breaker.success)()
            raise self._unavailable(operation, exc) from None
        if breaker is not None:
            breaker.success()
        self._answered()
        return result

    async def _probe(self) -> bool:
        """The breaker's probe: PING with the command timeout (bounded here too, so a connection
        that hangs in a way the socket timeout misses cannot stall recovery)."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                ok = bool(await self._client.ping())
        except self._redis_errors as exc:  # TimeoutError is one of them
            self._unavailable("probe", exc)  # keeps the outage's reminders going; not a request's error
            return False
        if ok:
            self._answered()
        return ok

    def _breaker_moved(self, old: BreakerState, new: BreakerState, facts: dict[str, Any]) -> None:
        """Gauge and one log line per breaker transition."""
        self._breaker_gauge.set(new)
        event(log, f"cache_breaker_{new.name.lower()}", level=_BREAKER_LOG_LEVEL.get((old, new), 10),
              backend=self.backend, url=self.url, previous=old.name.lower(), **facts)

    def _describe(self, exc: BaseException) -> str:
        text = _describe(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _put_many(self, records: list[SampleRecord]) -> None:
        # Encoded here, in the caller: a record that cannot be encoded fails its own call only.
        await self._sample_writes.submit([(self.key(rec.sample_id), _sample_fields(rec)) for rec in records])

    async def _write_samples(self, entries: list[tuple[str, dict[str, Any]]]) -> None:
        """One transaction for the joined callers' samples: HSET then EXPIRE per key."""
        async def put() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                for key, fields in entries:
                    pipe.hset(key, mapping=fields)
                    pipe.expire(key, self.ttl_s)
                await pipe.execute()

        await self._run("put", put)

    async def _get(self, sample_id: str) -> SampleRecord | None:
        data = await self._run("get", lambda: self._client.hgetall(self.key(sample_id)))
        if not data or b"latent" not in data or b"meta" not in data:
            return None
        try:
            return SampleRecord.from_parts(sample_id, data[b"latent"], json.loads(data[b"meta"]), data.get(b"context"))
        except (ValueError, KeyError, TypeError) as exc:
            event(log, "cache_corrupt_entry", level=logging.WARNING, error=_describe(exc))
            return None

    async def _get_rendered(self, keys: list[str]) -> list[bytes | None]:
        return list(await self._run("get_rendered", lambda: self._client.mget([self.render_prefix + k for k in keys])))

    async def _put_rendered(self, items: dict[str, bytes]) -> None:
        await self._render_writes.submit([(self.render_prefix + key, value) for key, value in items.items()])

    async def _write_rendered(self, entries: list[tuple[str, bytes]]) -> None:
        """One pipeline (no transaction) for the joined callers' rendered outputs."""
        async def put() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, value in entries:
                    pipe.set(key, value, ex=self.render_ttl_s)
                await pipe.execute()

        await self._run("put_rendered", put)

    async def _get_style(self, key: str) -> bytes | None:
        return await self._run("get_style", lambda: self._client.get(self.style_prefix + key))

    async def _put_style(self, key: str, value: bytes) -> None:
        await self._run("put_style", lambda: self._client.set(self.style_prefix + key, value, ex=self.ttl_s))

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except self._redis_errors:
            return False

    async def close(self) -> None:
        # Pending writes first: every caller waiting on one gets its answer.
        await self._sample_writes.close()
        await self._render_writes.close()
        if self.breaker is not None:
            await self.breaker.close()
        await self._client.aclose()


def _sample_fields(rec: SampleRecord) -> dict[str, Any]:
    """A sample's Redis hash: latent as float32 little-endian bytes, metadata as compact JSON,
    the context bytes when there are some."""
    fields: dict[str, Any] = {
        "latent": np.ascontiguousarray(rec.latent, dtype="<f4").tobytes(),
        "meta": json.dumps(rec.meta(), separators=(",", ":")),
    }
    if rec.context is not None:
        fields["context"] = rec.context
    return fields


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


_SECRET_QUERY_KEYS = ("password", "ssl_password")


def _query_secrets(query: str) -> list[str]:
    return [v for k, values in parse_qs(query).items() if k in _SECRET_QUERY_KEYS for v in values]


def redact_url(url: str) -> str:
    """A Redis URL fit for a log line: its password (in the authority or the query) as ``***``."""
    parts = urlsplit(url)
    out = url
    if parts.password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        out = out.replace(parts.netloc, f"{userinfo.partition(':')[0]}:***@{hostport}", 1)
    if parts.query and _query_secrets(parts.query):
        query = "&".join(f"{k}=***" if k in _SECRET_QUERY_KEYS else f"{k}={v}"
                         for k, v in parse_qsl(parts.query, keep_blank_values=True))
        head, _, _ = out.partition("?")
        out = f"{head}?{query}" + (f"#{parts.fragment}" if parts.fragment else "")
    return out
