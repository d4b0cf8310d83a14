"""Pen strokes for the service and its clients: sampling one point from a stroke decoder's step,
checking and converting drawings, and rendering them as SVG and PNG. NumPy and Pillow only, so
a serve-only install has it.

A drawing is a sequence of points, each the pen's offset (dx, dy) from the previous point (the
first from the origin, where the pen starts on the paper) and the pen's state after it: ``PEN_DOWN`` (the pen stays on the paper: the segment to the next point
is drawn), ``PEN_UP`` (lifted after this point: the next segment is a move) or ``PEN_END`` (the
drawing is over; a point with no offset). The models work on stroke-5 rows (dx, dy, p1, p2, p3)
with offsets divided by the data's scale factor (``latentforge.manifest.StrokeSpec.scale``); the
service speaks in the data's own units.

Sampling, as sketch-rnn (Ha & Eck 2017) with temperature tau: a mixture component from
softmax(pi / tau), then (dx, dy) from its bivariate normal with variances times tau, then the pen
state from softmax(pen_logits / tau). Every draw comes from the caller's NumPy Generator in a
fixed order (one uniform for the component, two standard normals, one uniform for the pen), so a
seed gives the same drawing on any server.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PEN_DOWN, PEN_UP, PEN_END = 0, 1, 2
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 2.0
# Offsets above this many scale factors are not a drawing the model could have seen.
MAX_OFFSET_SCALES = 1e3


class StrokeError(ValueError):
    """A drawing that cannot be used, with what to fix."""


@dataclass(frozen=True)
class StepOutput:
    """One step's outputs for one drawing: the next point's distribution (mixture of M)."""

    pi: np.ndarray  # (M,) logits
    mu_x: np.ndarray
    mu_y: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    rho: np.ndarray
    pen_logits: np.ndarray  # (3,)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    x = logits.astype(np.float64) / temperature
    x -= x.max()
    p = np.exp(x)
    return p / p.sum()


def _pick(probs: np.ndarray, u: float) -> int:
    """The index whose cumulative probability first exceeds u (u in [0, 1))."""
    return int(min(np.searchsorted(np.cumsum(probs), u, side="right"), len(probs) - 1))


def sample_point(step: StepOutput, temperature: float, rng: np.random.Generator) -> tuple[float, float, int]:
    """(dx, dy, pen) in the model's units from one step's distribution; draws, in order: one
    uniform, two standard normals, one uniform."""
    tau = max(float(temperature), MIN_TEMPERATURE)
    k = _pick(_softmax(step.pi, tau), float(rng.random()))
    e = rng.standard_normal(2)
    scale = math.sqrt(tau)
    sx, sy, rho = float(step.sigma_x[k]) * scale, float(step.sigma_y[k]) * scale, float(step.rho[k])
    dx = float(step.mu_x[k]) + sx * float(e[0])
    dy = float(step.mu_y[k]) + sy * (rho * float(e[0]) + math.sqrt(max(1.0 - rho * rho, 0.0)) * float(e[1]))
    pen = _pick(_softmax(step.pen_logits, tau), float(rng.random()))
    return dx, dy, pen


def check_temperature(value: float | None, default: float) -> float:
    """A request's temperature, or the model's default; StrokeError outside (0, MAX_TEMPERATURE]."""
    tau = default if value is None else float(value)
    if not math.isfinite(tau) or not MIN_TEMPERATURE <= tau <= MAX_TEMPERATURE:
        raise StrokeError(f"temperature must be in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}] (got {value}); "
                          "low draws the most likely strokes, 1 samples the model as trained")
    return tau


def check_drawing(points: np.ndarray, max_points: int, scale: float, what: str = "drawing") -> np.ndarray:
    """A client's drawing as float32 (K, 3) rows (dx, dy, pen) in the data's units, checked: at
    least one point, at most ``max_points``, finite offsets of sane size, pens PEN_DOWN or
    PEN_UP except a last PEN_END (dropped). StrokeError says what is wrong."""
    rows = np.asarray(points, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 3:
        raise StrokeError(f"{what}: points must be (dx, dy, pen) rows, got shape {list(rows.shape)}")
    if len(rows) and rows[-1, 2] == PEN_END:
        rows = rows[:-1]
    if not len(rows):
        raise StrokeError(f"{what} has no points; send at least one (dx, dy, pen) point")
    if len(rows) > max_points:
        raise StrokeError(f"{what} has {len(rows)} points; this model takes at most {max_points} "
                          "(simplify the strokes, e.g. with Ramer-Douglas-Peucker, or send a shorter part)")
    if not np.all(np.isfinite(rows[:, :2])):
        raise StrokeError(f"{what}: offsets must be finite numbers (found NaN or infinity)")
    limit = MAX_OFFSET_SCALES * scale
    if np.abs(rows[:, :2]).max() > limit:
        raise StrokeError(f"{what}: an offset of {np.abs(rows[:, :2]).max():.4g} exceeds {limit:.4g} "
                          f"({MAX_OFFSET_SCALES:g} times the model's scale {scale:g}); send offsets between "
                          "points, not absolute positions, in the data's units")
    pens = rows[:, 2]
    if not np.all(np.isin(pens, (PEN_DOWN, PEN_UP))):
        raise StrokeError(f"{what}: pen states must be PEN_DOWN or PEN_UP (PEN_END only on the last point)")
    return rows.astype(np.float32)


def to_stroke5(rows: np.ndarray, steps: int, scale: float) -> tuple[np.ndarray, int]:
    """Checked rows (K, 3) in data units -> (stroke-5 (steps, 5) in model units, padded with
    (0, 0, 0, 0, 1), and K)."""
    out = np.zeros((steps, 5), np.float32)
    out[:, 4] = 1.0
    k = len(rows)
    out[:k, :2] = rows[:, :2] / scale
    out[:k, 2:5] = 0.0
    out[np.arange(k), 2 + rows[:, 2].astype(np.int64)] = 1.0
    return out, k


def stroke5_row(dx: float, dy: float, pen: int) -> np.ndarray:
    """One model-units point as the step graph's next input."""
    row = np.zeros(5, np.float32)
    row[0], row[1] = dx, dy
    row[2 + pen] = 1.0
    return row


