"""Small model versions that build to the same graphs every time, so outputs served from them can
be recorded once and compared after changes to the serving code (tests/test_served_outputs.py,
tests/helpers/record_outputs.py).

Each model trains a few steps (fixed seed, one torch thread, no evaluation) with the project's
trainer and is published with its exporter. Only modules whose paths are stable are imported
(trainer.*, exporter.*, latentforge.manifest), so the builder outlives moves of the serving code.

    python -m tests.helpers.recorded REPO

builds them in a process of their own (``build_in_child``: no state of a test session, such as
torch's thread count, reaches the training).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Model names in the repository (each written as version 1).
DCGAN, COMPLETION, STROKES = "rec-dcgan", "rec-completion", "rec-strokes"

# Options every recorded run shares: one thread (reduction order fixed), no evaluation, no progress
# output, a checkpoint at the last step.
_COMMON: dict[str, Any] = dict(seed=0, threads=1, progress=False, eval_every=0, device="cpu", grid_size=4)

RUNS: dict[str, dict[str, Any]] = {
    # Class-conditional (mnist5k is labelled): Generate with and without a label.
    DCGAN: dict(model="dcgan", data="mnist5k", steps=2, batch_size=8, width=8, latent_dim=16, conditional=True,
                sample_every=2, checkpoint_every=2, log_every=1),
    # A high learning rate for a few steps: enough that candidates differ after PNG rounding. Every
    # candidate from its seed (first_candidate sample), as when the outputs were recorded.
    COMPLETION: dict(model="completion", data="mnist5k", steps=10, batch_size=8, width=8, latent_dim=8, lr=0.01,
                     first_candidate="sample", sample_every=10, checkpoint_every=10, log_every=5),
    # Enough steps that drawings run for a dozen points or more (at first they end at once). The
    # loss, batches and KL weight the outputs were recorded with (pen loss over every step,
    # unbucketed batches, KL weight 0.5).
    STROKES: dict(model="sketch-rnn", data="kanjivg:digits", steps=40, batch_size=8, hold_out=0.2, latent_dim=8,
                  enc_rnn=16, dec_rnn=32, mixtures=3, lr=0.01, pen_loss="all_steps", length_buckets=0,
                  kl_weight=0.5, sample_every=40, checkpoint_every=40, log_every=10),
}


def build_recorded_models(repo: Path) -> None:
    """Train and export ``rec-dcgan``, ``rec-completion`` and ``rec-strokes`` (version 1 each) into
    ``repo``. On the same machine and library versions their graphs are the same every build
    (``graph_fingerprints``); the .onnx files are the same bytes when built from the same
    checkout folder and source lines, as the exporter keeps each node's source file and line."""
    from exporter.repository import export_run
    from trainer.config import TrainConfig
    from trainer.loop import train

    repo = Path(repo)
    with tempfile.TemporaryDirectory(prefix="recorded-runs-") as runs:
        for name, options in RUNS.items():
            out = Path(runs) / name
            train(TrainConfig.from_dict({**_COMMON, **options, "out": out}))
            export_run(out, repo, name, checkpoint="latest")


def build_in_child(repo: Path, root: Path, timeout_s: float = 600.0) -> None:
    """``build_recorded_models(repo)`` in a child Python of the tree at ``root`` (its cwd and
    PYTHONPATH); RuntimeError with the end of its output when it fails."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "tests.helpers.recorded", str(repo)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"building the recorded models failed (exit {done.returncode}):\n{done.stderr[-4000:]}")


def graph_fingerprints(repo: Path) -> dict[str, str]:
    """sha256 of each .onnx file's computation, by path relative to ``repo``: the file with every
    doc string and metadata property removed (the exporter writes there the Python stack trace of
    each node, with the checkout's path and line numbers, which do not change what it computes)."""
    import onnx

    fingerprints = {}
    for path in sorted(Path(repo).rglob("*.onnx")):
        model = onnx.load(str(path))
        _strip_descriptions(model)
        data = model.SerializeToString(deterministic=True)
        fingerprints[path.relative_to(repo).as_posix()] = hashlib.sha256(data).hexdigest()
    return fingerprints


def _strip_descriptions(message: Any) -> None:
    """Clear ``doc_string`` and ``metadata_props`` of an ONNX message and every message in it."""
    for field, value in message.ListFields():
        if field.name in ("doc_string", "metadata_props"):
            message.ClearField(field.name)
        elif field.message_type is not None:
            for item in ([value] if hasattr(value, "ListFields") else value):
                _strip_descriptions(item)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.helpers.recorded REPO")
    build_recorded_models(Path(sys.argv[1]))
