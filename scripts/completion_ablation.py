"""Ablation of the completion family on mnist5k: which losses and z injection complete held-out
digits best, and how many steps a CPU demo's budget buys.

Each setting trains the same number of steps (one thread, fixed seed, so a rerun gives the same
figures up to the CPU's float rounding), holding out the quality meter's held-out split (0.2),
and is scored at a few checkpoints on those held-out digits, which it never saw, with the
bottom half masked:

* ``best4``: share of digits for which at least one of 4 candidates (z drawn per candidate) is
  read by the meter's classifier as the digit's label (the best candidate of 4 is right);
* ``cand0``: the same for candidate 0 alone (z = 0 for a model trained with a mode candidate,
  as the service draws it);
* ``psnr``: PSNR (dB) of candidate 0 over the hole, images in [0, 1];
* ``spread``: mean RMS difference over the hole between pairs of the 4 candidates (0 = z ignored);
* ``steps/s``: training steps per second on one thread.

    python -m scripts.completion_ablation --steps 1200 --eval-at 400,800,1200 \
        --out runs/completion-ablation --json runs/completion-ablation/results.jsonl

Settings are named on the command line (``--settings base,recon-only,...``); see SETTINGS.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

SEED = 0
CANDIDATES = 4
# name -> completion options (the rest are the family's defaults).
SETTINGS: dict[str, dict[str, Any]] = {
    "base": {},
    "sample-first": {"first_candidate": "sample"},
    "mode-w0.5": {"mode_weight": 0.5},
    "mode-adv0.1": {"adv_weight": 0.1},
    "recon-only-k1": {"adv_weight": 0.0, "candidates": 1},
    "recon+adv-k1": {"candidates": 1},
    "recon-only-k4": {"adv_weight": 0.0},
    "film": {"z_inject": "film"},
    "adv-0.01": {"adv_weight": 0.01},
    "adv-0.2": {"adv_weight": 0.2},
    "mode-seeking": {"mode_seeking": 0.05},
    "k2": {"candidates": 2},
    "k8": {"candidates": 8},
    "width-32": {"width": 32},
    "ema": {"ema_decay": 0.99},
    "batch-32": {"batch_size": 32},
}
COMMON_KEYS = {"batch_size"}  # options of TrainConfig, not of the family


def score(family: Any, meter: Any, images: np.ndarray, labels: np.ndarray, seed: int = SEED) -> dict[str, float]:
    """The figures above for a trained family on held-out images (N, C, H, W) in [0, 1]."""
    from latentforge.completion import half_mask

    n = len(images)
    _, h, w = images.shape[1:]
    mask = torch.from_numpy(half_mask(h, w, "bottom"))[None].expand(n, -1, -1, -1).contiguous()
    x = torch.from_numpy(images)
    gen = torch.Generator().manual_seed(seed)
    cands = []
    for i in range(CANDIDATES):
        z = torch.randn(n, family.latent_dim, generator=gen)
        if i == 0 and getattr(family, "mode_first", False):  # candidate 0 as the service draws it: z = 0
            z = torch.zeros_like(z)
        cands.append(family.complete(x, mask, z).cpu())
    cands_t = torch.stack(cands)  # (K, N, C, H, W)
    hole = (1.0 - mask).expand_as(x)
    count = hole.flatten(1).sum(1)
    reads = np.stack([meter.embed(c.numpy())[1].argmax(1) for c in cands_t])  # (K, N)
    right = reads == labels[None]
    mse0 = ((cands_t[0] - x).pow(2) * hole).flatten(1).sum(1) / count
    pairs = [((cands_t[a] - cands_t[b]).pow(2) * hole).flatten(1).sum(1).div(count).sqrt().mean().item()
             for a in range(CANDIDATES) for b in range(a + 1, CANDIDATES)]
    return {
        "best4": float(right.any(0).mean()),
        "cand0": float(right[0].mean()),
        "psnr": float((10 * torch.log10(1.0 / mse0.clamp(min=1e-10))).mean()),
        "spread": float(np.mean(pairs)),
    }


def masked_baseline(meter: Any, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The floor a completion must beat: the classifier's reads of the held-out digits with their
    bottom half left blank (0), and of the whole digits (the ceiling)."""
    from latentforge.completion import half_mask

    _, h, w = images.shape[1:]
    masked = images * half_mask(h, w, "bottom")[None]
    return {"blank_hole": float((meter.embed(masked)[1].argmax(1) == labels).mean()),
            "whole_digit": float((meter.embed(images)[1].argmax(1) == labels).mean())}


