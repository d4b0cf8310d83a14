"""`latentforge evaluate`: score a run folder or an exported version against its training data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from latentforge.cli import missing_extra, one_line


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `evaluate` sub-command."""
    p = sub.add_parser(
        "evaluate",
        help="score a model's samples: FID, KID, precision/recall, class reads, beside the real-data floor; "
        "or its completions of held-out images",
        description="Sample a trained run (newest checkpoint) or an exported model version (ONNX Runtime) "
        "and score the samples against the data it was trained on, in the feature space of a small "
        "network the project trains once per data set and caches (no download). Each score is printed "
        "beside the floor: the same measurement on real held-out images. A completion model (the "
        "complete task), or any model with an encoder and a decoder given --completion, is scored on "
        "how it fills the hole of held-out images: PSNR and SSIM of the hole, class reads of the "
        "completed images (best of K candidates too), diversity, beside a mean-image baseline. A stroke model "
        "(sketch-rnn run folder) gets its held-out NLL (L_s, L_p, raw KL) and its drawings rendered and scored "
        "by a meter trained on the data set's rendered drawings, per sampling temperature.",
    )
    p.add_argument("path", type=Path,
                   help="run folder (or a .pt checkpoint) or an exported models/<name>/<version>/ folder")
    p.add_argument("--n", type=int, default=2000, help="samples to draw and score (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents and of metric subsets (default 0)")
    p.add_argument("--checkpoint", type=Path, help="run folders: score this checkpoint instead of the newest")
    p.add_argument("--data", help="data to compare with (default: the data the model was trained on)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where feature networks are cached (default $LATENTFORGE_CACHE_DIR/quality "
                   "or ~/.cache/latentforge/quality)")
    p.add_argument("--completion", action="store_true",
                   help="also score image completion (a VAE or autoencoder: the iterative method); a model with "
                   "the complete task is always scored so, on the held-out images, per mask kind")
    p.add_argument("--candidates", type=int, default=None, metavar="K",
                   help="completion: candidates per image (default 4); best-of-K reads and diversity use them")
    p.add_argument("--iterations", type=int, default=None,
                   help="completion by the iterative method: encode/decode rounds (default 8)")
    p.add_argument("--temperatures", type=_temperatures, default=None, metavar="T,T,...",
                   help="stroke models: sampling temperatures of the prior drawings (default 0.2,0.5,1.0 and "
                   "the run's grid temperature)")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON: target, source, n, seed, seconds, notes, created, and under "
                   "tasks each scored task's figures (sample, complete, draw_strokes)")
    p.set_defaults(func=run)


def _temperatures(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"temperatures are numbers separated by commas (got {text!r})") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"temperatures must be > 0 (got {text!r})")
    return values


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from latentforge.manifest import ManifestError
        from trainer.checkpoint import CheckpointError
        from trainer.data import DataError
        from trainer.quality.evaluate import evaluate_model
        from trainer.quality.features import QualityError
    except ModuleNotFoundError as exc:
        return missing_extra("evaluate", "train", exc)
    try:
        report = evaluate_model(
            args.path, n=args.n, seed=args.seed, checkpoint=args.checkpoint, data=args.data,
            cache_dir=args.cache_dir, completion=args.completion, candidates=args.candidates,
            iterations=args.iterations, temperatures=args.temperatures)
    except (QualityError, CheckpointError, ManifestError, DataError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0
