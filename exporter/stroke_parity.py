"""Parity of a stroke model as the service runs it: the ``decoder_step`` graph called once per
point in a loop from ONNX Runtime, its state fed back, against PyTorch's whole-sequence
(teacher-forced) pass over the same drawings.

Per-graph parity (``measure_parity``) checks one call on random inputs; this checks what a drawing
depends on: that the encoder, the initial state and T chained steps stay with PyTorch on real
drawings. The drawings are held-out ones of the run's data (the split the run held out, else the
quality meter's split), read again from its source; when the source cannot be read any more (a
file moved), drawings the PyTorch model samples itself stand in, and the log says so.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from latentforge.manifest import STROKE_DIM
from latentforge.runtime import ModelRuntime
from latentforge.strokes import teacher_forced

log = logging.getLogger(__name__)

PARITY_DRAWINGS = 8  # drawings the loop is checked on
# Chained steps add float32 rounding from PyTorch's fused LSTM and ONNX Runtime's kernels at each step.
LOOP_TOLERANCE = 1e-3
LOOP_KEY = "decoder_step@loop"  # its entry in the manifest's parity.per_graph


def parity_drawings(payload: dict[str, Any], family: Any, n: int = PARITY_DRAWINGS) -> tuple[np.ndarray, np.ndarray, str]:
    """n drawings to check the loop on: (strokes float32 (n, T, 5), lengths int64 (n,), where from)."""
    from trainer.data import DataError, load_data
    from trainer.quality.features import DEFAULT_SETTINGS, split_indices

    data = payload["data"]
    steps = int(data["shape"][0])
    try:
        loaded = load_data(str(data["source"]), max_seq_len=steps)
        if loaded.strokes is None or loaded.strokes.shape[1:] != (steps, STROKE_DIM):
            raise DataError(f"{data['source']} no longer gives stroke-5 drawings of {steps} points")
        hold = payload.get("hold_out") if isinstance(payload.get("hold_out"), dict) else {}
        share = float(hold.get("share", 0.0)) or DEFAULT_SETTINGS.held_out
        _, held = split_indices(len(loaded), share, int(hold.get("seed", DEFAULT_SETTINGS.seed)))
        pick = held[:n]
        where = f"{len(pick)} held-out drawings of {data['source']}" if hold.get("share") else \
            f"{len(pick)} drawings of {data['source']} (the run held none out)"
        return loaded.strokes[pick].astype(np.float32), loaded.lengths[pick].astype(np.int64), where
    except (DataError, OSError, KeyError, ValueError) as exc:
        log.warning("loop parity: cannot read the run's data again (%s); checking on drawings the model samples", exc)
        z = torch.randn(n, family.latent_dim, generator=torch.Generator().manual_seed(0)) if family.latent_dim else None
        strokes, lengths = family.draw(z, 1.0, generator=torch.Generator().manual_seed(0), n=n)
        return strokes.numpy(), lengths.clamp(min=1).numpy(), f"{n} drawings the model sampled"


@torch.no_grad()
def loop_parity(family: Any, runtime: ModelRuntime, strokes: np.ndarray, lengths: np.ndarray) -> float:
    """Max abs difference over the drawings' real steps (and the step that ends each) between the
    step graph run in a loop from ONNX Runtime (``runtime``: the staged version's graphs) and
    PyTorch's teacher-forced pass; z is each side's own encoder mean (the unconditional model has
    none). The loop is ``latentforge.strokes.teacher_forced``, the one the quality meter runs."""
    net = family.modules["sketch_rnn"].cpu().eval()
    x = torch.from_numpy(strokes)
    n, steps, _ = x.shape
    start = x.new_tensor(family.stroke_spec()["start_point"]).expand(n, 1, STROKE_DIM)
    inputs = torch.cat([start, x[:, :-1]], dim=1)
    if net.encoder is not None:
        z_torch, _ = net.encoder(x, torch.from_numpy(lengths))
        z = runtime.run_task("encode_strokes", {"strokes": strokes, "lengths": lengths}, ["mu"])["mu"]
        state = runtime.run_task("init_state", {"z": z}, ["h", "c"])
        h, c = state["h"], state["c"]
    else:
        z_torch = z = None
        h = c = np.zeros((n, net.decoder.hidden), np.float32)
    expected = [t.numpy() for t in net.decoder(inputs, z_torch)]
    run = min(steps, int(lengths.max()) + 1)
    got = teacher_forced(lambda feeds: runtime.run_task("draw_strokes", feeds), inputs.numpy(), z, h, c, run)
    real = (np.arange(steps)[None, :] <= lengths[:, None])[:, :run]  # real points and the step that ends each
    return max(float(np.abs(g[real] - w[:, :run][real]).max(initial=0.0)) for g, w in zip(got, expected))
