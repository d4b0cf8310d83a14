"""Quality of a stroke model (sketch-rnn): held-out NLL and KL, and scores of its rendered drawings.

Two kinds of figures, for a run folder (or one of its checkpoints) or an exported version folder:

1. Likelihood, as the sketch-rnn paper reports it (Ha & Eck 2017, tables 1-2), on drawings the
   run never trained on: the offsets' mixture NLL L_s, the pen states' cross-entropy L_p (both
   divided by T, the padded length, as in training), the KL per latent dimension (raw: no KL
   tolerance, no annealing weight) and total = L_s + L_p + KL; also the whole bound in nats per
   drawing, T * (L_s + L_p) + KL summed over dimensions. Computed with the family's own loss code
   (``trainer.losses``) in eval mode (no dropout, no augmentation) with z = mu + eps * sigma
   from a seeded eps. An unconditional model has no encoder: L_s and L_p only.

   Which drawings: the run's own hold-out (``--hold-out``, recorded in the checkpoint as
   {"share", "seed", "source_count"}: the quality meter's split of the data); when the run held
   out nothing, the data file's own `valid` split (sketch-rnn .npz files), else the meter's 20%
   split, flagged as seen in training.

2. Rendered drawings scored by the project's quality meter (``trainer.quality.features``), trained
   once per stroke data set on its drawings rendered as RENDER_SIZE images (the meter's native
   28x28) and cached beside the image meters: N drawings from the prior at each temperature,
   rendered the same way, get FID, KID and precision/recall against the meter's training split,
   each beside its floor (real held-out drawings); with class labels (and a classifier meter),
   the share read confidently. Reconstructions (held-out drawings encoded, drawn from mu at
   RECON_TEMPERATURE) are scored the same way, and with labels, the share the meter reads as the
   original's class beside the share of the originals it reads so.

Rendering: ``trainer.data.strokes.render`` (supersampled and box-filtered to 28x28, MNIST-like
edges; it draws from the start point as the model does), not the family's 64-pixel grid renderer
(one-pixel aliased lines at 28 pixels).

What the model must do is the ``StrokeModel`` protocol: ``RunModel`` implements it with the
family's PyTorch code over a checkpoint; ``VersionModel`` with an exported version's graphs
(encode_strokes, init_state, draw_strokes: the service's graphs) through its ``ModelRuntime``,
teacher-forcing the step graph for the likelihood (``latentforge.strokes.teacher_forced``) and
running the service's own sampling loop (``latentforge.strokes.drawing_loop``, every live
drawing's step batched into one call by ``drive_loops``), each drawing with its own NumPy
generator, so the meter scores the drawings the service would draw from those latents (a run's
drawings, from torch's generator, differ for the same seed; the likelihood, with the same eps,
agrees with the run's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from latentforge.runtime import ModelRuntime
from latentforge.strokes import drawing_loop, drive_loops, stroke5_row, teacher_forced
from trainer.data import DataError, TrainingData, load_data
from trainer.quality import metrics
from trainer.quality.evaluate import comparable_size, floor, score
from trainer.quality.features import (
    DEFAULT_SETTINGS,
    METER_VERSION,
    Meter,
    MeterSettings,
    QualityError,
    default_cache_dir,
    load_meter,
    split_indices,
)
from trainer.quality.scored import (Report, ScoredModel, TaskFigures, open_scored, round_figure, round_figures,
                                     scored_report)

log = logging.getLogger(__name__)

KIND = "stroke_vae"  # the family kind scored here
RENDER_SIZE = 28  # the meter's native size
TEMPERATURES = (0.2, 0.5, 1.0)  # besides the family's grid_temperature
RECON_TEMPERATURE = 0.1  # reconstructions are drawn from mu at this temperature
BATCH = 500
LOSS_BATCH = 256
MIN_HELD_OUT = 10
# How the stroke meters are trained: as the image meters (read at call time, so a caller may set it).
METER_SETTINGS = DEFAULT_SETTINGS


# --- the model ------------------------------------------------------------------------------------

class StrokeModel(Protocol):
    """What the figures need from a stroke model; offsets in the data's normalised units."""

    latent_dim: int  # 0: unconditional
    max_steps: int  # T
    grid_temperature: float

    def draw(self, z: np.ndarray | None, n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(strokes float32 (N, T, 5), lengths int64 (N,)) drawn from latents z (None: unconditional)."""
        ...

    def encode(self, strokes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """mu (N, latent_dim) of stroke-5 drawings."""
        ...

    def teacher_forced(self, strokes: np.ndarray, lengths: np.ndarray, eps: np.ndarray | None,
                       ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]:
        """The decoder's Mixture at every step (N, T, ...) given the previous true point, z = mu +
        eps * exp(presig / 2), and (mu, presig) (None without an encoder)."""
        ...


class RunModel:
    """A sketch-rnn family (a checkpoint's, or any built one) on the CPU, through its own code."""

    def __init__(self, family: Any) -> None:
        if getattr(family, "kind", None) != KIND:
            raise QualityError(f"a {getattr(family, 'name', type(family).__name__)} model is not a stroke model")
        self.family = family
        self.latent_dim = int(family.latent_dim)
        self.max_steps = int(family.max_steps)
        self.grid_temperature = float(family.config.grid_temperature)

    def draw(self, z: np.ndarray | None, n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        strokes, lengths = [], []
        for start in range(0, n, BATCH):
            size = min(BATCH, n - start)
            zb = None if z is None else torch.from_numpy(np.asarray(z[start:start + size], np.float32))
            s, ln = self.family.draw(zb, temperature, generator=gen, n=size)
            strokes.append(s.numpy())
            lengths.append(ln.numpy())
        return np.concatenate(strokes), np.concatenate(lengths)

    def encode(self, strokes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        out = [self.family.encode(torch.from_numpy(strokes[i:i + BATCH]), torch.from_numpy(lengths[i:i + BATCH]))[0]
               for i in range(0, len(strokes), BATCH)]
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def teacher_forced(self, strokes: np.ndarray, lengths: np.ndarray, eps: np.ndarray | None,
                       ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]:
        from trainer.families.sketch_rnn import flushing_subnormals

        net, device = self.family.modules["sketch_rnn"], self.family.device
        was_training = net.training
        net.eval()
        try:
            with flushing_subnormals(device):
                mix, mu, presig = net(torch.from_numpy(strokes).to(device), torch.from_numpy(lengths).to(device),
                                      eps=None if eps is None else torch.from_numpy(eps).to(device))
        finally:
            net.train(was_training)
        return tuple(t.cpu() for t in mix), mu, presig


class VersionModel:
    """An exported stroke version (tasks draw_strokes [+ init_state, encode_strokes]) through its
    runtime: the same graphs the service runs, driven by the service's own sampling loop."""

    def __init__(self, runtime: ModelRuntime) -> None:
        manifest = runtime.manifest
        if manifest.strokes is None or not runtime.has_task("draw_strokes"):
            raise QualityError(f"{runtime.version_dir} is not a stroke model (no draw_strokes task)")
        self.runtime = runtime
        self.spec = manifest.strokes
        self.latent_dim = int(manifest.latent_dim) if runtime.has_task("init_state") else 0
        self.max_steps = int(self.spec.max_steps)
        self.grid_temperature = float(self.spec.temperature)

    def _state(self, z: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        if z is None:
            zeros = np.zeros((n, self.spec.hidden), np.float32)
            return zeros, zeros
        state = self.runtime.run_task("init_state", {"z": np.asarray(z, np.float32)}, ["h", "c"])
        return state["h"], state["c"]

    def _step(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runtime.run_task("draw_strokes", feeds)

    def draw(self, z: np.ndarray | None, n: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        strokes = np.zeros((n, self.max_steps, 5), np.float32)
        strokes[..., 4] = 1.0
        lengths = np.zeros(n, np.int64)
        for start in range(0, n, BATCH):
            size = min(BATCH, n - start)
            zb = None if z is None else np.asarray(z[start:start + size], np.float32)
            h, c = self._state(zb, size)
            rows: list[list[tuple[float, float, int]]] = [[] for _ in range(size)]
            # Drawing i samples as the service samples a drawing from a given latent: its own
            # Generator(PCG64(seed + i)), the service's drawing loop.
            loops = [drawing_loop(self.spec.start_point, h[i], c[i], temperature,
                                  np.random.Generator(np.random.PCG64(seed + start + i)), self.max_steps, rows[i])
                     for i in range(size)]
            drive_loops(self._step, loops, zb)
            for i, drawn in enumerate(rows):
                lengths[start + i] = len(drawn)
                for t, (dx, dy, pen) in enumerate(drawn):
                    strokes[start + i, t] = stroke5_row(dx, dy, pen)
        return strokes, lengths

    def encode(self, strokes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._posterior(strokes, lengths)[0]

    def _posterior(self, strokes: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.runtime.has_task("encode_strokes"):
            raise QualityError(f"{self.runtime.version_dir}: this stroke model has no encoder (encode_strokes)")
        role = self.runtime.graph_for("encode_strokes")
        if "logvar" not in self.runtime.output_names(role):
            raise QualityError(f"{self.runtime.version_dir}: its encoder gives no logvar: the KL cannot be measured")
        out = self.runtime.run_chunked(role, {"strokes": strokes, "lengths": lengths}, BATCH, ["mu", "logvar"])
        return out["mu"], out["logvar"]

    def teacher_forced(self, strokes: np.ndarray, lengths: np.ndarray, eps: np.ndarray | None,
                       ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, torch.Tensor | None]:
        n, steps, _ = strokes.shape
        mu = presig = z = None
        if self.latent_dim:
            assert eps is not None
            mu, presig = self._posterior(strokes, lengths)
            z = (mu + eps * np.exp(presig / 2)).astype(np.float32)
        h, c = self._state(z, n)
        start = np.tile(np.asarray(self.spec.start_point, np.float32), (n, 1, 1))
        inputs = np.concatenate([start, strokes[:, :-1]], axis=1)
        mix = tuple(torch.from_numpy(a) for a in teacher_forced(self._step, inputs, z, h, c, steps))
        as_tensor = (lambda a: None if a is None else torch.from_numpy(a))
        return mix, as_tensor(mu), as_tensor(presig)


def stroke_model(model: ScoredModel) -> RunModel | VersionModel:
    """The stroke model of a scored run or version."""
    if "draw_strokes" not in model.tasks:
        raise QualityError(f"{model.where} is a {model.source.get('family')} model, not a stroke model")
    return VersionModel(model.runtime) if model.runtime is not None else RunModel(model.family())


def open_model(path: Path, checkpoint: Path | None = None) -> RunModel | VersionModel:
    """The stroke model of a run folder, a checkpoint file or an exported version folder."""
    return stroke_model(open_scored(Path(path), checkpoint))


# --- the drawings to score against ----------------------------------------------------------------

@dataclass
class HeldOut:
    """Stroke-5 drawings the run did not train on (unless `unseen` is False), with the data they came from."""

    strokes: np.ndarray  # float32 (N, T, 5), normalised by the training data's scale
    lengths: np.ndarray  # int64 (N,)
    labels: np.ndarray | None
    split: str  # "hold-out", "valid" or "meter split"
    unseen: bool
    data: TrainingData  # all of the data set (the meter renders it)


def held_out(hold_out: dict[str, Any] | None, spec: str, max_steps: int, where: str = "the run") -> HeldOut:
    """The drawings a run held out, from its record `hold_out` (see the module docstring for the
    order of choice); `where` names the run in messages."""
    try:
        data = load_data(spec)
    except DataError as exc:
        raise QualityError(f"cannot load the data to compare with: {exc}; pass it with --data") from None
    if data.strokes is None or data.lengths is None:
        raise QualityError(f"{spec} holds images, not pen strokes; a stroke model is scored on stroke data")
    if data.strokes.shape[1] != max_steps:
        raise QualityError(f"{spec} pads drawings to T = {data.strokes.shape[1]} points but the model was trained at "
                           f"T = {max_steps}: it is not the data the run trained on (or it changed); pass it with --data")
    hold = hold_out or {}
    share = float(hold.get("share", 0.0) or 0.0)
    if share > 0:
        count = int(hold.get("source_count", len(data)))
        if count != len(data):
            raise QualityError(f"the run held out {share:g} of {count} drawings but {spec} now holds {len(data)}: "
                               "its held-out split cannot be found again")
        _, idx = split_indices(len(data), share, int(hold.get("seed", DEFAULT_SETTINGS.seed)))
        return _take(data, idx, "hold-out", True)
    valid = _valid_split(spec, data, max_steps)
    if valid is not None:
        return valid
    log.warning("%s held out nothing (train with --hold-out 0.2): its NLL is measured on drawings it trained on",
                where)
    _, idx = split_indices(len(data), DEFAULT_SETTINGS.held_out, DEFAULT_SETTINGS.seed)
    return _take(data, idx, "meter split", False)


def _take(data: TrainingData, idx: np.ndarray, split: str, unseen: bool) -> HeldOut:
    assert data.strokes is not None and data.lengths is not None
    labels = None if data.labels is None else np.asarray(data.labels)[idx]
    return HeldOut(data.strokes[idx], data.lengths[idx], labels, split, unseen, data)


def _valid_split(spec: str, data: TrainingData, max_steps: int) -> HeldOut | None:
    """A sketch-rnn .npz file's `valid` drawings, scaled as its training drawings; None without one."""
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        return None
    from trainer.data.sketch_npz import npz_members, read_member
    from trainer.data.strokes import check_stroke3, normalize, stroke3_to_stroke5

    if "valid" not in (npz_members(path) or []):
        return None
    try:
        kept, _ = check_stroke3(list(read_member(path, "valid")), f"{path}:valid", max_steps)
    except (DataError, ValueError, OSError) as exc:
        raise QualityError(f"cannot read the valid split of {path}: {exc}") from None
    strokes, lengths = stroke3_to_stroke5(normalize(kept, float(data.stroke_scale or 1.0)), max_steps)
    return HeldOut(strokes, lengths, None, "valid", True, data)


# --- likelihood -----------------------------------------------------------------------------------

@torch.no_grad()
def reconstruction_nll(model: StrokeModel, strokes: np.ndarray, lengths: np.ndarray, seed: int = 0,
                       batch: int = LOSS_BATCH) -> dict[str, float]:
    """L_s, L_p, their sum and (with an encoder) raw KL per dimension and per drawing, total
    = L_s + L_p + KL and the bound in nats per drawing, averaged over the drawings.

    Eval mode, no augmentation, no KL tolerance; z = mu + eps * sigma with eps from `seed` (the
    same eps for a run and its exported version, so their figures agree).
    """
    from trainer.losses import kl_per_dimension, stroke_reconstruction_loss

    if len(strokes) == 0:
        raise QualityError("no held-out drawings to measure the NLL on")
    latent = int(model.latent_dim)
    steps = strokes.shape[1]
    gen = torch.Generator().manual_seed(seed)
    sums = {"offset_nll": 0.0, "pen_nll": 0.0, "kl": 0.0}
    for start in range(0, len(strokes), batch):
        s = np.ascontiguousarray(strokes[start:start + batch], np.float32)
        ln = np.asarray(lengths[start:start + batch], np.int64)
        eps = torch.randn(len(s), latent, generator=gen).numpy() if latent else None
        mix, mu, presig = model.teacher_forced(s, ln, eps)
        target = torch.from_numpy(s)
        offsets, pen = stroke_reconstruction_loss(*(t.float() for t in mix), target, torch.from_numpy(ln))
        sums["offset_nll"] += float(offsets) * len(s)
        sums["pen_nll"] += float(pen) * len(s)
        if mu is not None and presig is not None:
            sums["kl"] += float(kl_per_dimension(mu.float().cpu(), presig.float().cpu())) * len(s)
    n = len(strokes)
    out = {"n": n, "T": steps, "offset_nll": sums["offset_nll"] / n, "pen_nll": sums["pen_nll"] / n}
    out["recon_nll"] = out["offset_nll"] + out["pen_nll"]
    if latent:
        out["kl"] = sums["kl"] / n
        out["kl_sum"] = out["kl"] * latent
        out["total"] = out["recon_nll"] + out["kl"]
        out["nats_per_drawing"] = steps * out["recon_nll"] + out["kl_sum"]
    else:
        out["total"] = out["recon_nll"]
        out["nats_per_drawing"] = steps * out["recon_nll"]
    for key in ("offset_nll", "pen_nll", "recon_nll", "kl", "total"):
        if key in out and not np.isfinite(out[key]):
            raise QualityError(f"the held-out {key} is not finite ({out[key]}): the weights have diverged")
    return out


# --- the rendered meter ---------------------------------------------------------------------------

def render_drawings(strokes: np.ndarray, lengths: np.ndarray, size: int = RENDER_SIZE) -> np.ndarray:
    """Stroke-5 drawings as images (N, 1, size, size) in [0, 1], as the stroke meter sees them."""
    from trainer.data.strokes import render

    lengths = np.maximum(np.asarray(lengths, np.int64), 1)  # a drawing ended at once is a dot
    return render(strokes, lengths, size)


def rendered_data(data: TrainingData, size: int = RENDER_SIZE) -> TrainingData:
    """A stroke data set as images: every drawing rendered, labels kept (the stroke meter's data)."""
    if data.strokes is None or data.lengths is None:
        raise QualityError(f"{data.source} holds no pen strokes to render")
    return TrainingData(source=f"{data.source}@{size}px", images=render_drawings(data.strokes, data.lengths, size),
                        labels=data.labels, class_names=list(data.class_names))


_METERS: dict[tuple[Any, ...], Meter] = {}


def stroke_meter(data: TrainingData, cache_dir: Path | None = None, settings: MeterSettings | None = None,
                 size: int = RENDER_SIZE) -> Meter:
    """The quality meter of a stroke data set, trained on its rendered drawings (the image meter's
    way: classifier with labels, autoencoder without; 80/20 split) and cached with the image
    meters, keyed by the rendered pixels; loaded once per process."""
    settings = settings or METER_SETTINGS
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    memo = (data.source, len(data), size, str(folder), settings)
    if memo not in _METERS:
        _METERS[memo] = load_meter(rendered_data(data, size), folder, settings)
    return _METERS[memo]


# --- the report -----------------------------------------------------------------------------------

@dataclass
class StrokeFigures(TaskFigures):
    """The draw_strokes task's figures: held-out likelihood, and rendered drawings beside their floor."""

    task: ClassVar[str] = "draw_strokes"
    graphs: list[str]  # the version's step graph the drawings come from (none for a run)
    data: dict[str, Any]
    held_out: dict[str, Any]
    nll: dict[str, float]
    meter: dict[str, Any] | None = None
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # temperature (as text) -> scores
    floor: dict[str, Any] | None = None
    reconstruction: dict[str, Any] | None = None

    def summary(self, report: Report) -> dict[str, Any]:
        """A flat record of the headline figures (e.g. for a model manifest's quality)."""
        out: dict[str, Any] = {k: round_figure(v) for k, v in self.nll.items()
                               if k in ("offset_nll", "pen_nll", "recon_nll", "kl", "total", "nats_per_drawing")}
        for t, s in self.samples.items():
            out.update({f"t{t}_{k}": round_figure(s[k]) for k in ("fid", "precision", "recall", "confident") if k in s})
        if self.floor:
            out.update({f"{k}_floor": round_figure(self.floor[k])
                        for k in ("fid", "precision", "recall") if k in self.floor})
        if self.reconstruction:
            out.update({f"recon_{k}": round_figure(v) for k, v in self.reconstruction.items()
                        if k in ("fid", "read", "original_read")})
        out.update(task=self.task, n=report.n, seed=report.seed, data=self.data["spec"],
                   held_out=self.held_out["split"], held_out_unseen=int(self.held_out["unseen"]),
                   meter_version=METER_VERSION)
        return out

    def format(self, report: Report) -> str:
        """The figures as readable text."""
        src, d, h, nll = report.source, self.data, self.held_out, self.nll
        seen = "" if h["unseen"] else " (the run trained on them: train with --hold-out 0.2)"
        if src.get("kind") == "version":
            what = (f"{src['model']} version {src['version']} ({', '.join(self.graphs)}, ONNX Runtime, "
                    f"step {src.get('step')})")
        else:
            what = f"{report.target} ({Path(src.get('checkpoint') or '').name}, step {src.get('step')})"
        lines = [
            f"{what}: stroke model",
            f"data: {d['spec']}, {d['count']} drawings, T = {d['T']}",
            f"held-out NLL on {h['count']} drawings ({h['split']}){seen}, eval mode, raw KL (no tolerance):",
            f"  L_s (offsets) {nll['offset_nll']:.4f}   L_p (pen) {nll['pen_nll']:.4f}   "
            f"L_R {nll['recon_nll']:.4f}" + (f"   KL/dim {nll['kl']:.4f}   KL/drawing {nll['kl_sum']:.3f}"
                                              if "kl" in nll else "   (unconditional: no KL)"),
            f"  total L_s + L_p + KL {nll['total']:.4f}   bound {nll['nats_per_drawing']:.2f} nats per drawing",
        ]
        m, f = self.meter, self.floor
        if m is None or f is None:
            return "\n".join(lines)
        acc = m.get("held_out_accuracy")
        trained = f"trained now in {m['train_seconds']} s" if m["origin"] == "trained" else "cached"
        lines += [
            "",
            f"meter: {m['kind']} on drawings rendered at {m['render_size']}x{m['render_size']}, {m['train_images']} "
            f"training, {m['held_out_images']} held out" + (f", held-out accuracy {acc:.1%}" if acc is not None else "")
            + f" ({trained})",
            f"{report.n} drawings from the prior per temperature; floor: {f['n']} real held-out drawings",
            "",
        ]
        keys = [("fid", "FID", ".2f"), ("kid", "KID", ".4f"), ("precision", "precision", ".3f"),
                ("recall", "recall", ".3f"), ("confident", "confident", ".3f"), ("mean_points", "points", ".1f"),
                ("ended", "ended", ".2f")]
        keys = [k for k in keys if k[0] in f or any(k[0] in s for s in self.samples.values())]
        lines.append(f"{'':14}" + "".join(f"{label:>11}" for _, label, _ in keys))
        for name, row in [*((f"t={t}", s) for t, s in self.samples.items()), ("floor", f)]:
            lines.append(f"{name:14}" + "".join(f"{format(row[k], fmt) if k in row else '-':>11}"
                                                for k, _, fmt in keys))
        r = self.reconstruction
        if r:
            parts = [f"reconstructions of {r['n']} held-out drawings (from mu, t={r['temperature']}):"]
            if "fid" in r:
                parts.append(f"FID {r['fid']:.2f}")
            if "read" in r:
                parts.append(f"read as the original's class {r['read']:.1%} (originals {r['original_read']:.1%})")
            lines += ["", "  ".join(parts)]
        return "\n".join(lines)


def _sample_scores(meter: Meter, strokes: np.ndarray, lengths: np.ndarray, seed: int) -> dict[str, Any]:
    scores = score(meter, render_drawings(strokes, lengths), seed=seed)
    scores = {k: v for k, v in scores.items() if k != "classes"}
    scores["mean_points"] = float(np.mean(lengths))
    scores["ended"] = float(np.mean(lengths < strokes.shape[1]))  # drew the end state before T
    return scores


def _reads(meter: Meter, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    _, probs = meter.embed(images)
    assert probs is not None
    return probs.argmax(1) == labels


def score_strokes(
    report: Report,
    scored: ScoredModel,
    data: str | None = None,
    cache_dir: Path | None = None,
    temperatures: tuple[float, ...] | None = None,
    settings: MeterSettings | None = None,
    meter: bool = True,
) -> StrokeFigures:
    """Add a stroke model's figures (the draw_strokes task) to the report: held-out NLL and KL,
    then (unless `meter` is False) ``report.n`` prior drawings per temperature and the held-out
    reconstructions scored by the rendered-drawing meter. What cannot be measured is a note."""
    n, seed = report.n, report.seed
    if n < 1:
        raise QualityError(f"--n must be >= 1 (got {n})")
    model = stroke_model(scored)
    spec = data or scored.config.get("data")
    if not isinstance(spec, str) or not spec:
        raise QualityError(f"{scored.where} does not name its training data; pass --data")
    held = held_out(scored.hold_out, spec, model.max_steps, scored.where)
    nll = reconstruction_nll(model, held.strokes, held.lengths, seed)
    temps = tuple(temperatures) if temperatures else tuple(sorted({*TEMPERATURES, model.grid_temperature}))
    if any(not t > 0 for t in temps):
        raise QualityError(f"temperatures must be > 0 (got {', '.join(map(str, temps))})")
    figures = report.add(StrokeFigures(
        graphs=scored.graph_files("draw_strokes"),
        data={"spec": spec, "source": held.data.source, "count": len(held.data), "T": model.max_steps,
              "stroke_scale": held.data.stroke_scale, "labelled": held.data.labels is not None},
        held_out={"split": held.split, "count": len(held.strokes), "unseen": held.unseen,
                  "hold_out": scored.hold_out},
        nll=round_figures(nll)))
    m = None
    if meter:
        try:
            m = stroke_meter(held.data, cache_dir, settings or METER_SETTINGS)
        except QualityError as exc:  # e.g. too few drawings for a meter: the likelihood still stands
            report.notes.append(f"no rendered-drawing scores: {exc}")
    if m is not None:
        figures.meter = {"kind": m.kind, "version": METER_VERSION, "key": m.key, "cache": str(m.path),
                         "origin": m.origin, "train_seconds": m.train_seconds, "render_size": RENDER_SIZE,
                         "train_images": len(m.train_features), "held_out_images": len(m.held_out_features),
                         "held_out_accuracy": m.held_out_accuracy,
                         "split_is_run_hold_out": _meter_split_unseen(scored.hold_out)}
        figures.floor = round_figures({k: v for k, v in floor(m, n, seed).items() if k != "classes"})
        figures.floor.update(mean_points=float(np.mean(held.lengths)),
                             ended=float(np.mean(held.lengths < model.max_steps)))
        z = (np.random.default_rng(seed).standard_normal((n, model.latent_dim)).astype(np.float32)
             if model.latent_dim else None)
        for t in temps:
            strokes, lengths = model.draw(z, n, t, seed)
            figures.samples[f"{t:g}"] = round_figures(_sample_scores(m, strokes, lengths, seed))
        if model.latent_dim and len(held.strokes) >= MIN_HELD_OUT:
            figures.reconstruction = round_figures(reconstructions(model, m, held, seed))
        elif model.latent_dim:
            report.notes.append(f"no reconstruction scores: {len(held.strokes)} held-out drawings "
                                f"(need {MIN_HELD_OUT})")
    return figures


def evaluate_strokes(
    path: Path,
    n: int = 2000,
    seed: int = 0,
    checkpoint: Path | None = None,
    data: str | None = None,
    cache_dir: Path | None = None,
    temperatures: tuple[float, ...] | None = None,
    settings: MeterSettings | None = None,
    meter: bool = True,
) -> Report:
    """The report of a run folder, a checkpoint or an exported version with the draw_strokes
    task's figures alone (``score_strokes``)."""
    return scored_report(path, checkpoint, n, seed, lambda report, scored: score_strokes(
        report, scored, data, cache_dir, temperatures, settings, meter))


def reconstructions(model: StrokeModel, meter: Meter, held: HeldOut, seed: int = 0,
                    temperature: float = RECON_TEMPERATURE) -> dict[str, Any]:
    """Held-out drawings encoded, drawn from mu at `temperature`, rendered and scored; with labels
    and a classifier meter, the share read as the original's class (`read`) beside the share of
    the rendered originals read so (`original_read`, its ceiling)."""
    mu = model.encode(held.strokes, held.lengths)
    strokes, lengths = model.draw(mu, len(mu), temperature, seed)
    images = render_drawings(strokes, lengths)
    out: dict[str, Any] = {"temperature": temperature, "n": len(images)}
    feats, probs = meter.embed(images)
    size = comparable_size(meter, len(images))
    if size >= 2 and len(images) >= size:
        out["fid"] = metrics.fid(metrics.mean_cov(meter.train_features), feats[:size])
    out["mean_points"] = float(np.mean(lengths))
    if held.labels is not None and probs is not None:
        out["read"] = float((probs.argmax(1) == held.labels).mean())
        out["original_read"] = float(_reads(meter, render_drawings(held.strokes, held.lengths), held.labels).mean())
    return out


def _meter_split_unseen(hold_out: Any) -> bool | None:
    from trainer.quality.completion import held_out_unseen

    return held_out_unseen(hold_out)
