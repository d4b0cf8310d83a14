"""The DCGAN's options: EMA of the generator, spectral norm, R1, two time-scales, DiffAugment and
class-conditional networks. Each trains for real on mnist5k, exports with ONNX parity, and
(where it keeps state or draws random numbers) resumes exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from exporter.repository import export_run
from latentforge.manifest import Manifest, TensorSpec
from tests.helpers.training import tiny_config
from trainer.augment import OPS, diff_augment, parse_policy
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataError
from trainer.families import build_family, restore_family
from trainer.families.configs import AUGMENTATIONS, DCGANConfig
from trainer.loop import train

EVERYTHING = dict(conditional=True, ema_decay=0.9, spectral_norm=True, gan_loss="hinge", r1_gamma=0.5, r1_every=4,
                  augment="translation,cutout", lr_d=4e-4)
# Each option on the unconditional network (mnist5k is labelled, so conditional=False is
# explicit), then the conditional one, then everything at once.
PLAIN = dict(conditional=False, ema_decay=0.0)
OPTIONS = {
    "ema": dict(PLAIN, ema_decay=0.9),
    "sn-hinge": dict(PLAIN, spectral_norm=True, gan_loss="hinge"),
    "r1": dict(PLAIN, r1_gamma=1.0, r1_every=4),
    "two-lr": dict(PLAIN, lr=1e-4, lr_d=4e-4),
    "augment": dict(PLAIN, augment="translation,cutout,color"),
    "conditional": dict(conditional=True),
    "everything": EVERYTHING,
}


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(name)`: (run folder, version folder) of OPTIONS[name] trained for 30 steps on
    mnist5k and exported; each trained once per module."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in done:
            out = tmp_path_factory.mktemp("runs") / name
            train(tiny_config("dcgan", out, **OPTIONS[name]))
            done[name] = (out, export_run(out, tmp_path_factory.mktemp("models"), f"mnist-{name}"))
        return done[name]

    return get


@pytest.fixture(scope="module")
def conditional_run(exported) -> Path:
    """A conditional DCGAN with every option on."""
    return exported("everything")[0]


@pytest.fixture(scope="module")
def conditional_version(exported) -> Path:
    return exported("everything")[1]


# --- options and their flags -----------------------------------------------------------------

def test_options_have_flags_and_are_checked():
    from latentforge.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "x", "--ema-decay", "0.999", "--spectral-norm",
                                      "--r1-gamma", "10", "--r1-every", "8", "--augment", "translation,cutout",
                                      "--conditional", "--lr-d", "4e-4"])
    assert (args.ema_decay, args.spectral_norm, args.r1_gamma, args.r1_every, args.augment, args.conditional,
            args.lr_d) == (0.999, True, 10.0, 8, "translation,cutout", True, 4e-4)
    cfg = TrainConfig.from_dict({"model": "dcgan", "ema_decay": 0.999, "augment": "translation,cutout"})
    assert cfg.to_dict()["dcgan"]["ema_decay"] == 0.999 and cfg.to_dict()["dcgan"]["augment"] == "translation,cutout"
    for bad, message in ((dict(augment="translation,flip"), "augment: unknown flip"),
                         (dict(ema_decay=1.0), "ema_decay must be < 1"), (dict(r1_every=0), "r1_every must be >= 1"),
                         (dict(r1_gamma=-1.0), "r1_gamma must be >= 0")):
        with pytest.raises(ValueError, match=message):
            TrainConfig.from_dict({"model": "dcgan", **bad}).validate()
    with pytest.raises(ValueError, match="'ema_decay' is an option of dcgan and completion, not of 'vae'"):
        TrainConfig.from_dict({"model": "vae", "ema_decay": 0.9})


def test_defaults_are_the_measured_ones_and_conditional_follows_the_data(tmp_path: Path):
    """The defaults picked from docs/benchmarks/quality.md: EMA 0.999, lr 1e-3, the rest off, and
    conditional exactly when the data has labels unless --conditional/--no-conditional says."""
    from latentforge.cli import build_parser
    from trainer.data import load_data

    c = DCGANConfig()
    assert (c.ema_decay, c.lr, c.lr_d, c.spectral_norm, c.r1_gamma, c.augment, c.gan_loss, c.conditional) == (
        0.999, 1e-3, None, False, 0.0, "none", "nonsaturating", None)
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    labelled, unlabelled = load_data("mnist5k").spec, load_data(str(folder)).spec

    def classes(spec, **options) -> int:
        return build_family(TrainConfig.from_dict({"model": "dcgan", "width": 8, **options}), spec,
                            torch.device("cpu")).num_classes

    assert classes(labelled) == 10 and classes(unlabelled) == 0
    assert classes(labelled, conditional=False) == 0 and classes(labelled, conditional=True) == 10
    with pytest.raises(DataError, match="--conditional trains on class labels"):
        classes(unlabelled, conditional=True)
    assert build_parser().parse_args(["train", "--out", "x", "--no-conditional"]).conditional is False


# --- each option trains, exports and passes parity -------------------------------------------

@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_trains_and_exports_with_parity(exported, name: str):
    out, vdir = exported(name)
    rows = _metrics(out)
    assert rows[-1]["step"] == 30
    assert all(np.isfinite([r["loss_d"], r["loss_g"]]).all() for r in rows)
    stored = load_checkpoint(out)["config"]["dcgan"]
    assert stored | OPTIONS[name] == stored
    manifest = Manifest.read(vdir)
    assert manifest.parity.max_abs_error <= 1e-4
    assert manifest.num_classes == (10 if OPTIONS[name].get("conditional") else 0)


def test_r1_is_computed_every_r1_every_steps(tmp_path: Path):
    out = tmp_path / "r1"
    train(tiny_config("dcgan", out, r1_gamma=1.0, r1_every=4, steps=8, log_every=1))
    rows = _metrics(out)
    assert [r["step"] for r in rows if "r1" in r] == [1, 5]  # 0-based steps 0 and 4
    assert all(r["r1"] > 0 for r in rows if "r1" in r)


def test_two_time_scales_are_honoured_and_a_resume_takes_the_new_rates(tmp_path: Path):
    out = tmp_path / "run"
    train(tiny_config("dcgan", out, steps=4, checkpoint_every=4, lr=1e-4, lr_d=4e-4))
    family = build_family(tiny_config("dcgan", out, lr=1e-4, lr_d=4e-4), _spec(out), torch.device("cpu"))
    assert [g["lr"] for g in family.optimizers["generator"].param_groups] == [1e-4]
    assert [g["lr"] for g in family.optimizers["discriminator"].param_groups] == [4e-4]
    # The optimisers' saved state holds the old rates; the config given at resume wins.
    resumed = build_family(tiny_config("dcgan", out, lr=2e-4, lr_d=1e-3, beta1=0.0), _spec(out), torch.device("cpu"))
    resumed.load_state(load_checkpoint(out))
    assert resumed.optimizers["generator"].param_groups[0]["lr"] == 2e-4
    assert resumed.optimizers["discriminator"].param_groups[0]["lr"] == 1e-3
    assert resumed.optimizers["discriminator"].param_groups[0]["betas"] == (0.0, 0.999)
    assert resumed.optimizers["discriminator"].state  # Adam's moments came back


def _spec(run: Path):
    from trainer.data import DataSpec

    return DataSpec.from_dict(load_checkpoint(run)["data"])


# --- EMA -------------------------------------------------------------------------------------

def test_ema_is_what_samples_and_exports(exported):
    out, vdir = exported("ema")
    payload = load_checkpoint(out)
    live, avg = payload["modules"]["generator"], payload["modules"]["generator_ema"]
    assert live.keys() == avg.keys()
    assert any(not torch.equal(live[k], avg[k]) for k in live if k.endswith("weight"))
    family = restore_family(payload)
    z = torch.randn(5, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        family.modules["generator"].eval()
        raw = (family.modules["generator"](z) + 1) / 2
    averaged = family.sample(z)
    assert not torch.allclose(raw, averaged, atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(averaged, (family.ema.shadow.eval()(z) + 1) / 2)
    session = ort.InferenceSession(str(vdir / "generator.onnx"), providers=["CPUExecutionProvider"])
    onnx_images = (session.run(["image"], {"z": z.numpy()})[0] + 1) / 2
    np.testing.assert_allclose(onnx_images, averaged.numpy(), atol=1e-4)


def test_ema_update_warms_up_and_then_averages():
    from torch import nn

    from trainer.ema import EMA

    live = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(live.weight)
    ema = EMA(live, decay=0.99)
    nn.init.ones_(live.weight)
    ema.update(live, step=0)  # warm-up: decay min(0.99, 1/10) = 0.1
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 0.9))
    ema.update(live, step=10_000)  # decay 0.99
    assert torch.allclose(ema.shadow.weight, torch.full((1, 2), 0.9 + 0.1 * 0.01))
    assert not any(p.requires_grad for p in ema.shadow.parameters())


@pytest.mark.parametrize("opts", [dict(ema_decay=0.9), {**EVERYTHING, "r1_every": 3, "augment": "translation,cutout,color"}],
                         ids=["ema", "everything"])
def test_resume_continues_exactly(tmp_path: Path, opts: dict):
    """12 steps straight == 6 steps, stop, resume to 12: same metrics, weights and average
    (R1 falls on steps 0, 3, 6 and 9: on both sides of the resume)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = dict(log_every=1, checkpoint_every=6, sample_every=100, **opts)
    train(tiny_config("dcgan", straight, steps=12, **common))
    train(tiny_config("dcgan", resumed, steps=6, **common))
    train(tiny_config("dcgan", resumed, steps=12, **common), resume=True)
    drop = {"time", "step_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in _metrics(straight)] == [
        {k: v for k, v in r.items() if k not in drop} for r in _metrics(resumed)]
    wa, wb = load_checkpoint(straight)["modules"], load_checkpoint(resumed)["modules"]
    assert "generator_ema" in wa
    for net in wa:
        for key in wa[net]:
            assert torch.equal(wa[net][key], wb[net][key]), (net, key)


