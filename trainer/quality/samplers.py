"""N images in [0, 1] from a model: a trainer run folder's checkpoint or an exported version folder.

A run folder is sampled with PyTorch through the family the checkpoint names; a version folder
with ONNX Runtime through the graph its manifest names (the same graph the service runs), so
an exported model is scored exactly as it is served. Both also say which data the model was
trained on, from the config saved with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentforge.manifest import MANIFEST_NAME, Manifest, verify_files
from trainer.quality.features import QualityError

BATCH = 500


@dataclass(frozen=True)
class DataSpec:
    """The training data of a model, as the trainer's `load_data` takes it."""

    spec: str
    image_size: int | None = None
    channels: int | None = None
    min_image_size: int = 8

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> DataSpec:
        spec = config.get("data")
        if not isinstance(spec, str) or not spec:
            raise QualityError(f"{where} does not name its training data; pass --data")
        return cls(spec, config.get("image_size"), config.get("channels"), int(config.get("min_image_size") or 8))


@dataclass
class Samples:
    """Images (N, C, H, W) float32 in [0, 1], the labels asked for (conditional models) and provenance."""

    images: np.ndarray
    labels: np.ndarray | None
    data: DataSpec
    source: dict[str, Any] = field(default_factory=dict)


def is_version_dir(path: Path) -> bool:
    return (Path(path) / MANIFEST_NAME).is_file()


def sample(path: Path, n: int, seed: int = 0, checkpoint: Path | None = None) -> Samples:
    """Sample a run folder (or a checkpoint file) or an exported version folder."""
    path = Path(path)
    if n < 1:
        raise QualityError(f"--n must be >= 1 (got {n})")
    if is_version_dir(path):
        if checkpoint is not None:
            raise QualityError(f"{path} is an exported version; --checkpoint applies to run folders only")
        return sample_version(path, n, seed)
    if path.is_file() and checkpoint is None:
        return sample_run(path.parent.parent, n, seed, checkpoint=path)
    if path.is_dir():
        return sample_run(path, n, seed, checkpoint)
    raise QualityError(f"{path} is neither a run folder, a checkpoint file nor an exported version folder")


def _class_labels(n: int, num_classes: int) -> np.ndarray | None:
    """Balanced labels 0, 1, ..., K-1, 0, ... for a conditional model; None otherwise."""
    return np.arange(n, dtype=np.int64) % num_classes if num_classes > 0 else None


def _family_from_checkpoint(payload: dict[str, Any]):
    """Rebuild the trained family of a checkpoint on the CPU (the one place that knows how)."""
    from trainer.families import restore_family

    return restore_family(payload)


def sample_run(run_dir: Path, n: int, seed: int = 0, checkpoint: Path | None = None) -> Samples:
    """N images from a run's newest checkpoint (or the given one), drawn with PyTorch."""
    import torch

    from trainer.checkpoint import load_checkpoint

    payload = load_checkpoint(Path(checkpoint) if checkpoint is not None else Path(run_dir))
    with torch.random.fork_rng(devices=[]):
        family = _family_from_checkpoint(payload)
        z = family.latents(n, torch.Generator().manual_seed(seed))
        labels = _class_labels(n, family.num_classes)
        chunks = []
        for start in range(0, n, BATCH):
            zb = z[start : start + BATCH]
            if labels is None:
                chunks.append(family.sample(zb))
            else:  # conditional families take the labels beside the latents
                chunks.append(family.sample(zb, torch.from_numpy(labels[start : start + BATCH])))
    images = torch.cat(chunks).clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
    return Samples(
        images=images,
        labels=labels,
        data=DataSpec.from_config(payload["config"], payload["path"]),
        source={"kind": "run", "checkpoint": payload["path"], "step": int(payload["step"]),
                "family": payload["family"]},
    )


def sample_version(version_dir: Path, n: int, seed: int = 0) -> Samples:
    """N images from an exported version, run with ONNX Runtime on its image graph.

    Latents are standard normal from NumPy's PCG64 seeded with `seed`; a conditional model gets
    balanced labels. The graph's output is mapped from the manifest's value range to [0, 1].
    """
    import onnxruntime as ort

    version_dir = Path(version_dir)
    manifest = Manifest.read(version_dir)
    verify_files(version_dir, manifest)
    config = manifest.training.get("config", {})
    data = DataSpec.from_config(config, str(version_dir / MANIFEST_NAME))
    session = ort.InferenceSession(str(version_dir / manifest.graphs[manifest.image_graph]),
                                   providers=["CPUExecutionProvider"])
    z = np.random.default_rng(seed).standard_normal((n, manifest.latent_dim)).astype(np.float32)
    labels = _class_labels(n, manifest.num_classes)
    label_inputs = [i.name for i in session.get_inputs() if i.name != "z"]
    if labels is not None and len(label_inputs) != 1:
        raise QualityError(f"{version_dir}: a conditional model's image graph needs one label input beside z "
                           f"(found {label_inputs})")
    chunks = []
    for start in range(0, n, BATCH):
        feeds = {"z": z[start : start + BATCH]}
        if labels is not None:
            feeds[label_inputs[0]] = labels[start : start + BATCH]
        chunks.append(session.run(["image"], feeds)[0])
    lo, hi = manifest.output.value_range
    images = np.clip((np.concatenate(chunks).astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return Samples(
        images=images,
        labels=labels,
        data=data,
        source={"kind": "version", "model": manifest.name, "version": manifest.version,
                "graph": manifest.graphs[manifest.image_graph],
                "step": int(manifest.source_checkpoint.get("step", 0))},
    )
