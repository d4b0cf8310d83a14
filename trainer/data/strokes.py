"""Pen strokes: the stroke-3 and stroke-5 formats of sketch-rnn, and what turns one into the other.

stroke-3: one drawing is an (L, 3) array of rows (dx, dy, pen_lift): the offset from the previous
point and whether the pen is lifted after this point (1) or keeps drawing to the next (0). This is
the format of sketch-rnn's .npz files and of the QuickDraw downloads.

stroke-5 (what a stroke family trains on): float32 (N, T, 5), rows (dx, dy, p1, p2, p3) with p1 = pen
down, drawing to the next point; p2 = pen lifted after this point; p3 = end of drawing. Row i < L
of a drawing of L points carries its stroke-3 row (p1 = 1 - pen_lift, p2 = pen_lift); rows L..T-1
are (0, 0, 0, 0, 1). There is no start token: the model prepends (0, 0, 1, 0, 0) itself.
dx, dy are divided by the data set's scale factor (`scale_factor`), so they have unit std.

Also here: polylines -> stroke-3, Ramer-Douglas-Peucker simplification, the checks that refuse
bad drawings before training, and `render`, which draws stroke-5 drawings as images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainer.data.base import DataError

END_ROW = np.array([0.0, 0.0, 0.0, 0.0, 1.0], np.float32)


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: the fewest points of a polyline (P, 2) that stay within `epsilon` of it.

    The first and last points are always kept; a polyline of fewer than 3 points is returned as is.
    """
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 3:
        return points.copy()
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        a, b = points[first], points[last]
        inner = points[first + 1:last]
        ab = b - a
        norm = float(np.hypot(*ab))
        if norm == 0.0:  # closed segment: distance to the end point
            dist = np.hypot(*(inner - a).T)
        else:
            dist = np.abs(ab[0] * (inner[:, 1] - a[1]) - ab[1] * (inner[:, 0] - a[0])) / norm
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            mid = first + 1 + i
            keep[mid] = True
            stack.append((first, mid))
            stack.append((mid, last))
    return points[keep]


def lines_to_stroke3(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Polylines (each (P, 2) absolute points, drawn in order) -> one stroke-3 drawing (L, 3).

    As sketch-rnn's `lines_to_strokes`: the pen lifts after each polyline's last point, and the
    first point is the origin of the offsets (so a drawing of P points in all has P - 1 rows).
    """
    rows = [np.column_stack([np.asarray(line, np.float64)[:, :2], np.zeros(len(line))])
            for line in lines if len(line)]
    if not rows:
        return np.zeros((0, 3), np.float32)
    for r in rows:
        r[-1, 2] = 1.0
    absolute = np.concatenate(rows)
    absolute[1:, :2] -= absolute[:-1, :2].copy()
    return absolute[1:].astype(np.float32)


def stroke3_to_stroke5(drawings: Sequence[np.ndarray], max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Stroke-3 drawings -> (strokes float32 (N, max_seq_len, 5), lengths int64 (N,)), as the contract says.

    Drawings must already be checked (`check_stroke3`) and no longer than `max_seq_len`.
    """
    lengths = np.array([len(d) for d in drawings], dtype=np.int64)
    if len(lengths) and int(lengths.max()) > max_seq_len:
        raise DataError(f"a drawing has {int(lengths.max())} points, more than max_seq_len={max_seq_len}")
    out = np.zeros((len(drawings), max_seq_len, 5), np.float32)
    out[:, :, 4] = 1.0
    if not len(drawings):
        return out, lengths
    flat = np.concatenate([np.asarray(d, np.float32).reshape(-1, 3) for d in drawings])
    rows = np.repeat(np.arange(len(drawings)), lengths)
    steps = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, steps, 0:2] = flat[:, 0:2]
    out[rows, steps, 2] = 1.0 - flat[:, 2]
    out[rows, steps, 3] = flat[:, 2]
    out[rows, steps, 4] = 0.0
    return out, lengths


