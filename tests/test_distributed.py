"""Data-parallel training under torchrun: two CPU processes (gloo) for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from trainer.checkpoint import load_checkpoint
import pytest

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
