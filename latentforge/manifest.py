"""The model-repository contract between the exporter (writer) and the service (reader).

A repository looks like ``<repo>/<name>/<version>/manifest.json`` plus the ONNX files the
manifest lists. This module holds the manifest's schema and the pure helpers both sides
need (hashing, version discovery, checking a call against a graph's signature); it imports
neither torch nor onnxruntime so that the trainer and the serving install can both use it.

A manifest says what a model can do, as data:

* ``graphs``: role -> ONNX file, e.g. ``{"decoder": "decoder.onnx", "encoder": "encoder.onnx"}``.
* ``signatures``: role -> the graph's inputs and outputs, each with a name, a dtype (NumPy
  name: ``float32``, ``int64``...) and a shape whose entries are sizes or names of dynamic
  axes (``["N", 100]``: any batch ``N``; one name used twice in a call means one size).
  An input marked ``optional`` may be left out by a caller: it is then fed as zeros (e.g.
  ``labels`` of a conditional model -> class 0, the initial ``h``/``c`` state of a recurrent
  decoder).
* ``tasks``: task -> the role of the graph that performs it. Known tasks and the contract of
  their graph (``N`` is the batch axis):

  - ``decode``: ``z`` float32 ``(N, latent_dim)`` [+ ``labels`` int64 ``(N,)``, optional, when
    ``num_classes > 0``] -> ``image`` float32 ``(N, C, H, W)`` in ``output.value_range``.
  - ``sample``: the model has a prior: latents drawn from it are meaningful inputs of this graph
    (the ``decode`` graph of a GAN or VAE). The prior is the standard normal unless the model
    also has ``prior``.
  - ``prior``: a learned prior: ``noise`` float32 ``(N, latent_dim)`` from the standard normal and
    ``u`` float32 ``(N,)`` uniform in [0, 1) -> ``z`` float32 ``(N, latent_dim)``, the latents the
    ``sample`` task decodes (e.g. a Gaussian mixture fitted to a VAE's encoded training set:
    ``u`` picks the component, ``noise`` the point in it). ``latentforge.latents`` draws both
    from a seed; a reader that does not know the task samples the standard normal instead.
  - ``encode``: ``image`` float32 ``(N, C, H, W)`` in ``output.value_range`` -> ``mu``
    float32 ``(N, latent_dim)`` [+ ``logvar``, same shape, for a VAE].
  - ``complete``: ``image`` float32 ``(N, C, H, W)`` in ``output.value_range``, ``mask`` float32
    ``(N, 1, H, W)`` (1 = known pixel, 0 = hole; ``conventions["mask"]``) and ``z`` float32
    ``(N, latent_dim)`` from the standard normal -> ``completed`` float32 ``(N, C, H, W)``, the
    known pixels kept and the hole filled; different ``z`` give different fillings. With
    ``conventions["first_candidate"]`` (``FIRST_CANDIDATE_MODE``), ``z = 0`` gives the most likely
    filling, which the service returns as candidate 0.
  - ``encode_strokes``: ``strokes`` float32 ``(N, T, 5)`` (stroke-5 rows, ``conventions["strokes"]``;
    T = ``strokes.max_steps``) and ``lengths`` int64 ``(N,)`` -> ``mu`` float32 ``(N, latent_dim)``
    [+ ``logvar``].
  - ``init_state``: ``z`` float32 ``(N, latent_dim)`` -> ``h``, ``c`` float32 ``(N, hidden)``: the
    recurrent decoder's state before its first step.
  - ``draw_strokes``: one step of a recurrent stroke decoder, the sampling loop run by the
    caller: ``point`` float32 ``(N, 5)`` (the previous point, ``strokes.start_point`` first)
    [+ ``z`` float32 ``(N, latent_dim)``], ``h``, ``c`` float32 ``(N, hidden)`` -> the next point's
    distribution ``pi`` (mixture logits), ``mu_x``, ``mu_y``, ``sigma_x``, ``sigma_y``, ``rho``
    float32 ``(N, M)`` with M = ``strokes.mixtures``, ``pen_logits`` float32 ``(N, 3)``, and the
    new state ``h_out``, ``c_out``. A model without ``init_state`` (the unconditional decoder,
    ``latent_dim`` 0) starts from zeros: its ``h`` and ``c`` are optional inputs.
  - ``encode_style``: ``style`` float32 ``(N, C, Hs, Ws)`` in ``output.value_range``, any size ->
    ``style_mean``, ``style_std`` float32 ``(N, S)``: the style's statistics (a weighted mix of
    styles is the weighted mean of each).
  - ``stylize``: ``content`` float32 ``(N, C, H, W)`` in ``output.value_range``, any size,
    ``style_mean``, ``style_std`` float32 ``(N, S)`` from ``encode_style``, ``alpha`` float32 ``(N,)``
    in [0, 1] (0 = the content, 1 = full style) and ``mask`` float32 ``(N, 1, H, W)`` (1 = stylise,
    0 = keep the content; ``conventions["style_mask"]``) -> ``stylized`` float32 ``(N, C, H, W)``.
  - ``stylize_fixed``: one style built into the graph: ``content``, ``alpha`` and ``mask`` as for
    ``stylize`` -> ``stylized``.

  Style models take images of any size: their ``output`` has ``height`` and ``width`` 0 (any) and
  their graphs name the image axes ``H`` and ``W``.

  A reader ignores tasks it does not know, so an older service still serves the rest.
* ``kind``: the family's name (``gan``, ``vae``, ``ae``...), for people and dashboards; what
  the service does follows ``tasks``, not ``kind``.
* ``classes``: class names of a conditional model (index = label), or empty.
* ``conventions``: how to read inputs whose meaning a shape cannot say, e.g. ``{"mask":
  "1 = known pixel, 0 = hole"}`` for a completion model.
* ``strokes``: what a caller of a stroke model needs beyond the graphs' shapes (``StrokeSpec``):
  the longest drawing, the mixture count, the scale factor that turns offsets into the data's
  units, the default sampling temperature. ``output`` then describes the service's renderings
  of a drawing (one channel, white lines on black, in ``value_range``).
* ``quality``: optional scores of the project's quality meter and the meter's version.

Format 1 manifests (no tasks, signatures, classes or quality) are still read: their tasks
and signatures are derived from ``kind`` and ``graphs`` as the graph contract above implies
(``gan``: ``generator`` samples and decodes; ``vae``: ``decoder`` samples and decodes,
``encoder`` encodes to ``mu`` and ``logvar``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
# Model names become folder names, metric labels and Redis key parts: keep them tame.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# Kinds, tasks, roles, tensor and axis names: identifiers.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
KINDS_V1 = ("gan", "vae")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
BATCH_AXIS = "N"
# Inputs and outputs a known task's graph must have: name -> dtype. Unknown tasks have no contract.
TASK_CONTRACTS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "decode": ({"z": "float32"}, {"image": "float32"}),
    "sample": ({"z": "float32"}, {}),
    "prior": ({"noise": "float32", "u": "float32"}, {"z": "float32"}),
    "encode": ({"image": "float32"}, {"mu": "float32"}),
    # ONNX names every value once, so the filled image cannot share the input's name.
    "complete": ({"image": "float32", "mask": "float32", "z": "float32"}, {"completed": "float32"}),
    "encode_strokes": ({"strokes": "float32", "lengths": "int64"}, {"mu": "float32"}),
    "init_state": ({"z": "float32"}, {"h": "float32", "c": "float32"}),
    "draw_strokes": ({"point": "float32", "h": "float32", "c": "float32"},
                     {name: "float32" for name in ("pi", "mu_x", "mu_y", "sigma_x", "sigma_y", "rho",
                                                   "pen_logits", "h_out", "c_out")}),
    "encode_style": ({"style": "float32"}, {"style_mean": "float32", "style_std": "float32"}),
    "stylize": ({"content": "float32", "style_mean": "float32", "style_std": "float32", "alpha": "float32",
                 "mask": "float32"}, {"stylized": "float32"}),
    "stylize_fixed": ({"content": "float32", "alpha": "float32", "mask": "float32"}, {"stylized": "float32"}),
}
# Tasks whose graphs take or give a latent: a model with any of them has latent_dim >= 1.
LATENT_TASKS = ("decode", "sample", "prior", "encode", "complete", "encode_strokes", "init_state")
STROKE_TASKS = ("encode_strokes", "init_state", "draw_strokes")
STYLE_TASKS = ("encode_style", "stylize", "stylize_fixed")
STROKE_DIM = 5  # stroke-5 rows: dx, dy, then the one-hot pen state (down, lifted, ended)
# The mask convention of the complete task, recorded in a completion model's manifest.
MASK_CONVENTION = "1 = known pixel, 0 = hole"
# A completion model's first candidate rule, recorded as conventions["first_candidate"] by models
# trained for it: candidate 0 of Complete gets z = 0, the model's most likely filling; the others
# get their seeds' latents. Without it every candidate's latent comes from its seed.
FIRST_CANDIDATE_MODE = "z = 0: the most likely filling"
# The mask convention of the stylize tasks, recorded in a style model's manifest.
STYLE_MASK_CONVENTION = "1 = stylise, 0 = keep the content"



class ManifestError(ValueError):
    """A manifest is missing, malformed, or disagrees with the files beside it."""


class SignatureError(ValueError):
    """A call's inputs do not fit a graph's signature (name, dtype or shape)."""


@dataclass(frozen=True)
class OutputSpec:
    """What the image-producing graph returns. ``height`` and ``width`` 0: any size (style models,
    whose output has the size of their input)."""

    channels: int
    height: int
    width: int
    value_range: tuple[float, float]
    layout: str = "NCHW"
    dtype: str = "float32"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class StrokeSpec:
    """How to run and read a stroke model (tasks ``draw_strokes``, ``encode_strokes``)."""

    max_steps: int  # T: the longest drawing, in points (the encoder's sequence length)
    mixtures: int  # M: Gaussians in each step's mixture over (dx, dy)
    hidden: int  # size of the decoder's h and c
    scale: float  # offsets are in units of this many of the data's units (multiply to get them)
    temperature: float  # the default sampling temperature (its grids were drawn at it)
    start_point: tuple[float, ...] = (0.0, 0.0, 1.0, 0.0, 0.0)  # the first ``point`` of a drawing

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StrokeSpec":
        return cls(max_steps=int(data["max_steps"]), mixtures=int(data["mixtures"]), hidden=int(data["hidden"]),
                   scale=float(data["scale"]), temperature=float(data["temperature"]),
                   start_point=tuple(float(v) for v in data.get("start_point", cls.start_point)))

    def check(self) -> None:
        if self.max_steps < 1 or self.mixtures < 1 or self.hidden < 1:
            raise ManifestError(f"strokes: max_steps, mixtures and hidden must be >= 1 (got {self.max_steps}, "
                                f"{self.mixtures}, {self.hidden})")
        if not self.scale > 0 or not self.temperature > 0:
            raise ManifestError(f"strokes: scale and temperature must be > 0 (got {self.scale}, {self.temperature})")
        if len(self.start_point) != STROKE_DIM:
            raise ManifestError(f"strokes: start_point must have {STROKE_DIM} values")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a graph. ``shape`` holds sizes (int) and dynamic axis names (str)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    optional: bool = False  # inputs only: left out by a caller, it is fed as zeros

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TensorSpec":
        return cls(name=str(data["name"]), dtype=str(data["dtype"]),
                   shape=tuple(d if isinstance(d, str) else int(d) for d in data["shape"]),
                   optional=bool(data.get("optional", False)))

    def describe(self) -> str:
        """``name float32 [N, 100]``, for messages."""
        return f"{self.name} {self.dtype} [{', '.join(str(d) for d in self.shape)}]"

    def check(self) -> None:
        if not IDENTIFIER.match(self.name):
            raise ManifestError(f"tensor name {self.name!r} must be an identifier")
        if self.dtype not in DTYPES:
            raise ManifestError(f"{self.name}: dtype {self.dtype!r} is not one of {DTYPES}")
        for d in self.shape:
            if isinstance(d, str) and not IDENTIFIER.match(d):
                raise ManifestError(f"{self.name}: dynamic axis name {d!r} must be an identifier")
            if isinstance(d, int) and d < 0:
                raise ManifestError(f"{self.name}: axis size {d} must be >= 0")


@dataclass(frozen=True)
class Signature:
    """How to call one graph: its inputs and outputs, in the graph's order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Signature":
        return cls(inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
                   outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]))

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def check(self, role: str) -> None:
        for what, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [t.name for t in specs]
            if len(set(names)) != len(names):
                raise ManifestError(f"graph {role!r}: {what} names repeat: {names}")
            for t in specs:
                try:
                    t.check()
                except ManifestError as exc:
                    raise ManifestError(f"graph {role!r}: {exc}") from None
        if not self.outputs:
            raise ManifestError(f"graph {role!r} has no outputs")
        if any(t.optional for t in self.outputs):
            raise ManifestError(f"graph {role!r}: only inputs can be optional")

    def bind(self, feeds: Mapping[str, tuple[str, Sequence[int]]]) -> dict[str, int]:
        """Check a call's feeds (name -> (dtype, shape)) and return the sizes of the dynamic axes.

        Every required input must be fed, nothing unknown may be, dtypes must match exactly,
        fixed axes must have their size and a dynamic axis one size throughout the call.
        Raises SignatureError saying which input is wrong and what the signature expects.
        """
        known = {t.name for t in self.inputs}
        unknown = sorted(set(feeds) - known)
        if unknown:
            raise SignatureError(f"unknown input(s) {', '.join(unknown)}; the graph takes "
                                 f"{', '.join(t.describe() for t in self.inputs)}")
        axes: dict[str, int] = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                if spec.optional:
                    continue
                raise SignatureError(f"input {spec.describe()} is required")
            dtype, shape = feeds[spec.name]
            if dtype != spec.dtype:
                raise SignatureError(f"input {spec.name} is {dtype}; the graph takes {spec.describe()}")
            if len(shape) != len(spec.shape):
                raise SignatureError(f"input {spec.name} has shape {tuple(shape)}; the graph takes {spec.describe()}")
            for axis, (want, got) in enumerate(zip(spec.shape, shape)):
                if isinstance(want, int):
                    if got != want:
                        raise SignatureError(f"input {spec.name} has shape {tuple(shape)}; the graph takes "
                                             f"{spec.describe()} (axis {axis} must be {want})")
                elif axes.setdefault(want, int(got)) != got:
                    raise SignatureError(f"input {spec.name} has {want} = {got} on axis {axis}, but another "
                                         f"input has {want} = {axes[want]}; they must agree")
        return axes

    def resolve(self, spec: TensorSpec, axes: Mapping[str, int]) -> tuple[int, ...] | None:
        """The concrete shape of ``spec`` under bound ``axes``, or None when an axis is unbound."""
        out = []
        for d in spec.shape:
            if isinstance(d, int):
                out.append(d)
            elif d in axes:
                out.append(axes[d])
            else:
                return None
        return tuple(out)


