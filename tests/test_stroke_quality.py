"""The stroke model report: held-out NLL and KL of a short real sketch-rnn run on KanjiVG, the
meter trained on rendered drawings, `latentforge evaluate` on the run, and clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentforge.cli import main
from latentforge.manifest import ManifestError
from tests.test_sketch_rnn import shape_set
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataSpec, TrainingData
from trainer.families import build_family
from trainer.quality import strokes as sq
from trainer.quality.features import MeterSettings, QualityError, split_indices

STEPS = 30  # enough for the held-out NLL to fall clearly below the untrained model's (2.39 vs 2.61)
TINY = ["--latent-dim", "8", "--enc-rnn", "16", "--dec-rnn", "32", "--mixtures", "3"]
SMALL_METER = MeterSettings(steps=100)  # the image meter's training, shortened for tests


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(sq, "METER_SETTINGS", SMALL_METER)
    yield
    torch.set_num_threads(before)


def train(out: Path, *extra: str, steps: int = STEPS) -> Path:
    assert main(["train", "--model", "sketch-rnn", "--data", "kanjivg:simple", "--hold-out", "0.2",
                 "--steps", str(steps), "--batch-size", "16", "--threads", "1", "--eval-every", "0",
                 "--sample-every", str(steps), "--checkpoint-every", str(steps), *TINY, *extra,
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return train(tmp_path_factory.mktemp("stroke") / "run")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("meters")


def test_held_out_nll_is_finite_and_training_lowers_it(run: Path):
    """The run's own hold-out (the meter's 20% split of kanjivg:simple) is found again, and the
    trained model's held-out NLL is below the same network's untrained one."""
    payload = load_checkpoint(run)
    model = sq.open_model(run)
    held = sq.held_out(payload["hold_out"], "kanjivg:simple", model.max_steps)
    _, expected = split_indices(payload["hold_out"]["source_count"], 0.2, 0)
    assert held.split == "hold-out" and held.unseen and len(held.strokes) == len(expected) == 194
    trained = sq.reconstruction_nll(model, held.strokes, held.lengths)
    fresh = build_family(TrainConfig.from_dict(payload["config"]), DataSpec.from_dict(payload["data"]),
                         torch.device("cpu"))
    untrained = sq.reconstruction_nll(sq.RunModel(fresh), held.strokes, held.lengths)
    for figures in (trained, untrained):
        assert all(np.isfinite(figures[k]) for k in ("offset_nll", "pen_nll", "kl", "total", "nats_per_drawing"))
        assert figures["total"] == pytest.approx(figures["offset_nll"] + figures["pen_nll"] + figures["kl"])
        assert figures["kl_sum"] == pytest.approx(8 * figures["kl"]) and figures["kl"] >= 0
    assert trained["recon_nll"] < untrained["recon_nll"] - 0.05
    # eval mode and a seeded eps: the same figures again
    assert sq.reconstruction_nll(model, held.strokes, held.lengths) == trained


def test_evaluate_reports_a_stroke_run_and_caches_its_meter(run: Path, cache: Path, capsys):
    """`latentforge evaluate RUN`: held-out NLL, prior drawings at each temperature against the
    rendered meter with its floor, reconstructions; the meter is cached for the next call."""
    args = ["evaluate", str(run), "--n", "60", "--temperatures", "0.5,1", "--cache-dir", str(cache), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["tasks"]) == {"draw_strokes"} and report["n"] == 60 and report["notes"] == []
    figures = report["tasks"]["draw_strokes"]
    assert figures["nll"]["T"] == 35 and figures["held_out"] == {**figures["held_out"], "split": "hold-out",
                                                                 "count": 194, "unseen": True}
    assert set(figures["samples"]) == {"0.5", "1"}
    for scores in [*figures["samples"].values(), figures["floor"]]:
        assert np.isfinite(scores["fid"]) and 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
    assert figures["floor"]["fid"] < min(s["fid"] for s in figures["samples"].values())
    assert figures["meter"]["kind"] == "autoencoder" and figures["meter"]["render_size"] == 28
    assert figures["meter"]["split_is_run_hold_out"] is True
    assert np.isfinite(figures["reconstruction"]["fid"]) and "read" not in figures["reconstruction"]  # no labels
    assert list(cache.glob("kanjivg_simple_28px-*.pt"))
    sq._METERS.clear()  # a new process: the meter comes from the cache file
    assert main(["evaluate", str(run), "--n", "20", "--temperatures", "1", "--cache-dir", str(cache)]) == 0
    text = capsys.readouterr().out
    assert "L_s (offsets)" in text and "(cached)" in text and "t=1" in text and "floor" in text


def test_rendered_meter_of_labelled_drawings_reads_their_classes(run: Path, cache: Path):
    """Labelled drawings get a classifier meter that reads held-out drawings' classes (four shapes,
    well above chance), and reconstructions get their read share beside the originals'."""
    strokes, lengths = shape_set(120)
    labels = np.arange(120, dtype=np.int64) % 4
    data = TrainingData(source="shapes", strokes=strokes, lengths=lengths, labels=labels,
                        class_names=["square", "circle", "zigzag", "cross"], stroke_scale=1.0)
    meter = sq.stroke_meter(data, cache, MeterSettings(steps=150))
    assert meter.kind == "classifier" and meter.shape == (1, 28, 28) and meter.origin == "trained"
    assert meter.held_out_accuracy is not None and meter.held_out_accuracy > 0.6
    sq._METERS.clear()
    assert sq.stroke_meter(data, cache, MeterSettings(steps=150)).origin == "cache"
    _, idx = split_indices(len(data), 0.2, 0)
    held = sq.HeldOut(strokes[idx], lengths[idx], labels[idx], "hold-out", True, data)
    recon = sq.reconstructions(sq.open_model(run), meter, held)
    assert 0 <= recon["read"] <= 1 and recon["original_read"] == pytest.approx(meter.held_out_accuracy)


