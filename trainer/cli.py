"""`latentforge train`: flags map one-to-one onto TrainConfig fields.

Only flags given on the command line override the config file (or, with --resume, the
checkpoint's own config), so `--resume --steps 5000` continues a run without repeating
its other settings.

`--resume` continues the run in --out and fails when it holds no checkpoints; `--resume auto`
continues when it holds checkpoints and starts fresh otherwise (the same command line works
for a first attempt and a retry, e.g. a restarted pod with its run folder on a volume).

Exit status: 0 when the run reached --steps, 2 for bad settings or data, and 128 + the signal
number (143 for SIGTERM, 130 for SIGINT) when a signal stopped it early: the run then holds
a checkpoint at the step it stopped after and continues exactly with `--resume`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

_FLAGS: list[tuple[str, type, str]] = [
    ("model", str, "model family: dcgan or vae (default dcgan)"),
    ("data", str, "mnist5k, a folder of images, or a .npz/.npy file (default mnist5k)"),
    ("steps", int, "total optimisation steps (default 3000)"),
    ("batch_size", int, "images per step and process (default 64)"),
    ("seed", int, "seed for weights, data order and noise (default 0)"),
    ("image_size", int, "resize/crop images to this square size (folders default to 64)"),
    ("channels", int, "1 = grayscale, 3 = RGB (default: the data's own; required for mixed folders)"),
    ("min_image_size", int, "refuse source images smaller than this (default 8)"),
    ("lr", float, "learning rate (default: GAN 2e-4, VAE 1e-3)"),
    ("lr_d", float, "discriminator learning rate (GAN; default lr)"),
    ("beta1", float, "Adam beta1 (default: GAN 0.5, VAE 0.9)"),
    ("beta2", float, "Adam beta2 (default 0.999)"),
    ("grad_clip", float, "max gradient norm per network, 0 = off (default 10)"),
    ("latent_dim", int, "latent size (default: GAN 100, VAE 16)"),
    ("width", int, "base channel width (default 64)"),
    ("gan_loss", str, "nonsaturating or hinge (default nonsaturating)"),
    ("beta", float, "VAE: KL weight in the ELBO (default 1.0)"),
    ("kl_warmup_steps", int, "VAE: steps of linear KL warm-up (default 500)"),
    ("recon", str, "VAE: bce, mse or auto (default auto: bce for 1 channel)"),
    ("sample_every", int, "write a sample grid every N steps (default 250)"),
    ("checkpoint_every", int, "write a checkpoint every N steps (default 500)"),
    ("keep_checkpoints", int, "checkpoints to keep (default 3)"),
    ("grid_size", int, "images per sample grid (default 64)"),
    ("log_every", int, "metrics line every N steps (default 10)"),
    ("threads", int, "torch threads per process, 0 = default"),
    ("device", str, "auto, cpu or cuda (default auto)"),
]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a GAN or VAE (runs under torchrun too)",
        description="Train a model family on images. Under torchrun, every process runs this command.",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, grids, metrics)")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--resume", nargs="?", const="yes", choices=("yes", "auto"), default=None,
                   help="continue from the newest checkpoint in --out (fails without one); "
                   "'--resume auto' continues when --out holds checkpoints and starts fresh otherwise")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    for name, typ, text in _FLAGS:
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None, help=text)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the config, train, and report where the outputs are."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from trainer.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
        from trainer.config import TrainConfig
        from trainer.data import DataError
        from trainer.loop import train
        from trainer.stopping import stop_on_signals
    except ModuleNotFoundError as exc:
        print(f"latentforge train needs the 'train' extra ({exc.name} is missing): pip install -e '.[train]'",
              file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {name: getattr(args, name) for name, _, _ in _FLAGS}
    overrides["progress"] = args.progress
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides["out"] = args.out
    resume = {None: False, "yes": True, "auto": "auto"}[args.resume]
    try:
        if resume is True or (resume == "auto" and list_checkpoints(args.out)):
            base = load_checkpoint(latest_checkpoint(args.out))["config"]
        elif args.config:
            base = json.loads(args.config.read_text())
        else:
            base = {}
        cfg = TrainConfig.from_dict({**base, **overrides})
        with stop_on_signals() as stop:
            result = train(cfg, resume=resume, stop=stop)
    except (DataError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.stopped is not None:
        if result.checkpoint is not None:
            print(f"stopped {cfg.model} at step {result.step} of {cfg.steps} ({result.stopped}): "
                  f"checkpoint {result.checkpoint}; continue with --resume")
        return stop.exit_status
    if result.checkpoint is not None:
        print(f"trained {cfg.model} to step {result.step}: checkpoint {result.checkpoint}")
        if result.samples is not None:
            print(f"samples: {result.samples}")
        print(f"metrics: {result.metrics}")
    return 0
