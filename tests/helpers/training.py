"""Small but real training configurations for the tests."""

from __future__ import annotations

from pathlib import Path

TINY = dict(steps=30, batch_size=32, width=16, sample_every=15, checkpoint_every=15, log_every=5,
            grid_size=16, progress=False, threads=2)


def tiny_config(model: str, out: Path, **overrides):
    from trainer.config import TrainConfig

    return TrainConfig(model=model, out=out, **{**TINY, **overrides})