# The step graph's outputs (``decoder_step``: the next point's distribution, then the new state).
STEP_OUTPUTS = ("pi", "mu_x", "mu_y", "sigma_x", "sigma_y", "rho", "pen_logits")
STATE_OUTPUTS = ("h_out", "c_out")


@dataclass
class StepFeed:
    """What one drawing asks of the step graph next: its previous point and recurrent state."""

    point: np.ndarray  # (5,) stroke-5, model units
    h: np.ndarray
    c: np.ndarray


# A drawing being sampled: yields each StepFeed, is sent back (StepOutput, h, c), and returns
# whether the model ended the drawing (else it ran out of steps).
DrawingLoop = Generator[StepFeed, "tuple[StepOutput, np.ndarray, np.ndarray]", bool]


def step_output(outputs: Mapping[str, np.ndarray], row: int) -> StepOutput:
    """Row ``row`` of a batched step call's outputs, as one drawing's StepOutput."""
    return StepOutput(*(outputs[name][row] for name in STEP_OUTPUTS))


def drawing_loop(start_point: Sequence[float], h: np.ndarray, c: np.ndarray, temperature: float,
                 rng: np.random.Generator, max_steps: int, rows: list[tuple[float, float, int]],
                 prefix: np.ndarray | None = None) -> DrawingLoop:
    """The sampling loop of one drawing, the only copy: the service and the quality meter drive it.

    The step graph is called by whoever drives the generator (each drawing's ``StepFeed`` is
    sent out, the step's output and new state sent back), so a driver may batch the steps of
    many drawings into one call. The prefix (stroke-5 rows, model units) is fed first without
    sampling; then each sampled point (dx, dy, pen in model units) is appended to ``rows`` as
    it is drawn, so a driver can stream it, until the model draws the end (returns True) or
    ``max_steps`` points were drawn (returns False). Random draws come from ``rng`` only, in
    ``sample_point``'s order.
    """
    point = np.asarray(start_point, np.float32)
    for row in (() if prefix is None else prefix):
        _, h, c = yield StepFeed(point, h, c)
        point = np.asarray(row, np.float32)
    for _ in range(max_steps):
        out, h, c = yield StepFeed(point, h, c)
        dx, dy, pen = sample_point(out, temperature, rng)
        if pen == PEN_END:
            return True
        rows.append((dx, dy, pen))
        point = stroke5_row(dx, dy, pen)
    return False