@dataclass(frozen=True)
class FileEntry:
    """One file of a version folder, with the digest the loader checks before use."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class Parity:
    """ONNX Runtime vs PyTorch agreement measured by the exporter."""

    max_abs_error: float
    tolerance: float
    batch_sizes: tuple[int, ...]
    per_graph: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Quality:
    """Scores of the project's quality meter (e.g. FID, precision, recall) and the meter's version."""

    meter_version: str
    scores: dict[str, float | str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Quality":
        scores: dict[str, float | str] = {}
        for k, v in dict(data.get("scores", {})).items():
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ManifestError(f"quality score {k!r} must be a number or a string, got {v!r}")
            scores[str(k)] = v if isinstance(v, str) else float(v)
        return cls(meter_version=str(data["meter_version"]), scores=scores)


@dataclass(frozen=True)
class Manifest:
    """Everything a loader or a client needs to call one model version."""

    name: str
    version: int
    kind: str  # the family's name: gan, vae, ae...
    latent_dim: int
    num_classes: int
    output: OutputSpec
    graphs: dict[str, str]  # role ("generator", "decoder", "encoder"...) -> file name
    files: dict[str, FileEntry]
    opset: int
    parity: Parity
    source_checkpoint: dict[str, Any]
    created: str
    training: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, str] = field(default_factory=dict)
    # Optional alternative files of the same graphs, by variant name -> role -> file:
    #   "fp16": float16 weights and compute, float32 inputs and outputs (for GPUs);
    #   "ort-cpu": graphs pre-optimised by ONNX Runtime (producer["onnxruntime"]) for its CPU
    #   provider, which load faster there and only there.
    # Their parity errors are in parity.per_graph as "<role>@<variant>".
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # task -> role of the graph performing it
    signatures: dict[str, Signature] = field(default_factory=dict)  # role -> inputs and outputs
    classes: tuple[str, ...] = ()  # class names by label; empty when unconditional or unnamed
    quality: Quality | None = None
    conventions: dict[str, str] = field(default_factory=dict)  # e.g. {"mask": MASK_CONVENTION}
    strokes: StrokeSpec | None = None  # stroke models: how to run the drawing loop
    format_version: int = FORMAT_VERSION

    def has_task(self, task: str) -> bool:
        return task in self.tasks

    def graph_for(self, task: str) -> str:
        """Role of the graph that performs ``task``; ManifestError when the model cannot."""
        try:
            return self.tasks[task]
        except KeyError:
            raise ManifestError(f"model {self.name} v{self.version} has no {task!r} task "
                                f"(its tasks: {', '.join(sorted(self.tasks)) or 'none'})") from None

    @property
    def image_graph(self) -> str:
        """Role of the graph that turns latents into images."""
        return self.graph_for("decode")

    def to_json(self) -> str:
        data = asdict(self)
        data["output"]["value_range"] = list(self.output.value_range)
        data["output"]["shape"] = list(self.output.shape)
        data["parity"]["batch_sizes"] = list(self.parity.batch_sizes)
        if self.strokes is None:
            del data["strokes"]  # image models' manifests stay as they were
        else:
            data["strokes"]["start_point"] = list(self.strokes.start_point)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        """Parse and validate a manifest dict (format 1 or 2); raises ManifestError with what is wrong."""
        try:
            format_version = data.get("format_version")
            if format_version not in READABLE_FORMAT_VERSIONS:
                raise ManifestError(
                    f"unsupported manifest format_version {format_version!r}; this build reads "
                    f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))} (a newer exporter wrote it? upgrade the server)"
                )
            out = dict(data["output"])
            out.pop("shape", None)
            output = OutputSpec(
                channels=int(out["channels"]),
                height=int(out["height"]),
                width=int(out["width"]),
                value_range=(float(out["value_range"][0]), float(out["value_range"][1])),
                layout=str(out.get("layout", "NCHW")),
                dtype=str(out.get("dtype", "float32")),
            )
            parity = data["parity"]
            fields: dict[str, Any] = dict(
                name=str(data["name"]),
                version=int(data["version"]),
                kind=str(data["kind"]),
                latent_dim=int(data["latent_dim"]),
                num_classes=int(data["num_classes"]),
                output=output,
                graphs={str(k): str(v) for k, v in data["graphs"].items()},
                files={
                    str(k): FileEntry(sha256=str(v["sha256"]), bytes=int(v["bytes"]))
                    for k, v in data["files"].items()
                },
                opset=int(data["opset"]),
                parity=Parity(
                    max_abs_error=float(parity["max_abs_error"]),
                    tolerance=float(parity["tolerance"]),
                    batch_sizes=tuple(int(b) for b in parity["batch_sizes"]),
                    per_graph={str(k): float(v) for k, v in parity.get("per_graph", {}).items()},
                ),
                source_checkpoint=dict(data.get("source_checkpoint", {})),
                created=str(data["created"]),
                training=dict(data.get("training", {})),
                producer={str(k): str(v) for k, v in data.get("producer", {}).items()},
                variants={
                    str(name): {str(role): str(f) for role, f in roles.items()}
                    for name, roles in data.get("variants", {}).items()
                },
                format_version=format_version,
            )
            if format_version == 1:
                fields.update(_implied_by_v1(fields))
            else:
                quality = data.get("quality")
                fields.update(
                    tasks={str(k): str(v) for k, v in data["tasks"].items()},
                    signatures={str(role): Signature.from_dict(sig) for role, sig in data["signatures"].items()},
                    classes=tuple(str(c) for c in data.get("classes", ())),
                    quality=None if quality is None else Quality.from_dict(quality),
                    conventions={str(k): str(v) for k, v in data.get("conventions", {}).items()},
                    strokes=None if data.get("strokes") is None else StrokeSpec.from_dict(data["strokes"]),
                )
            manifest = cls(**fields)
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ManifestError(f"malformed manifest: {type(exc).__name__}: {exc}") from None
        manifest.validate()
        return manifest

    @classmethod
    def read(cls, version_dir: Path) -> "Manifest":
        path = Path(version_dir) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(f"{path} is missing") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path} is not readable JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path} must hold a JSON object")
        return cls.from_dict(data)

    def validate(self) -> None:
        """Check the manifest's own consistency (not the files: see verify_files)."""
        if not NAME_PATTERN.match(self.name):
            raise ManifestError(f"model name {self.name!r} must match {NAME_PATTERN.pattern}")
        if self.version < 1:
            raise ManifestError(f"version must be >= 1, got {self.version}")
        if self.format_version not in READABLE_FORMAT_VERSIONS:
            raise ManifestError(f"format_version {self.format_version!r} is not one of {READABLE_FORMAT_VERSIONS}")
        if self.format_version == 1 and self.kind not in KINDS_V1:
            raise ManifestError(f"kind {self.kind!r} is not one of {KINDS_V1}")
        if not IDENTIFIER.match(self.kind):
            raise ManifestError(f"kind {self.kind!r} must be an identifier (the family's name)")
        if self.latent_dim < 0 or self.num_classes < 0:
            raise ManifestError("latent_dim and num_classes must be >= 0")
        needs_latent = sorted(set(self.tasks) & set(LATENT_TASKS))
        if self.latent_dim < 1 and (needs_latent or not self.tasks):
            raise ManifestError(f"latent_dim must be >= 1 for tasks {', '.join(needs_latent) or '(none)'}")
        if self.classes and len(self.classes) != self.num_classes:
            raise ManifestError(f"classes names {len(self.classes)} classes but num_classes is {self.num_classes}")
        if len(set(self.classes)) != len(self.classes) or not all(self.classes):
            raise ManifestError("class names must be distinct and non-empty")
        for role, fname in self.graphs.items():
            if fname not in self.files:
                raise ManifestError(f"graph {role!r} names {fname!r}, which is not in files")
        for variant, roles in self.variants.items():
            for role, fname in roles.items():
                if role not in self.graphs or fname not in self.files:
                    raise ManifestError(f"variant {variant!r} lists {role!r} -> {fname!r}, unknown role or file")
        for fname in self.files:
            if Path(fname).name != fname or fname in ("", ".", ".."):
                raise ManifestError(f"file name {fname!r} must be a plain name inside the folder")
        self._validate_tasks()

    def _validate_tasks(self) -> None:
        if not self.tasks:
            raise ManifestError("the manifest declares no tasks; a model must be able to do something")
        if set(self.signatures) != set(self.graphs):
            raise ManifestError(f"signatures describe graphs {sorted(self.signatures)}, but the manifest "
                                f"lists graphs {sorted(self.graphs)}; every graph needs exactly one signature")
        for role, signature in self.signatures.items():
            signature.check(role)
        for task, role in self.tasks.items():
            if not IDENTIFIER.match(task):
                raise ManifestError(f"task name {task!r} must be an identifier")
            if role not in self.graphs:
                raise ManifestError(f"task {task!r} names graph {role!r}, which is not in graphs")
            inputs, outputs = TASK_CONTRACTS.get(task, ({}, {}))
            signature = self.signatures[role]
            for kind, wanted, find in (("input", inputs, signature.input), ("output", outputs, signature.output)):
                for name, dtype in wanted.items():
                    spec = find(name)
                    if spec is None or spec.dtype != dtype:
                        raise ManifestError(f"task {task!r} needs graph {role!r} to have a {dtype} {kind} {name!r}")
        # The latent and image tensors of the known tasks agree with latent_dim and output.
        for task, role in self.tasks.items():
            sig = self.signatures[role]
            encodes = task in ("encode", "encode_strokes")
            latent = (sig.output("mu") if encodes else sig.output("z") if task == "prior"
                      else sig.input("z") if task in TASK_CONTRACTS else None)
            images = {"decode": [sig.output("image")], "encode": [sig.input("image")],
                      "complete": [sig.input("image"), sig.output("completed")]}.get(task, [])
            if latent is not None and tuple(latent.shape[1:]) != (self.latent_dim,):
                raise ManifestError(f"graph {role!r} ({task}) has {latent.describe()}, but latent_dim is "
                                    f"{self.latent_dim}; expected [N, {self.latent_dim}]")
            for image in images:
                if image is not None and tuple(image.shape[1:]) != self.output.shape:
                    raise ManifestError(f"graph {role!r} ({task}) has {image.describe()}, but the output is "
                                        f"{self.output.shape}; expected [N, {', '.join(map(str, self.output.shape))}]")
            mask = sig.input("mask") if task == "complete" else None
            if mask is not None and tuple(mask.shape[1:]) != (1, *self.output.shape[1:]):
                raise ManifestError(f"graph {role!r} (complete) has {mask.describe()}; expected "
                                    f"[N, 1, {self.output.height}, {self.output.width}]")
        if "prior" in self.tasks:
            noise = self.signatures[self.tasks["prior"]].input("noise")
            if noise is not None and tuple(noise.shape[1:]) != (self.latent_dim,):
                raise ManifestError(f"graph {self.tasks['prior']!r} (prior) has {noise.describe()}; expected "
                                    f"[N, {self.latent_dim}]")
            if "sample" not in self.tasks:
                raise ManifestError("a model with the 'prior' task must have the 'sample' task it draws latents for")
        if "complete" in self.tasks and "mask" not in self.conventions:
            raise ManifestError("a model with the 'complete' task must say its mask convention "
                                f"(conventions.mask, e.g. {MASK_CONVENTION!r})")
        self._validate_strokes()
        self._validate_style()
        if self.num_classes > 0 and "decode" in self.tasks:
            labels = self.signatures[self.tasks["decode"]].input("labels")
            if labels is None or labels.dtype != "int64":
                raise ManifestError(f"a conditional model (num_classes {self.num_classes}) needs an int64 'labels' "
                                    f"input on its decode graph {self.tasks['decode']!r}")


    def _validate_style(self) -> None:
        """Style tasks: images of any size with the output's channels, statistics that agree
        between the encoder and the stylizer, and a mask convention."""
        style_tasks = sorted(set(self.tasks) & set(STYLE_TASKS))
        if not style_tasks:
            return
        if ("encode_style" in self.tasks) != ("stylize" in self.tasks):
            raise ManifestError("the encode_style and stylize tasks come together: the stylizer takes the "
                                "statistics the style encoder gives")
        if "style_mask" not in self.conventions:
            raise ManifestError("a style model must say its mask convention (conventions.style_mask, e.g. "
                                f"{STYLE_MASK_CONVENTION!r})")
        channels = self.output.channels
        sizes: set[int | str] = set()
        for task in style_tasks:
            role = self.tasks[task]
            sig = self.signatures[role]
            for name in ("content", "stylized", "style", "mask"):
                tensor = sig.input(name) or sig.output(name)
                if tensor is None:
                    continue
                want = 1 if name == "mask" else channels
                if len(tensor.shape) != 4 or tensor.shape[1] != want:
                    raise ManifestError(f"graph {role!r} ({task}) has {tensor.describe()}; expected [N, {want}, H, W]")
            alpha = sig.input("alpha")
            if alpha is not None and len(alpha.shape) != 1:
                raise ManifestError(f"graph {role!r} ({task}) has {alpha.describe()}; expected [N]")
            for name in ("style_mean", "style_std"):
                tensor = sig.input(name) or sig.output(name)
                if tensor is None:
                    continue
                if len(tensor.shape) != 2:
                    raise ManifestError(f"graph {role!r} ({task}) has {tensor.describe()}; expected [N, S]")
                sizes.add(tensor.shape[1])
        if len(sizes) > 1:
            raise ManifestError(f"the style statistics' sizes disagree between graphs: {sorted(map(str, sizes))}")

    def _validate_strokes(self) -> None:
        """Stroke tasks need ``strokes``, and their graphs agree with it and with each other."""
        stroke_tasks = sorted(set(self.tasks) & set(STROKE_TASKS))
        if not stroke_tasks:
            return
        spec = self.strokes
        if spec is None:
            raise ManifestError(f"a model with stroke tasks ({', '.join(stroke_tasks)}) needs a 'strokes' spec "
                                "(max_steps, mixtures, hidden, scale, temperature)")
        spec.check()
        if "draw_strokes" not in self.tasks:
            raise ManifestError("a stroke model needs the draw_strokes task (its decoder step)")
        state = ["N", spec.hidden]
        wanted: dict[str, dict[str, list]] = {
            "encode_strokes": {"strokes": ["N", spec.max_steps, STROKE_DIM]},
            "init_state": {"h": state, "c": state},
            "draw_strokes": {"point": ["N", STROKE_DIM], "h": state, "c": state, "h_out": state,
                             "c_out": state, "pi": ["N", spec.mixtures], "pen_logits": ["N", 3]},
        }
        for task in stroke_tasks:
            role = self.tasks[task]
            sig = self.signatures[role]
            for name, shape in wanted[task].items():
                tensor = sig.input(name) or sig.output(name)
                assert tensor is not None  # the task contract checked it is there
                if [d if isinstance(d, int) else "N" for d in tensor.shape] != shape:
                    raise ManifestError(f"graph {role!r} ({task}) has {tensor.describe()}; expected "
                                        f"[{', '.join(map(str, shape))}] (strokes: {spec})")
        step = self.signatures[self.tasks["draw_strokes"]]
        z = step.input("z")
        if (z is None) != (self.latent_dim == 0):
            raise ManifestError("draw_strokes takes a 'z' input exactly when the model has a latent "
                                f"(latent_dim {self.latent_dim})")
        if self.latent_dim and "init_state" not in self.tasks:
            raise ManifestError("a stroke model with a latent needs the init_state task (z -> h, c)")
        if not self.latent_dim and not all(step.input(n).optional for n in ("h", "c")):  # type: ignore[union-attr]
            raise ManifestError("an unconditional stroke model starts from zeros: draw_strokes' h and c "
                                "must be optional inputs")


