"""Short real training runs: outputs, exact resume, and refusals before training starts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentforge.cli import main
from tests.helpers.processes import ROOT, wait_until
from tests.helpers.training import V1_ERA_DCGAN, rewrite_as_format_1, tiny_config
from trainer.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from trainer.data import DataError
from trainer.loop import train


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_dcgan_run_writes_checkpoints_grids_and_metrics(dcgan_run: Path):
    ckpts = list_checkpoints(dcgan_run)
    assert [p.name for p in ckpts] == ["step_00000015.pt", "step_00000030.pt"]
    assert not [p for p in (dcgan_run / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp files
    grid = Image.open(dcgan_run / "samples" / "latest.png")
    assert grid.mode == "L" and grid.size == (4 * 30 + 2, 4 * 30 + 2)  # 16 tiles of 28 px, 2 px padding
    rows = _metrics(dcgan_run)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    for r in rows:
        assert {"loss_d", "loss_g", "d_real", "d_fake", "step_seconds"} <= r.keys()
        assert np.isfinite([r["loss_d"], r["loss_g"]]).all()
    info = json.loads((dcgan_run / "run.json").read_text())
    assert info["finished"] and info["step"] == 30 and info["data"]["count"] == 5000
    # The data's labels reach the family (in every Batch); the family stays unconditional.
    assert info["data"]["fields"] == ["images", "labels"] and info["data"]["num_classes"] == 10
    assert info["config"]["dcgan"]["width"] == 16 and load_checkpoint(dcgan_run)["data"] == info["data"]


def test_vae_run_writes_reconstruction_grids(vae_run: Path):
    assert (vae_run / "samples" / "recon_latest.png").is_file()
    rows = _metrics(vae_run)
    assert {"recon", "kl", "kl_weight", "elbo"} <= rows[-1].keys()
    # Linear KL warm-up over 500 steps to beta (1 by default): at step 30 (0-based 29), 29/500.
    assert rows[-1]["kl_weight"] == pytest.approx(1.0 * 29 / 500)
    # Reconstruction improves even in 30 steps on real digits.
    assert rows[-1]["recon"] < rows[0]["recon"]


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_trains_on_an_rgb_image_folder(tmp_path: Path, model: str, caplog):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        w, h = rng.integers(40, 90, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="trainer.evaluation"):
        train(tiny_config(model, out, data=str(folder), image_size=32, steps=6, batch_size=8,
                          sample_every=6, checkpoint_every=6, eval_every=3))
    payload = load_checkpoint(out)
    assert payload["data"]["shape"] == [3, 32, 32]
    assert Image.open(out / "samples" / "latest.png").mode == "RGB"
    # 40 images are too few for the quality meter: evaluation is skipped with one line, training goes on.
    assert [r.message for r in caplog.records if "evaluation off" in r.message] == [
        "evaluation off: " + str(folder) + ": 40 images are too few to measure quality (need 50)"]
    assert not (out / "checkpoints" / "best.pt").exists() and "eval" not in _metrics(out)[-1]


@pytest.mark.parametrize("model", ["dcgan", "vae"])
def test_resume_continues_exactly(tmp_path: Path, model: str):
    """20 steps straight == 10 steps, stop, resume to 20: same losses and weights."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    opts = dict(log_every=1, checkpoint_every=10, sample_every=100)
    train(tiny_config(model, straight, steps=20, **opts))
    train(tiny_config(model, resumed, steps=10, **opts))
    assert [r["step"] for r in _metrics(resumed)] == list(range(1, 11))
    train(tiny_config(model, resumed, steps=20, **opts), resume=True)

    a, b = _metrics(straight), _metrics(resumed)
    assert [r["step"] for r in b] == list(range(1, 21))
    drop = {"time", "step_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]
    wa, wb = load_checkpoint(straight)["modules"], load_checkpoint(resumed)["modules"]
    for net in wa:
        for key in wa[net]:
            assert torch.equal(wa[net][key], wb[net][key]), (net, key)


def test_resume_refuses_changed_architecture(tmp_path: Path):
    out = tmp_path / "run"
    train(tiny_config("dcgan", out, steps=4, checkpoint_every=4))
    with pytest.raises(CheckpointError, match="width"):
        train(tiny_config("dcgan", out, steps=8, width=32), resume=True)
    with pytest.raises(CheckpointError, match="already reached step 4"):
        train(tiny_config("dcgan", out, steps=4), resume=True)


def test_resume_without_checkpoint_says_so(tmp_path: Path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        train(tiny_config("dcgan", tmp_path / "fresh", steps=4), resume=True)


def test_bad_data_is_refused_before_any_output(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    with pytest.raises(DataError):
        train(tiny_config("dcgan", out, data=str(tmp_path / "empty")))
    assert not out.exists()


def test_dataset_smaller_than_a_batch_is_refused(tmp_path: Path):
    np.save(tmp_path / "few.npy", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lower --batch-size"):
        train(tiny_config("dcgan", tmp_path / "run", data=str(tmp_path / "few.npy"), batch_size=8))


def test_cli_train_and_resume(tmp_path: Path, capsys):
    out = tmp_path / "cli-run"
    common = ["--out", str(out), "--model", "vae", "--width", "16", "--batch-size", "16",
              "--checkpoint-every", "3", "--no-progress"]
    assert main(["train", "--steps", "3", *common]) == 0
    assert "checkpoint" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(out), "--steps", "6", "--no-progress"]) == 0
    assert load_checkpoint(out)["step"] == 6
    assert main(["train", "--out", str(tmp_path / "x"), "--data", str(tmp_path / "missing")]) == 2
    assert "neither 'mnist5k'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "y"), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_a_fresh_run_refuses_a_folder_with_checkpoints(tmp_path: Path):
    """Without --resume, old checkpoints would be pruned in favour of the new run's: refuse."""
    out = tmp_path / "run"
    train(tiny_config("dcgan", out, steps=4, checkpoint_every=4))
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train(tiny_config("dcgan", out, steps=4))
    assert [p.name for p in list_checkpoints(out)] == ["step_00000004.pt"]


def test_log_every_zero_is_refused_before_training(tmp_path: Path):
    with pytest.raises(ValueError, match="log_every must be > 0"):
        train(tiny_config("dcgan", tmp_path / "run", log_every=0))


def _first_metrics_line(run: Path, proc: subprocess.Popen) -> bool:
    path = run / "metrics.jsonl"
    return proc.poll() is not None or (path.exists() and path.read_text().count("\n") >= 1)


def test_sigterm_stops_with_a_checkpoint_and_resume_continues_exactly(tmp_path: Path):
    """SIGTERM mid-run: the step in progress finishes, a checkpoint is written at it, the
    command exits 143, and resuming from it reproduces an uninterrupted run."""
    out, straight = tmp_path / "stopped", tmp_path / "straight"
    opts = ["--model", "dcgan", "--width", "16", "--batch-size", "16", "--log-every", "1",
            "--checkpoint-every", "100000", "--sample-every", "100000", "--threads", "1", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "latentforge", "train", "--out", str(out), "--steps", "100000",
                             *opts], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _first_metrics_line(out, proc), 180, "the first metrics line")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr[-3000:]
    info = json.loads((out / "run.json").read_text())
    step = info["step"]
    assert 1 <= step < 100000 and not info["finished"] and info["stopped"] == "SIGTERM"
    assert [p.name for p in list_checkpoints(out)] == [f"step_{step:08d}.pt"]
    assert load_checkpoint(out)["step"] == step
    assert [r["step"] for r in _metrics(out)] == list(range(1, step + 1))
    assert f"at step {step} of 100000 (SIGTERM)" in stdout

    total = step + 3
    assert main(["train", "--resume", "--out", str(out), "--steps", str(total), "--no-progress"]) == 0
    assert main(["train", "--out", str(straight), "--steps", str(total), *opts]) == 0
    drop = {"time", "step_seconds"}
    a, b = _metrics(straight), _metrics(out)
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]
    wa, wb = load_checkpoint(straight)["modules"], load_checkpoint(out)["modules"]
    for net in wa:
        for key in wa[net]:
            assert torch.equal(wa[net][key], wb[net][key]), (net, key)
    assert json.loads((out / "run.json").read_text())["finished"]