def drive_loops(step: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]], loops: Sequence[DrawingLoop],
                z: np.ndarray | None = None) -> list[bool]:
    """Run drawing loops in lockstep, synchronously: one ``step`` call (feeds point, h, c [+ z,
    the drawings' latents by loop index]) per point for every live drawing. Returns each
    loop's result (whether the model ended it)."""
    ended = [False] * len(loops)
    waiting: dict[int, StepFeed] = {}
    for i, loop in enumerate(loops):
        try:
            waiting[i] = next(loop)
        except StopIteration as stop:
            ended[i] = bool(stop.value)
    while waiting:
        live = list(waiting)
        feeds = {"point": np.stack([waiting[i].point for i in live]), "h": np.stack([waiting[i].h for i in live]),
                 "c": np.stack([waiting[i].c for i in live])}
        if z is not None:
            feeds["z"] = np.asarray(z, np.float32)[live]
        out = step(feeds)
        for k, i in enumerate(live):
            try:
                waiting[i] = loops[i].send((step_output(out, k), out["h_out"][k], out["c_out"][k]))
            except StopIteration as stop:
                ended[i] = bool(stop.value)
                del waiting[i]
    return ended


def teacher_forced(step: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]], inputs: np.ndarray,
                   z: np.ndarray | None, h: np.ndarray, c: np.ndarray, steps: int) -> tuple[np.ndarray, ...]:
    """The step graph chained over given points, the only copy (quality meter, export parity):
    ``inputs`` (N, T, 5) are the points fed at each step (the start point, then the drawing);
    returns the STEP_OUTPUTS of the first ``steps`` steps, each stacked to (N, steps, ...)."""
    outs = []
    for t in range(steps):
        feeds = {"point": np.ascontiguousarray(inputs[:, t], np.float32), "h": h, "c": c}
        if z is not None:
            feeds["z"] = z
        out = step(feeds)
        outs.append([out[name] for name in STEP_OUTPUTS])
        h, c = out["h_out"], out["c_out"]
    return tuple(np.stack([o[k] for o in outs], axis=1) for k in range(len(STEP_OUTPUTS)))


def positions(rows: np.ndarray) -> np.ndarray:
    """Pen positions (K + 1, 2) of rows (K, 3) of offsets: the origin, where the pen starts (down,
    as sketch-rnn's start point says), then each point."""
    xy = np.cumsum(np.asarray(rows, np.float64).reshape(-1, 3)[:, :2], axis=0)
    return np.concatenate([np.zeros((1, 2)), xy])


def segments(rows: np.ndarray) -> list[np.ndarray]:
    """The drawn polylines (each (L, 2), L >= 2): from the origin, the pen joins each point to the
    next while it is down after the point; it lifts after a PEN_UP point."""
    rows = np.asarray(rows, np.float64).reshape(-1, 3)
    xy = positions(rows)
    down = np.concatenate([[True], rows[:, 2] == PEN_DOWN])  # down after position j (the origin: down)
    lines: list[np.ndarray] = []
    start = 0
    for j in range(len(xy)):
        if not down[j] or j == len(xy) - 1:
            if j > start:
                lines.append(xy[start:j + 1])
            start = j + 1
    return lines