def _implied_by_v1(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Tasks and signatures a format-1 manifest implies (its graph contract), from kind and graphs."""
    kind, graphs = fields["kind"], fields["graphs"]
    if kind not in KINDS_V1:
        raise ManifestError(f"kind {kind!r} is not one of {KINDS_V1}")
    image_role = "generator" if kind == "gan" else "decoder"
    unknown = sorted(set(graphs) - {image_role, "encoder"})
    if unknown or (kind == "gan" and "encoder" in graphs):
        raise ManifestError(f"a format-1 {kind} manifest has no graph contract for {unknown or ['encoder']}")
    if image_role not in graphs:
        raise ManifestError(f"a {kind} manifest needs a {image_role!r} graph")
    out: OutputSpec = fields["output"]
    latent = (BATCH_AXIS, fields["latent_dim"])
    image = TensorSpec("image", "float32", (BATCH_AXIS, *out.shape))
    inputs = [TensorSpec("z", "float32", latent)]
    if fields["num_classes"] > 0:
        inputs.append(TensorSpec("labels", "int64", (BATCH_AXIS,), optional=True))
    signatures = {image_role: Signature(inputs=tuple(inputs), outputs=(image,))}
    tasks = {"sample": image_role, "decode": image_role}
    if "encoder" in graphs:
        signatures["encoder"] = Signature(
            inputs=(image,), outputs=(TensorSpec("mu", "float32", latent), TensorSpec("logvar", "float32", latent)))
        tasks["encode"] = "encoder"
    return {"tasks": tasks, "signatures": signatures}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large models do not sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_files(version_dir: Path, manifest: Manifest) -> None:
    """Refuse a version folder whose files are missing, escape the folder or fail sha256."""
    root = Path(version_dir).resolve()
    for fname, entry in manifest.files.items():
        path = Path(version_dir) / fname
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise ManifestError(f"{fname} in {version_dir} is a link or escapes the version folder")
        if not path.is_file():
            raise ManifestError(f"{fname} listed in the manifest is missing from {version_dir}")
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ManifestError(
                f"{fname} in {version_dir} fails its sha256 check "
                f"(manifest {entry.sha256[:12]}…, file {actual[:12]}…)"
            )


def list_versions(model_dir: Path) -> list[int]:
    """Complete version folders (numeric name with a manifest), oldest first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    versions = [
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / MANIFEST_NAME).is_file()
    ]
    return sorted(versions)