def test_unconditional_run_gets_nll_only(tmp_path: Path, cache: Path):
    out = train(tmp_path / "uncond", "--unconditional", steps=5)
    report = sq.evaluate_strokes(out, n=20, temperatures=(1.0,), cache_dir=cache)
    figures = report.tasks["draw_strokes"]
    assert "kl" not in figures.nll and figures.nll["total"] == pytest.approx(figures.nll["recon_nll"])
    assert figures.reconstruction is None and np.isfinite(figures.samples["1"]["fid"])
    assert "unconditional: no KL" in report.format()


def test_bad_input_gets_a_clear_error(run: Path, tmp_path: Path, capsys):
    # other data than the run's: padded to another T
    assert main(["evaluate", str(run), "--data", "kanjivg:digits", "--n", "10"]) == 2
    assert "T = 20" in capsys.readouterr().err
    # strokes have no image completion
    assert main(["evaluate", str(run), "--completion", "--n", "10"]) == 2
    assert "no image completion" in capsys.readouterr().err
    # the data changed since the run held some of it out
    payload = load_checkpoint(run)
    moved = {**payload, "hold_out": {**payload["hold_out"], "source_count": 999}}
    with pytest.raises(QualityError, match="cannot be found again"):
        sq.held_out(moved["hold_out"], "kanjivg:simple", 35)
    with pytest.raises(QualityError, match="holds images"):
        sq.held_out(payload["hold_out"], "mnist5k", 35)
    # a broken version folder; a path that is nothing
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ManifestError):
        sq.open_model(tmp_path)
    with pytest.raises(QualityError, match="neither a run folder"):
        sq.open_model(tmp_path / "missing")
    with pytest.raises(QualityError, match="temperatures must be > 0"):
        sq.evaluate_strokes(run, n=10, temperatures=(0.0,), meter=False)
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--temperatures", "0,x"])


def test_a_run_that_held_out_nothing_is_flagged(tmp_path: Path):
    out = tmp_path / "all"
    assert main(["train", "--model", "sketch-rnn", "--data", "kanjivg:simple", "--hold-out", "0", "--steps", "2",
                 "--batch-size", "8", "--threads", "1", "--eval-every", "0", "--sample-every", "2",
                 "--checkpoint-every", "2", *TINY, "--out", str(out)]) == 0
    report = sq.evaluate_strokes(out, n=10, meter=False)
    figures = report.tasks["draw_strokes"]
    assert figures.held_out["split"] == "meter split" and figures.held_out["unseen"] is False
    assert "the run trained on them" in report.format()
    assert dataclasses.asdict(report)["tasks"]["draw_strokes"]["meter"] is None


def test_a_data_set_too_small_for_a_meter_still_gets_its_likelihood(tmp_path: Path, cache: Path, capsys):
    """kanjivg:digits holds 15 drawings: too few for a meter (50), so the report gives the held-out
    NLL of its 3 held-out drawings and says why the rendered scores are missing."""
    out = tmp_path / "digits"
    assert main(["train", "--model", "sketch-rnn", "--data", "kanjivg:digits", "--hold-out", "0.2", "--steps", "2",
                 "--batch-size", "8", "--threads", "1", "--eval-every", "0", "--sample-every", "2",
                 "--checkpoint-every", "2", *TINY, "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--n", "10", "--cache-dir", str(cache)]) == 0
    text = capsys.readouterr().out
    assert "held-out NLL on 3 drawings" in text and "too few to measure quality" in text


def test_an_exported_version_is_scored_in_onnx_runtime_like_its_run(run: Path, tmp_path: Path, cache: Path):
    """The version's graphs teacher-forced give the run's held-out figures (the same eps); its
    drawings, sampled here from its step graph, are scored by the same meter."""
    from exporter.repository import export_run

    export_run(run, tmp_path / "models", "kanji-simple")
    version = tmp_path / "models" / "kanji-simple" / "1"
    from_run = sq.evaluate_strokes(run, n=40, temperatures=(0.5,), cache_dir=cache)
    from_version = sq.evaluate_strokes(version, n=40, temperatures=(0.5,), cache_dir=cache)
    in_run, in_version = from_run.tasks["draw_strokes"], from_version.tasks["draw_strokes"]
    assert from_version.source["kind"] == "version" and in_version.held_out == in_run.held_out
    assert in_version.graphs == ["decoder_step.onnx"] and in_run.graphs == []
    for key in ("offset_nll", "pen_nll", "kl", "total"):
        assert in_version.nll[key] == pytest.approx(in_run.nll[key], abs=1e-3), key
    scores = in_version.samples["0.5"]
    assert np.isfinite(scores["fid"]) and 0 < scores["mean_points"] <= 35
    assert np.isfinite(in_version.reconstruction["fid"])
    assert "ONNX Runtime" in from_version.format()
    assert from_version.summary() == {**from_version.summary(), "task": "draw_strokes", "n": 40}