def _frame(rows: np.ndarray, size: float, margin: float) -> tuple[np.ndarray, float]:
    """Offset and factor that fit the drawing, centred, in a size x size box with a margin."""
    xy = positions(rows)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1], 1e-6))
    fit = size * (1 - 2 * margin) / span
    return (lo + hi) / 2, fit


def to_svg(rows: np.ndarray, size: int = 256, margin: float = 0.08, stroke_width: float = 2.0) -> str:
    """The drawing as a standalone SVG document: black polylines on white, fitted to size x size."""
    centre, fit = _frame(rows, size, margin)
    paths = []
    for line in segments(rows):
        pts = (line - centre) * fit + size / 2
        d = "M" + " L".join(f"{x:.2f} {y:.2f}" for x, y in pts)
        paths.append(f'<path d="{d}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<g fill="none" stroke="black" stroke-width="{stroke_width:g}" stroke-linecap="round" '
            f'stroke-linejoin="round">{"".join(paths)}</g></svg>')


def render(rows: np.ndarray, size: int = 64, margin: float = 0.08, width: int | None = None,
           fit_to: np.ndarray | None = None) -> np.ndarray:
    """The drawing as white lines on black, fitted to the canvas: float32 (size, size) in [0, 1]
    (the training grids' and the quality meter's picture of a drawing). ``fit_to``: fit the canvas
    to these rows instead (a part of a drawing drawn where it lies in the whole)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(image)
    centre, fit = _frame(rows if fit_to is None else fit_to, size, margin)
    for line in segments(rows):
        pts = [tuple(p) for p in (line - centre) * fit + size / 2]
        pen.line(pts, fill=255, width=width or max(1, size // 32))
    return np.asarray(image, np.float32) / 255.0


def to_png(rows: np.ndarray, size: int = 256) -> bytes:
    """The drawing as a PNG: black lines on white, fitted to size x size."""
    from PIL import Image

    pixels = (255 - np.round(render(rows, size, width=max(1, size // 96)) * 255)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, format="PNG")
    return out.getvalue()


def to_gif(rows: np.ndarray, size: int = 256, points_per_frame: int = 1, frame_ms: int = 40,
           hold_ms: int = 1200) -> bytes:
    """The drawing drawn as the pen moved, as an animated GIF (black on white): one frame per
    ``points_per_frame`` points, the finished drawing held ``hold_ms`` at the end."""
    from PIL import Image

    rows = np.asarray(rows, np.float32).reshape(-1, 3)
    width = max(1, size // 96)
    ends = list(range(1, len(rows) + 1, max(1, points_per_frame)))
    if not ends or ends[-1] != len(rows):
        ends.append(len(rows))
    frames = [Image.fromarray((255 - np.round(render(rows[:k], size, width=width, fit_to=rows) * 255)).astype(np.uint8),
                              "L") for k in ends]
    out = io.BytesIO()
    durations = [frame_ms] * (len(frames) - 1) + [hold_ms]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return out.getvalue()


def quality_summary(scores: dict) -> str:
    """A stroke model's quality scores (a manifest's, ``trainer.quality.strokes``) in one line: the
    held-out likelihood, then the prior drawings' FID by temperature and the reconstructions', each
    beside the floor of real held-out drawings."""
    parts = []
    if "total" in scores:
        parts.append(f"held-out L_s {scores['offset_nll']:.3f}, L_p {scores['pen_nll']:.3f}, KL {scores['kl']:.3f} "
                     f"(total {scores['total']:.3f})")
    temps = sorted((float(k[1:-4]), scores[k]) for k in scores if k.startswith("t") and k.endswith("_fid"))
    if temps:
        floor = scores.get("fid_floor")
        parts.append("drawings FID " + ", ".join(f"{v:.0f} at t={t:g}" for t, v in temps)
                     + (f" (floor {floor:.0f})" if floor is not None else ""))
    if "recon_fid" in scores:
        parts.append(f"reconstructions FID {scores['recon_fid']:.0f}")
    return "; ".join(parts)
