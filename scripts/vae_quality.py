"""Score trained VAE (or autoencoder) runs for the VAE quality table: sample quality and reconstruction.

    python -m scripts.vae_quality runs/base runs/lat8 ... [--n 1000] [--temperatures 1,0.8]

For each run's newest checkpoint and each sampling temperature: the figures of `latentforge
evaluate RUN --n N` (samples drawn as it draws them: the family's prior latents, scaled by the
temperature, balanced labels for a conditional model), and the reconstruction error of the
first N digits of the training data through the encoder's mean and the decoder (per-pixel
squared error, and per-image binary cross-entropy in nats; the runs train on all the data, so
these are training images). Prints one Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.checkpoint import load_checkpoint
from trainer.data import load_data
from trainer.families import restore_family
from trainer.quality.evaluate import floor, score
from trainer.quality.features import meter_for


def options(config: dict) -> str:
    """The run's family options that differ from the family's defaults."""
    from trainer.config import TrainConfig
    from trainer.families import family_entry

    model = config["model"]
    defaults = family_entry(model).config().to_dict()
    own = TrainConfig.from_dict(config).family.to_dict()
    changed = [f"{k}={v}" for k, v in own.items() if v != defaults[k]]
    return f"{model} " + (", ".join(changed) if changed else "defaults")


def measure(run: Path, n: int, temperatures: list[float], seed: int = 0) -> list[dict]:
    payload = load_checkpoint(run)
    config = payload["config"]
    family = restore_family(payload)
    data = load_data(config["data"], config.get("image_size"), config.get("channels"))
    meter = meter_for(config["data"], config.get("image_size"), config.get("channels"))
    x = torch.from_numpy(data.images[:n])
    with torch.no_grad():
        if family.name == "ae":
            recon = family.decode(family.encode(x))
        else:
            y = torch.from_numpy(data.labels[:n]) if family.num_classes else None
            recon = family.reconstruct(x, y)
    mse = float((recon - x).pow(2).mean())
    bce = float(F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), x, reduction="none").flatten(1).sum(1).mean())
    rows = []
    for t in temperatures:
        if hasattr(family.config, "temperature"):
            family.config.temperature = t
        z = family.latents(n, torch.Generator().manual_seed(seed))
        labels = np.arange(n, dtype=np.int64) % family.num_classes if family.num_classes else None
        images = (family.sample(z) if labels is None else family.sample(z, torch.from_numpy(labels)))
        s = score(meter, images.clamp(0, 1).numpy(), labels, seed)
        f = floor(meter, n, seed)
        rows.append(dict(run=run.name, what=options(config), step=int(payload["step"]), temperature=t,
                         fid=s["fid"], floor=f["fid"], precision=s["precision"], recall=s["recall"],
                         confident=s.get("confident"), coverage=s.get("coverage"),
                         label_accuracy=s.get("label_accuracy"), mse=mse, bce=bce))
    return rows


def table(rows: list[dict]) -> str:
    header = ("| run | configuration | T | FID (x floor) | precision | recall | confident | classes | "
              "asked label | recon MSE/pixel | recon BCE/image |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        label = "-" if r["label_accuracy"] is None else f"{r['label_accuracy']:.3f}"
        lines.append(f"| {r['run']} | {r['what']} | {r['temperature']:g} | {r['fid']:.1f} ({r['fid'] / r['floor']:.1f}x) "
                     f"| {r['precision']:.3f} | {r['recall']:.3f} | {r['confident']:.3f} | {r['coverage']} | {label} "
                     f"| {r['mse']:.4f} | {r['bce']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--temperatures", default="1", help="comma-separated sampling temperatures (default 1)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    temps = [float(t) for t in args.temperatures.split(",")]
    rows = [row for run in args.runs for row in measure(run, args.n, temps)]
    print(table(rows))


if __name__ == "__main__":
    main()
