"""ONNX Runtime sessions of one model version, and the runner that calls them off the loop.

``OrtSettings`` is every ONNX Runtime choice the server makes (providers, threads, graph
optimisation, memory arena, which file variant, IO binding); the load benchmark
(``tools.ortbench``) builds its sessions from the same object, so "raw" and "served" numbers
compare like with like. ``OnnxModel`` owns the sessions of a version folder (every graph its
manifest lists) and runs them synchronously, by role, with feeds checked against the manifest's
signatures. A runner (``InferenceRunner``) is what the servicer awaits: ``DirectRunner`` here
sends each request's rows to the worker threads; ``services.generation.batching.BatchingRunner`` merges
concurrent requests into shared batches behind the same interface.
"""

from __future__ import annotations

import abc
import asyncio
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from latentforge.cpus import available_cpus
from latentforge.manifest import Manifest, ManifestError, SignatureError
from services.generation.capabilities import missing_tasks, supported_rpcs
from services.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, ResourceExhausted, ServiceError
from services.rpc.logs import event, get_logger
from services.generation.metrics import Metrics, version_child
from services.rpc.metrics import OwnedChildren

log = get_logger("inference")

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"
ORT_CPU_VARIANT = "ort-cpu"
FP16_VARIANT = "fp16"

# Runs on a worker thread on one request's output rows; its list (one item per row) is what the
# request gets back instead of the raw images, e.g. encoded PNGs.
Finish = Callable[[np.ndarray], list]


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    """Providers to ask ONNX Runtime for: the requested ones that exist, else CUDA if present, else CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        chosen = [p for p in requested if p in available]
        if not chosen:
            raise ValueError(f"none of the providers {list(requested)} is available; available: {available}")
    else:
        chosen = [CUDA] if CUDA in available else []
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


@dataclass(frozen=True)
class OrtSettings:
    """How sessions are built; one object shared by the server and the raw benchmark."""

    providers: tuple[str, ...] = (CPU,)
    intra_op_threads: int = 1  # resolved: >= 1
    graph_optimization: str = "all"
    spinning: bool = False
    cpu_mem_arena: bool = True
    precision: str = "fp32"
    prefer_ort_variant: bool = True
    io_binding: str = "auto"
    tensorrt_cache_dir: str | None = None

    @classmethod
    def from_config(cls, config: Any, providers: Sequence[str] | None = None) -> "OrtSettings":
        """Settings of a ServeConfig, with threads sized to the machine: cores // workers.

        ``workers`` batches run at once, each on ``intra_op_threads`` threads; keeping their
        product at the core count leaves the event loop and gRPC threads room to run.
        """
        threads = config.intra_op_threads or max(1, available_cpus() // max(1, config.workers))
        return cls(
            providers=tuple(providers if providers is not None else choose_providers(config.providers)),
            intra_op_threads=threads, graph_optimization=config.graph_optimization,
            spinning=config.ort_spinning, cpu_mem_arena=config.cpu_mem_arena, precision=config.precision,
            prefer_ort_variant=config.prefer_ort_variant, io_binding=config.io_binding,
            tensorrt_cache_dir=config.tensorrt_cache_dir,
        )

    @property
    def cpu_only(self) -> bool:
        return list(self.providers) == [CPU]

    def session_options(self) -> Any:
        """An ``onnxruntime.SessionOptions`` for these settings."""
        import onnxruntime as ort

        levels = {
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[self.graph_optimization]
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one graph, no inter-op parallelism
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = self.cpu_mem_arena
        options.enable_mem_pattern = True
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.log_severity_level = 3
        return options

    def provider_list(self) -> list[Any]:
        """Providers with their options, in ONNX Runtime's ``providers=`` form."""
        out: list[Any] = []
        for p in self.providers:
            if p == TENSORRT:
                opts: dict[str, Any] = {"trt_fp16_enable": self.precision == "fp16"}
                if self.tensorrt_cache_dir:
                    opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(self.tensorrt_cache_dir))
                out.append((p, opts))
            elif p == CUDA:
                out.append((p, {"cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": True}))
            else:
                out.append(p)
        return out

    def graph_file(self, manifest: Manifest, role: str) -> tuple[str, str]:
        """(file name, variant) to load for a graph role; variant "" is the plain export.

        fp16 when asked for and listed; else the ORT-optimised copy on a CPU-only chain when it
        was written by this very ONNX Runtime version (its fused ops are version-specific).
        """
        import onnxruntime as ort

        variants = manifest.variants
        if self.precision == "fp16" and role in variants.get(FP16_VARIANT, {}):
            return variants[FP16_VARIANT][role], FP16_VARIANT
        if (self.cpu_only and self.prefer_ort_variant and self.precision == "fp32"
                and role in variants.get(ORT_CPU_VARIANT, {})
                and manifest.producer.get("onnxruntime") == ort.__version__):
            return variants[ORT_CPU_VARIANT][role], ORT_CPU_VARIANT
        return manifest.graphs[role], ""


