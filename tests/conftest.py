"""Shared fixtures: small real training runs on mnist5k and a model repository exported from them.

Session-scoped so the whole suite trains each tiny model once; tests that need their own
run (resume, distributed) train their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Small but real: the same networks at a narrower width, a few dozen steps.
TINY = dict(steps=30, batch_size=32, width=16, sample_every=15, checkpoint_every=15, log_every=5,
            grid_size=16, progress=False, threads=2)


def tiny_config(model: str, out: Path, **overrides):
    from trainer.config import TrainConfig

    return TrainConfig(model=model, out=out, **{**TINY, **overrides})


@pytest.fixture(scope="session")
def dcgan_run(tmp_path_factory) -> Path:
    """A DCGAN trained for 30 steps on mnist5k."""
    from trainer.loop import train

    out = tmp_path_factory.mktemp("runs") / "mnist-dcgan"
    train(tiny_config("dcgan", out, data="mnist5k"))
    return out


@pytest.fixture(scope="session")
def vae_run(tmp_path_factory) -> Path:
    """A VAE trained for 30 steps on mnist5k."""
    from trainer.loop import train

    out = tmp_path_factory.mktemp("runs") / "mnist-vae"
    train(tiny_config("vae", out, data="mnist5k"))
    return out


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory, dcgan_run: Path, vae_run: Path) -> Path:
    """A model repository with mnist-dcgan/1 and mnist-vae/1, written by the project's exporter."""
    from exporter.repository import export_run

    repo = tmp_path_factory.mktemp("models")
    export_run(dcgan_run, repo, "mnist-dcgan")
    export_run(vae_run, repo, "mnist-vae")
    return repo


# --- generation service fixtures (redis-server, servers, clients): tests/conftest_service.py ---
from tests.conftest_service import *  # noqa: E402,F401,F403
