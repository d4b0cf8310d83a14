"""The one way to run an exported graph: a version's manifest plus its ONNX Runtime sessions.

Everything that runs an exported model goes through ``ModelRuntime``: the GenerationService
(through its batcher), the quality meter and the exporter's parity checks. ``run(role, feeds)``
checks the feeds against the manifest's signature of that graph (casting where the values keep
their meaning, filling optional inputs with zeros) and returns the named outputs, checked
against the signature too. ``OrtSettings`` carries every ONNX Runtime choice (providers,
threads, graph optimisation, memory arena, fp16 or ORT-optimised file variants, IO binding) in
one place; the raw load benchmark builds its sessions from the same object, so "raw" and
"served" numbers compare like with like.

Torch-free and transport-free: errors are ``FeedError`` (the caller's feeds do not fit the
graph: a client error when the feeds came from a request) and ``GraphError`` (the graph
answered against its own signature).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from latentforge.cpus import available_cpus
from latentforge.manifest import BATCH_AXIS, Manifest, ManifestError, SignatureError, verify_files

# Warm-up size of a dynamic axis other than the batch (an image side of a style model).
WARM_UP_AXIS = 32

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"
ORT_CPU_VARIANT = "ort-cpu"
FP16_VARIANT = "fp16"


class FeedError(ValueError):
    """Feeds that do not fit a graph's signature; the message says what the graph takes."""


