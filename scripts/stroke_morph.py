"""How smoothly a stroke (sketch-rnn) run's drawings morph along an interpolation between two latents.

    python -m scripts.stroke_morph runs/kanji-a runs/kanji-b ... [--pairs 50] [--frames 8]
        [--temperatures 0.1,0.2,0.4,1]

For each pair of prior latents (standard normal, from --seed), `frames` drawings along the
spherical interpolation between them, each drawn with the same random draws (as the service's
Interpolate draws its frames), rendered at 28x28. Between neighbouring frames, the pixels' mean
absolute change (a step); per pair, the mean step over the change between the two end frames
(near 1 when every frame is a new drawing as far from its neighbour as the ends are from each
other, lower as the frames morph) and the largest step's share of all its steps (1 / (frames - 1)
for an even morph, near 1 for a single jump). Prints one Markdown row per run and temperature.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from trainer.checkpoint import load_checkpoint
from trainer.families import restore_family
from trainer.families.sketch_rnn import render_strokes


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents a and b (1-D) at t in [0, 1]."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def morph_figures(run: Path, temperature: float, pairs: int = 50, frames: int = 8, seed: int = 0) -> dict[str, float]:
    """The run's morph figures at one temperature (see the module's docstring)."""
    family = restore_family(load_checkpoint(run))
    g = torch.Generator().manual_seed(seed)
    shares, steps, ratios = [], [], []
    for p in range(pairs):
        a, b = torch.randn(family.latent_dim, generator=g), torch.randn(family.latent_dim, generator=g)
        images = []
        for t in np.linspace(0.0, 1.0, frames):
            z = slerp(a, b, float(t))[None]
            strokes, lengths = family.draw(z, temperature, generator=torch.Generator().manual_seed(seed + p))
            images.append(render_strokes(strokes, lengths, 28)[0, 0].numpy())
        d = np.array([np.abs(images[i + 1] - images[i]).mean() for i in range(frames - 1)])
        total = d.sum()
        shares.append(float(d.max() / total) if total > 0 else 0.0)
        steps.append(float(d.mean()))
        ends = float(np.abs(images[-1] - images[0]).mean())
        ratios.append(float(d.mean() / ends) if ends > 0 else 0.0)
    return {"largest_share": float(np.mean(shares)), "mean_step": float(np.mean(steps)),
            "step_to_ends": float(np.mean(ratios))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders of stroke models (newest checkpoint each)")
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperatures", default="0.1,0.2,0.4,1")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"| run | temperature | mean step / ends' change | largest step's share (even: {1 / (args.frames - 1):.3f}) "
          "| mean step |")
    print("|---|---:|---:|---:|---:|")
    for run in args.runs:
        for temp in (float(t) for t in args.temperatures.split(",")):
            f = morph_figures(run, temp, args.pairs, args.frames, args.seed)
            print(f"| {run.name} | {temp:g} | {f['step_to_ends']:.2f} | {f['largest_share']:.3f} | "
                  f"{f['mean_step']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
