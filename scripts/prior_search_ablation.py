"""How many prior draws the iterative completion of a VAE with a learned prior should search.

    python -m scripts.prior_search_ablation RUN [--draws 0,8,16,32,64] [--pooled 16]

For the run's newest checkpoint: the meter's 1,000 held-out digits with the bottom half hidden,
4 candidates each, 8 rounds of the iterative method (``latentforge.completion``), each
candidate's first filling the best-fitting (known pixels, squared error) of S draws of the
run's prior (S = 0: the uniform noise of a model without one). ``--pooled S`` adds the variant
where the 4 candidates take the 4 best of all 4 x S draws instead of one best each. Noise from
torch's generator seeded 0 (not the service's per-seed draws: a search over settings, the
meter scores the chosen one as served). Prints candidate 0 read right and best of 4 per S.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from latentforge.completion import half_mask
from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.families import restore_family
from trainer.quality.features import DEFAULT_SETTINGS, meter_for, split_indices

CANDIDATES, ROUNDS = 4, 8


@torch.no_grad()
def measure(run: Path, draws: int, pooled: bool) -> tuple[float, float]:
    """(candidate 0 read right, best of 4 read right) for one setting."""
    family = restore_family(load_checkpoint(run))
    vae, prior, d = family.modules["vae"].eval(), family.prior, family.latent_dim
    data = load_data("mnist5k", None, None)
    meter = meter_for("mnist5k", None, None)
    _, held = split_indices(len(data), DEFAULT_SETTINGS.held_out, DEFAULT_SETTINGS.seed)
    x, labels = torch.from_numpy(data.images[held]), data.labels[held]
    n = len(x)
    mask = torch.from_numpy(half_mask(28, 28, "bottom"))[None]
    g = torch.Generator().manual_seed(0)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(vae.decoder(z))

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        images = decode(prior(torch.randn(n, d, generator=g), torch.rand(n, generator=g)))
        return images, (((images - x) ** 2) * mask).flatten(1).sum(1)

    if pooled:
        drawn = [draw() for _ in range(draws * CANDIDATES)]
        order = torch.stack([e for _, e in drawn], 1).argsort(1)
        pool = torch.stack([i for i, _ in drawn], 1)
    reads = []
    for k in range(CANDIDATES):
        eps = torch.randn(n, d, generator=g)
        fill = torch.rand(n, 1, 28, 28, generator=g)
        if pooled:
            fill = pool[torch.arange(n), order[:, k]]
        elif draws:
            best, best_err = draw()
            for _ in range(draws - 1):
                images, err = draw()
                take = err < best_err
                best, best_err = torch.where(take[:, None, None, None], images, best), torch.minimum(err, best_err)
            fill = best
        filled = mask * x + (1 - mask) * fill
        for t in range(ROUNDS):
            mu, logvar = vae.encoder(filled)
            z = mu + (ROUNDS - 1 - t) / (ROUNDS - 1) * torch.exp(0.5 * logvar) * eps
            filled = mask * x + (1 - mask) * decode(z)
        reads.append(meter.embed(filled.numpy())[1].argmax(1) == labels)
    right = np.stack(reads, 1)
    return float(right[:, 0].mean()), float(right.any(1).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--draws", default="0,8,16,32,64")
    p.add_argument("--pooled", type=int, default=0, help="also the pooled variant with this many draws per candidate")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    settings = [(int(s), False) for s in args.draws.split(",")] + ([(args.pooled, True)] if args.pooled else [])
    print("| draws searched | candidates | candidate 0 read right | best of 4 read right |\n|---|---|---|---|")
    for draws, pooled in settings:
        first, best = measure(args.run, draws, pooled)
        how = "the 4 best of 4 x S" if pooled else "each its own best of S"
        print(f"| {draws} | {how} | {first:.1%} | {best:.1%} |", flush=True)


if __name__ == "__main__":
    main()
