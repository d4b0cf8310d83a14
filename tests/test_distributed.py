"""Data-parallel training under torchrun: two CPU processes (gloo) for a few steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.processes import wait_until
from trainer.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def test_torchrun_two_processes(tmp_path: Path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "latentforge", "train", "--model", "dcgan", "--out", str(out), "--steps", "6",
        "--batch-size", "16", "--width", "16", "--checkpoint-every", "3", "--sample-every", "3",
        "--log-every", "1", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = load_checkpoint(out)
    assert payload["step"] == 6
    assert len(payload["rng"]) == 2  # every rank's RNG state, for an exact resume
    assert not torch.equal(payload["rng"][0], payload["rng"][1])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # rank 0 alone writes metrics
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert (out / "samples" / "latest.png").is_file()


def test_torchrun_trains_the_stroke_family(tmp_path: Path):
    """sketch-rnn under torchrun: each rank draws its share of the kanji numerals; rank 0 writes."""
    out = tmp_path / "ddp-strokes"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "latentforge", "train", "--model", "sketch-rnn", "--data", "kanjivg:digits", "--out", str(out),
        "--steps", "4", "--batch-size", "4", "--latent-dim", "8", "--enc-rnn", "16", "--dec-rnn", "32",
        "--mixtures", "3", "--checkpoint-every", "2", "--sample-every", "2", "--log-every", "1", "--no-progress",
        "--eval-every", "0",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = load_checkpoint(out)
    assert payload["step"] == 4 and len(payload["rng"]) == 2
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all("kl" in r for r in rows)


def _worker_pid(torchrun_pid: int, rank: int) -> int | None:
    """The pid of the torchrun worker with RANK=`rank` (Linux /proc), or None while it is not up."""
    children = Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(pid)
    return None


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path):
    """SIGTERM reaching one worker only: the ranks agree, all stop after the same step (a
    disagreement would hang the checkpoint's collectives), and rank 0 writes a checkpoint at
    that step holding both ranks' RNG states."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "latentforge", "train", "--model", "dcgan", "--out", str(out), "--steps", "100000",
        "--batch-size", "16", "--width", "16", "--checkpoint-every", "100000", "--sample-every", "100000",
        "--log-every", "1", "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        metrics = out / "metrics.jsonl"
        wait_until(lambda: proc.poll() is not None or (metrics.exists() and metrics.read_text().count("\n") >= 1),
                   240, "the first metrics line")
        worker = _worker_pid(proc.pid, 1)
        assert worker is not None, "no worker with RANK=1"
        os.kill(worker, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # workers that stop early exit 143, and torchrun reports it
    info = json.loads((out / "run.json").read_text())
    assert info["stopped"] == "SIGTERM" and not info["finished"], stderr[-3000:]
    payload = load_checkpoint(out)
    assert payload["step"] == info["step"] >= 1
    assert len(payload["rng"]) == 2
    assert "exitcode  : 143" in stderr
