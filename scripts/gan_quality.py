"""The DCGAN ablation of docs/benchmarks/quality.md: train configurations of the DCGAN family on
mnist5k for a fixed number of steps and score them with the quality meter along the way.

    python -m scripts.gan_quality [--only plain,lr1e-3,...] [--steps 1500] [--every 750] [--threads 1]

Every configuration trains the family's own `train_step` from the same seed, on the same batch
order (a fresh permutation of the 5,000 digits per epoch, batch 64), and is scored at every
`--every` steps on the same 1,000 fixed latents (balanced labels for a conditional model) by
the meter of `latentforge evaluate` against its floor (real held-out digits, FID 6.97 at
n=1,000). Options are spelled out, so the rows do not depend on the family's defaults. One
torch thread by default: the figures are then the same from run to run on a CPU. Steps, not
seconds, are the unit, so the figures do not depend on the machine's load; the steps a
6-minute budget buys are in docs/benchmarks/quality.md (measured on a quiet machine).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

# name -> DCGAN options. "plain" is the family's network as it was before the ablation.
PLAIN = {"conditional": False, "ema_decay": 0.0, "lr": 2e-4}
CONFIGS: dict[str, dict] = {
    "plain": PLAIN,
    "ema": {**PLAIN, "ema_decay": 0.999},
    "ema-sn-hinge": {**PLAIN, "ema_decay": 0.999, "spectral_norm": True, "gan_loss": "hinge"},
    "ema-lr5e-4": {**PLAIN, "ema_decay": 0.999, "lr": 5e-4},
    "ema-lr5e-4-lrd2e-4": {**PLAIN, "ema_decay": 0.999, "lr": 5e-4, "lr_d": 2e-4},
    "ema-lr1e-3": {**PLAIN, "ema_decay": 0.999, "lr": 1e-3},
    "ema-lr1e-3-r1": {**PLAIN, "ema_decay": 0.999, "lr": 1e-3, "r1_gamma": 1.0, "r1_every": 4},
    "ema-lr1e-3-augment": {**PLAIN, "ema_decay": 0.999, "lr": 1e-3, "augment": "translation,cutout"},
    "ema-lr5e-4-conditional": {**PLAIN, "ema_decay": 0.999, "lr": 5e-4, "conditional": True},
    "ema-lr1e-3-conditional": {**PLAIN, "ema_decay": 0.999, "lr": 1e-3, "conditional": True},  # the defaults
}


def run(name: str, options: dict, steps: int, every: int, batch_size: int = 64) -> list[dict]:
    """Train one configuration; its scores at every `every` steps."""
    from trainer.config import TrainConfig
    from trainer.data import Batch, load_data
    from trainer.families import build_family
    from trainer.quality.evaluate import score
    from trainer.quality.features import meter_for

    torch.manual_seed(0)
    data = load_data("mnist5k")
    meter = meter_for("mnist5k")
    family = build_family(TrainConfig.from_dict({"model": "dcgan", "out": "unused", **options}), data.spec,
                          torch.device("cpu"))
    images, labels = torch.from_numpy(data.images), torch.from_numpy(data.labels)
    order = torch.Generator().manual_seed(1)
    z = torch.randn(1000, family.latent_dim, generator=torch.Generator().manual_seed(0))
    y = torch.arange(1000) % 10 if family.num_classes else None
    perm, pos, rows, spent = torch.randperm(len(images), generator=order), 0, [], 0.0
    for step in range(steps):
        if pos + batch_size > len(perm):
            perm, pos = torch.randperm(len(images), generator=order), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        t0 = time.perf_counter()
        family.train_step(Batch(images=images[idx], labels=labels[idx]), step)
        spent += time.perf_counter() - t0
        if (step + 1) % every == 0:
            x = family.sample(z, y).clamp(0, 1).numpy()
            s = score(meter, x, None if y is None else y.numpy(), 0)
            rows.append({"name": name, "step": step + 1, "ms_per_step": 1000 * spent / (step + 1), **s})
            print(row(rows[-1]), flush=True)
    return rows


def row(r: dict) -> str:
    shares = r.get("classes") or [float("nan")]
    label = r.get("label_accuracy")
    return (f"| {r['name']} | {r['step']} | {r['fid']:.1f} ({r['fid'] / 6.97:.1f}x) | {r['precision']:.3f} "
            f"| {r['recall']:.3f} | {100 * r['confident']:.1f}% | {r.get('coverage', '-')} "
            f"| {100 * min(shares):.1f}-{100 * max(shares):.1f}% | {'-' if label is None else f'{100 * label:.1f}%'} |")


HEADER = ("| configuration | step | FID (x floor) | precision | recall | confident | coverage | class shares "
          "| read as its label |\n|---|---|---|---|---|---|---|---|---|")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help=f"comma-separated configuration names (default: all): "
                   f"{', '.join(CONFIGS)}")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--every", type=int, default=750)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"unknown configuration {unknown}; known: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    print(HEADER)
    for name in names:
        run(name, CONFIGS[name], args.steps, args.every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