def run_setting(name: str, options: dict[str, Any], steps: int, eval_at: list[int], out: Path, meter: Any,
                held_images: np.ndarray, held_labels: np.ndarray, batch_size: int) -> dict[str, Any]:
    """Train one setting for `steps` (checkpoints at `eval_at`), then score each checkpoint."""
    from trainer.checkpoint import load_checkpoint
    from trainer.config import TrainConfig
    from trainer.families import restore_family
    from trainer.loop import train

    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    common = {k: v for k, v in options.items() if k in COMMON_KEYS}
    family = {k: v for k, v in options.items() if k not in COMMON_KEYS}
    cfg = TrainConfig.from_dict({
        "model": "completion", "data": "mnist5k", "out": run_dir, "steps": steps, "seed": SEED,
        "batch_size": common.get("batch_size", batch_size), "hold_out": 0.2, "threads": 1, "progress": False,
        "eval_every": 0, "sample_every": steps, "checkpoint_every": math.gcd(*eval_at), "keep_checkpoints": 0,
        "log_every": 50, "grid_size": 16, "completion": family,
    })
    started = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step_s = [r["step_seconds"] for r in rows if "step_seconds" in r][1:]  # the first window builds the mask pool
    result: dict[str, Any] = {"setting": name, "options": options, "steps": steps, "wall_seconds": round(wall, 1),
                              "steps_per_second": round(1.0 / float(np.mean(step_s)), 3), "at": {}}
    for step in eval_at:
        fam = restore_family(load_checkpoint(run_dir / "checkpoints" / f"step_{step:08d}.pt"))
        result["at"][step] = {k: round(v, 4) for k, v in score(fam, meter, held_images, held_labels).items()}
        print(json.dumps({"setting": name, "step": step, **result["at"][step],
                          "steps_per_second": result["steps_per_second"]}), flush=True)
    return result


def speed(threads: int, batch_size: int, steps: int = 100, options: dict[str, Any] | None = None) -> float:
    """Training steps per second of the family (defaults, or `options`) on `threads` threads,
    measured over `steps` steps after a warm-up step (which builds the mask pool)."""
    from trainer.config import TrainConfig
    from trainer.data import Batch, load_data
    from trainer.families import build_family

    torch.set_num_threads(threads)
    data = load_data("mnist5k")
    cfg = TrainConfig.from_dict({"model": "completion", "seed": SEED, "completion": options or {}})
    family = build_family(cfg, data.spec, torch.device("cpu"))
    images = torch.from_numpy(data.images)
    batch = lambda s: Batch(images=images[(s * batch_size) % 4000:(s * batch_size) % 4000 + batch_size])  # noqa: E731
    family.train_step(batch(0), 0)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        family.train_step(batch(step), step)
    return steps / (time.perf_counter() - started)


def markdown(results: list[dict[str, Any]]) -> str:
    """The results (JSON lines of --json) as the table in docs/benchmarks/completion_ablation.md."""
    lines = ["| setting | options | step | best of 4 | candidate 0 | PSNR hole (dB) | spread | steps/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "defaults"
        for step, s in r["at"].items():
            lines.append(f"| {r['setting']} | {options} | {step} | {s['best4']:.1%} | {s['cand0']:.1%} | "
                         f"{s['psnr']:.2f} | {s['spread']:.3f} | {r['steps_per_second']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="base,recon-only-k1,recon+adv-k1,recon-only-k4,film",
                   help=f"comma-separated, from {', '.join(SETTINGS)}")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-at", default="500,1000,1500", help="steps to score, comma-separated")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--held-out", type=int, default=1000, help="held-out digits to score (at most 1000)")
    p.add_argument("--out", type=Path, default=Path("runs/completion-ablation"))
    p.add_argument("--json", type=Path, default=None, help="append each setting's result to this JSON lines file")
    p.add_argument("--table", type=Path, nargs="*", default=None,
                   help="print the results in these --json files as a markdown table, and train nothing")
    p.add_argument("--speed", type=int, default=0, metavar="THREADS",
                   help="measure the defaults' steps/s on this many threads (at --batch-size), and train nothing")
    args = p.parse_args(argv)
    if args.speed:
        print(json.dumps({"threads": args.speed, "batch_size": args.batch_size,
                          "steps_per_second": round(speed(args.speed, args.batch_size), 2)}))
        return
    if args.table is not None:
        print(markdown([json.loads(line) for path in args.table for line in path.read_text().splitlines()]))
        return
    torch.set_num_threads(1)

    from trainer.data import load_data
    from trainer.quality.features import DEFAULT_SETTINGS, load_meter, split_indices

    data = load_data("mnist5k")
    meter = load_meter(data)
    _, held = split_indices(len(data), DEFAULT_SETTINGS.held_out, DEFAULT_SETTINGS.seed)
    held = held[: args.held_out]
    images, labels = data.images[held], data.labels[held].astype(np.int64)
    print(json.dumps({"held_out": len(held), **masked_baseline(meter, images, labels)}), flush=True)
    eval_at = [int(s) for s in args.eval_at.split(",")]
    for name in args.settings.split(","):
        result = run_setting(name, SETTINGS[name], args.steps, eval_at, args.out, meter, images, labels,
                             args.batch_size)
        if args.json is not None:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
