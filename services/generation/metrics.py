"""Prometheus metrics of the GenerationService, in the registry of its server.

The per-call metrics every service shares (requests, latency, in flight) and the process's own
are ``services.rpc.metrics.RpcMetrics``. Names follow DESIGN.md: ``latentforge_`` prefix, base
units, counters end in ``_total``, labels with bounded values only (method, model, version, code,
provider, backend, operation) - never a sample id or a seed. Deploy dashboards and alerts refer to these names: rename with care.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from services.rpc.metrics import LATENCY_BUCKETS, new_registry

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class Metrics:
    """The GenerationService's metric objects; ``registry`` is its server's (what /metrics exposes)."""

    registry: CollectorRegistry = field(default_factory=new_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.queue_depth = Gauge(
            "latentforge_queue_depth", "Inference requests waiting for a batch/worker, by model.",
            ["model", "version"], registry=r, multiprocess_mode="livesum")
        self.queue_wait = Histogram(
            "latentforge_queue_wait_seconds", "Time an inference request waited before running.",
            ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_rejected = Counter(
            "latentforge_queue_rejected", "Inference requests refused because the queue was full.",
            ["model", "version"], registry=r)
        self.queue_expired = Counter(
            "latentforge_queue_expired", "Inference requests whose deadline passed in the queue (not run).",
            ["model", "version"], registry=r)
        self.batch_size = Histogram(
            "latentforge_batch_size", "Rows per ONNX Runtime call.",
            ["model", "version", "graph"], buckets=BATCH_BUCKETS, registry=r)
        self.inference_duration = Histogram(
            "latentforge_inference_duration_seconds", "ONNX Runtime call time.",
            ["model", "version", "graph", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.samples = Counter(
            "latentforge_samples_generated", "Images produced, by model and method.",
            ["model", "version", "method"], registry=r)
        self.cache_hits = Counter(
            "latentforge_cache_hits", "Sample lookups found in the cache.", ["backend"], registry=r)
        self.cache_misses = Counter(
            "latentforge_cache_misses", "Sample lookups not in the cache.", ["backend"], registry=r)
        self.cache_errors = Counter(
            "latentforge_cache_errors", "Cache operations that failed (cache unreachable).",
            ["backend", "operation"], registry=r)
        self.cache_breaker_state = Gauge(
            "latentforge_cache_breaker_state",
            "Circuit breaker around the cache backend: 0 closed (calls go through), 1 open (calls answered "
            "at once as unavailable), 2 half-open (a probe is trying the backend).", ["backend"], registry=r,
            multiprocess_mode="livemax")
        self.cache_breaker_refused = Counter(
            "latentforge_cache_breaker_refused",
            "Cache operations answered at once as unavailable, without calling the backend, while its "
            "breaker was open.", ["backend"], registry=r)
        self.render_cache_hits = Counter(
            "latentforge_render_cache_hits", "Rendered outputs (PNG/tensor) served from the cache.",
            ["backend"], registry=r)
        self.render_cache_misses = Counter(
            "latentforge_render_cache_misses", "Rendered outputs looked up and not in the cache.",
            ["backend"], registry=r)
        self.drawings_in_progress = Gauge(
            "latentforge_drawings_in_progress", "Stroke drawings being sampled now (GenerateStrokes, "
            "ContinueStrokes, Interpolate frames of stroke models).", registry=r,
            multiprocess_mode="livesum")
        self.models_loaded = Gauge(
            "latentforge_models_loaded", "Model versions loaded and serving (the fewest of any process, with "
            "several).", registry=r, multiprocess_mode="livemin")
        self.model_info = Info(
            "latentforge_model", "One series per loaded model version (value 1).",
            ["model", "version"], registry=r)
        self.model_load_failures = Counter(
            "latentforge_model_load_failures", "Model versions that failed to load.",
            ["model"], registry=r)


class _NullChild:
    """Stands in for the labelled child of a retired model version: its series were removed
    (so it is no longer exported) and must not be created again by requests still finishing."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


NULL_CHILD = _NullChild()


def version_child(model: object, metric: object, *labels: str) -> object:
    """``metric.labels(*labels)``, or NULL_CHILD when ``model`` is retired (unloaded)."""
    return NULL_CHILD if getattr(model, "retired", False) else metric.labels(*labels)  # type: ignore[attr-defined]

