"""What the meter says about images whose quality is known: the floor, blurred and collapsed data.

`python -m trainer.quality.calibration [--data mnist5k] [--cache-dir DIR]` prints a Markdown table
of the scores of

- real held-out images (the floor) and real training images (below the floor: the feature
  network saw them, as a generator that memorised its data would be);
- the other half of the held-out images against the floor measured on the first half;
- held-out images blurred with a Gaussian (sigma in pixels);
- a collapsed "model": shifted copies of one class's images (one image's for unlabelled data);
- uniform noise.

docs/quality.md quotes its output; the tests check the same cases.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trainer.data import TrainingData, load_data
from trainer.quality import evaluate as ev
from trainer.quality.features import Meter, load_meter, split_indices


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Images (N, C, H, W) blurred by a separable Gaussian of `sigma` pixels (edges replicated)."""
    radius = max(1, int(3 * sigma + 0.5))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma**2))
    k = k / k.sum()
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x.numpy()


def collapsed(data: TrainingData, n: int, seed: int = 0, label: int = 1) -> np.ndarray:
    """n copies of one class's images (or of one image, unlabelled), each shifted by up to 1 pixel."""
    pool = data.images[data.labels == label] if data.labels is not None else data.images[:1]
    rng = np.random.default_rng(seed)
    picks = pool[rng.integers(0, len(pool), n)]
    shifts = rng.integers(-1, 2, (n, 2))
    return np.stack([np.roll(img, (int(dy), int(dx)), axis=(1, 2)) for img, (dy, dx) in zip(picks, shifts)])


def calibrate(data: TrainingData, meter: Meter, seed: int = 0) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(case, scores, floor) for each case in the module docstring."""
    train_idx, held_idx = split_indices(len(data), meter.settings.held_out, meter.settings.seed)
    held = data.images[held_idx]
    n, half = len(held), len(held) // 2
    floor = ev.floor(meter, n, seed)
    rng = np.random.default_rng(seed)
    others = np.setdiff1d(np.arange(n), ev.held_out_subset(meter, half, seed))[:half]
    rows = [
        ("real held-out (the floor)", floor, floor),
        (f"real held-out, the other {half}", ev.score(meter, held[others], seed=seed), ev.floor(meter, half, seed)),
    ]
    cases = [("real training split", data.images[rng.choice(train_idx, n, replace=False)])]
    cases += [(f"held-out blurred, sigma {sigma} px", gaussian_blur(held, sigma)) for sigma in (0.5, 1.0, 1.5)]
    what = "one class (1s)" if data.labels is not None else "one image"
    cases.append((f"collapsed: {what}, shifted", collapsed(data, n, seed)))
    cases.append(("uniform noise", np.random.default_rng(seed).random(held.shape, dtype=np.float32)))
    rows += [(name, ev.score(meter, images, seed=seed), floor) for name, images in cases]
    return rows


def markdown(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """The calibration rows as a Markdown table (class columns only for labelled data)."""
    labelled = "classes" in rows[0][1]
    head = ["images", "n", "FID", "FID / floor", "KID", "precision", "recall"]
    if labelled:
        head += ["confident ≥ 0.9", "coverage", "largest class"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s, f in rows:
        cells = [name, str(s["n"]), f"{s['fid']:.2f}", f"{s['fid'] / f['fid']:.2f}", f"{s['kid']:.4f}",
                 f"{s['precision']:.3f}", f"{s['recall']:.3f}"]
        if labelled:
            cells += [f"{s['confident']:.3f}", f"{s['coverage']}/{s['num_classes']}", f"{max(s['classes']):.1%}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.quality.calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist5k", help="data set (default mnist5k)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--channels", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="meter cache (default as latentforge evaluate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = load_data(args.data, args.image_size, args.channels)
    started = time.process_time()
    meter = load_meter(data, args.cache_dir)
    acc = meter.held_out_accuracy
    print(f"meter: {meter.kind} for {args.data} (sha256 {meter.data_sha256[:12]}), {meter.origin}"
          + (f", trained in {meter.train_seconds} s ({time.process_time() - started:.1f} s CPU)"
             if meter.origin == "trained" else f", trained earlier in {meter.train_seconds} s")
          + (f", held-out accuracy {acc:.1%}" if acc is not None else ""))
    print(markdown(calibrate(data, meter, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