class GraphError(RuntimeError):
    """A graph whose answer disagrees with its manifest's signature, or a task it lacks."""


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
    """How sessions are built; one object shared by the server, the meter and the raw benchmark.

    The defaults are a plain CPU session on one thread with the exported files as written (no
    optimised variant): what the quality meter and the exporter's checks use.
    """

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
        """Settings of a server config, with threads sized to the machine: cores // workers.

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


# The plain sessions of the meter and the exporter's checks: the files as exported, on the CPU.
PLAIN = OrtSettings(prefer_ort_variant=False)


def open_session(path: Path, settings: OrtSettings = PLAIN) -> Any:
    """An ONNX Runtime session of one bare .onnx file, built from ``settings``.

    For the exporter's checks of a graph it has just written, before a manifest exists to open a
    ``ModelRuntime`` from; everything else runs graphs through ``ModelRuntime``.
    """
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=settings.session_options(),
                                providers=settings.provider_list())


def write_optimised(src: Path, dst: Path, settings: OrtSettings = PLAIN, level: str = "extended") -> None:
    """Write ``src`` as ONNX Runtime optimises it (``level``: fused ops, folded constants) to ``dst``.

    The copy skips those optimisations when it is loaded, but runs only on the providers of
    ``settings`` (the CPU by default) and ideally on this very ONNX Runtime version. "extended",
    not "all": the layout changes of "all" can tie the file to the machine that wrote it.
    """
    import onnxruntime as ort

    options = replace(settings, graph_optimization=level).session_options()
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), sess_options=options, providers=settings.provider_list())


# ONNX Runtime's tensor type names -> the manifest's (NumPy) dtype names.
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


class ModelRuntime:
    """The loaded sessions of one model version: every graph its manifest lists, run by role
    with feeds checked against the manifest's signatures. Thread-safe: ONNX Runtime sessions
    allow concurrent ``run``."""

    def __init__(self, manifest: Manifest, version_dir: Path, settings: OrtSettings = PLAIN,
                 roles: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.version_dir = Path(version_dir)
        self.settings = settings
        self.retired = False  # set by a repository when the version's folder is gone
        options = settings.session_options()
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.files: dict[str, str] = {}
        variants = set()
        for role in (manifest.graphs if roles is None else roles):
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
        self._batchable = {role: _batch_major(manifest, role) for role in self.sessions}
        self._optional = {role: frozenset(t.name for t in manifest.signatures[role].inputs if t.optional)
                          for role in self.sessions}

    @classmethod
    def open(cls, version_dir: Path, settings: OrtSettings = PLAIN, verify: bool = True) -> "ModelRuntime":
        """A version folder's manifest and sessions (its files' sha256 checked first when ``verify``)."""
        manifest = Manifest.read(Path(version_dir))
        if verify:
            verify_files(Path(version_dir), manifest)
        return cls(manifest, Path(version_dir), settings)

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

    def has_task(self, task: str) -> bool:
        return self.manifest.has_task(task)

    def graph_for(self, task: str) -> str:
        """Role of the graph performing ``task`` (GraphError when the version has no such task)."""
        role = self.manifest.tasks.get(task)
        if role is None:
            raise GraphError(f"model {self.name} v{self.version} (kind {self.manifest.kind}) has no {task!r} task; "
                             f"it has {', '.join(sorted(self.manifest.tasks)) or 'none'}")
        return role

    def batchable(self, role: str) -> bool:
        """Whether every input and output of graph ``role`` has the batch axis first, so that
        calls can be merged by concatenating their feeds and split by rows."""
        return self._batchable[role]

    def optional_inputs(self, role: str) -> frozenset[str]:
        """Inputs of graph ``role`` that a caller may leave out (fed as zeros)."""
        return self._optional[role]

    def fill_optional(self, role: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` with every optional input left out given as the zeros ``run`` would feed,
        so that calls with and without it can be merged."""
        signature = self.manifest.signatures[role]
        if all(t.name in feeds for t in signature.inputs if t.optional):
            return dict(feeds)
        return self._filled(role, dict(feeds), self._bind(role, feeds))

    def _bind(self, role: str, feeds: Mapping[str, np.ndarray]) -> dict[str, int]:
        """The dynamic axes of a call (FeedError when the feeds do not fit the signature)."""
        try:
            return self.manifest.signatures[role].bind({n: (np.asarray(a).dtype.name, np.shape(a))
                                                        for n, a in feeds.items()})
        except SignatureError as exc:
            raise FeedError(f"model {self.name} v{self.version}, graph {role}: {exc}") from None

    def _filled(self, role: str, arrays: dict[str, np.ndarray], axes: Mapping[str, int]) -> dict[str, np.ndarray]:
        """``arrays`` with each optional input left out added as zeros of its resolved shape."""
        signature = self.manifest.signatures[role]
        for spec in signature.inputs:
            if spec.name not in arrays:
                shape = signature.resolve(spec, axes)
                if shape is None:
                    raise FeedError(f"model {self.name} v{self.version}, graph {role}: optional input "
                                    f"{spec.describe()} can only be left out when the other inputs give "
                                    "its axes; feed it")
                arrays[spec.name] = np.zeros(shape, dtype=spec.dtype)
        return arrays

    def output_names(self, role: str) -> tuple[str, ...]:
        return tuple(t.name for t in self.manifest.signatures[role].outputs)

    def run_task(self, task: str, feeds: Mapping[str, np.ndarray],
                 outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``run`` on the graph that performs ``task``."""
        return self.run(self.graph_for(task), feeds, outputs)

    def run(self, role: str, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Run graph ``role`` on ``feeds`` (input name -> array) and return the named outputs (all by default).

        Feeds are checked against the graph's signature: an array is cast to the declared
        dtype when that keeps its kind (float64 -> float32, int32 -> int64), an optional input
        left out is fed as zeros, and anything else that does not fit (unknown or missing
        input, wrong dtype or shape) is a FeedError that says what the graph takes.
        """
        signature = self.manifest.signatures[role]
        arrays: dict[str, np.ndarray] = {}
        for name, value in feeds.items():
            arr = np.asarray(value)
            spec = signature.input(name)
            if spec is not None and arr.dtype.name != spec.dtype and _same_kind(arr.dtype, np.dtype(spec.dtype)):
                arr = arr.astype(spec.dtype)
            arrays[name] = np.ascontiguousarray(arr)
        axes = self._bind(role, arrays)
        arrays = self._filled(role, arrays, axes)
        names = [t.name for t in signature.outputs] if outputs is None else list(outputs)
        specs = []
        for name in names:
            spec = signature.output(name)
            if spec is None:
                raise GraphError(f"graph {role} of model {self.name} v{self.version} has no output {name!r}")
            specs.append(spec)
        shapes = [signature.resolve(spec, axes) for spec in specs]
        session = self.sessions[role]
        if self.io_binding and all(shape is not None for shape in shapes):
            result = _run_bound(session, arrays, {s.name: (shape, s.dtype) for s, shape in zip(specs, shapes)})
        else:
            result = dict(zip(names, session.run(names, arrays)))
        for spec, shape in zip(specs, shapes):
            got = result[spec.name].shape
            wrong = got != shape if shape is not None else len(got) != len(spec.shape)
            if wrong:
                raise GraphError(f"model {self.name} v{self.version} returned shape {got} for {spec.name} of "
                                 f"graph {role}; its signature says {spec.describe()}")
        return result

    def run_chunked(self, role: str, feeds: Mapping[str, np.ndarray], chunk: int,
                    outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """``run`` over the rows of a batch-major graph ``chunk`` rows at a time, outputs
        concatenated (bounded memory for large offline batches)."""
        rows = len(next(iter(feeds.values())))
        if rows <= chunk:
            return self.run(role, feeds, outputs)
        parts = [self.run(role, {k: v[s:s + chunk] for k, v in feeds.items()}, outputs)
                 for s in range(0, rows, chunk)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def warm_up(self) -> None:
        """One call per graph on zeros (the batch axis 2, any other dynamic axis ``WARM_UP_AXIS``,
        optional inputs left out), so the first request does not pay for lazy initialisation;
        also checks every output's shape against the signature. Other dynamic axes are image
        sides (style models), which a graph that pools or pads by reflection cannot take at 2."""
        for role in self.sessions:
            signature = self.manifest.signatures[role]
            feeds = {t.name: np.zeros(tuple((2 if d == BATCH_AXIS else WARM_UP_AXIS) if isinstance(d, str) else d
                                            for d in t.shape), dtype=t.dtype)
                     for t in signature.inputs if not t.optional}
            self.run(role, feeds)


def decode_feeds(z: np.ndarray, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The decode task's feeds by its contract's names: latents, and labels for a conditional
    model (``latentforge.manifest``)."""
    return {"z": z} if labels is None else {"z": z, "labels": labels}


def _batch_major(manifest: Manifest, role: str) -> bool:
    signature = manifest.signatures[role]
    return all(t.shape and t.shape[0] == BATCH_AXIS for t in (*signature.inputs, *signature.outputs))


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