def test_a_run_without_ema_continues_with_it(tmp_path: Path):
    out = tmp_path / "run"
    train(tiny_config("dcgan", out, steps=4, checkpoint_every=4))
    train(tiny_config("dcgan", out, steps=8, checkpoint_every=4, ema_decay=0.9), resume=True)
    assert "generator_ema" in load_checkpoint(out)["modules"]


# --- spectral norm, augmentation -------------------------------------------------------------

def test_spectral_norm_replaces_the_discriminators_batch_norm():
    from torch import nn

    from trainer.networks.dcgan import Discriminator

    plain, sn = Discriminator((1, 28, 28), 16), Discriminator((1, 28, 28), 16, spectral_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in sn.modules())
    convs = [m for m in sn.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    sn.train()
    for _ in range(30):  # power iteration converges as the network runs
        sn(torch.randn(4, 1, 28, 28))
    with torch.no_grad():
        for m in convs:
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2)
            assert sigma == pytest.approx(1.0, abs=0.05)


def test_augmentations_keep_shape_and_pass_gradients():
    assert set(OPS) == set(AUGMENTATIONS)
    assert parse_policy("none") == () and parse_policy("translation, cutout") == ("translation", "cutout")
    with pytest.raises(ValueError, match="unknown augmentation flip"):
        parse_policy("flip")
    torch.manual_seed(0)
    for channels in (1, 3):
        x = (torch.rand(6, channels, 28, 28) * 2 - 1).requires_grad_(True)
        for policy in (("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")):
            y = diff_augment(x, policy)
            assert y.shape == x.shape
            (grad,) = torch.autograd.grad(y.sum(), x)
            assert grad.abs().sum() > 0