def test_resume_auto_starts_fresh_or_continues(tmp_path: Path, capsys):
    """`--resume auto`: an empty (or absent) folder starts a run, one with checkpoints continues
    it, a finished one is left as it is; bare `--resume` still needs checkpoints."""
    out = tmp_path / "run"
    out.mkdir()
    common = ["--out", str(out), "--model", "dcgan", "--width", "16", "--batch-size", "16",
              "--checkpoint-every", "2", "--log-every", "1", "--no-progress", "--resume", "auto"]
    assert main(["train", "--steps", "2", *common]) == 0
    assert load_checkpoint(out)["step"] == 2
    assert main(["train", "--steps", "4", *common]) == 0
    assert load_checkpoint(out)["step"] == 4
    assert [r["step"] for r in _metrics(out)] == [1, 2, 3, 4]
    before = latest_checkpoint(out).read_bytes()
    assert main(["train", "--steps", "4", *common]) == 0  # already there: nothing to train
    assert latest_checkpoint(out).read_bytes() == before
    assert main(["train", "--steps", "2", "--resume", "auto", "--out", str(tmp_path / "absent"),
                 "--model", "vae", "--width", "16", "--batch-size", "16", "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "absent")["family"] == "vae"
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(tmp_path / "empty"), "--steps", "2"]) == 2
    assert "no checkpoints" in capsys.readouterr().err


