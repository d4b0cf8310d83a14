"""The sample cache: sample id -> latent and metadata, with a TTL, shared by replicas; and the
rendered-output cache: (model, version, latent, output parameters) -> encoded image bytes.

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
make every operation wait out its timeout; a circuit breaker (``services.generation.breaker``) stops
calling it after a few failures in a row and probes it in the background instead.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import numpy as np

from services.generation.breaker import BreakerSettings, BreakerState, CircuitBreaker
from services.generation.metrics import Metrics
from services.rpc.logs import event, get_logger
from services.rpc.metrics import Children

log = get_logger("cache")

KEY_VERSION = "v1"
SAMPLE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Rough per-entry overhead of the in-process cache beyond the latent bytes.
_ENTRY_OVERHEAD_BYTES = 512
# Log level of each breaker transition: opening is what an operator must see; the probe's
# half-open/open cycles while Redis stays down are detail.
_BREAKER_LOG_LEVEL = {(BreakerState.CLOSED, BreakerState.OPEN): 30, (BreakerState.HALF_OPEN, BreakerState.CLOSED): 20}

# Most items (sample records, rendered outputs) one coalesced Redis write carries: a bigger
# batch waits for the next write, so building and parsing one pipeline cannot stall the loop.
MAX_WRITE_BATCH = 512

T = TypeVar("T")
W = TypeVar("W")


def render_key(model: str, version: int, latent: np.ndarray, label: int | None, output: str) -> str:
    """Key of one rendered output: model, version, a hash of the exact latent bytes, the label
    and the output parameters (e.g. "png1" = PNG at zlib level 1, "f32" = raw tensor)."""
    digest = hashlib.blake2b(np.ascontiguousarray(latent, dtype="<f4").tobytes(), digest_size=16).hexdigest()
    return f"{model}:{version}:{output}:{'' if label is None else label}:{digest}"


def new_sample_id() -> str:
    """A fresh random id (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class SampleRecord:
    """What the cache keeps about one sample."""

    sample_id: str
    model: str
    version: int
    latent: np.ndarray  # float32 (latent_dim,)
    origin: str  # "generate", "interpolate", "encode", "variation", "complete"
    seed: int | None = None
    label: int | None = None
    truncation: float | None = None
    parent_id: str | None = None
    created: float = field(default_factory=time.time)
    # Completion samples: the input they were completed from (image then mask, float32
    # little-endian bytes, see services.generation.completion), so Variations keep its known pixels.
    context: bytes | None = None

    def meta(self) -> dict[str, Any]:
        """Metadata without the latent, as JSON-able values."""
        return {
            "model": self.model,
            "version": self.version,
            "origin": self.origin,
            "seed": self.seed,
            "label": self.label,
            "truncation": self.truncation,
            "parent_id": self.parent_id,
            "created": self.created,
            "latent_dim": int(self.latent.size),
        }

    @classmethod
    def from_parts(cls, sample_id: str, latent_bytes: bytes, meta: dict[str, Any],
                   context: bytes | None = None) -> "SampleRecord":
        latent = np.frombuffer(latent_bytes, dtype="<f4").astype(np.float32)
        return cls(
            sample_id=sample_id,
            model=str(meta["model"]),
            version=int(meta["version"]),
            latent=latent,
            origin=str(meta.get("origin", "")),
            seed=None if meta.get("seed") is None else int(meta["seed"]),
            label=None if meta.get("label") is None else int(meta["label"]),
            truncation=None if meta.get("truncation") is None else float(meta["truncation"]),
            parent_id=meta.get("parent_id"),
            created=float(meta.get("created", 0.0)),
            context=context,
        )


class CacheUnavailable(Exception):
    """The cache backend could not be reached or answered with an error."""


class SampleCache(abc.ABC):
    """Stores and finds samples by id. Implementations count hits/misses/errors."""

    backend: str = "abstract"

    def __init__(self, metrics: Metrics, ttl_s: int) -> None:
        self.metrics = metrics
        self.ttl_s = int(ttl_s)
        self._children = Children(lambda kind, *extra: getattr(metrics, kind).labels(self.backend, *extra))

    def _counter(self, kind: str, *extra: str) -> Any:
        """This backend's child of the ``kind`` counter (cache_hits, cache_errors, ...)."""
        return self._children.get(kind, *extra)

    async def put_many(self, records: Iterable[SampleRecord]) -> None:
        """Store records (TTL applied); raises CacheUnavailable."""
        records = list(records)
        if not records:
            return
        try:
            await self._put_many(records)
        except CacheUnavailable:
            self._count_error("put")
            raise

    async def get(self, sample_id: str) -> SampleRecord | None:
        """The record, or None when unknown/expired; raises CacheUnavailable."""
        try:
            record = await self._get(sample_id)
        except CacheUnavailable:
            self._count_error("get")
            raise
        self._counter("cache_hits" if record else "cache_misses").inc()
        return record

    def _count_error(self, operation: str) -> None:
        self._counter("cache_errors", operation).inc()

    async def get_rendered(self, keys: list[str]) -> list[bytes | None]:
        """Cached rendered outputs of ``keys`` (None where absent); never raises."""
        try:
            values = await self._get_rendered(keys)
        except CacheUnavailable:
            self._count_error("get_rendered")
            return [None] * len(keys)
        hits = sum(v is not None for v in values)
        if hits:
            self._counter("render_cache_hits").inc(hits)
        if hits < len(keys):
            self._counter("render_cache_misses").inc(len(keys) - hits)
        return values

    async def put_rendered(self, items: dict[str, bytes]) -> None:
        """Store rendered outputs under their keys (TTL applied); never raises."""
        if not items:
            return
        try:
            await self._put_rendered(items)
        except CacheUnavailable:
            self._count_error("put_rendered")

    @abc.abstractmethod
    async def _put_many(self, records: list[SampleRecord]) -> None: ...

    @abc.abstractmethod
    async def _get(self, sample_id: str) -> SampleRecord | None: ...

    @abc.abstractmethod
    async def _get_rendered(self, keys: list[str]) -> list[bytes | None]: ...

    @abc.abstractmethod
    async def _put_rendered(self, items: dict[str, bytes]) -> None: ...

    async def ping(self) -> bool:
        """True when the backend answers."""
        return True

    async def close(self) -> None:
        """Release connections."""


class _BytesLru:
    """Key -> bytes with a TTL, evicting least recently used values beyond ``max_bytes``."""

    def __init__(self, ttl_s: int, max_bytes: int) -> None:
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[0]:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: bytes, now: float) -> None:
        cost = len(value) + len(key) + _ENTRY_OVERHEAD_BYTES
        if cost > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = (now + self.ttl_s, value)
        self.size_bytes += cost
        while self.size_bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size_bytes -= len(entry[1]) + len(key) + _ENTRY_OVERHEAD_BYTES