def test_translation_shifts_and_cutout_blanks_a_half_size_square():
    torch.manual_seed(0)
    x = torch.rand(8, 1, 16, 16) + 1.0  # no zeros, so blanked and shifted-in pixels show
    cut = OPS["cutout"](x)
    blanked = (cut == 0).flatten(1).sum(dim=1)
    assert (blanked > 0).all() and (blanked <= 64).all()  # at most an 8x8 square, clipped at the border
    shifted = OPS["translation"](x)
    for image, out in zip(x, shifted):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(out[0, 2:14, 2:14], image[0, 2 - dy:14 - dy, 2 - dx:14 - dx])]
        assert found, "each image is its original, shifted by at most 2 pixels"


# --- the generator step under DistributedDataParallel -----------------------------------------

def test_the_generator_step_computes_no_discriminator_gradients():
    """D's parameters get gradients from D's real and fake passes only: the generator's step
    back-propagates through D to the images but never into D's weights (which, under DDP,
    would be all-reduced for nothing)."""
    cfg = tiny_config("dcgan", Path("unused"), batch_size=8)
    from trainer.data import Batch, load_data

    data = load_data("mnist5k", None, None, 8)
    family = build_family(cfg, data.spec, torch.device("cpu"))
    counts: dict[str, int] = {}
    for name, p in family.modules["discriminator"].named_parameters():
        p.register_hook(lambda g, name=name: counts.__setitem__(name, counts.get(name, 0) + 1))
    family.train_step(Batch(images=torch.from_numpy(data.images[:8]), labels=torch.from_numpy(data.labels[:8])), 0)
    assert counts and set(counts.values()) == {2}  # real half + fake half
    assert all(p.requires_grad for p in family.modules["discriminator"].parameters())
    assert all(p.grad is not None for p in family.modules["generator"].parameters())


