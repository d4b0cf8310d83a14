"""Score samples against their training data, each figure beside the floor real images reach.

Entry points:

- ``evaluate_model(path, n, completion=...)``: the report of ``latentforge evaluate`` for a run
  folder or an exported version folder (``trainer.quality.scored``), with the figures of each
  task the model is scored on: a completion model's ``complete`` figures
  (``trainer.quality.completion``), a stroke model's ``draw_strokes`` figures
  (``trainer.quality.strokes``), any other's ``sample`` figures (samples drawn here), with the
  ``complete`` figures beside them when asked;
- ``evaluate(path, n)``: the ``sample`` figures alone;
- ``score_images(images, data)``: a flat dict of scores for images the caller already has,
  e.g. a few hundred samples the trainer draws every few thousand steps; the meter is loaded
  once per process, so later calls cost the features and the metrics only.

What is compared with what: samples against the meter's training split (80% of the data);
the floor is the same measurement made on real held-out images (the other 20%, which the
feature network never saw). FID and the manifold metrics depend on the number of images, so
both sides are measured on the same number: min(n, held-out count), the model's figures
averaged over the disjoint chunks of that size its n samples make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from trainer.data import DataError, TrainingData
from trainer.quality import metrics
from trainer.quality.features import (
    METER_VERSION,
    Meter,
    QualityError,
    load_meter,
    meter_for,
)
from trainer.quality.samplers import sample
from trainer.quality.scored import Report, ScoredModel, TaskFigures, round_figure, round_figures, scored_report

MIN_SAMPLES = 10
# The scalar scores score_images returns (those present for the data: class reads need labels).
SCALARS = ("fid", "kid", "precision", "recall", "coverage", "confident", "label_accuracy")


def _train_stats(meter: Meter) -> tuple[np.ndarray, np.ndarray]:
    if "train_stats" not in meter.memo:
        meter.memo["train_stats"] = metrics.mean_cov(meter.train_features)
    return meter.memo["train_stats"]


def _unit(meter: Meter) -> float:
    if "unit" not in meter.memo:
        meter.memo["unit"] = metrics.unit_scale(meter.train_features)
    return meter.memo["unit"]


def _subset(count: int, m: int, seed: int) -> np.ndarray:
    """A fixed choice of m of `count` indices (all of them, in order, when m >= count)."""
    if m >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:m])


def comparable_size(meter: Meter, n: int) -> int:
    """The number of images each floor-comparable figure is measured on: min(n, held-out count)."""
    return max(1, min(n, len(meter.held_out_features)))


def held_out_subset(meter: Meter, n: int, seed: int = 0) -> np.ndarray:
    """Indices into the held-out split of the real images the floor for n samples uses."""
    return _subset(len(meter.held_out_features), comparable_size(meter, n), seed + 1)


def score_features(meter: Meter, feats: np.ndarray, probs: np.ndarray | None = None,
                   labels: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """FID, KID, precision/recall (and class statistics) of features against the training split.

    FID, KID and precision/recall are measured on chunks of ``comparable_size`` images, the
    size the floor is measured at, and averaged over the disjoint chunks the n images make; the
    class statistics use all n.
    """
    n = len(feats)
    size = comparable_size(meter, n)
    order = np.random.default_rng(seed + 2).permutation(n)
    real_pr = meter.train_features[_subset(len(meter.train_features), size, seed)]
    unit = _unit(meter)
    found: dict[str, list[float]] = {"fid": [], "kid": [], "precision": [], "recall": []}
    for c in range(n // size):
        chunk = feats[order[c * size : (c + 1) * size]]
        if size >= 2:
            found["fid"].append(metrics.fid(_train_stats(meter), chunk))
            found["kid"].append(metrics.kid(meter.train_features / unit, chunk / unit, seed=seed + c))
        if size > metrics.PR_K:
            p, r = metrics.precision_recall(real_pr, chunk)
            found["precision"].append(p)
            found["recall"].append(r)
    scores: dict[str, Any] = {"n": n, "size": size, "chunks": n // size}
    scores.update({k: float(np.mean(v)) for k, v in found.items() if v})
    if probs is not None:
        scores.update(metrics.class_stats(probs, labels))
    return scores


def floor(meter: Meter, n: int, seed: int = 0) -> dict[str, Any]:
    """The scores real held-out images reach, measured as for n samples (memoised)."""
    idx = held_out_subset(meter, n, seed)
    key = ("floor", len(idx), seed)
    if key not in meter.memo:
        probs = None if meter.held_out_probs is None else meter.held_out_probs[idx]
        meter.memo[key] = score_features(meter, meter.held_out_features[idx], probs, seed=seed)
    return dict(meter.memo[key])


def score(meter: Meter, images: np.ndarray | torch.Tensor, labels: np.ndarray | None = None,
          seed: int = 0) -> dict[str, Any]:
    """Scores of images (N, C, H, W) in [0, 1] against the meter's data."""
    if len(images) < MIN_SAMPLES:
        raise QualityError(f"{len(images)} images are too few to score; use at least {MIN_SAMPLES}")
    feats, probs = meter.embed(images)
    return score_features(meter, feats, probs, labels, seed)


