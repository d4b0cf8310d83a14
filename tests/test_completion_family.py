"""The completion family: a short real run on mnist5k (with the meter's held-out split kept out),
completions that keep the known pixels and vary with z, export through the project's exporter
with ONNX Runtime parity and a manifest that declares the complete task, and bad settings
refused before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from latentforge.completion import EVAL_MASKS, eval_mask
from latentforge.manifest import FIRST_CANDIDATE_MODE, MASK_CONVENTION, TASK_CONTRACTS, Manifest
from tests.helpers.training import tiny_config
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data import load_data
from trainer.families import restore_family
from trainer.loop import hold_out_data, hold_out_share, train
from trainer.quality.features import DEFAULT_SETTINGS, split_indices

# Tiny and quick: one thread, a narrow U-Net, a small batch (times K = 4 candidates).
TINY_COMPLETION = dict(steps=20, batch_size=16, width=8, latent_dim=8, sample_every=10, checkpoint_every=10,
                       grid_size=16, threads=1)
_INPUTS, _OUTPUTS = TASK_CONTRACTS["complete"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "completion"
    train(tiny_config("completion", out, **TINY_COMPLETION))
    return out


@pytest.fixture(scope="module")
def family(run: Path):
    torch.set_num_threads(1)
    return restore_family(load_checkpoint(run))


def _digits_and_masks(n: int, shape=(28, 28)) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(load_data("mnist5k").images[:n])
    masks = np.stack([eval_mask(EVAL_MASKS[i % len(EVAL_MASKS)], *shape, np.random.default_rng(i)) for i in range(n)])
    return images, torch.from_numpy(masks)


def test_a_run_trains_and_writes_grids_checkpoints_and_its_hold_out(run: Path):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 20
    assert {"recon", "recon_mean", "spread", "adv", "loss_d", "loss_g"} <= set(rows[-1])
    assert all(np.isfinite(r["loss_g"]) for r in rows)
    samples = {p.name for p in (run / "samples").iterdir()}
    assert {"latest.png", "completions_latest.png", "step_00000020.png"} <= samples
    assert (run / "checkpoints" / "step_00000020.pt").is_file()
    info = json.loads((run / "run.json").read_text())
    assert (info["family"], info["kind"], info["value_range"]) == ("completion", "completion", [0.0, 1.0])
    assert info["hold_out"] == {"share": 0.2, "seed": 0, "source_count": 5000, "held_out": 1000}
    assert info["data"]["count"] == 4000
    assert load_checkpoint(run)["hold_out"] == info["hold_out"]


def test_completion_keeps_the_known_pixels_exactly(family):
    images, masks = _digits_and_masks(8)
    z = torch.randn(8, family.latent_dim, generator=torch.Generator().manual_seed(1))
    out = family.complete(images, masks, z)
    assert out.shape == images.shape and out.dtype == torch.float32
    known = masks.expand_as(images).bool()
    assert torch.equal(out[known], images[known])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_different_latents_fill_the_hole_differently(family):
    images, masks = _digits_and_masks(4)
    gen = torch.Generator().manual_seed(2)
    a = family.complete(images, masks, torch.randn(4, family.latent_dim, generator=gen))
    b = family.complete(images, masks, torch.randn(4, family.latent_dim, generator=gen))
    hole = (1 - masks).expand_as(images).bool()
    assert (a[hole] - b[hole]).abs().max() > 1e-3
    assert torch.equal(a[~hole], b[~hole])


def test_complete_refuses_mismatched_shapes(family):
    images, masks = _digits_and_masks(2)
    with pytest.raises(ValueError, match="complete takes images"):
        family.complete(images, masks[:1], torch.randn(2, family.latent_dim))


def test_export_matches_torch_in_onnx_runtime_and_declares_the_complete_task(run: Path, family, tmp_path: Path):
    from exporter.repository import export_run

    version = export_run(run, tmp_path / "models", "mnist-completion")
    manifest = Manifest.read(version)
    manifest.validate()
    assert manifest.kind == "completion"
    assert manifest.tasks == {"complete": "completer"}
    assert manifest.conventions == {"mask": MASK_CONVENTION, "first_candidate": FIRST_CANDIDATE_MODE}
    assert tuple(manifest.output.value_range) == (0.0, 1.0)
    assert manifest.latent_dim == family.latent_dim
    assert manifest.training["hold_out"]["share"] == 0.2
    signature = manifest.signatures["completer"]
    assert [t.name for t in signature.inputs] == list(_INPUTS)
    assert all(t.shape[0] == "N" for t in signature.inputs)

    session = ort.InferenceSession(str(version / manifest.graphs["completer"]), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # the batch axis is dynamic
        images, masks = _digits_and_masks(n)
        z = torch.randn(n, family.latent_dim, generator=torch.Generator().manual_seed(n))
        want = family.complete(images, masks, z).numpy()
        got = session.run(list(_OUTPUTS), {"image": images.numpy(), "mask": masks.numpy(), "z": z.numpy()})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4)
        known = masks.expand_as(images).numpy() == 1
        assert np.array_equal(got[known], images.numpy()[known])


def test_hold_out_drops_exactly_the_meters_held_out_split():
    data = load_data("mnist5k")
    kept, record = hold_out_data(data, 0.2)
    train_idx, held_idx = split_indices(len(data), DEFAULT_SETTINGS.held_out, DEFAULT_SETTINGS.seed)
    assert DEFAULT_SETTINGS.held_out == 0.2
    assert np.array_equal(kept.images, data.images[train_idx])
    assert np.array_equal(kept.labels, data.labels[train_idx])
    assert record == {"share": 0.2, "seed": DEFAULT_SETTINGS.seed, "source_count": 5000, "held_out": len(held_idx)}
    # A larger share holds out a superset of the meter's held-out images; 0 keeps everything.
    _, wider = split_indices(len(data), 0.3, DEFAULT_SETTINGS.seed)
    assert set(held_idx) <= set(wider)
    same, none = hold_out_data(data, 0.0)
    assert same is data and none["held_out"] == 0


def test_hold_out_defaults_to_the_familys():
    assert hold_out_share(TrainConfig.from_dict({"model": "completion"})) == 0.2
    for model in ("dcgan", "vae", "ae"):
        assert hold_out_share(TrainConfig.from_dict({"model": model})) == 0.0
    assert hold_out_share(TrainConfig.from_dict({"model": "dcgan", "hold_out": 0.2})) == 0.2
    assert hold_out_share(TrainConfig.from_dict({"model": "completion", "hold_out": 0})) == 0.0


@pytest.mark.parametrize("overrides, words", [
    ({"hold_out": 1.0}, "hold_out must be < 1"),
    ({"hold_out": -0.1}, "hold_out must be >= 0"),
    ({"candidates": 0}, "candidates must be >= 1"),
    ({"candidates": 1, "mode_seeking": 0.5}, "mode_seeking compares two candidates"),
    ({"recon_weight": 0.0, "adv_weight": 0.0}, "nothing to train on"),
    ({"z_inject": "input"}, "z_inject must be"),
    ({"beta1": 1.0}, "beta1 must be < 1"),
])
def test_bad_settings_are_refused_before_training(tmp_path: Path, overrides, words):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=words):
        train(tiny_config("completion", out, **TINY_COMPLETION, **overrides))
    assert not out.exists()