def test_resume_of_a_run_trained_before_family_configs(tmp_path: Path):
    """`--resume` on a format-1 run converts its config and continues it exactly."""
    straight, old = tmp_path / "straight", tmp_path / "old"
    opts = dict(log_every=1, checkpoint_every=4, sample_every=100, **V1_ERA_DCGAN)
    train(tiny_config("dcgan", straight, steps=8, **opts))
    train(tiny_config("dcgan", old, steps=4, **opts))
    rewrite_as_format_1(latest_checkpoint(old))
    assert main(["train", "--resume", "--out", str(old), "--steps", "8", "--no-progress", "--threads", "2"]) == 0
    payload = load_checkpoint(old)
    assert payload["format_version"] == 2 and payload["config"]["dcgan"]["width"] == 16
    wa, wb = load_checkpoint(straight)["modules"], payload["modules"]
    for net in wa:
        for key in wa[net]:
            assert torch.equal(wa[net][key], wb[net][key]), (net, key)


def _without(rows: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in rows]


def test_evaluation_scores_the_run_keeps_the_best_and_leaves_training_alone(tmp_path: Path):
    """--eval-every: scores in metrics.jsonl at every Nth step and at the end, checkpoints/best.pt
    = the lowest FID, never pruned; the same steps as a run without evaluation, bit for bit."""
    evaluated, plain = tmp_path / "evaluated", tmp_path / "plain"
    opts = dict(steps=10, log_every=1, checkpoint_every=4, keep_checkpoints=1, sample_every=100)
    train(tiny_config("dcgan", evaluated, eval_every=4, eval_samples=100, **opts))
    train(tiny_config("dcgan", plain, **opts))

    rows = _metrics(evaluated)
    assert [r["step"] for r in rows] == list(range(1, 11))
    scored = {r["step"]: r["eval"] for r in rows if "eval" in r}
    assert list(scored) == [4, 8, 10]  # every 4th step, and the last
    for scores in scored.values():
        assert scores["n"] == 100 and 0 < scores["fid_floor"] < scores["fid"]
        assert {"kid", "precision", "recall", "coverage", "confident"} <= scores.keys()
    assert _without(rows, "time", "step_seconds", "eval") == _without(_metrics(plain), "time", "step_seconds")
    wa, wb = load_checkpoint(evaluated)["modules"], load_checkpoint(plain)["modules"]
    for net in wa:
        for key in wa[net]:
            assert torch.equal(wa[net][key], wb[net][key]), (net, key)

    best_step = min(scored, key=lambda s: scored[s]["fid"])
    best = load_checkpoint(evaluated / "checkpoints" / "best.pt")
    assert best["step"] == best["quality"]["step"] == best_step
    assert best["quality"]["fid"] == scored[best_step]["fid"]
    assert best["quality"]["meter"] == "classifier" and best["quality"]["data"] == "mnist5k"
    assert sorted(p.name for p in (evaluated / "checkpoints").iterdir()) == ["best.pt", "step_00000010.pt"]
    info = json.loads((evaluated / "run.json").read_text())
    assert info["best"]["path"] == "checkpoints/best.pt" and info["best"]["step"] == best_step
    assert load_checkpoint(evaluated)["quality"]["step"] == 10  # the last checkpoint carries its scores
    assert not (plain / "checkpoints" / "best.pt").exists() and json.loads((plain / "run.json").read_text())["best"] is None


