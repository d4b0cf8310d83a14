"""Median training-step time for each family on mnist5k (batch 64), as a Markdown table.

    python -m scripts.bench_train [--steps 150] [--out docs/benchmarks/training.md]

Runs real training through the same loop as `latentforge train` (no grids, no checkpoints
until the end) and reads the per-step times it logs. The first 10 steps are warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.loop import train


def measure(model: str, steps: int, batch_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model=model, data="mnist5k", out=Path(tmp), steps=steps, batch_size=batch_size,
                          log_every=1, sample_every=steps, checkpoint_every=steps, progress=False)
        train(cfg)
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    times = sorted(r["step_seconds"] for r in rows[10:])
    return {"median_ms": 1000 * statistics.median(times), "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [
        "# Training speed",
        "",
        f"Produced by `python -m scripts.bench_train --steps {args.steps}` on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}; "
        f"load average at start {[round(x, 2) for x in os.getloadavg()]} (a shared machine: other work may run).",
        "Each figure is the median over the run's steps after 10 warm-up steps, default widths.",
        "",
        "| model | data | batch | median ms/step | p90 ms/step | steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for model in ("dcgan", "vae"):
        r = measure(model, args.steps, args.batch_size)
        lines.append(f"| {model} (default width) | mnist5k 28x28x1 | {args.batch_size} | {r['median_ms']:.1f} | "
                     f"{r['p90_ms']:.1f} | {1000 / r['median_ms']:.1f} |")
    lines += ["", f"Load average at end {[round(x, 2) for x in os.getloadavg()]}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