def score_images(
    images: np.ndarray | torch.Tensor,
    data: str | TrainingData | Meter,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    cache_dir: Path | None = None,
    labels: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Cheap periodic evaluation: flat scalar scores of images in [0, 1] against a data set.

    `data` is the trainer's data name (with its image_size/channels), the loaded TrainingData,
    or a Meter from an earlier call of ``load_meter``/``meter_for``. A name is resolved once
    per process; an TrainingData is hashed on every call, so keep the Meter instead when calling
    often. Returns fid, fid_floor, kid, precision, recall and, for labelled data, coverage
    and confident (see ``trainer.quality.metrics``).
    """
    if isinstance(data, Meter):
        meter = data
    elif isinstance(data, TrainingData):
        meter = load_meter(data, cache_dir)
    else:
        meter = meter_for(data, image_size, channels, cache_dir=cache_dir)
    scores = score(meter, images, labels, seed)
    flat = {k: float(scores[k]) for k in SCALARS if k in scores}
    flat["fid_floor"] = float(floor(meter, scores["n"], seed)["fid"])
    return flat


@dataclass
class SampleFigures(TaskFigures):
    """The sample task's figures: the model's samples' scores beside the real-data floor."""

    task: ClassVar[str] = "sample"
    graphs: list[str]  # the version's graph file that made the samples (none for a run)
    data: dict[str, Any]
    meter: dict[str, Any]
    scores: dict[str, Any]
    floor: dict[str, Any]
    settings: dict[str, Any]

    def summary(self, report: Report) -> dict[str, Any]:
        """A flat record of the headline figures (e.g. for a model manifest)."""
        out: dict[str, Any] = {k: round_figure(self.scores[k]) for k in SCALARS if k in self.scores}
        out.update({f"{k}_floor": round_figure(self.floor[k])
                    for k in ("fid", "kid", "precision", "recall", "confident") if k in self.floor})
        if self.scores.get("classes"):  # the rarest and the commonest class's share of the samples
            out.update(class_share_min=round_figure(min(self.scores["classes"])),
                       class_share_max=round_figure(max(self.scores["classes"])))
        out.update(n=report.n, seed=report.seed, data=self.data["spec"], data_sha256=self.data["sha256"],
                   meter=self.meter["kind"], meter_version=METER_VERSION)
        return out

    def format(self, report: Report) -> str:
        """The figures as a readable table."""
        src = report.source
        if src.get("kind") == "version":
            what = (f"{src['model']} version {src['version']} ({', '.join(self.graphs)}, ONNX Runtime, "
                    f"step {src.get('step')})")
        else:
            what = f"{report.target} ({Path(src.get('checkpoint', '')).name}, step {src.get('step')})"
        m, s, f = self.meter, self.scores, self.floor
        acc = m.get("held_out_accuracy")
        trained = f"trained now in {m['train_seconds']} s" if m["origin"] == "trained" else "cached"
        lines = [
            f"{what}: {report.n} samples, seed {report.seed}",
            f"data: {self.data['spec']} {tuple(self.data['shape'])}, sha256 {self.data['sha256'][:12]}",
            f"meter: {m['kind']} v{m['version']}, {m['train_images']} training images, {m['held_out_images']} "
            "held out" + (f", held-out accuracy {acc:.1%}" if acc is not None else "") + f" ({trained})",
            (f"floor: the same figures for {f['n']} real held-out images; FID, KID, precision and recall of the "
             f"model averaged over {s['chunks']} chunk(s) of {s['size']} samples"),
            "",
            f"{'':26}{'model':>10}{'floor':>10}",
        ]

        def row(label: str, key: str, fmt: str, note: str = "") -> None:
            if key in s:
                floor_value = format(f[key], fmt) if key in f else "-"
                lines.append(f"{label:26}{format(s[key], fmt):>10}{floor_value:>10}{note}")

        row("FID (lower is better)", "fid", ".3f",
            f"   {s['fid'] / f['fid']:.1f}x floor" if f.get("fid", 0) > 0 else "")
        row("KID (lower is better)", "kid", ".5f")
        row(f"precision (k={self.settings['k']})", "precision", ".3f")
        row(f"recall (k={self.settings['k']})", "recall", ".3f")
        if "classes" in s:
            row(f"confident (>= {self.settings['confidence']})", "confident", ".3f")
            k = s["num_classes"]
            covered, floor_covered = f"{s['coverage']}/{k}", f"{f['coverage']}/{k}"
            lines.append(f"{'classes covered':26}{covered:>10}{floor_covered:>10}"
                         f"   (holding >= {self.settings['coverage_share'] / k:.0%} of samples)")
            row("read as the asked label", "label_accuracy", ".3f")
            lines.append("")
            lines.append("class shares: " + "  ".join(f"{c}: {share:.1%}" for c, share in enumerate(s["classes"])))
        return "\n".join(lines)


def score_samples(report: Report, model: ScoredModel, data: str | None = None,
                  cache_dir: Path | None = None) -> SampleFigures:
    """Sample ``report.n`` images of the model and add their scores (the sample task) to the report."""
    n, seed = report.n, report.seed
    samples = sample(model, n, seed)
    spec = model.data_spec(data)
    try:
        meter = meter_for(spec.spec, spec.image_size, spec.channels, spec.min_image_size, cache_dir=cache_dir)
    except DataError as exc:
        raise QualityError(f"cannot load the data to compare with: {exc}; pass it with --data") from None
    if tuple(samples.images.shape[1:]) != tuple(meter.shape):
        raise QualityError(
            f"the model makes {tuple(samples.images.shape[1:])} images but {spec.spec} holds "
            f"{tuple(meter.shape)} (C, H, W); pass the data it was trained on with --data"
        )
    scores = score(meter, samples.images, samples.labels, seed)
    return report.add(SampleFigures(
        graphs=model.graph_files("decode"),
        data={"spec": spec.spec, "source": meter.source, "sha256": meter.data_sha256,
              "shape": list(meter.shape)},
        meter={
            "kind": meter.kind,
            "version": METER_VERSION,
            "key": meter.key,
            "cache": str(meter.path),
            "origin": meter.origin,
            "train_seconds": meter.train_seconds,
            "train_images": len(meter.train_features),
            "held_out_images": len(meter.held_out_features),
            "held_out_accuracy": meter.held_out_accuracy,
            "feature_dim": int(meter.train_features.shape[1]),
        },
        scores=round_figures(scores),
        floor=round_figures(floor(meter, n, seed)),
        settings={"k": metrics.PR_K, "confidence": metrics.CONFIDENCE,
                  "coverage_share": metrics.COVERAGE_FRACTION, "kid_subsets": metrics.KID_SUBSETS,
                  "comparable_size": comparable_size(meter, n)},
    ))


def evaluate(
    path: Path,
    n: int = 2000,
    seed: int = 0,
    checkpoint: Path | None = None,
    data: str | None = None,
    cache_dir: Path | None = None,
) -> Report:
    """Sample n images from a run folder or an exported version folder and score them (the
    sample task only)."""
    return scored_report(path, checkpoint, n, seed, lambda report, model: score_samples(report, model, data, cache_dir))


def evaluate_model(
    path: Path,
    n: int = 2000,
    seed: int = 0,
    checkpoint: Path | None = None,
    data: str | None = None,
    cache_dir: Path | None = None,
    completion: bool = False,
    candidates: int | None = None,
    iterations: int | None = None,
    temperatures: tuple[float, ...] | None = None,
) -> Report:
    """The report a model calls for, with the figures of each task it is scored on.

    A model with the ``complete`` task and no ``sample`` task (a completion model: it has no
    prior to sample) gets the ``complete`` figures only; any other model gets the ``sample``
    figures, and the ``complete`` figures too when ``completion`` is asked (a VAE or an
    autoencoder completes by the iterative method over its encoder and decoder). A stroke model
    (task ``draw_strokes``) gets ``trainer.quality.strokes``' figures, drawn at `temperatures`
    (default: 0.2, 0.5, 1.0 and its grid temperature), and no completion. A style model (task
    ``stylize`` or ``stylize_fixed``) gets ``trainer.quality.stylize``'s figures, ``n`` capping its
    legibility digits.
    """
    from trainer.quality import completion as comp
    from trainer.quality import strokes
    from trainer.quality import stylize

    def score(report: Report, model: ScoredModel) -> None:
        if model.tasks & {"stylize", "stylize_fixed"}:  # a style model: it has no prior and no hole to fill
            if completion:
                raise QualityError(f"{path} is a style transfer model: it has no image completion to score "
                                   "(drop --completion)")
            stylize.score_style(report, model, n, cache_dir)
        elif "draw_strokes" in model.tasks:  # a stroke model: held-out NLL and rendered drawings
            if completion:
                raise QualityError(f"{path} draws pen strokes: it has no image completion to score (drop --completion)")
            strokes.score_strokes(report, model, data, cache_dir, temperatures)
        else:
            completion_only = "complete" in model.tasks and "sample" not in model.tasks
            if (completion or completion_only) and not comp.can_complete(model.tasks):
                raise QualityError(f"{path} cannot complete images: it has neither the 'complete' task nor both "
                                   f"'encode' and 'decode' (its tasks: {', '.join(sorted(model.tasks)) or 'none'})")
            if not completion_only:
                score_samples(report, model, data, cache_dir)
            if completion or completion_only:
                comp.score_completion(
                    report, model,
                    candidates=comp.DEFAULT_CANDIDATES if candidates is None else candidates,
                    iterations=comp.DEFAULT_ITERATIONS if iterations is None else iterations,
                    data=data, cache_dir=cache_dir)

    return scored_report(path, checkpoint, n, seed, score)
