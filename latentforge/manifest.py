"""The model-repository contract between the exporter (writer) and the service (reader).

A repository looks like ``<repo>/<name>/<version>/manifest.json`` plus the ONNX files the
manifest lists. This module holds the manifest's schema and the pure helpers both sides
need (hashing, version discovery); it imports neither torch nor onnxruntime so that the
trainer and the serving install can both use it.

Graph contracts (input and output names are fixed so that any client can run the files):

* ``generator`` / ``decoder``: ``z`` float32 ``(N, latent_dim)`` [+ ``labels`` int64 ``(N,)``
  when ``num_classes > 0``] -> ``image`` float32 ``(N, C, H, W)`` in ``output.value_range``.
* ``encoder`` (VAE): ``image`` float32 ``(N, C, H, W)`` in ``output.value_range`` ->
  ``mu`` and ``logvar`` float32 ``(N, latent_dim)``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# Model names become folder names, metric labels and Redis key parts: keep them tame.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KINDS = ("gan", "vae")


class ManifestError(ValueError):
    """A manifest is missing, malformed, or disagrees with the files beside it."""


@dataclass(frozen=True)
class OutputSpec:
    """What the image-producing graph returns."""

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
class Manifest:
    """Everything a loader or a client needs to call one model version."""

    name: str
    version: int
    kind: str
    latent_dim: int
    num_classes: int
    output: OutputSpec
    graphs: dict[str, str]  # role ("generator", "decoder", "encoder") -> file name
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
    format_version: int = FORMAT_VERSION

    @property
    def image_graph(self) -> str:
        """Role of the graph that turns latents into images."""
        return "generator" if self.kind == "gan" else "decoder"

    def to_json(self) -> str:
        data = asdict(self)
        data["output"]["value_range"] = list(self.output.value_range)
        data["output"]["shape"] = list(self.output.shape)
        data["parity"]["batch_sizes"] = list(self.parity.batch_sizes)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        """Parse and validate a manifest dict; raises ManifestError with what is wrong."""
        try:
            if data.get("format_version") != FORMAT_VERSION:
                raise ManifestError(
                    f"unsupported manifest format_version {data.get('format_version')!r}; "
                    f"this build reads {FORMAT_VERSION}"
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
            manifest = cls(
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
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
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
        if self.kind not in KINDS:
            raise ManifestError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.latent_dim < 1 or self.num_classes < 0:
            raise ManifestError("latent_dim must be >= 1 and num_classes >= 0")
        if self.image_graph not in self.graphs:
            raise ManifestError(f"a {self.kind} manifest needs a {self.image_graph!r} graph")
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