# --- class-conditional -----------------------------------------------------------------------

def test_conditional_needs_labelled_data(tmp_path: Path):
    np.save(tmp_path / "digits.npy", np.zeros((64, 28, 28), np.uint8))
    out = tmp_path / "run"
    with pytest.raises(DataError, match="--conditional trains on class labels.*has none"):
        train(tiny_config("dcgan", out, data=str(tmp_path / "digits.npy"), conditional=True))
    assert not out.exists()


def test_conditional_family_samples_each_class(conditional_run: Path):
    family = restore_family(load_checkpoint(conditional_run))
    assert family.num_classes == 10 and family.data.class_names == tuple(str(d) for d in range(10))
    z = torch.randn(4, 100, generator=torch.Generator().manual_seed(0))
    balanced = family.sample(z)
    assert torch.equal(balanced, family.sample(z, torch.tensor([0, 1, 2, 3])))
    assert not torch.allclose(family.sample(z, torch.full((4,), 7)), balanced)
    with pytest.raises(ValueError, match="needs labels"):
        family.modules["generator"](z)
    # The class grid: one row per class, 2K images a row.
    grid = Image.open(conditional_run / "samples" / "classes_latest.png")
    assert grid.size == (20 * 30 + 2, 10 * 30 + 2)
    assert (conditional_run / "samples" / "latest.png").is_file()


def test_conditional_export_takes_labels(conditional_version: Path, conditional_run: Path):
    vdir = conditional_version
    m = Manifest.read(vdir)
    assert m.num_classes == 10 and m.classes == tuple(str(d) for d in range(10))
    assert m.signatures["generator"].inputs == (TensorSpec("z", "float32", ("N", 100)),
                                                TensorSpec("labels", "int64", ("N",)))  # required
    assert m.parity.max_abs_error <= 1e-4
    session = ort.InferenceSession(str(vdir / "generator.onnx"), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    family = restore_family(load_checkpoint(conditional_run))
    for label in (0, 9):
        labels = np.full(3, label, np.int64)
        got = (session.run(["image"], {"z": z, "labels": labels})[0] + 1) / 2
        want = family.sample(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_conditional_model_is_served_with_a_label(conditional_version: Path):
    from services.generation.client import GenerationClient
    from tests.helpers.servers import start_server

    name = conditional_version.parent.name
    server = start_server(conditional_version.parent.parent)
    try:
        with GenerationClient(server.target, timeout_s=30) as client:
            (info,) = client.list_models(name)
            assert info.num_classes == 10
            result = client.generate(name, 3, seed=5, label=7, fmt="tensor", return_latents=True)
    finally:
        server.stop()
    assert [s.label for s in result.samples] == [7, 7, 7]
    session = ort.InferenceSession(str(conditional_version / "generator.onnx"), providers=["CPUExecutionProvider"])
    z = np.stack([s.latent for s in result.samples])
    want = session.run(["image"], {"z": z, "labels": np.full(3, 7, np.int64)})[0]
    np.testing.assert_allclose(np.stack([s.image.tensor for s in result.samples]), want, atol=1e-5)


# --- under torchrun ----------------------------------------------------------------------------

@pytest.mark.slow
def test_every_option_trains_under_torchrun(tmp_path: Path):
    """Two CPU processes with every option on: R1's double backward, the frozen-D generator step
    and the weight average all work under DistributedDataParallel."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "latentforge", "train", "--model", "dcgan", "--out", str(out), "--steps", "6",
           "--batch-size", "16", "--width", "16", "--checkpoint-every", "3", "--sample-every", "3",
           "--log-every", "1", "--no-progress", "--ema-decay", "0.9", "--spectral-norm", "--gan-loss", "hinge",
           "--r1-gamma", "1", "--r1-every", "2", "--augment", "translation,cutout", "--conditional"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = load_checkpoint(out)
    assert payload["step"] == 6 and "generator_ema" in payload["modules"]
    assert [r["step"] for r in _metrics(out) if "r1" in r] == [1, 3, 5]
