"""Score VAE runs under several priors: the standard normal against learned ones.

    python -m scripts.vae_prior RUN... [--n 2000] [--priors normal,gmm10,gmm20] [--out table.md]

For each run's newest checkpoint: samples decoded from latents drawn from each prior, scored
as `latentforge evaluate RUN --n N` scores them (FID beside the real-data floor, precision,
recall, confident reads, class shares), and the same figures for the reconstructions of the
meter's held-out digits, the ceiling any prior can reach with this decoder. A learned prior
is fitted to the encoder's means of the run's training data (the held-out split left out),
as the family fits it after training (``trainer.priors``).

Priors: ``normal`` (N(0, I)); ``gmmK`` (a K-component Gaussian mixture, full covariances);
``gmmKdiag`` (diagonal covariances).

"novelty": the median distance from a sample to its nearest training image (in the meter's
feature space), over the same for real held-out images. Near 1, samples are as far from the
training images as new real digits are; well below 1, a prior that copies its training set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.families import restore_family
from trainer.loop import hold_out_data
from trainer.priors import fit_mixture
from trainer.quality.evaluate import floor, held_out_subset, score
from trainer.quality.features import meter_for
from scripts.vae_quality import options


def encode_means(family, images: np.ndarray, batch: int = 500) -> torch.Tensor:
    """The encoder's means of images (N, C, H, W)."""
    out = []
    with torch.no_grad(), family._eval():
        for i in range(0, len(images), batch):
            mu, _ = family.modules["vae"].encoder(torch.from_numpy(images[i:i + batch]))
            out.append(mu)
    return torch.cat(out)


def prior_latents(name: str, codes: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n latents from the named prior (fitted to codes when learned)."""
    g = torch.Generator().manual_seed(seed)
    d = codes.shape[1]
    if name == "normal":
        return torch.randn(n, d, generator=g)
    if name.startswith("gmm"):
        diag = name.endswith("diag")
        k = int(name[3:-4] if diag else name[3:])
        prior = fit_mixture(codes, k, diagonal=diag, seed=seed)
        return prior.sample(n, g)
    raise SystemExit(f"unknown prior {name!r}")


def measure(run: Path, n: int, priors: list[str], seed: int = 0) -> list[dict]:
    payload = load_checkpoint(run)
    config = payload["config"]
    family = restore_family(payload)
    data = load_data(config["data"], config.get("image_size"), config.get("channels"))
    train, _ = hold_out_data(data, float(config.get("hold_out") or 0.0))
    meter = meter_for(config["data"], config.get("image_size"), config.get("channels"))
    codes = encode_means(family, train.images)
    base = floor(meter, n, seed)
    rows = []
    held = held_out_subset(meter, n, seed)
    recon = family.reconstruct(torch.from_numpy(data.images[meter_held_indices(meter, data)][held]))
    real_nn = nearest_train(meter, meter.held_out_features[held])
    for name, images in [("reconstruction (held out)", recon)] + [
            (p, family.sample(prior_latents(p, codes, n, seed))) for p in priors]:
        x = images.clamp(0, 1).numpy()
        s = score(meter, x, None, seed)
        novelty = float(np.median(nearest_train(meter, meter.embed(x)[0])) / np.median(real_nn))
        rows.append(dict(run=run.name, step=int(payload["step"]), prior=name, floor=base["fid"], novelty=novelty,
                         what=options(config), **s))
    return rows


def nearest_train(meter, feats: np.ndarray) -> np.ndarray:
    """Each feature row's distance to its nearest training image's features."""
    train = torch.from_numpy(meter.train_features)
    return torch.cdist(torch.from_numpy(np.asarray(feats, np.float32)), train).min(dim=1).values.numpy()


def meter_held_indices(meter, data) -> np.ndarray:
    """Indices of the meter's held-out images in the data set."""
    from trainer.quality.features import DEFAULT_SETTINGS, split_indices

    _, held = split_indices(len(data), 0.2, DEFAULT_SETTINGS.seed)
    return held


def table(rows: list[dict]) -> str:
    lines = ["| run | options | step | prior | FID (x floor) | precision | recall | confident | class shares "
             "| novelty |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shares = r.get("classes")
        spread = f"{100 * min(shares):.1f}-{100 * max(shares):.1f}%" if shares else "-"
        lines.append(f"| {r['run']} | {r['what']} | {r['step']} | {r['prior']} | {r['fid']:.1f} "
                     f"({r['fid'] / r['floor']:.1f}x) | {r['precision']:.3f} | {r['recall']:.3f} "
                     f"| {100 * r['confident']:.1f}% | {spread} | {r['novelty']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--priors", default="normal,gmm10,gmm20,gmm40")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for run in args.runs for row in measure(run, args.n, args.priors.split(","))]
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