class MemorySampleCache(SampleCache):
    """In-process LRU: evicts least recently used entries beyond ``max_bytes``; TTL on read.
    Rendered outputs live in a second LRU with their own TTL and bound."""

    backend = "memory"

    def __init__(self, metrics: Metrics, ttl_s: int, max_bytes: int, render_ttl_s: int = 3600,
                 render_max_bytes: int = 0) -> None:
        super().__init__(metrics, ttl_s)
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[str, tuple[float, int, SampleRecord]] = OrderedDict()
        self._bytes = 0
        self.rendered = _BytesLru(int(render_ttl_s), int(render_max_bytes))

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def _put_many(self, records: list[SampleRecord]) -> None:
        expires = time.monotonic() + self.ttl_s
        for rec in records:
            self._drop(rec.sample_id)
            cost = int(rec.latent.nbytes) + len(rec.context or b"") + _ENTRY_OVERHEAD_BYTES
            latent = np.array(rec.latent, dtype=np.float32, copy=True)
            latent.setflags(write=False)
            self._entries[rec.sample_id] = (expires, cost, replace(rec, latent=latent))
            self._bytes += cost
        while self._bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    async def _get(self, sample_id: str) -> SampleRecord | None:
        entry = self._entries.get(sample_id)
        if entry is None:
            return None
        expires, _, record = entry
        if time.monotonic() >= expires:
            self._drop(sample_id)
            return None
        self._entries.move_to_end(sample_id)
        return record

    def _drop(self, sample_id: str) -> None:
        entry = self._entries.pop(sample_id, None)
        if entry is not None:
            self._bytes -= entry[1]

    async def _get_rendered(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        return [self.rendered.get(k, now) for k in keys]

    async def _put_rendered(self, items: dict[str, bytes]) -> None:
        now = time.monotonic()
        for key, value in items.items():
            self.rendered.put(key, value, now)


@dataclass(eq=False)
class _WriteBatch(Generic[W]):
    """Items of the callers that joined one write, and the future they all wait on."""

    future: asyncio.Future[None]
    items: list[W] = field(default_factory=list)


class WriteCoalescer(Generic[W]):
    """Joins concurrent writes into few backend calls: every caller that submits in the same
    event-loop iteration shares one ``write(items)`` call (one Redis pipeline, one round trip)
    instead of making its own.

    ``submit`` adds the caller's items to the open batch and waits for that batch's shared
    future; the first caller schedules a flusher task, which starts in the next loop iteration,
    so everyone who submits in this one joins. One flush is in flight at a time: what is
    submitted while it runs waits for it (one round trip; one timeout if the backend hangs) and
    goes out together in the next flush, so batches grow with the load, and a flood of writes
    keeps one connection busy instead of one per caller. A batch holds at most ``max_items``
    items; a caller that would overflow it starts the next one, and a caller with more than
    ``max_items`` items has a batch of its own (a caller's items are never split across writes).

    A caller returns only once its items are written, or raises what the write raised (the same
    exception for everyone in the batch). A caller cancelled while it waits leaves the write
    running for the others (the wait is shielded); its items may still be written.
    """

    def __init__(self, write: Callable[[list[W]], Awaitable[None]], max_items: int = MAX_WRITE_BATCH) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self._write = write
        self.max_items = max_items
        self.flushes = 0  # write calls made (for tests and diagnostics)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_WriteBatch[W]] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, items: list[W]) -> None:
        """Write ``items`` together with whatever else is submitted now; return once written."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # State left by another, ended event loop: its callers and flusher ended with it.
            self._loop, self._pending, self._flusher = loop, deque(), None
        batch = self._pending[-1] if self._pending else None
        if batch is None or (batch.items and len(batch.items) + len(items) > self.max_items):
            batch = _WriteBatch(loop.create_future())
            self._pending.append(batch)
        batch.items.extend(items)
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._drain(), name="cache-write-flush")
        # Shielded: cancelling this caller must not cancel the shared future.
        await asyncio.shield(batch.future)

    async def _drain(self) -> None:
        """Write pending batches one after another until none is left."""
        batch: _WriteBatch[W] | None = None
        try:
            while self._pending:
                batch = self._pending.popleft()
                self.flushes += 1
                try:
                    await self._write(batch.items)
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    _settle(batch.future, exc)
                else:
                    _settle(batch.future, None)
                batch = None
        except BaseException:
            # Cancelled (its loop is shutting down): no caller may be left waiting.
            error = CacheUnavailable("the cache write was cancelled before it was stored")
            for left in ([batch] if batch is not None else []) + list(self._pending):
                _settle(left.future, error)
            self._pending.clear()
            raise
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    async def close(self) -> None:
        """Write what is pending and wait for it, so that no caller is left waiting."""
        if self._loop is not asyncio.get_running_loop():
            self._pending.clear()  # another loop's callers: gone with it
            self._flusher = None
            return
        while self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher])
        error = CacheUnavailable("the cache was closed before the write was stored")
        while self._pending:  # only when a flusher was cancelled before it started
            _settle(self._pending.popleft().future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve a write batch's future (result or exception) unless it is already done."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        # Marked retrieved: callers that still wait raise it all the same, and when every caller
        # was cancelled (a cancelled shield lets go of its future) no one is left to retrieve it.
        future.exception()


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
            event(log, "cache_unavailable", level=30, backend=self.backend, url=self.url, operation=operation,
                  error=text)
        elif now - self._reminded >= self._REMIND_S:
            self._reminded = now
            event(log, "cache_still_unavailable", level=30, backend=self.backend, url=self.url,
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
            event(log, "cache_corrupt_entry", level=30, error=_describe(exc))
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
