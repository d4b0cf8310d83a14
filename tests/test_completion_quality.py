"""Completion quality: the hole-only figures on known inputs, the iterative method on a tiny exported
VAE in ONNX Runtime, `latentforge evaluate --completion`, and the export of a model with the
complete task recording its completion scores (a completion graph made here: a learnt image
painted into the hole, exported by the project's exporter functions)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from exporter.onnx_export import export_graph, read_signature
from exporter.repository import _evaluate_staged, export_run
from latentforge.cli import main
from latentforge.completion import EVAL_MASKS, half_mask
from latentforge.manifest import (
    MASK_CONVENTION,
    TASK_CONTRACTS,
    FileEntry,
    Manifest,
    sha256_file,
)
from latentforge.runtime import ModelRuntime
from tests.helpers.training import tiny_config
from trainer.families.base import ExportGraph
from trainer.quality import completion as qc
from trainer.quality.evaluate import evaluate_model
from trainer.quality.features import meter_for

N = 24  # held-out digits per test: enough for every figure, small enough to be quick


# --- the figures ---------------------------------------------------------------------------------

def _images(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28)).astype(np.float32)


def test_identical_holes_score_infinite_psnr_and_ssim_one_and_noise_lowers_both():
    x = _images()
    mask = np.broadcast_to(half_mask(28, 28, "bottom"), (3, 1, 28, 28))
    assert np.all(np.isinf(qc.psnr(x, x, mask)))
    np.testing.assert_allclose(qc.hole_ssim(x, x, mask), 1.0, atol=1e-12)
    noisy = np.clip(x + np.random.default_rng(1).normal(0, 0.1, x.shape), 0, 1)
    noisier = np.clip(x + np.random.default_rng(1).normal(0, 0.3, x.shape), 0, 1)
    p1, p2 = qc.psnr(noisy, x, mask), qc.psnr(noisier, x, mask)
    s1, s2 = qc.hole_ssim(noisy, x, mask), qc.hole_ssim(noisier, x, mask)
    assert np.all(p1 > p2) and np.all(p1 < 30) and np.all(s1 < 1) and np.all(s2 < s1)


def test_the_figures_count_hole_pixels_only():
    x = np.zeros((1, 1, 28, 28), np.float32)
    mask = half_mask(28, 28, "top")[None]  # top half is the hole
    y = x.copy()
    y[0, 0, 20:] = 1.0  # wrong, but known pixels: no effect
    assert np.isinf(qc.psnr(y, x, mask)[0])
    assert qc.psnr(y, x, mask, qc.MSE_FLOOR)[0] == pytest.approx(54.15, abs=0.01)  # the averaged figures' cap
    y[0, 0, :14] = 0.1  # the whole hole off by 0.1: MSE 0.01, 20 dB
    assert qc.hole_mse(y, x, mask)[0] == pytest.approx(0.01)
    assert qc.psnr(y, x, mask)[0] == pytest.approx(20.0)
    y[0, 0, :7] = 0.0  # half of the hole exact: MSE 0.005
    assert qc.hole_mse(y, x, mask)[0] == pytest.approx(0.005)
    with pytest.raises(ValueError, match="no hole"):
        qc.hole_mse(y, x, np.ones_like(mask))


def test_best_of_k_reads_and_diversity():
    reads = np.array([[False, False, True], [False, False, False], [True, True, True]])
    assert qc.best_of(reads).tolist() == [True, False, True]
    mask = half_mask(4, 4, "bottom")[None]
    a = np.zeros((1, 1, 1, 4, 4), np.float32)
    cands = np.concatenate([a, a + 0.5 * (1 - mask)[None], a + 1.0], axis=1)  # hole values 0, 0.5, 1
    assert qc.diversity(cands, mask)[0] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert qc.diversity(cands[:, :1], mask)[0] == 0.0


def test_candidate_seeds_follow_the_service_and_do_not_repeat_between_images():
    assert qc.candidate_seeds(2**64 - 1, 2) == [2**64 - 1, 0]
    seeds = qc.image_seeds(10, 3, 4)
    assert seeds[1].tolist() == [14, 15, 16, 17] and len(set(seeds.ravel().tolist())) == 12


# --- a tiny VAE, exported ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vae_version(tmp_path_factory) -> Path:
    """A VAE trained for 30 steps on mnist5k, exported."""
    from trainer.loop import train

    run = tmp_path_factory.mktemp("runs") / "vae"
    train(tiny_config("vae", run, threads=1))
    repo = tmp_path_factory.mktemp("models")
    return export_run(run, repo, "mnist-vae")


@pytest.fixture(scope="module")
def meter():
    return meter_for("mnist5k")


def test_the_iterative_method_through_onnx_runtime_keeps_the_known_pixels(vae_version: Path, meter):
    completer = qc.version_completer(ModelRuntime.open(vae_version), iterations=3)
    assert completer.method == "iterative" and completer.graphs == ["encoder.onnx", "decoder.onnx"]
    held = qc._held_out(meter, qc.DataSpec("mnist5k"))
    images = held["images"][:5]
    masks = qc.masks_for("strokes", 5, 28, 28)
    out = completer.complete(images, masks, qc.image_seeds(0, 5, 3))
    assert out.shape == (5, 3, 1, 28, 28)
    known = np.broadcast_to(masks[:, None] == 1, out.shape)
    assert np.array_equal(out[known], np.broadcast_to(images[:, None], out.shape)[known])
    assert qc.diversity(out, masks).min() > 0  # candidates differ in the hole
    again = completer.complete(images, masks, qc.image_seeds(0, 5, 3))
    np.testing.assert_allclose(again, out, atol=1e-6)  # seeded: the same candidates


def test_evaluate_prints_the_completion_table_of_a_vae_when_asked(vae_version: Path, meter, capsys):
    rc = main(["evaluate", str(vae_version), "--n", str(N), "--completion", "--candidates", "3",
               "--iterations", "2", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tasks"]["sample"]["scores"]["n"] == N  # the sample scores stay
    comp = report["tasks"]["complete"]
    assert comp["method"] == "iterative" and comp["iterations"] == 2 and comp["candidates"] == 3
    assert comp["n"] == N and set(comp["scores"]) == set(EVAL_MASKS)
    for kind in EVAL_MASKS:
        s, b = comp["scores"][kind], comp["baseline"][kind]
        assert 0 <= s["read"] <= s["best_read"] <= 1 and 0 < s["ssim"] <= 1 and s["psnr"] > 0
        assert s["known_max_error"] == 0.0 and s["diversity"] > 0 and b["psnr"] > 0
    rc = main(["evaluate", str(vae_version), "--n", str(N), "--completion", "--candidates", "2",
               "--iterations", "1"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "FID (lower is better)" in table and "the iterative method, 1 rounds" in table
    assert "best/2" in table and "strokes" in table and "baseline PSNR" in table


# --- a model with the complete task ---------------------------------------------------------------

class PaintTheHole(nn.Module):
    """image, mask, z -> the known pixels kept, the hole painted with an image made from z."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fill = nn.Linear(latent_dim, 28 * 28)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        painted = torch.sigmoid(self.fill(z)).view(-1, 1, 28, 28)
        return mask * image + (1 - mask) * painted