# ONNX Runtime's tensor type names -> the manifest's (NumPy) dtype names.
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}
# What a missing task means to a client, for FAILED_PRECONDITION messages.
_TASK_MEANING = {"sample": "no prior to sample latents from", "decode": "no graph from latents to images",
                 "encode": "no encoder from images to latents",
                 "complete": "no completion graph from an image and its mask to a filled image"}


class OnnxModel:
    """The loaded sessions of one model version: every graph its manifest lists, run by role
    with feeds checked against the manifest's signatures. What the version can serve follows
    from its manifest's tasks (``services.generation.capabilities``). Thread-safe: ORT sessions allow
    concurrent run()."""

    def __init__(self, manifest: Manifest, version_dir: Path, settings: OrtSettings) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.version_dir = Path(version_dir)
        self.settings = settings
        self.retired = False  # set by the repository when the version's folder is gone
        options = settings.session_options()
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.files: dict[str, str] = {}
        variants = set()
        for role in manifest.graphs:
            fname, variant = settings.graph_file(manifest, role)
            session = ort.InferenceSession(
                str(self.version_dir / fname), sess_options=options, providers=settings.provider_list())
            _check_session(manifest, role, fname, session)
            self.sessions[role] = session
            self.files[role] = fname
            variants.add(variant)
        self.variant = ",".join(sorted(v for v in variants if v))
        main = manifest.tasks.get("decode") or sorted(self.sessions)[0]
        self.provider: str = self.sessions[main].get_providers()[0]
        self.io_binding = settings.io_binding == "on" or (settings.io_binding == "auto" and self.provider != CPU)
        self.methods: list[str] = supported_rpcs(manifest.tasks)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def value_range(self) -> tuple[float, float]:
        return self.manifest.output.value_range

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.manifest.output.shape

    @property
    def can_encode(self) -> bool:
        return "Encode" in self.methods

    def supported_methods(self) -> list[str]:
        """RPC names this model accepts, from its manifest's tasks."""
        return list(self.methods)

    def has_task(self, task: str) -> bool:
        return self.manifest.has_task(task)

    def require(self, rpc: str) -> None:
        """Raise FailedPrecondition, naming the RPCs this model does support, unless it supports ``rpc``."""
        if rpc in self.methods:
            return
        missing = missing_tasks(rpc, self.manifest.tasks)
        why = "; ".join(f"no {t!r} task ({_TASK_MEANING.get(t, 'not declared by its manifest')})" for t in missing)
        raise FailedPrecondition(f"model {self.name} v{self.version} (kind {self.manifest.kind}) does not support {rpc}: "
                                 f"it has {why}; it supports {', '.join(self.methods)}")

    def graph_for(self, task: str) -> str:
        """Role of the graph performing ``task``; FailedPrecondition when the model has no such task."""
        role = self.manifest.tasks.get(task)
        if role is None:
            raise FailedPrecondition(f"model {self.name} v{self.version} (kind {self.manifest.kind}) has no {task!r} "
                                     f"task; it supports {', '.join(self.methods)}")
        return role

    def run(self, role: str, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run graph ``role`` on ``feeds`` (input name -> array) and return the named outputs (all by default).

        Feeds are checked against the graph's signature: an array is cast to the declared
        dtype when that keeps its kind (float64 -> float32, int32 -> int64), an optional input
        left out is fed as zeros, and anything else that does not fit (unknown or missing
        input, wrong dtype or shape) is an InvalidArgument that says what the graph takes.
        """
        signature = self.manifest.signatures[role]
        arrays: dict[str, np.ndarray] = {}
        for name, value in feeds.items():
            arr = np.asarray(value)
            spec = signature.input(name)
            if spec is not None and arr.dtype.name != spec.dtype and _same_kind(arr.dtype, np.dtype(spec.dtype)):
                arr = arr.astype(spec.dtype)
            arrays[name] = np.ascontiguousarray(arr)
        try:
            axes = signature.bind({n: (a.dtype.name, a.shape) for n, a in arrays.items()})
        except SignatureError as exc:
            raise InvalidArgument(f"model {self.name} v{self.version}, graph {role}: {exc}") from None
        for spec in signature.inputs:
            if spec.name not in arrays:
                shape = signature.resolve(spec, axes)
                if shape is None:
                    raise InvalidArgument(f"model {self.name} v{self.version}, graph {role}: optional input "
                                          f"{spec.describe()} can only be left out when the other inputs give "
                                          "its axes; feed it")
                arrays[spec.name] = np.zeros(shape, dtype=spec.dtype)
        names = [t.name for t in signature.outputs] if outputs is None else list(outputs)
        specs = []
        for name in names:
            spec = signature.output(name)
            if spec is None:
                raise ServiceError(f"graph {role} of model {self.name} v{self.version} has no output {name!r}")
            specs.append(spec)
        shapes = [signature.resolve(spec, axes) for spec in specs]
        session = self.sessions[role]
        if self.io_binding and all(shape is not None for shape in shapes):
            result = self._run_bound(session, arrays, {s.name: (shape, s.dtype) for s, shape in zip(specs, shapes)})
        else:
            result = dict(zip(names, session.run(names, arrays)))
        for spec, shape in zip(specs, shapes):
            got = result[spec.name].shape
            wrong = got != shape if shape is not None else len(got) != len(spec.shape)
            if wrong:
                raise ServiceError(f"model {self.name} v{self.version} returned shape {got} for {spec.name} of "
                                   f"graph {role}; its signature says {spec.describe()}")
        return result

    def run_image(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Latents (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W) float32, by the decode graph."""
        feeds = {"z": z} if labels is None else {"z": z, "labels": labels}
        return self.run(self.graph_for("decode"), feeds, ("image",))["image"]

    def run_encoder(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Images (N, C, H, W) -> (mu, logvar), each (N, latent_dim); logvar is None when the
        encoder has none (a deterministic autoencoder)."""
        role = self.graph_for("encode")
        wanted = ["mu", "logvar"] if self.manifest.signatures[role].output("logvar") else ["mu"]
        out = self.run(role, {"image": images}, wanted)
        return out["mu"], out.get("logvar")

    def run_completer(self, images: np.ndarray, masks: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Images (N, C, H, W), masks (N, 1, H, W) and latents (N, latent_dim) -> completed images,
        by the complete graph."""
        role = self.graph_for("complete")
        return self.run(role, {"image": images, "mask": masks, "z": z}, ("completed",))["completed"]

    @staticmethod
    def _run_bound(session: Any, feeds: dict[str, np.ndarray],
                   outputs: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
        """One run with IO binding: inputs copied once to the device (none on CPU), outputs
        written by ONNX Runtime straight into host arrays allocated here."""
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        result = {}
        for name, (shape, dtype) in outputs.items():
            buf = np.empty(shape, dtype=dtype)
            binding.bind_output(name, "cpu", 0, buf.dtype.type, list(shape), buf.ctypes.data)
            result[name] = buf
        session.run_with_iobinding(binding)
        return result

    def warm_up(self) -> None:
        """One call per graph on zeros (each dynamic axis 2, optional inputs left out), so the
        first request does not pay for lazy initialisation; also checks every output's shape
        against the signature."""
        for role, signature in self.manifest.signatures.items():
            feeds = {t.name: np.zeros(tuple(2 if isinstance(d, str) else d for d in t.shape), dtype=t.dtype)
                     for t in signature.inputs if not t.optional}
            self.run(role, feeds)


def _same_kind(src: np.dtype, dst: np.dtype) -> bool:
    """Whether a cast keeps what the values mean: float to float (float64 -> float32), or integer
    to an integer type holding every value (int32 -> int64); never integer to float or back."""
    if src.kind == dst.kind == "f":
        return True
    return src.kind in "iu" and dst.kind in "iu" and bool(np.can_cast(src, dst, "safe"))


def _check_session(manifest: Manifest, role: str, fname: str, session: Any) -> None:
    """Refuse a graph file whose inputs and outputs disagree with the manifest's signature."""
    signature = manifest.signatures[role]
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    undeclared = sorted(set(inputs) - {t.name for t in signature.inputs})
    if undeclared:
        raise ManifestError(f"{fname} takes input(s) {', '.join(undeclared)} that the manifest's signature "
                            f"of {role!r} does not declare")
    for kind, specs, actual in (("input", signature.inputs, inputs), ("output", signature.outputs, outputs)):
        for spec in specs:
            arg = actual.get(spec.name)
            if arg is None:
                raise ManifestError(f"{fname} has no {kind} {spec.name!r}, which the manifest's signature "
                                    f"of {role!r} declares")
            dtype = _ORT_DTYPES.get(arg.type, arg.type)
            shape = list(arg.shape or [])
            if (dtype != spec.dtype or len(shape) != len(spec.shape)
                    or any(isinstance(a, int) and isinstance(w, int) and a != w for a, w in zip(shape, spec.shape))):
                raise ManifestError(f"{fname}: {kind} {spec.name} is {dtype} {shape}, but the manifest's signature "
                                    f"of {role!r} says {spec.describe()}")


class InferenceRunner(abc.ABC):
    """What the servicer awaits to run a model. Implementations decide how rows are batched.

    ``finish`` (optional) runs on the worker thread on the request's images, so that encoding
    them costs no extra thread hop; ``deadline`` (``loop.time()`` seconds) is when a request
    that has not started yet stops being worth running.
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int) -> None:
        self.executor = executor
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        # (batch size, inference time) children per model object and graph; a version unloaded
        # and loaded again gets fresh ones (the repository removes an unloaded version's series).
        self._run_children: OwnedChildren[tuple[Any, Any]] = OwnedChildren(lambda model, graph: (
            version_child(model, metrics.batch_size, model.name, str(model.version), graph),
            version_child(model, metrics.inference_duration, model.name, str(model.version), graph, model.provider)))

    @abc.abstractmethod
    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None,
                     finish: Finish | None = None, deadline: float | None = None) -> Any:
        """Latents -> images (N, C, H, W), or ``finish``'s list when given."""

    @abc.abstractmethod
    async def encode(self, model: OnnxModel, images: np.ndarray,
                     deadline: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Images -> (mu, logvar); logvar is None for an encoder without one."""

    @abc.abstractmethod
    async def complete(self, model: OnnxModel, images: np.ndarray, masks: np.ndarray, z: np.ndarray,
                       finish: Finish | None = None, deadline: float | None = None) -> Any:
        """Images, masks and latents (one row each per candidate) -> completed images, or
        ``finish``'s list when given."""

    async def close(self) -> None:
        """Stop background work."""

    def _timed_completer(self, model: OnnxModel, images: np.ndarray, masks: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Blocking: run the complete graph in chunks of max_batch_size, recording metrics."""
        out = []
        graph = model.graph_for("complete")
        for start in range(0, len(z), self.max_batch_size):
            rows = slice(start, start + self.max_batch_size)
            t0 = time.perf_counter()
            out.append(model.run_completer(images[rows], masks[rows], z[rows]))
            self._record(model, graph, len(out[-1]), time.perf_counter() - t0)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _timed_image(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Blocking: run the image graph in chunks of max_batch_size, recording metrics."""
        out = []
        graph = model.graph_for("decode")
        for start in range(0, len(z), self.max_batch_size):
            zz = z[start:start + self.max_batch_size]
            ll = None if labels is None else labels[start:start + self.max_batch_size]
            t0 = time.perf_counter()
            out.append(model.run_image(zz, ll))
            self._record(model, graph, len(zz), time.perf_counter() - t0)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _timed_encoder(self, model: OnnxModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Blocking: run the encode graph in chunks of max_batch_size, recording metrics."""
        mus, logvars = [], []
        graph = model.graph_for("encode")
        for start in range(0, len(images), self.max_batch_size):
            chunk = images[start:start + self.max_batch_size]
            t0 = time.perf_counter()
            mu, logvar = model.run_encoder(chunk)
            self._record(model, graph, len(chunk), time.perf_counter() - t0)
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus), concat_optional(logvars)

    def _record(self, model: OnnxModel, graph: str, rows: int, seconds: float) -> None:
        children = self._run_children.get(model, graph)
        children[0].observe(rows)
        children[1].observe(seconds)


def expired(model: OnnxModel) -> DeadlineExceeded:
    """The error of a request whose deadline passed while it waited to run."""
    return DeadlineExceeded(f"the deadline passed while the request waited for model {model.name} "
                            f"v{model.version}; it was not run (allow more time or retry later)")


class DirectRunner(InferenceRunner):
    """Each request runs on its own in a worker thread (no merging across requests).

    At most ``max_queue_size`` requests per model version wait for a worker; one more is
    answered RESOURCE_EXHAUSTED at once, as with the batcher.
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch_size: int,
                 max_queue_size: int = 1024) -> None:
        super().__init__(executor, metrics, max_batch_size)
        self.max_queue_size = max_queue_size
        self._pending: dict[tuple[str, str], int] = {}  # (model, version) -> requests waiting for a worker
        self._pending_lock = threading.Lock()
        # depth, wait, rejected children per model object (see _run_children)
        self._queue_children: OwnedChildren[tuple[Any, ...]] = OwnedChildren(lambda model: tuple(
            version_child(model, metric, model.name, str(model.version))
            for metric in (metrics.queue_depth, metrics.queue_wait, metrics.queue_rejected)))

    async def _submit(self, model: OnnxModel, deadline: float | None, fn: Callable[..., Any], *args: Any) -> Any:
        labels = (model.name, str(model.version))
        depth, wait, rejected = self._queue_children.get(model)
        loop = asyncio.get_running_loop()
        queued_at = time.perf_counter()
        state = {"left_queue": False, "cancelled": False}
        pending = self._pending

        with self._pending_lock:
            if pending.get(labels, 0) >= self.max_queue_size:
                rejected.inc()
                raise ResourceExhausted(
                    f"the queue of model {model.name} v{model.version} is full "
                    f"({self.max_queue_size} requests); retry with backoff")
            pending[labels] = pending.get(labels, 0) + 1

        def leave_queue() -> None:
            with self._pending_lock:
                if not state["left_queue"]:
                    state["left_queue"] = True
                    depth.dec()
                    left = pending.get(labels, 1) - 1
                    if left > 0:
                        pending[labels] = left
                    else:
                        pending.pop(labels, None)

        def call() -> Any:
            leave_queue()
            if state["cancelled"]:
                return None
            if deadline is not None and loop.time() >= deadline:
                raise expired(model)
            wait.observe(time.perf_counter() - queued_at)
            return fn(*args)

        depth.inc()
        try:
            return await loop.run_in_executor(self.executor, call)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        finally:
            leave_queue()  # a cancelled request that never ran

    async def decode(self, model: OnnxModel, z: np.ndarray, labels: np.ndarray | None,
                     finish: Finish | None = None, deadline: float | None = None) -> Any:
        def work() -> Any:
            images = self._timed_image(model, z, labels)
            return finish(images) if finish is not None else images

        return await self._submit(model, deadline, work)

    async def encode(self, model: OnnxModel, images: np.ndarray,
                     deadline: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        return await self._submit(model, deadline, self._timed_encoder, model, images)

    async def complete(self, model: OnnxModel, images: np.ndarray, masks: np.ndarray, z: np.ndarray,
                       finish: Finish | None = None, deadline: float | None = None) -> Any:
        def work() -> Any:
            out = self._timed_completer(model, images, masks, z)
            return finish(out) if finish is not None else out

        return await self._submit(model, deadline, work)


def concat_optional(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Rows of an optional output, None when the graph has no such output."""
    if any(p is None for p in parts):
        return None
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def log_loaded(model: OnnxModel) -> None:
    """The one log line that says which provider and files run a model."""
    event(log, "model_loaded", model=model.name, version=model.version, kind=model.manifest.kind,
          tasks=sorted(model.manifest.tasks), provider=model.provider, graphs=sorted(model.sessions), files=model.files,
          variant=model.variant or "plain", intra_op_threads=model.settings.intra_op_threads,
          io_binding=model.io_binding)
