"""Typed settings of the generation server, from defaults, a file, the environment and the CLI.

Precedence, highest first: command line > ``LATENTFORGE_*`` environment variables > config file
(JSON or TOML; keys are the field names, at top level or under a ``[serve]`` table) >
defaults. The environment is read only here, once, by ``load_config``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENV_PREFIX = "LATENTFORGE_"
GRAPH_OPTIMIZATIONS = ("disabled", "basic", "extended", "all")
PRECISIONS = ("fp32", "fp16")
IO_BINDINGS = ("auto", "on", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A setting has the wrong type or value; the message names it."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``latentforge serve`` can be told."""

    models: Path = Path("models")  # model repository root
    host: str = "127.0.0.1"  # gRPC bind address; "0.0.0.0" / "[::]" to serve other hosts
    port: int = 50051  # gRPC port; 0 picks a free one
    metrics_host: str = "127.0.0.1"  # /metrics bind address
    metrics_port: int | None = 9090  # /metrics port; 0 picks a free one; None: no endpoint
    redis_url: str | None = None  # e.g. redis://localhost:6379/0; None: in-process LRU cache
    cache_namespace: str = "lf"  # key prefix: <namespace>:v1:sample:<id>
    cache_ttl_s: int = 86_400  # how long a sample id stays resolvable
    cache_max_bytes: int = 64 * 1024 * 1024  # in-process cache memory bound
    redis_timeout_s: float = 0.25  # per Redis command; a slow Redis must not stall Generate
    # Redis over TLS (with a rediss:// URL): CA to trust, and a client certificate + key when
    # the Redis requires one. Password / ACL user go in the URL: rediss://user:password@host:6380/0
    redis_tls_ca: Path | None = None
    redis_tls_cert: Path | None = None
    redis_tls_key: Path | None = None
    # Transport security (all paths to PEM files): TLS with tls_cert + tls_key; mutual TLS when
    # tls_client_ca is set too (clients must present a certificate that CA signed).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Bearer-token check on GenerationService calls (health and reflection stay open): tokens
    # inline (comma-separated in LATENTFORGE_AUTH_TOKENS) and/or one per line in a file.
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)  # secrets: never in repr or logs
    auth_tokens_file: Path | None = None
    max_count: int = 64  # max samples / frames / images per request
    max_message_bytes: int = 32 * 1024 * 1024  # gRPC send/receive limit
    providers: tuple[str, ...] = ()  # ONNX Runtime providers; empty: CUDA if present, else CPU
    workers: int = 2  # ONNX Runtime batches that may run at once (threads), also used for image decoding
    intra_op_threads: int = 0  # ONNX Runtime threads per call; 0: CPU cores // workers, at least 1
    graph_optimization: str = "all"  # ONNX Runtime graph optimisation: disabled, basic, extended, all
    ort_spinning: bool = False  # idle ORT threads spin: a little lower latency, CPU taken from gRPC
    cpu_mem_arena: bool = True  # ONNX Runtime's CPU memory arena (buffers reused across calls)
    precision: str = "fp32"  # "fp16": load a version's fp16 variant where the manifest lists one (GPUs)
    prefer_ort_variant: bool = True  # on the CPU provider, load the ort-cpu variant made by this ORT version
    io_binding: str = "auto"  # bind inputs/outputs to buffers: "auto" (on CUDA only), "on", "off"
    tensorrt_cache_dir: str | None = None  # TensorRT engine cache (with TensorrtExecutionProvider)
    worker_nice: int = 10  # added to the worker threads' nice value (Linux), so the gRPC loop is not starved
    max_batch_size: int = 64  # rows per ONNX Runtime call
    batching: bool = True  # merge concurrent requests into one ONNX Runtime call
    max_queue_delay_ms: float = 1.0  # how long a batch may wait for more requests while another runs
    max_queue_size: int = 1024  # queued requests per model version before RESOURCE_EXHAUSTED
    stream_chunk: int = 4  # GenerateStream samples per inference call
    png_compress_level: int = 1  # zlib level of PNG outputs, 0..9: low is fast, high is small
    render_cache: bool = True  # cache rendered outputs of requests that name their seed
    render_cache_ttl_s: int = 3_600  # how long a rendered output stays cached
    render_cache_max_bytes: int = 64 * 1024 * 1024  # in-process rendered-output cache memory bound
    access_log: bool = True  # one log line per RPC (at INFO); off saves CPU at high request rates
    reload_interval_s: float = 30.0  # how often to look for new model versions; 0: never
    drain_grace_s: float = 5.0  # on SIGTERM: NOT_SERVING, refuse new calls, let calls in flight finish this long
    log_level: str = "INFO"
    log_json: bool = True  # one JSON object per line; False: plain text

    def validate(self) -> "ServeConfig":
        """Range checks that types alone do not catch; returns self."""
        checks = [
            (0 <= self.port <= 65535, "port must be 0..65535"),
            (self.metrics_port is None or 0 <= self.metrics_port <= 65535, "metrics_port must be 0..65535"),
            (self.max_count >= 1, "max_count must be >= 1"),
            (self.cache_ttl_s >= 1, "cache_ttl_s must be >= 1"),
            (self.cache_max_bytes >= 1024, "cache_max_bytes must be >= 1024"),
            (self.workers >= 1, "workers must be >= 1"),
            (self.intra_op_threads >= 0, "intra_op_threads must be >= 0"),
            (0 <= self.worker_nice <= 19, "worker_nice must be 0..19"),
            (self.graph_optimization in GRAPH_OPTIMIZATIONS,
             f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATIONS)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.io_binding in IO_BINDINGS, f"io_binding must be one of {', '.join(IO_BINDINGS)}"),
            (self.log_level.upper() in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}"),
            (0 <= self.png_compress_level <= 9, "png_compress_level must be 0..9"),
            (self.render_cache_ttl_s >= 1, "render_cache_ttl_s must be >= 1"),
            (self.render_cache_max_bytes >= 0, "render_cache_max_bytes must be >= 0"),
            (self.max_batch_size >= 1, "max_batch_size must be >= 1"),
            (self.max_queue_delay_ms >= 0, "max_queue_delay_ms must be >= 0"),
            (self.max_queue_size >= 1, "max_queue_size must be >= 1"),
            (self.stream_chunk >= 1, "stream_chunk must be >= 1"),
            (self.reload_interval_s >= 0, "reload_interval_s must be >= 0"),
            (self.drain_grace_s >= 0, "drain_grace_s must be >= 0"),
            (self.redis_timeout_s > 0, "redis_timeout_s must be > 0"),
            (bool(self.cache_namespace) and ":" not in self.cache_namespace, "cache_namespace must be non-empty without ':'"),
        ]
        checks += [
            ((self.tls_cert is None) == (self.tls_key is None), "tls_cert and tls_key must be given together"),
            (self.tls_client_ca is None or self.tls_cert is not None,
             "tls_client_ca (mutual TLS) needs tls_cert and tls_key"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, hint: Any, value: Any) -> Any:
    """Coerce a file/env/CLI value to the field's annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return _convert(name, args[0], value)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if hint is int:
            if isinstance(value, bool):
                raise ValueError("a boolean is not an integer")
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not an integer: {value!r}")
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        if hint is Path:
            return Path(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(v).strip() for v in items if str(v).strip())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: {exc}") from None
    raise ConfigError(f"setting {name!r} has an unsupported type {hint!r}")


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ServeConfig)


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a .json or .toml file (top level, or the ``serve`` table)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object")
    if isinstance(data.get("serve"), dict):
        data = data["serve"]
    return data


def env_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``LATENTFORGE_<FIELD>`` variables that name a ServeConfig field (others are ignored)."""
    names = {f.name for f in fields(ServeConfig)}
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in names:
                out[name] = value
    return out


def load_config(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServeConfig:
    """Merge defaults < file < environment < overrides (None values in overrides are unset)."""
    hints = _hints()
    names = set(hints)
    merged: dict[str, Any] = {}
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(environ[ENV_PREFIX + "CONFIG"])
    layers: list[dict[str, Any]] = []
    if config_file is not None:
        layers.append(read_config_file(config_file))
    layers.append(env_settings(environ))
    layers.append({k: v for k, v in (overrides or {}).items() if v is not None})
    for layer in layers:
        for key, value in layer.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}; known: {', '.join(sorted(names))}")
            merged[key] = _convert(key, hints[key], value)
    return dataclasses.replace(ServeConfig(), **merged).validate()