def _completion_fields(vae_version: Path, staging: Path) -> dict:
    """The manifest fields of a completion model: the VAE's, its graphs replaced by a completer."""
    vae = Manifest.read(vae_version)
    graph = ExportGraph(role="completer", module=PaintTheHole(vae.latent_dim).eval(),
                        example_inputs=(torch.rand(2, 1, 28, 28), torch.ones(2, 1, 28, 28), torch.randn(2, vae.latent_dim)),
                        input_names=list(TASK_CONTRACTS["complete"][0]),
                        output_names=list(TASK_CONTRACTS["complete"][1]))
    export_graph(graph, staging / "completer.onnx")
    fields = {f.name: getattr(vae, f.name) for f in dataclasses.fields(Manifest) if f.name != "version"}
    fields.update(kind="completion", graphs={"completer": "completer.onnx"}, tasks={"complete": "completer"},
                  signatures={"completer": read_signature(staging / "completer.onnx")},
                  files={"completer.onnx": FileEntry(sha256_file(staging / "completer.onnx"),
                                                     (staging / "completer.onnx").stat().st_size)},
                  variants={}, conventions={"mask": MASK_CONVENTION}, quality=None,
                  training={**vae.training, "hold_out": {"share": 0.2, "seed": 0, "held_out": 1000}})
    return fields


