// Pen drawings as the API speaks them: points are offsets (dx, dy) from the previous point (the
// first from the origin, where the pen starts on the paper) in the model's data units, each with
// the pen's state after it ("PEN_STATE_UP": the move to the next point is not drawn).

export const PEN_DOWN = "PEN_STATE_DOWN";
export const PEN_UP = "PEN_STATE_UP";

// The drawing pad spans this many of the model's scale units (StrokeInfo.scale, the spread of
// its training offsets): a drawing of the training data's size fills about two thirds of it.
export const PAPER_SCALES = 6;

/** A StrokePoint of the JSON answer (fields at their default are left out) as {dx, dy, up}. */
export function readPoint(point) {
  return { dx: point.dx || 0, dy: point.dy || 0, up: point.pen === PEN_UP };
}

/** Absolute positions of a drawing's points: [{x, y, draw}] where `draw` says the segment
 *  arriving at this point is drawn (the pen was down after the previous one). */
export function positions(points) {
  const out = [];
  let x = 0;
  let y = 0;
  let down = true;
  for (const p of points) {
    x += p.dx;
    y += p.dy;
    out.push({ x, y, draw: down });
    down = !p.up;
  }
  return out;
}

/** A prefix (grey) and its continuation (ink) on a canvas, fitted to it. */
export function paintDrawing(canvas, prefix, continuation, minExtent, colors = ["#9a8f80", "#1d1b26"]) {
  const layers = [];
  if (prefix && prefix.length) layers.push({ points: prefix, color: colors[0] });
  layers.push({ points: continuation, color: colors[1] });
  paintLayers(canvas, layers, minExtent);
}

/**
 * Paint drawings on a canvas, fitted to it: `layers` is a list of {points, color} drawn one after
 * the other (a prefix, then its continuation; the pen's state carries across); `minExtent` (data
 * units) keeps the first few points of a live drawing from filling the canvas.
 */
export function paintLayers(canvas, layers, minExtent) {
  const joined = [];
  const colors = [];
  for (const layer of layers) {
    for (const p of layer.points) {
      joined.push(p);
      colors.push(layer.color);
    }
  }
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.fillStyle = "#fffdf8";
  ctx.fillRect(0, 0, width, height);
  const abs = positions(joined);
  let minX = 0, minY = 0, maxX = 0, maxY = 0;
  for (const p of abs) {
    minX = Math.min(minX, p.x);
    minY = Math.min(minY, p.y);
    maxX = Math.max(maxX, p.x);
    maxY = Math.max(maxY, p.y);
  }
  const extent = Math.max(maxX - minX, maxY - minY, minExtent || 0, 1e-6);
  const margin = 0.08 * Math.min(width, height);
  const s = (Math.min(width, height) - 2 * margin) / extent;
  const cx = (minX + maxX) / 2;
  const cy = (minY + maxY) / 2;
  const tx = (px) => width / 2 + (px - cx) * s;
  const ty = (py) => height / 2 + (py - cy) * s;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.max(2, Math.min(width, height) / 80);
  let prev = { x: 0, y: 0 };
  for (let i = 0; i < abs.length; i++) {
    const p = abs[i];
    if (p.draw) {
      ctx.strokeStyle = colors[i];
      ctx.beginPath();
      ctx.moveTo(tx(prev.x), ty(prev.y));
      ctx.lineTo(tx(p.x), ty(p.y));
      ctx.stroke();
    }
    prev = p;
  }
}

function perpendicular(p, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const norm = Math.hypot(dx, dy);
  if (norm === 0) return Math.hypot(p.x - a.x, p.y - a.y);
  return Math.abs(dy * p.x - dx * p.y + b.x * a.y - b.y * a.x) / norm;
}

/** Ramer-Douglas-Peucker: a polyline with the points within `epsilon` of a chord left out. */
export function rdp(line, epsilon) {
  if (line.length < 3) return line.slice();
  let index = 0;
  let far = 0;
  for (let i = 1; i < line.length - 1; i++) {
    const d = perpendicular(line[i], line[0], line[line.length - 1]);
    if (d > far) {
      far = d;
      index = i;
    }
  }
  if (far <= epsilon) return [line[0], line[line.length - 1]];
  const left = rdp(line.slice(0, index + 1), epsilon);
  return left.slice(0, -1).concat(rdp(line.slice(index), epsilon));
}

/**
 * Strokes drawn on the pad (lists of absolute {x, y} in data units) as API points: offsets from
 * the first point (the origin), the pen lifted after each stroke's last point. Simplified with
 * Ramer-Douglas-Peucker, more coarsely until it has at most `maxPoints` points; null when even
 * the coarsest simplification is longer.
 */
export function strokesToPoints(strokes, maxPoints, scale) {
  const lines = strokes.filter((s) => s.length);
  if (!lines.length) return [];
  for (let epsilon = 0.04 * scale; epsilon < 50 * scale; epsilon *= 1.5) {
    const simple = lines.map((line) => rdp(line, epsilon));
    const absolute = [];
    for (const line of simple) line.forEach((p, i) => absolute.push({ ...p, up: i === line.length - 1 }));
    const points = [];
    for (let i = 1; i < absolute.length; i++) {
      points.push({
        dx: absolute[i].x - absolute[i - 1].x,
        dy: absolute[i].y - absolute[i - 1].y,
        pen: absolute[i].up ? PEN_UP : PEN_DOWN,
      });
    }
    if (!points.length) points.push({ dx: 0, dy: 0, pen: PEN_UP }); // a single dot
    if (points.length <= maxPoints) return points;
  }
  return null;
}
