"""The quality meter on real mnist5k digits: honest floors, blur and collapse caught, the cache, the command.

The feature network is trained once per session into a temporary cache folder (the real
meter with its default settings); everything else reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentforge.cli import main
from trainer.data import TrainingData, load_data
from trainer.quality import calibration
from trainer.quality import evaluate as ev
from trainer.quality.calibration import collapsed
from trainer.quality.features import (
    MeterSettings,
    QualityError,
    load_meter,
    meter_key,
    split_indices,
)


@pytest.fixture(scope="session")
def quality_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("quality-cache")


@pytest.fixture(scope="session")
def mnist() -> TrainingData:
    return load_data("mnist5k")


@pytest.fixture(scope="session")
def meter(mnist, quality_cache):
    """The default mnist5k meter, trained once for the session."""
    return load_meter(mnist, quality_cache)


@pytest.fixture(scope="session")
def held_out(mnist, meter) -> np.ndarray:
    _, held_idx = split_indices(len(mnist), meter.settings.held_out, meter.settings.seed)
    return mnist.images[held_idx]


def test_meter_is_a_classifier_on_a_fixed_80_20_split(mnist, meter):
    assert meter.kind == "classifier" and meter.num_classes == 10
    assert len(meter.train_features) == 4000 and len(meter.held_out_features) == 1000
    train_idx, held_idx = split_indices(5000, 0.2, 0)
    assert not set(train_idx) & set(held_idx)
    assert np.array_equal(split_indices(5000, 0.2, 0)[1], held_idx)  # fixed
    assert meter.held_out_accuracy >= 0.95  # digits it never saw


@pytest.fixture(scope="session")
def calibrated(mnist, meter) -> dict:
    """Scores and floors of the calibration cases (docs/quality.md quotes the same table)."""
    return {name: (scores, base) for name, scores, base in calibration.calibrate(mnist, meter)}


def test_real_held_out_digits_score_near_the_floor(calibrated):
    # The floor for 500 images is measured on 500 held-out digits; these are the other 500.
    scores, base = calibrated["real held-out, the other 500"]
    assert scores["n"] == base["n"] == 500
    assert scores["fid"] <= 1.5 * base["fid"]
    assert abs(scores["kid"]) < 0.02
    assert scores["precision"] >= base["precision"] - 0.05
    assert scores["recall"] >= base["recall"] - 0.05
    assert scores["coverage"] == 10
    assert scores["confident"] >= base["confident"] - 0.05
    assert max(scores["classes"]) < 0.2


def test_blurred_digits_score_clearly_worse(calibrated):
    blurred, base = calibrated["held-out blurred, sigma 1.0 px"]
    assert blurred["fid"] >= 4 * base["fid"]
    assert blurred["kid"] > 0.05 > base["kid"]
    assert blurred["recall"] <= base["recall"] - 0.2
    assert blurred["confident"] <= base["confident"] - 0.03
    fids = [calibrated[f"held-out blurred, sigma {s} px"][0]["fid"] for s in (0.5, 1.0, 1.5)]
    assert base["fid"] < fids[0] < fids[1] < fids[2]


def test_a_collapsed_model_is_caught_by_coverage_and_recall(mnist, calibrated):
    scores, base = calibrated["collapsed: one class (1s), shifted"]
    assert scores["coverage"] == 1 and base["coverage"] == 10
    assert scores["classes"][1] >= 0.9
    assert scores["recall"] <= 0.3 < base["recall"]
    assert scores["fid"] >= 20 * base["fid"]
    variants = collapsed(mnist, 1000)  # shifted copies of the 500 ones in the data, not one image
    assert len(np.unique(variants.reshape(1000, -1), axis=0)) > 500


def test_training_digits_and_noise_bracket_the_floor(calibrated):
    seen, base = calibrated["real training split"]  # the feature net saw these: below the floor
    assert seen["fid"] < base["fid"]
    noise, _ = calibrated["uniform noise"]
    assert noise["fid"] > 100 * base["fid"] and noise["precision"] == noise["recall"] == 0.0


def test_calibration_table(calibrated):
    rows = [(name, s, f) for name, (s, f) in calibrated.items()]
    table = calibration.markdown(rows).splitlines()
    assert table[0].startswith("| images | n | FID | FID / floor |") and len(table) == 2 + len(rows)
    assert table[2].startswith("| real held-out (the floor) | 1000 |") and "| 1.00 |" in table[2]


def test_the_cache_is_reused_and_invalidated_when_the_data_changes(mnist, meter, quality_cache, tmp_path):
    mtime = meter.path.stat().st_mtime_ns
    again = load_meter(mnist, quality_cache)
    assert again.origin == "cache" and meter.origin == "trained"
    assert again.key == meter.key and again.path.stat().st_mtime_ns == mtime
    assert np.array_equal(again.train_features, meter.train_features)

    # Unlabelled data get an autoencoder meter; a cheap one is enough to see the cache work.
    settings = MeterSettings(steps=30)
    images = mnist.images[np.random.default_rng(1).permutation(len(mnist))[:300]].copy()
    rng_before = torch.get_rng_state()
    first = load_meter(TrainingData("digits.npz", images=images), tmp_path, settings)
    assert torch.equal(torch.get_rng_state(), rng_before)  # a caller's random stream is left alone
    assert first.kind == "autoencoder" and first.origin == "trained"
    assert load_meter(TrainingData("digits.npz", images=images), tmp_path, settings).origin == "cache"
    elsewhere = load_meter(TrainingData("digits.npz", images=images), tmp_path / "other", settings)
    assert elsewhere.origin == "trained"
    assert np.array_equal(elsewhere.train_features, first.train_features)  # deterministic
    changed = images.copy()
    changed[0, 0, 0, 0] = 1.0 - changed[0, 0, 0, 0]
    retrained = load_meter(TrainingData("digits.npz", images=changed), tmp_path, settings)
    assert retrained.origin == "trained"
    assert retrained.data_sha256 != first.data_sha256 and retrained.path != first.path
    assert first.path.is_file() and retrained.path.is_file()
    # The meter's version and settings are part of the key too.
    assert meter_key(first.data_sha256, "autoencoder", 0, (1, 28, 28), MeterSettings(steps=31)) != first.key

    scores = ev.score(first, images[:100])
    assert {"fid", "kid", "precision", "recall"} <= set(scores) and "classes" not in scores


def test_a_broken_cache_file_is_retrained(mnist, tmp_path):
    data = TrainingData("digits.npz", images=mnist.images[:200].copy())
    settings = MeterSettings(steps=5)
    path = load_meter(data, tmp_path, settings).path
    path.write_bytes(b"not a meter")
    assert load_meter(data, tmp_path, settings).origin == "trained"


def test_score_images_is_the_cheap_entry_point(meter, held_out, quality_cache):
    images = torch.from_numpy(held_out[np.random.default_rng(2).permutation(len(held_out))[:300]])
    first = ev.score_images(images, "mnist5k", cache_dir=quality_cache)
    assert set(first) == {"fid", "fid_floor", "kid", "precision", "recall", "coverage", "confident"}
    assert first["coverage"] == 10 and first["fid"] < 2 * first["fid_floor"]
    assert ev.score_images(images, "mnist5k", cache_dir=quality_cache) == first
    assert ev.score_images(images.numpy(), meter) == first


def test_evaluate_a_run_folder(dcgan_run, meter, quality_cache, capsys):
    rc = main(["evaluate", str(dcgan_run), "--n", "300", "--cache-dir", str(quality_cache), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"]["kind"] == "run" and report["source"]["step"] == 30
    assert report["n"] == 300 and set(report["tasks"]) == {"sample"}
    figures = report["tasks"]["sample"]
    assert figures["data"]["spec"] == "mnist5k" and figures["data"]["sha256"] == meter.data_sha256
    assert figures["meter"]["origin"] == "cache" and figures["meter"]["held_out_images"] == 1000
    assert figures["floor"]["n"] == 300 and figures["scores"]["n"] == 300 and figures["graphs"] == []
    # Thirty steps of training are far from real digits.
    assert figures["scores"]["fid"] > 3 * figures["floor"]["fid"]
    assert len(figures["scores"]["classes"]) == 10

    earlier = dcgan_run / "checkpoints" / "step_00000015.pt"
    rc = main(["evaluate", str(dcgan_run), "--n", "200", "--checkpoint", str(earlier),
               "--cache-dir", str(quality_cache)])
    assert rc == 0
    table = capsys.readouterr().out
    assert "step 15" in table and "FID (lower is better)" in table and "for 200 real held-out images" in table
    assert "class shares" in table


@pytest.mark.parametrize("model", ["mnist-dcgan", "mnist-vae"])
def test_evaluate_an_exported_version(model_repo, quality_cache, model, capsys):
    rc = main(["evaluate", str(model_repo / model / "1"), "--n", "250", "--cache-dir", str(quality_cache), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == {"kind": "version", "model": model, "version": 1, "step": 30,
                                "family": "gan" if model == "mnist-dcgan" else "vae", "runtime": "onnxruntime"}
    figures = report["tasks"]["sample"]
    assert figures["graphs"] == ["generator.onnx" if model == "mnist-dcgan" else "decoder.onnx"]
    assert figures["scores"]["n"] == 250 and figures["floor"]["n"] == 250
    assert {"fid", "kid", "precision", "recall", "confident", "coverage"} <= set(figures["scores"])


def test_evaluate_refuses_what_it_cannot_score(tmp_path, meter, dcgan_run, quality_cache, capsys):
    with pytest.raises(QualityError, match="too few"):
        ev.score(meter, np.zeros((5, 1, 28, 28), np.float32))
    with pytest.raises(QualityError, match=r"\(1, 28, 28\)"):
        ev.score(meter, np.zeros((20, 3, 32, 32), np.float32))
    with pytest.raises(QualityError, match=r"\[0, 1\]"):
        ev.score(meter, np.full((20, 1, 28, 28), -1.0, np.float32))  # e.g. a GAN's [-1, 1] left unmapped
    assert main(["evaluate", str(dcgan_run), "--data", str(tmp_path / "gone"), "--cache-dir", str(quality_cache)]) == 2
    assert "pass it with --data" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere"), "--cache-dir", str(quality_cache)]) == 2
    assert "neither a run folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--cache-dir", str(quality_cache)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
