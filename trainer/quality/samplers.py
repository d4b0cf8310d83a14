"""N images in [0, 1] from a scored model (``trainer.quality.scored``): a run's checkpoint or an
exported version.

A run is sampled with PyTorch through its family; a version with ONNX Runtime through its decode
graph (the graph the service runs, fed by the contract's names: ``z``, and ``labels`` for a
conditional model), so an exported model is scored exactly as it is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentforge.latents import UNIFORM_MAX
from latentforge.runtime import ModelRuntime
from trainer.quality.features import QualityError
from trainer.quality.scored import ScoredModel, open_scored

BATCH = 500


@dataclass
class Samples:
    """Images (N, C, H, W) float32 in [0, 1] and the labels asked for (conditional models)."""

    images: np.ndarray
    labels: np.ndarray | None


def sample(model: ScoredModel, n: int, seed: int = 0) -> Samples:
    """N images of a run (PyTorch) or an exported version (ONNX Runtime)."""
    if n < 1:
        raise QualityError(f"--n must be >= 1 (got {n})")
    if model.runtime is not None:
        return sample_version(model.runtime, n, seed)
    return sample_family(model.family(), n, seed)


def _class_labels(n: int, num_classes: int) -> np.ndarray | None:
    """Balanced labels 0, 1, ..., K-1, 0, ... for a conditional model; None otherwise."""
    return np.arange(n, dtype=np.int64) % num_classes if num_classes > 0 else None


def sample_run(run_dir: Path, n: int, seed: int = 0, checkpoint: Path | None = None) -> Samples:
    """N images from a run's newest checkpoint (or the given one), drawn with PyTorch."""
    return sample(open_scored(Path(run_dir), checkpoint), n, seed)


def sample_family(family, n: int, seed: int = 0) -> Samples:
    """N images of a trained family: its latents from torch's generator seeded with `seed`, balanced
    labels for a conditional model; the caller's random streams are left as they were."""
    import torch

    with torch.random.fork_rng(devices=[]):
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
    return Samples(images=images, labels=labels)


def sample_version(runtime: ModelRuntime, n: int, seed: int = 0) -> Samples:
    """N images from an exported version's decode graph.

    Latents are standard normal from NumPy's PCG64 seeded with `seed` (a model with a learned
    prior maps them and uniforms from the same generator through its prior graph); a conditional model gets
    balanced labels on the contract's ``labels`` input. The graph's output is mapped from the
    manifest's value range to [0, 1].
    """
    manifest = runtime.manifest
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, manifest.latent_dim)).astype(np.float32)
    if runtime.has_task("prior"):  # a learned prior: the noise above and a uniform pick the latent
        u = np.minimum(rng.random(n), UNIFORM_MAX).astype(np.float32)
        z = runtime.run_chunked(runtime.graph_for("prior"), {"noise": z, "u": u}, BATCH, outputs=["z"])["z"]
    feeds = {"z": z}
    labels = _class_labels(n, manifest.num_classes)
    if labels is not None:
        feeds["labels"] = labels
    images = runtime.run_chunked(runtime.graph_for("decode"), feeds, BATCH, outputs=["image"])["image"]
    lo, hi = manifest.output.value_range
    return Samples(images=np.clip((images.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0), labels=labels)