def stroke5_to_stroke3(strokes: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Stroke-5 (N, T, 5) with lengths -> the stroke-3 drawings (L, 3) (pen_lift = p2)."""
    return [np.column_stack([s[:n, 0:2], s[:n, 3]]).astype(np.float32)
            for s, n in zip(np.asarray(strokes), np.asarray(lengths).astype(int))]


def lengths_of(strokes: np.ndarray) -> np.ndarray:
    """The lengths of stroke-5 drawings read from their pen states: the index of each one's first
    end row (p3 = 1), or T when it has none (e.g. a model's samples cut at T); int64 (N,)."""
    strokes = np.asarray(strokes)
    end = strokes[:, :, 4] > 0.5
    return np.where(end.any(1), end.argmax(1), strokes.shape[1]).astype(np.int64)


def scale_factor(drawings: Sequence[np.ndarray]) -> float:
    """The std of all dx, dy of the drawings, as sketch-rnn's `calculate_normalizing_scale_factor`."""
    if not len(drawings):
        raise DataError("no drawings to compute a scale factor from")
    offsets = np.concatenate([np.asarray(d, np.float64)[:, 0:2].reshape(-1) for d in drawings])
    scale = float(np.std(offsets))
    if not np.isfinite(scale) or scale <= 0.0:
        raise DataError("all pen offsets are equal (zero spread): the drawings have no extent")
    return scale


def normalize(drawings: Sequence[np.ndarray], scale: float) -> list[np.ndarray]:
    """Drawings with dx, dy divided by `scale` (pen states unchanged), as float32."""
    out = []
    for d in drawings:
        d = np.array(d, dtype=np.float32)
        d[:, 0:2] /= scale
        out.append(d)
    return out


def check_stroke3(drawings: Sequence[object], where: str, max_seq_len: int,
                  ) -> tuple[list[np.ndarray], int]:
    """Refuse drawings that cannot be trained on; leave out (and count) those longer than the cap.

    Returns (kept drawings as float32 (L, 3), count left out for length). Raises DataError, naming
    the first bad drawing and what to fix, for: a shape other than (L, 3), an empty drawing,
    NaN or infinity, pen states other than 0/1, or nothing left under the cap.
    """
    if not len(drawings):
        raise DataError(f"{where}: holds no drawings")
    kept: list[np.ndarray] = []
    too_long = 0
    for i, raw in enumerate(drawings):
        try:
            d = np.asarray(raw)
        except Exception:  # ragged nested lists and the like
            raise DataError(f"{where}: drawing {i} is not an array of (dx, dy, pen_lift) rows") from None
        if d.dtype == object or not (np.issubdtype(d.dtype, np.number) or d.dtype == bool):
            raise DataError(f"{where}: drawing {i} holds {d.dtype} values, not numbers")
        if d.ndim != 2 or d.shape[1] != 3:
            raise DataError(
                f"{where}: drawing {i} has shape {d.shape}; stroke-3 drawings are (L, 3) arrays of "
                "rows (dx, dy, pen_lift)"
            )
        if len(d) == 0:
            raise DataError(f"{where}: drawing {i} is empty (0 points); remove it")
        d = d.astype(np.float32)
        if not np.isfinite(d).all():
            raise DataError(f"{where}: drawing {i} contains NaN or infinity; remove or repair it")
        pen = d[:, 2]
        if not np.isin(pen, (0.0, 1.0)).all():
            bad = sorted({float(v) for v in pen[~np.isin(pen, (0.0, 1.0))]})[:3]
            raise DataError(f"{where}: drawing {i} has pen states {bad}; the third column must be 0 or 1")
        if len(d) > max_seq_len:
            too_long += 1
            continue
        kept.append(d)
    if not kept:
        raise DataError(
            f"{where}: all {len(drawings)} drawings are longer than max_seq_len={max_seq_len} points; "
            "raise the cap or simplify the drawings (e.g. RDP)"
        )
    return kept, too_long


def check_stroke5(strokes: np.ndarray, lengths: np.ndarray, where: str) -> None:
    """Refuse stroke-5 arrays that break the contract (shape, lengths, one-hot pen, padding)."""
    if strokes.ndim != 3 or strokes.shape[2] != 5:
        raise DataError(f"{where}: strokes must be (N, T, 5), got {strokes.shape}")
    if strokes.dtype != np.float32 or lengths.dtype != np.int64:
        raise DataError(f"{where}: strokes must be float32 and lengths int64 (got {strokes.dtype}, {lengths.dtype})")
    n, t, _ = strokes.shape
    if lengths.shape != (n,):
        raise DataError(f"{where}: {n} stroke sequences but lengths of shape {lengths.shape}")
    if n and (int(lengths.min()) < 1 or int(lengths.max()) > t):
        raise DataError(f"{where}: lengths must lie in 1..{t}, found {int(lengths.min())}..{int(lengths.max())}")
    if not np.isfinite(strokes).all():
        raise DataError(f"{where}: strokes contain NaN or infinity")
    pen = strokes[:, :, 2:]
    if not (np.isin(pen, (0.0, 1.0)).all() and (pen.sum(-1) == 1.0).all()):
        raise DataError(f"{where}: pen states (p1, p2, p3) must be one-hot in every row")
    real = np.arange(t)[None, :] < lengths[:, None]
    if (strokes[:, :, 4][real] != 0).any() or (strokes[~real] != END_ROW).any():
        raise DataError(f"{where}: rows past a drawing's length must be (0, 0, 0, 0, 1), and only those")


def render(strokes: np.ndarray, lengths: np.ndarray, size: int = 28, line_width: float | None = None,
           margin: float = 0.1, supersample: int = 4) -> np.ndarray:
    """Draw stroke-5 drawings as images float32 (N, 1, size, size) in [0, 1]: white pen on black.

    Each drawing is scaled to fit the square (aspect kept, `margin` of the side left free on
    every edge) and centred, so the scale factor does not matter. A drawing starts at the origin
    with the pen down (the model's start token (0, 0, 1, 0, 0)); the pen draws from a point to the
    next while that point's p1 is set; a lone point is drawn as a dot. Lines are drawn at
    `supersample` times the size and box-filtered down, for smooth edges like MNIST's.
    """
    from PIL import Image, ImageDraw

    strokes = np.asarray(strokes, np.float64)
    lengths = np.asarray(lengths).astype(int)
    big = size * supersample
    width = (line_width if line_width is not None else max(1.0, size / 14.0)) * supersample
    images = np.zeros((len(strokes), 1, size, size), np.float32)
    for k, (s, n) in enumerate(zip(strokes, lengths)):
        s = s[:n]
        points = np.concatenate([np.zeros((1, 2)), np.cumsum(s[:, 0:2], axis=0)])
        lifted = np.concatenate([[False], s[:, 3] == 1.0])  # the pen lifts after point j
        lo, hi = points.min(0), points.max(0)
        extent = float(max(hi - lo)) or 1.0
        scale = big * (1.0 - 2.0 * margin) / extent
        xy = (points - (lo + hi) / 2.0) * scale + big / 2.0
        canvas = Image.new("L", (big, big), 0)
        draw = ImageDraw.Draw(canvas)
        r = width / 2.0
        start = 0
        for j in range(len(points)):
            if not lifted[j] and j < len(points) - 1:
                continue
            part = [tuple(p) for p in xy[start:j + 1]]
            if len(part) > 1:
                draw.line(part, fill=255, width=max(1, round(width)), joint="curve")
            for x, y in (part[0], part[-1]):  # round caps, and dots for lone points
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
            start = j + 1
        small = canvas.resize((size, size), Image.Resampling.BOX) if supersample > 1 else canvas
        images[k, 0] = np.asarray(small, np.float32) / 255.0
    return images
