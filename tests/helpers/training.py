"""Small but real training configurations for the tests."""

from __future__ import annotations

from pathlib import Path

# Common options and, flat, the family's (width): TrainConfig routes each to its place.
# Evaluation is off (a test that measures quality turns it on: `eval_every=...`).
TINY = dict(steps=30, batch_size=32, width=16, sample_every=15, checkpoint_every=15, log_every=5,
            grid_size=16, progress=False, threads=2, eval_every=0)


def tiny_config(model: str, out: Path, **overrides):
    """A TrainConfig for a short run; `overrides` may name common or family options."""
    from trainer.config import TrainConfig

    return TrainConfig.from_dict({"model": model, "out": out, **TINY, **overrides})


# DCGAN options of the format-1 era (EMA and conditioning came later; lr was 2e-4).
V1_ERA_DCGAN = dict(conditional=False, ema_decay=0.0, lr=2e-4)

# TrainConfig().to_dict() as format-1 checkpoints stored it: one flat dict with every family's
# options, None/0 meaning "the family's default", and the untyped `extra`.
V1_CONFIG_DEFAULTS = {
    "model": "dcgan", "data": "mnist5k", "out": "runs/run", "steps": 3000, "batch_size": 64, "seed": 0,
    "image_size": None, "channels": None, "min_image_size": 8, "lr": None, "lr_d": None, "beta1": None,
    "beta2": 0.999, "grad_clip": 10.0, "latent_dim": 0, "width": 64, "gan_loss": "nonsaturating", "beta": 1.0,
    "kl_warmup_steps": 500, "recon": "auto", "sample_every": 250, "checkpoint_every": 500, "keep_checkpoints": 3,
    "grid_size": 64, "log_every": 10, "progress": True, "threads": 0, "device": "auto",
    "device_data_max_bytes": 2147483648, "extra": {},
}


def rewrite_as_format_1(checkpoint: Path) -> None:
    """Rewrite a checkpoint in the layout of format 1 (before family configs), as a run
    trained by an earlier version would have left it: the family options format 1 had, with
    the run's values, in its flat dict. Options format 1 did not have (a DCGAN's EMA,
    conditioning) are dropped, so the run must have trained with them off."""
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    new = payload["config"]
    family = new[new["model"]]
    old = {**V1_CONFIG_DEFAULTS, **{k: v for k, v in new.items() if k in V1_CONFIG_DEFAULTS},
           **{k: v for k, v in family.items() if k in V1_CONFIG_DEFAULTS}}
    data = {k: payload["data"][k] for k in ("source", "count", "shape", "skipped_files")}
    payload.update(format_version=1, config=old, data={**data, "num_classes": 0})
    torch.save(payload, checkpoint)


# The TrainingService's JobSpec options of a tiny job: TINY, with one thread per job.
TINY_JOB = {**TINY, "threads": 1}


def tiny_job(family: str = "dcgan", **overrides):
    """A JobSpec of a tiny job on mnist5k (``overrides``: trainer options or JobSpec fields)."""
    from services.training.client import job_spec

    spec_fields = {k: overrides.pop(k) for k in ("model_name", "publish", "idempotency_key", "max_retries", "nproc",
                                                 "dataset") if k in overrides}
    options = {k: v for k, v in {**TINY_JOB, **overrides}.items() if k != "progress"}
    return job_spec(family, spec_fields.pop("dataset", "mnist5k"), **spec_fields, **options)


def training_config(data_dir: Path, models: Path, **overrides):
    """A TrainingConfig for tests: loopback, free ports, quick polling."""
    import dataclasses

    from services.training.config import TrainingConfig

    base = dict(host="127.0.0.1", port=0, metrics_host="127.0.0.1", metrics_port=0, data_dir=data_dir,
                models=models, poll_interval_s=0.1, min_free_disk_bytes=0)
    base.update(overrides)
    return dataclasses.replace(TrainingConfig(), **base).validate()


def start_training_server(data_dir: Path, models: Path, **overrides):
    """A TrainingServer on loopback in a thread of the test process."""
    from services.training.server import TrainingServer
    from tests.helpers.servers import ServerThread

    config = training_config(data_dir, models, **overrides)
    return ServerThread(lambda: TrainingServer(config)).start()


# A few real steps of any family: the common options of a family job, each family's small
# network sizes (a family not listed trains with its defaults), and its data by what it needs.
FAMILY_JOB = dict(steps=4, batch_size=8, sample_every=4, checkpoint_every=4, log_every=2, grid_size=4, threads=1,
                  eval_every=0)
TINY_FAMILY_OPTIONS = {
    "dcgan": dict(width=16), "vae": dict(width=16), "ae": dict(width=16),
    "completion": dict(width=8, latent_dim=8),
    "sketch-rnn": dict(latent_dim=8, enc_rnn=16, dec_rnn=32, mixtures=3),
    # The style families read their second image set at the run's image size (mnist5k's 28 px).
    "adain": dict(width=4, levels=2), "style": dict(width=4, encoder_width=4, blocks=1),
}


# A small built-in data set of each kind of data a family trains on (FamilyEntry.data). The style
# families take it too: grey digits are repeated to RGB, as contents (adain) or as styles (style).
DATASET_OF_KIND = {"images": "mnist5k", "strokes": "kanjivg:digits"}


def family_dataset(family: str) -> str:
    """A built-in data set of the kind the family trains on."""
    from trainer.families import FAMILIES

    return DATASET_OF_KIND[FAMILIES[family].data]


def family_job_options(family: str, **overrides) -> dict:
    """The trainer options (common and the family's, by name) of a few real steps of ``family``."""
    return {**FAMILY_JOB, **TINY_FAMILY_OPTIONS.get(family, {}), **overrides}


def cli_flags(options: dict) -> list[str]:
    """Trainer options as `latentforge train` / `jobs submit` flags (booleans as --x / --no-x)."""
    flags = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags
