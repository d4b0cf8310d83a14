"""Settings of the generation server (``latentforge serve``), one typed table.

``ServeConfig`` extends the settings every RPC server has (``services.rpc.settings``) with the
model repository, cache, ONNX Runtime and batching ones. Precedence, highest first: command line
> ``LATENTFORGE_*`` environment variables > config file (JSON or TOML; keys are the field names,
at top level or under a ``[serve]`` table) > defaults. Each field's help text is also its
``latentforge serve --help`` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from services.generation.cache.breaker import BreakerSettings
from services.rpc.settings import ConfigError, ServerSettings, load_settings, setting

__all__ = ["ConfigError", "ServeConfig", "load_config"]

GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
PRECISIONS = ("fp32", "fp16")
IO_BINDINGS = ("auto", "on", "off")


@dataclass(frozen=True)
class ServeConfig(ServerSettings):
    """Everything ``latentforge serve`` can be told."""

    FILE_TABLE: ClassVar[str | None] = "serve"

    models: Path = setting(Path("models"), "model repository root")
    redis_url: str | None = setting(
        None, "Redis URL for the shared sample cache, e.g. redis://localhost:6379/0 "
              "(default: in-process cache); rediss://user:password@host:6380/0 for TLS and ACL users")
    cache_namespace: str = setting("lf", "cache key prefix: <namespace>:v1:sample:<id>")
    cache_ttl_s: int = setting(86_400, "how long a sample id stays resolvable, in seconds")
    cache_max_bytes: int = setting(64 * 1024 * 1024, "in-process cache memory bound in bytes")
    redis_timeout_s: float = setting(0.25, "per Redis command, in seconds; a slow Redis must not stall Generate")
    # Circuit breaker: a Redis that hangs (rather than refusing connections) is not waited on by
    # every request; see services.generation.cache.breaker.
    redis_breaker_threshold: int = setting(
        3, "Redis failures or timeouts in a row that open the cache's circuit breaker: Redis is then not "
           "called (ids answer UNAVAILABLE at once, Generate does not store) until a background PING "
           "answers; 0: no breaker")
    redis_breaker_backoff_s: float = setting(
        0.25, "seconds from the breaker opening to its first PING; doubles after each failed PING")
    redis_breaker_backoff_max_s: float = setting(
        1.0, "longest wait between the breaker's PINGs, in seconds: bounds how long a recovered Redis stays unused")
    # Redis over TLS (with a rediss:// URL): CA to trust, and a client certificate + key when
    # the Redis requires one. Password / ACL user go in the URL.
    redis_tls_ca: Path | None = setting(None, "PEM CA that signed the Redis server's certificate")
    redis_tls_cert: Path | None = setting(None, "PEM client certificate for Redis (with --redis-tls-key)")
    redis_tls_key: Path | None = setting(None, "PEM key of --redis-tls-cert")
    max_count: int = setting(64, "max samples / frames / images per request")
    providers: tuple[str, ...] = setting(
        (), "ONNX Runtime execution provider, repeatable (default: CUDA if available, else CPU)", flag="--provider")
    processes: int = setting(
        1, "server processes behind the one port (SO_REUSEPORT; Linux), 0: one per CPU; each runs its own event "
           "loop, batches and ONNX Runtime sessions, so gRPC's per-call work uses more than one core; more than one "
           "needs --redis-url (they share samples through it) and spreads connections, not calls "
           "(see services.generation.processes)")
    workers: int = setting(2, "ONNX Runtime batches that may run at once (threads), also used for image decoding")
    intra_op_threads: int = setting(0, "ONNX Runtime threads per call; 0: CPU cores // workers, at least 1")
    graph_optimization: str = setting("all", "ONNX Runtime graph optimisation", choices=GRAPH_OPTIMIZATIONS)
    ort_spinning: bool = setting(False, "idle ONNX Runtime threads spin: a little lower latency, CPU taken from gRPC")
    cpu_mem_arena: bool = setting(True, "ONNX Runtime's CPU memory arena (buffers reused across calls)")
    precision: str = setting("fp32", "fp16: load a version's fp16 variant where the manifest lists one (GPUs)",
                             choices=PRECISIONS)
    prefer_ort_variant: bool = setting(
        True, "on the CPU provider, load the ort-cpu variant made by this ONNX Runtime version")
    io_binding: str = setting("auto", "bind inputs/outputs to buffers: auto (on CUDA only), on, off",
                              choices=IO_BINDINGS)
    tensorrt_cache_dir: str | None = setting(None, "TensorRT engine cache (with TensorrtExecutionProvider)")
    worker_nice: int = setting(10, "added to the worker threads' nice value (Linux), so the gRPC loop is not starved")
    max_batch_size: int = setting(64, "rows per ONNX Runtime call")
    batching: bool = setting(True, "merge concurrent requests into one ONNX Runtime call; off: one call per request")
    max_queue_delay_ms: float = setting(1.0, "how long a batch may wait for more requests while another runs "
                                             "(1-3 ms measured alike: docs/benchmarks/serving_loop.md)")
    inline_rows: int = setting(1, "a request of at most this many rows runs at once on the event loop when nothing "
                               "else is queued or running (no thread hand-offs at low load); 0: always queue")
    max_queue_size: int = setting(1024, "queued requests per model version before RESOURCE_EXHAUSTED")
    stream_chunk: int = setting(4, "GenerateStream samples per inference call")
    max_stream_count: int = setting(100_000, "max samples per GenerateStream call")
    session_max_in_flight: int = setting(
        256, "requests of one Session worked on at once; beyond it the server stops reading that stream")
    png_compress_level: int = setting(1, "zlib level of PNG outputs, 0..9: low is fast, high is small")
    render_cache: bool = setting(True, "cache rendered outputs of requests that name their seed")
    render_cache_ttl_s: int = setting(3_600, "how long a rendered output stays cached, in seconds")
    render_cache_max_bytes: int = setting(64 * 1024 * 1024, "in-process rendered-output cache memory bound in bytes")
    stylize_max_pixels: int = setting(
        1024 * 1024, "Stylize: most pixels of a content or style image (width x height); larger ones are refused")
    stylize_style_max_side: int = setting(
        512, "Stylize: a style image's longer side is scaled down to this many pixels before it is encoded")
    reload_interval_s: float = setting(30.0, "how often to look for new model versions, in seconds; 0: never")

    def checks(self) -> list[tuple[bool, str]]:
        return [
            *super().checks(),
            (self.max_count >= 1, "max_count must be >= 1"),
            (self.cache_ttl_s >= 1, "cache_ttl_s must be >= 1"),
            (self.cache_max_bytes >= 1024, "cache_max_bytes must be >= 1024"),
            (self.processes >= 0, "processes must be >= 0 (0: one per CPU)"),
            (self.processes == 1 or self.redis_url is not None,
             ("processes other than 1 needs redis_url (--redis-url): a sample id made by one process must be found "
              "by the others")),
            (self.workers >= 1, "workers must be >= 1"),
            (self.intra_op_threads >= 0, "intra_op_threads must be >= 0"),
            (0 <= self.worker_nice <= 19, "worker_nice must be 0..19"),
            (self.graph_optimization in GRAPH_OPTIMIZATIONS,
             f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATIONS)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.io_binding in IO_BINDINGS, f"io_binding must be one of {', '.join(IO_BINDINGS)}"),
            (0 <= self.png_compress_level <= 9, "png_compress_level must be 0..9"),
            (self.render_cache_ttl_s >= 1, "render_cache_ttl_s must be >= 1"),
            (self.render_cache_max_bytes >= 0, "render_cache_max_bytes must be >= 0"),
            (self.max_batch_size >= 1, "max_batch_size must be >= 1"),
            (self.max_queue_delay_ms >= 0, "max_queue_delay_ms must be >= 0"),
            (self.max_queue_size >= 1, "max_queue_size must be >= 1"),
            (self.inline_rows >= 0, "inline_rows must be >= 0"),
            (self.stream_chunk >= 1, "stream_chunk must be >= 1"),
            (self.max_stream_count >= 1, "max_stream_count must be >= 1"),
            (self.session_max_in_flight >= 1, "session_max_in_flight must be >= 1"),
            (self.reload_interval_s >= 0, "reload_interval_s must be >= 0"),
            (self.stylize_max_pixels >= 64 * 64, "stylize_max_pixels must be >= 4096 (64 x 64)"),
            (self.stylize_style_max_side >= 8, "stylize_style_max_side must be >= 8"),
            (self.redis_timeout_s > 0, "redis_timeout_s must be > 0"),
            (self.redis_breaker_threshold >= 0, "redis_breaker_threshold must be >= 0 (0: no breaker)"),
            (self.redis_breaker_backoff_s > 0, "redis_breaker_backoff_s must be > 0"),
            (self.redis_breaker_backoff_max_s >= self.redis_breaker_backoff_s,
             "redis_breaker_backoff_max_s must be >= redis_breaker_backoff_s"),
            (bool(self.cache_namespace) and ":" not in self.cache_namespace,
             "cache_namespace must be non-empty without ':'"),
        ]

    def redis_breaker(self) -> BreakerSettings:
        """The Redis cache's circuit breaker settings (threshold 0: none)."""
        return BreakerSettings(self.redis_breaker_threshold, self.redis_breaker_backoff_s,
                               self.redis_breaker_backoff_max_s)


def load_config(config_file: Path | None = None, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> ServeConfig:
    """The server's settings: defaults < file < environment < overrides (see the module doc)."""
    return load_settings(ServeConfig, config_file, environ, overrides)
