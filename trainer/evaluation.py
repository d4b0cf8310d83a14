"""Quality during training: score a few hundred samples with the project's meter, keep the best.

Every `--eval-every` steps, and once more when a run ends (at `--steps` or when its time
budget is spent; not when a signal stops it), rank 0 draws `--eval-samples` images from one
fixed latent batch (balanced labels for a conditional family) and scores them against the
training data with `trainer.quality` (FID, KID, precision/recall and, for labelled data, class
coverage and confident reads, each beside the floor real held-out images reach at the same
sample count). The scores go into that step's line of metrics.jsonl (under "eval") and the
progress line.

Families whose outputs are not samples of the training data (style transfer: ``Family.meter_scores``
False) are not scored here; evaluation is then off, whatever --eval-every says.

The best-scoring weights are kept as checkpoints/best.pt: the score is FID in the meter's
feature space, lower is better. best.pt holds the same payload as a step checkpoint plus its
"quality" record, is written atomically, is never pruned by --keep-checkpoints, and is what
`latentforge export` publishes by default. A resumed run reads the bar to beat from best.pt.

Evaluation draws no numbers from the training's random streams (its latents come from a
generator of their own, and sampling runs inside `torch.random.fork_rng`), so a run with
evaluation follows exactly the same steps as one without, and resumes exactly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.checkpoint import CheckpointError, best_checkpoint_path, load_checkpoint
from trainer.data import DataError, TrainingData
from trainer.families.base import Family

log = logging.getLogger(__name__)

SCORE = "fid"  # what "best" means: the lowest FID in the meter's feature space
SAMPLE_CHUNK = 250  # images per forward pass while sampling
_LATENT_SEED_OFFSET = 104729  # evaluation latents differ from the grids' (seeded with the run's seed)


class Evaluator:
    """Scores a family's samples with the meter of its training data; remembers the best."""

    def __init__(self, meter: Any, family: Family, samples: int, seed: int, data_spec: str,
                 best: dict[str, Any] | None = None) -> None:
        self.meter = meter
        self.data_spec = data_spec
        self.samples, self.seed = samples, seed + _LATENT_SEED_OFFSET
        k = family.num_classes
        self.labels = torch.arange(samples, dtype=torch.long) % k if k > 0 else None
        self.best = best  # the quality record of checkpoints/best.pt, None until there is one
        self.last: dict[str, Any] | None = None  # the latest evaluation's record

    @classmethod
    def open(cls, cfg: Any, data: TrainingData, family: Family, out: Path) -> "Evaluator | None":
        """The evaluator of a run, or None when evaluation is off or the data has no meter
        (one log line says why). Loads (or, once per data set, trains) the meter."""
        if cfg.eval_every <= 0:
            return None
        from trainer.quality.features import QualityError, meter_for

        if not family.meter_scores:
            log.info("evaluation off: the quality meter's sample scores do not apply to %s models", family.name)
            return None
        if "images" not in data.spec.fields:
            log.info("evaluation off: %s gives no images for the quality meter to score", data.source)
            return None
        try:
            # Reading a cached meter builds its network, which draws initial weights from the
            # global generator: fork it, so a run draws the same numbers with a cached meter,
            # a freshly trained one, or none.
            with torch.random.fork_rng(devices=[]):
                meter = meter_for(cfg.data, cfg.image_size, cfg.channels, cfg.min_image_size)
        except (QualityError, DataError) as exc:
            log.info("evaluation off: %s", exc)
            return None
        if tuple(meter.shape) != tuple(family.shape):
            log.info("evaluation off: the meter of %s scores %s images, the model makes %s", data.source,
                     tuple(meter.shape), tuple(family.shape))
            return None
        return cls(meter, family, cfg.eval_samples, cfg.seed, cfg.data, _read_best(out))

    def evaluate(self, family: Family, step: int) -> dict[str, Any]:
        """Score the family's samples now; returns the flat record (also kept as `last`)."""
        from trainer.quality.evaluate import floor, score_images
        from trainer.quality.features import METER_VERSION

        started = time.perf_counter()
        device = family.device
        # Sampling must leave the training's random streams as they were (exact resume).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            # Drawn afresh from the same seed each time: a learned prior changes as it is refitted.
            latents = family.latents(self.samples, torch.Generator().manual_seed(self.seed))
            chunks = []
            for start in range(0, len(latents), SAMPLE_CHUNK):
                z = latents[start:start + SAMPLE_CHUNK]
                if self.labels is None:
                    images = family.sample(z)
                else:  # a conditional family takes labels beside the latents
                    images = family.sample(z, self.labels[start:start + SAMPLE_CHUNK].to(device))
                chunks.append(images.detach().float().clamp(0.0, 1.0).cpu())
        images = torch.cat(chunks)
        labels = None if self.labels is None else self.labels.numpy()
        scores = score_images(images, self.meter, labels=labels)
        base = floor(self.meter, len(images))
        record: dict[str, Any] = {k: round(v, 6) for k, v in scores.items()}
        record.update({f"{k}_floor": round(float(base[k]), 6) for k in ("kid", "precision", "recall", "confident")
                       if k in base and isinstance(base[k], (int, float))})
        record.update(n=len(images), seed=0, step=step, data=self.data_spec, data_sha256=self.meter.data_sha256,
                      meter=self.meter.kind, meter_version=METER_VERSION)
        self.last = record
        log.debug("evaluated step %d in %.1f s: %s", step, time.perf_counter() - started, record)
        return record

    def improved(self, record: dict[str, Any]) -> bool:
        """True when `record` beats the best so far (which it then becomes)."""
        value = record.get(SCORE)
        if value is None or not np.isfinite(value):
            return False
        if self.best is not None and not value < self.best.get(SCORE, float("inf")):
            return False
        self.best = record
        return True


def scores_of(record: dict[str, Any]) -> dict[str, float]:
    """The numeric scores of a quality record (what metrics.jsonl and the progress line show)."""
    skip = {"step", "seed", "meter_version"}
    return {k: v for k, v in record.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_best(out: Path) -> dict[str, Any] | None:
    """The quality record of an existing checkpoints/best.pt (a resumed run must beat it)."""
    path = best_checkpoint_path(out)
    if not path.is_file():
        return None
    try:
        quality = load_checkpoint(path).get("quality")
    except CheckpointError as exc:
        log.warning("%s; it will be replaced by the next evaluation", exc)
        return None
    return quality if isinstance(quality, dict) else None