def test_export_evaluate_records_completion_scores_for_a_model_with_the_complete_task(
        vae_version: Path, meter, tmp_path: Path, capsys):
    staging = tmp_path / "mnist-completion" / "1"
    staging.mkdir(parents=True)
    fields = _completion_fields(vae_version, staging)
    quality = _evaluate_staged(staging, fields, N)
    q = quality.scores
    assert q["source"] == "export" and q["task"] == "complete" and q["method"] == "graph"
    assert q["candidates"] == qc.DEFAULT_CANDIDATES and q["n"] == N and q["held_out_unseen"] == 1
    for kind in EVAL_MASKS:
        assert {f"{kind}_psnr", f"{kind}_ssim", f"{kind}_read", f"{kind}_best_read", f"{kind}_diversity",
                f"{kind}_baseline_psnr"} <= set(q)
        assert 0 <= q[f"{kind}_read"] <= q[f"{kind}_best_read"] <= 1
    assert "fid" not in q and not (staging / "manifest.json").exists()

    # The version as published: `latentforge evaluate` gives it the completion table only.
    (staging / "manifest.json").write_text(Manifest(version=1, **{**fields, "quality": quality}).to_json())
    assert Manifest.read(staging).quality.scores["bottom_best_read"] == q["bottom_best_read"]
    report = evaluate_model(staging, n=N, candidates=2)
    assert set(report.tasks) == {"complete"}
    figures = report.tasks["complete"]
    assert figures.method == "graph" and figures.iterations is None and figures.graphs == ["completer.onnx"]
    assert figures.held_out_unseen is True and figures.scores["top"]["known_max_error"] < 1e-6
    assert main(["evaluate", str(staging), "--n", str(N)]) == 0
    table = capsys.readouterr().out
    assert "its complete graph" in table and "held out of its training" in table and "FID" not in table
    shutil.rmtree(staging)


def test_a_run_folder_completes_in_pytorch_as_its_export_does_in_onnx_runtime(vae_version: Path, meter):
    run = Path(Manifest.read(vae_version).source_checkpoint["path"]).parent.parent
    in_torch = qc.evaluate_completion(run, n=N, candidates=2, iterations=2)
    in_ort = qc.evaluate_completion(vae_version, n=N, candidates=2, iterations=2)
    assert in_torch.source["runtime"] == "torch" and in_ort.source["runtime"] == "onnxruntime"
    for kind in EVAL_MASKS:
        assert in_torch.tasks["complete"].scores[kind]["psnr"] == pytest.approx(
            in_ort.tasks["complete"].scores[kind]["psnr"], abs=1e-3)


def test_a_trained_completion_model_is_scored_on_completion_only(request, tmp_path: Path, capsys):
    """Once the completion family is registered: its export, evaluated, carries completion scores."""
    from trainer.families import FAMILIES

    if "completion" not in FAMILIES:
        pytest.skip("the completion family is not registered in this build")
    run = request.getfixturevalue("completion_run")
    version = export_run(run, tmp_path, "mnist-completion", evaluate=N)
    q = Manifest.read(version).quality.scores
    assert q["method"] == "graph" and q["held_out_unseen"] == 1 and "fid" not in q
    assert 0 <= q["bottom_read"] <= q["bottom_best_read"] <= 1
    assert main(["evaluate", str(version), "--n", str(N)]) == 0
    assert "its complete graph" in capsys.readouterr().out
