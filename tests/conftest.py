"""Shared fixtures: small real training runs on mnist5k, a model repository exported from them,
real redis-server processes and real servers on loopback ports (helpers in tests/helpers/).

Session-scoped so the whole suite trains each tiny model once; tests that need their own
run (resume, distributed) train their own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.processes import RedisProcess
from tests.helpers.servers import start_server
from tests.helpers.training import tiny_config


QUALITY_CACHE_ENV = "LATENTFORGE_CACHE_DIR"  # trainer.quality.features.CACHE_ENV (named here: no torch import)


@pytest.fixture(scope="session", autouse=True)
def session_quality_cache(tmp_path_factory) -> Iterator[Path]:
    """The quality meters runs evaluate with (trained once per data set) live in one folder of
    the session, for every process the tests start (LATENTFORGE_CACHE_DIR), not in ~/.cache."""
    folder = tmp_path_factory.mktemp("session-cache")
    before = os.environ.get(QUALITY_CACHE_ENV)
    os.environ[QUALITY_CACHE_ENV] = str(folder)
    yield folder / "quality"
    if before is None:
        os.environ.pop(QUALITY_CACHE_ENV, None)
    else:
        os.environ[QUALITY_CACHE_ENV] = before


# Small but real: the same networks at a narrower width, a few dozen steps.
@pytest.fixture(scope="session")
def dcgan_run(tmp_path_factory) -> Path:
    """An unconditional DCGAN trained for 30 steps on mnist5k, evaluated at its end (so it has a
    best.pt and its export carries quality scores). mnist5k is labelled, so the family would
    train a conditional model by default; the serving tests want the plain z -> image graph
    (conditional models are served in tests/test_gan_options.py)."""
    from trainer.loop import train

    out = tmp_path_factory.mktemp("runs") / "mnist-dcgan"
    train(tiny_config("dcgan", out, data="mnist5k", eval_every=30, eval_samples=200, conditional=False))
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


@pytest.fixture(scope="session")
def completion_run(tmp_path_factory) -> Path:
    """A completion model trained for 30 steps on mnist5k (its held-out digits left out)."""
    from trainer.loop import train

    out = tmp_path_factory.mktemp("runs") / "mnist-completion"
    train(tiny_config("completion", out, data="mnist5k"))
    return out


@pytest.fixture(scope="session")
def completion_repo(tmp_path_factory, model_repo: Path, completion_run: Path) -> Path:
    """``model_repo``'s models and mnist-completion/1, written by the project's exporter."""
    from exporter.repository import export_run

    repo = tmp_path_factory.mktemp("completion-models")
    shutil.copytree(model_repo, repo, dirs_exist_ok=True)
    export_run(completion_run, repo, "mnist-completion")
    return repo


@pytest.fixture(scope="session")
def stroke_repo(tmp_path_factory) -> Path:
    """kanji-sketch/1 (a sketch-rnn trained for 20 steps on the kanji numerals, a fifth held out)
    and kanji-doodle/1 (the unconditional decoder alone), written by the project's exporter."""
    from exporter.repository import export_run
    from trainer.config import TrainConfig
    from trainer.loop import train

    runs, repo = tmp_path_factory.mktemp("stroke-runs"), tmp_path_factory.mktemp("stroke-models")
    small = dict(data="kanjivg:digits", steps=20, batch_size=8, sample_every=20, checkpoint_every=20, hold_out=0.2,
                 latent_dim=8, enc_rnn=16, dec_rnn=32, mixtures=3, threads=1, progress=False, eval_every=0)
    for name, extra in (("kanji-sketch", {}), ("kanji-doodle", {"unconditional": True})):
        train(TrainConfig.from_dict({"model": "sketch-rnn", "out": runs / name, **small, **extra}))
        export_run(runs / name, repo, name)
    return repo


# --- generation service: redis-server, servers, clients ---

@pytest.fixture(scope="session")
def redis_proc() -> Iterator[RedisProcess]:
    """One redis-server shared by the session's Redis-backed servers."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make system-deps)")
    proc = RedisProcess().start()
    yield proc
    proc.stop()


@pytest.fixture()
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server of the test's own, which the test may stop and restart."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (make system-deps)")
    proc = RedisProcess().start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def memory_server(model_repo: Path):
    """A server with the in-process cache."""
    server = start_server(model_repo)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_servers(model_repo: Path, redis_proc: RedisProcess):
    """Two servers sharing one Redis (two replicas)."""
    a = start_server(model_repo, redis_url=redis_proc.url)
    b = start_server(model_repo, redis_url=redis_proc.url)
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(params=["memory", "redis"])
def gen_server(request):
    """Each API test runs once per cache backend."""
    if request.param == "memory":
        return request.getfixturevalue("memory_server")
    return request.getfixturevalue("redis_servers")[0]


@pytest.fixture()
def gen_client(gen_server):
    """A client of ``gen_server``."""
    from services.generation.client import GenerationClient

    with GenerationClient(gen_server.target, timeout_s=30) as c:
        yield c
