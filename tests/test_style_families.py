"""The style transfer families on real data: a few real training steps, export with parity and
dynamic height and width, the exported graphs run in ONNX Runtime on an image of another size;
the one-style model from `latentforge train --style-image` and from a TrainingService job whose
data set is one uploaded PNG; the refused combinations of --style-image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentforge.cli import main
from latentforge.manifest import STYLE_MASK_CONVENTION, Manifest
from latentforge.runtime import ModelRuntime
from tests.helpers.training import family_job_options, start_training_server, tiny_config

# 32 px crops, tiny networks: a few real steps in seconds on two cores.
SMALL = dict(image_size=32, steps=3, batch_size=4, sample_every=3, checkpoint_every=3, log_every=1, grid_size=4)
TINY_ADAIN = dict(width=4, levels=2)
TINY_STYLE = dict(width=4, encoder_width=4, blocks=1)
H, W = 40, 56  # served images of a size the models never trained on


def _style_png(path: Path, seed: int = 0) -> Path:
    """A small colourful style image: a procedural texture of the project's style data."""
    from PIL import Image

    from trainer.data.style_images import procedural_texture

    Image.fromarray(procedural_texture("plaid", seed=seed, size=96)).save(path)
    return path


def _check_version(version: Path, tasks: dict[str, str]) -> ModelRuntime:
    manifest = Manifest.read(version)
    assert manifest.tasks == tasks and manifest.conventions["style_mask"] == STYLE_MASK_CONVENTION
    assert (manifest.output.channels, manifest.output.height, manifest.output.width) == (3, 0, 0)
    assert manifest.parity.max_abs_error <= manifest.parity.tolerance and manifest.parity.batch_sizes == (1, 7)
    for role in tasks.values():
        for spec in manifest.signatures[role].inputs:
            if spec.name in ("content", "mask"):
                assert spec.shape[2:] == ("H", "W"), (role, spec)
            if spec.name == "style":
                assert spec.shape[2:] == ("Hs", "Ws"), (role, spec)
    return ModelRuntime.open(version)


def _check_stylize(runtime: ModelRuntime, task: str, feeds: dict[str, np.ndarray]) -> None:
    """Shape and range, alpha 0 gives the content back, mask 0 keeps the content, mask 1 changes it."""
    content = np.random.default_rng(1).random((2, 3, H, W), dtype=np.float32)
    ones, zeros = np.ones((2, 1, H, W), np.float32), np.zeros((2, 1, H, W), np.float32)
    full = runtime.run_task(task, {**feeds, "content": content, "alpha": np.ones(2, np.float32), "mask": ones})
    out = full["stylized"]
    assert out.shape == (2, 3, H, W) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - content).mean() > 1e-3  # it does something
    none = runtime.run_task(task, {**feeds, "content": content, "alpha": np.zeros(2, np.float32), "mask": ones})
    assert np.allclose(none["stylized"], content, atol=1e-6)
    kept = runtime.run_task(task, {**feeds, "content": content, "alpha": np.ones(2, np.float32), "mask": zeros})
    assert np.array_equal(kept["stylized"], content)
    half = zeros.copy()
    half[..., : H // 2, :] = 1
    mixed = runtime.run_task(task, {**feeds, "content": content, "alpha": np.ones(2, np.float32), "mask": half})
    assert np.array_equal(mixed["stylized"][..., H // 2:, :], content[..., H // 2:, :])
    assert np.allclose(mixed["stylized"][..., : H // 2, :], out[..., : H // 2, :], atol=1e-5)


@pytest.mark.parametrize("skips,colour", [(False, False), (True, True)], ids=["deepest", "skips+colour"])
def test_adain_trains_on_photos_and_textures_and_exports_both_graphs(tmp_path: Path, skips: bool, colour: bool):
    from exporter.repository import export_run
    from trainer.loop import train

    out = tmp_path / "run"
    # Evaluation asked for: the style family opts out of the meter's sample scores, and trains.
    result = train(tiny_config("adain", out, data="style:photos", eval_every=2, skips=skips, recon_weight=0.5,
                               colour_stats=colour, **SMALL, **TINY_ADAIN))
    assert result.finished and result.step == 3 and result.best is None
    assert (out / "samples" / "styles_latest.png").is_file()
    runtime = _check_version(export_run(out, tmp_path / "models", "adain-tiny"),
                             {"encode_style": "style_encoder", "stylize": "stylizer"})
    style = np.random.default_rng(2).random((2, 3, 24, 40), dtype=np.float32)
    stats = runtime.run_task("encode_style", {"style": style})
    # The deepest level's statistics (width * 2**(levels - 1)), or every level's (width + 2 width),
    # after the pixels' RGB ones.
    channels = (3 if colour else 0) + (4 + 8 if skips else 8)
    assert stats["style_mean"].shape == stats["style_std"].shape == (2, channels)
    _check_stylize(runtime, "stylize", stats)


def test_one_style_from_the_cli_with_a_style_image_trains_and_exports(tmp_path: Path, capsys):
    from trainer.cli import STYLE_IMAGE_MODEL

    art = _style_png(tmp_path / "art.png")
    out = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**SMALL, **TINY_STYLE}.items()]
    assert main(["train", "--model", STYLE_IMAGE_MODEL, "--style-image", str(art), *flags, "--threads", "2",
                 "--no-progress", "--out", str(out)]) == 0, capsys.readouterr().err
    assert "trained style to step 3" in capsys.readouterr().out
    assert (out / "samples" / "stylized_latest.png").is_file()
    assert main(["export", str(out), "--repo", str(tmp_path / "models"), "--name", "art-style"]) == 0
    runtime = _check_version(tmp_path / "models" / "art-style" / "1", {"stylize_fixed": "stylizer_fixed"})
    _check_stylize(runtime, "stylize_fixed", {})


@pytest.mark.parametrize("argv, words", [
    (["--model", "dcgan", "--style-image", "{art}"], "--style-image is the data of --model style"),
    (["--style-image", "{art}"], "with --model dcgan pass --data instead"),
    (["--model", "style", "--style-image", "{art}", "--data", "mnist5k"], "--style-image and --data both"),
    (["--model", "style", "--style-image", "{missing}"], "not an image file"),
])
def test_style_image_in_a_wrong_combination_is_refused_in_one_line(tmp_path: Path, capsys, argv, words):
    art = _style_png(tmp_path / "art.png")
    argv = [a.format(art=art, missing=tmp_path / "missing.png") for a in argv]
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_a_style_job_on_one_uploaded_png_trains_and_publishes(tmp_path: Path):
    """TrainingService: a single PNG is an acceptable upload, and a `style` job on it publishes a
    model with the stylize_fixed task."""
    from services.training.client import TrainingClient, job_spec, state_name

    art = _style_png(tmp_path / "art.png", seed=3)
    models = tmp_path / "models"
    server = start_training_server(tmp_path / "data", models)
    try:
        with TrainingClient(server.target) as client:
            dataset = client.upload_dataset(art, "art")
            assert dataset.count >= 8 and list(dataset.shape)[0] == 3
            options = family_job_options("style", image_size=32)
            job = client.submit(job_spec("style", "art", model_name="art-job", publish=True, **options))
            done = client.wait(job.job_id, timeout_s=120)
            assert state_name(done.state) == "SUCCEEDED", done.reason
    finally:
        server.stop()
    manifest = Manifest.read(models / "art-job" / "1")
    assert manifest.tasks == {"stylize_fixed": "stylizer_fixed"} and manifest.kind == "style"