def test_time_budget_ends_a_run_that_resume_can_continue(tmp_path: Path, capsys):
    """--time-budget: the run stops on its own with a checkpoint, a final evaluation and best.pt,
    exits 0 as finished; the budget is a total, so resuming needs a larger one (or 0 for none)."""
    out = tmp_path / "run"
    common = ["--out", str(out), "--model", "dcgan", "--width", "16", "--batch-size", "16", "--log-every", "1",
              "--checkpoint-every", "100000", "--sample-every", "100000", "--eval-every", "100000",
              "--eval-samples", "100", "--no-progress"]
    assert main(["train", "--steps", "100000", "--time-budget", "1s", *common]) == 0
    assert "time budget 1s spent" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    step = info["step"]
    assert info["finished"] and info["stopped"] == "time-budget" and 1 <= step < 100000
    assert info["elapsed_seconds"] >= 1.0
    assert [p.name for p in list_checkpoints(out)] == [f"step_{step:08d}.pt"]
    assert load_checkpoint(out)["elapsed_seconds"] >= 1.0
    assert "eval" in _metrics(out)[-1] and _metrics(out)[-1]["step"] == step  # a final evaluation
    assert load_checkpoint(out / "checkpoints" / "best.pt")["step"] == step

    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert "already spent its time budget" in capsys.readouterr().err
    before = latest_checkpoint(out).read_bytes()
    assert main(["train", "--resume", "auto", *common, "--steps", "100000", "--time-budget", "1s"]) == 0
    assert latest_checkpoint(out).read_bytes() == before  # finished: left as it is

    assert main(["train", "--resume", "--out", str(out), "--time-budget", "0", "--steps", str(step + 2)]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["finished"] and info["stopped"] is None and info["step"] == step + 2
    assert [r["step"] for r in _metrics(out)] == list(range(1, step + 3))


def test_progress_is_plain_lines_when_not_a_terminal(tmp_path: Path):
    """Piped output gets one plain line every --progress-every seconds, no carriage-return redraws."""
    proc = subprocess.run(
        [sys.executable, "-m", "latentforge", "train", "--out", str(tmp_path / "run"), "--model", "vae",
         "--width", "16", "--batch-size", "16", "--steps", "6", "--log-every", "2", "--eval-every", "0",
         "--progress-every", "0.001", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr and "\r" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if "train vae: step " in line]
    assert len(lines) >= 2 and "step 6/6 (100%)" in lines[-1] and "steps/s" in lines[-1]
    assert "loss" in lines[-1]


def test_colour_shapes_train_a_conditional_64px_model_and_export(tmp_path: Path):
    """The procedural colour set (one subfolder per shape): the DCGAN's defaults train a 64x64 RGB
    conditional model on it, with a class grid of one row per shape, and the export keeps the
    class names. (Its quality, measured, is in docs/benchmarks/quality.md.)"""
    from exporter.repository import export_run
    from latentforge.manifest import Manifest
    from scripts.shapes import SHAPES, write

    folder = write(tmp_path / "shapes", per_class=12, size=64)
    out = tmp_path / "run"
    train(tiny_config("dcgan", out, data=str(folder), steps=4, batch_size=8, sample_every=4, checkpoint_every=4,
                      conditional=True))
    payload = load_checkpoint(out)
    assert payload["data"]["shape"] == [3, 64, 64] and payload["data"]["class_names"] == list(SHAPES)
    classes = Image.open(out / "samples" / "classes_latest.png")
    assert classes.mode == "RGB" and classes.size[1] == len(SHAPES) * 66 + 2  # one row of 64 px tiles per shape
    manifest = Manifest.read(export_run(out, tmp_path / "models", "shapes"))
    assert manifest.classes == SHAPES and manifest.output.shape == (3, 64, 64) and manifest.num_classes == 5
