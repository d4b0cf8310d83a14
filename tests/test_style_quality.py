"""The style meter on real models: a few real steps of the arbitrary-style family scored as a
run (PyTorch) and as its exported version (ONNX Runtime, as served) give the same figures; an
export with --evaluate writes them into the manifest's quality; `latentforge evaluate` prints
them beside their targets; a model that does not stylise is refused; stylised digits are
brought back to what the meter's classifier reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentforge.cli import main
from latentforge.manifest import Manifest
from tests.helpers.training import tiny_config

SMALL = dict(data="style:photos", image_size=32, steps=3, batch_size=4, sample_every=3, checkpoint_every=3,
             log_every=1, grid_size=4, width=4, levels=2)
DIGITS = 20  # held-out digits per legibility style: enough to exercise the reading, fast


@pytest.fixture(scope="module")
def adain_run(tmp_path_factory) -> Path:
    from trainer.loop import train

    out = tmp_path_factory.mktemp("style-quality") / "adain"
    train(tiny_config("adain", out, **SMALL))
    return out


@pytest.fixture(scope="module")
def adain_version(adain_run: Path, tmp_path_factory) -> Path:
    from exporter.repository import export_run

    return export_run(adain_run, tmp_path_factory.mktemp("style-models"), "adain-tiny", evaluate=DIGITS)


def test_a_run_and_its_exported_version_score_alike(adain_run: Path, adain_version: Path):
    """The run scored in PyTorch; the version scored by its export (--evaluate), in ONNX Runtime."""
    from trainer.quality.evaluate import evaluate_model
    from trainer.quality.stylize import ALPHAS, LEGIBLE_STYLES

    run = evaluate_model(adain_run, n=DIGITS).figures("stylize")
    version = Manifest.read(adain_version).quality.scores
    assert run.pairs == version["pairs"] == 8 * 9  # every content photograph x every style texture
    assert set(run.content_kept) == {f"{a:g}" for a in ALPHAS}
    assert set(run.legible_by_style) == set(LEGIBLE_STYLES) and run.digits == DIGITS
    # PyTorch and ONNX Runtime: the same graphs, the same figures up to float rounding.
    assert version["style_match"] == pytest.approx(run.style_match, abs=2e-3)
    assert version["content_kept"] == pytest.approx(run.content_kept["1"], abs=2e-3)
    assert version["legible"] == pytest.approx(run.legible, abs=0.051)
    # The classical baseline does not depend on the model.
    assert version["style_match_reinhard"] == pytest.approx(run.style_match_reinhard, abs=1e-6)
    assert 0.2 < run.style_match_reinhard < 0.6
    # Alpha blends in pixels: the output at alpha a is a mix of the content and the full style,
    # so the content's edges fade as alpha rises.
    kept = [run.content_kept[f"{a:g}"] for a in ALPHAS]
    assert kept == sorted(kept, reverse=True) and run.content_monotone


def test_an_export_with_evaluate_records_the_figures_in_the_manifest(adain_version: Path):
    quality = Manifest.read(adain_version).quality
    assert quality is not None and quality.scores["source"] == "export"
    scores = quality.scores
    for key in ("style_match", "style_match_reinhard", "content_kept", "content_kept_0_5", "legible",
                "legible_unstylised", "pairs"):
        assert isinstance(scores[key], float), key
    assert scores["task"] == "stylize" and scores["styles"] == "style:textures"


def test_latentforge_evaluate_prints_each_figure_beside_its_target(adain_version: Path, capsys):
    assert main(["evaluate", str(adain_version), "--n", str(DIGITS)]) == 0
    out = capsys.readouterr().out
    assert "style match (alpha 1)" in out and "target >= 50% and > Reinhard" in out
    assert "content kept (edge SSIM)" in out and "still legible" in out
    assert main(["evaluate", str(adain_version), "--n", str(DIGITS), "--completion"]) == 2
    assert "no image completion" in capsys.readouterr().err


def test_a_model_that_does_not_stylise_is_refused(tmp_path: Path):
    from tests.helpers.servers import write_autoencoder_model
    from trainer.quality.features import QualityError
    from trainer.quality.scored import open_version
    from trainer.quality.stylize import Stylist

    version = write_autoencoder_model(tmp_path)
    with pytest.raises(QualityError, match="does not stylise"):
        Stylist(open_version(version))


def test_stylised_digits_are_read_back_at_the_classifiers_size():
    from trainer.quality.stylize import to_digit

    rng = np.random.default_rng(0)
    digit = (rng.random((2, 1, 28, 28)) > 0.7).astype(np.float32)
    big = np.repeat(np.repeat(np.repeat(digit, 4, 2), 4, 3), 3, 1)
    back = to_digit(big * 0.5 + 0.2, 4)  # dimmer and lifted: stretched back to [0, 1]
    assert back.shape == (2, 1, 28, 28)
    assert np.allclose(back, digit, atol=1e-6)
    inverted = to_digit(0.9 - big * 0.6, 4)  # painted dark on light: the stroke is what differs
    assert np.allclose(inverted, digit, atol=1e-6)
