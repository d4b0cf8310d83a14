"""Metrics every RPC service shares, and the cache of labelled metric children.

One server has one registry (what its /metrics endpoint exposes); ``RpcMetrics`` puts the
per-call series in it (requests, latency, calls in flight, by method, status code and
protocol: a call over HTTP/JSON counts under the same method as over gRPC, ``protocol="http"``) and the
process's own CPU and memory. Each service adds its own metrics to the same registry.
Every gauge names how it combines over the server processes of ``serve --processes N``
(``multiprocess_mode``; ignored by a lone process).

``.labels()`` takes a lock and builds a key on every call; code on a request path looks each
labelled child up once with ``Children`` (or ``OwnedChildren``, per object such as a loaded
model version) and keeps it.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

V = TypeVar("V")


def new_registry() -> CollectorRegistry:
    """An empty registry of one server (several servers may run in one process)."""
    return CollectorRegistry(auto_describe=True)


class RpcMetrics:
    """The per-call metrics of every service on one server, and the process's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "latentforge_requests", "Calls finished, by method, status code and protocol (grpc, http).",
            ["method", "code", "protocol"], registry=registry)
        self.request_duration = Histogram(
            "latentforge_request_duration_seconds", "Call latency, by method, status code and protocol.",
            ["method", "code", "protocol"], buckets=LATENCY_BUCKETS, registry=registry)
        self.inflight = Gauge(
            "latentforge_requests_in_flight", "Calls being served now, by method and protocol.",
            ["method", "protocol"], registry=registry, multiprocess_mode="livesum")
        # latentforge_process_cpu_seconds_total and friends: the server's own CPU time, which
        # the load generator divides by the images served.
        ProcessCollector(namespace="latentforge", registry=registry)


class Children(Generic[V]):
    """Values built once per key and kept: ``Children(metric.labels).get("Generate")``, or any
    ``build(*key)`` that makes a tuple of children at once."""

    __slots__ = ("_build", "_values")

    def __init__(self, build: Callable[..., V]) -> None:
        self._build = build
        self._values: dict[tuple, V] = {}

    def get(self, *key: Any) -> V:
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = self._build(*key)
        return value


class OwnedChildren(Generic[V]):
    """``Children`` per owner object (e.g. a loaded model version), held weakly: an owner that
    is dropped and made again (a version unloaded and reloaded) gets fresh children.
    ``build(owner, *key)`` makes them."""

    __slots__ = ("_build", "_last", "_owners")

    def __init__(self, build: Callable[..., V]) -> None:
        self._build = build
        self._owners: weakref.WeakKeyDictionary[Any, dict[tuple, V]] = weakref.WeakKeyDictionary()
        # The owner asked for last and its values: most calls ask for the same one again, and a
        # WeakKeyDictionary lookup makes a weak reference each time.
        self._last: tuple[weakref.ref, dict[tuple, V]] | None = None

    def get(self, owner: Any, *key: Any) -> V:
        last = self._last
        if last is not None and last[0]() is owner:
            values = last[1]
        else:
            values = self._owners.get(owner)
            if values is None:
                values = self._owners[owner] = {}
            self._last = (weakref.ref(owner), values)
        value = values.get(key)
        if value is None:
            value = values[key] = self._build(owner, *key)
        return value
