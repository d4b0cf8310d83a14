// Draw: a stroke model draws live (its points streamed as Server-Sent Events); the artist draws the
// first strokes on the pad and the model finishes them.

import { stream } from "./api.js";
import { $, KIND_NAMES, action, el, fillModelSelect, models, seedValue, shortId } from "./shared.js";
import { PAPER_SCALES, paintDrawing, readPoint, strokesToPoints } from "./strokes.js";

const RESULT_SIZE = 220;

const plural = (n, word) => `${n} ${word}${Number(n) === 1 ? "" : "s"}`;

export function setupDraw(ctx) {
  const select = $("draw-model");
  const pad = $("draw-pad");
  const results = $("draw-results");
  let strokes = []; // the artist's strokes: lists of {x, y} in pad pixels
  let current = null;
  let controller = null;

  function model() {
    return models.find(select.value);
  }

  function paperExtent(m = model()) {
    return PAPER_SCALES * ((m && m.strokes && m.strokes.scale) || 1);
  }

  function renderInfo() {
    const m = model();
    const box = $("draw-info");
    box.replaceChildren();
    if (!m) {
      box.append(el("p", { className: "empty", text: "No stroke model is loaded on the server." }));
    } else {
      const s = m.strokes || {};
      const facts = [
        ["kind", KIND_NAMES[m.kind] || m.kind],
        ["latent", m.latentDim ? `${m.latentDim} numbers` : "none (draws unconditionally)"],
        ["longest drawing", `${s.maxSteps || "?"} points`],
        ["mixture", `${s.mixtures || "?"} Gaussians`],
        ["scale", s.scale ? s.scale.toFixed(2) : "?"],
      ];
      box.append(el("dl", { className: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
      if (m.classNames && m.classNames.length) {
        box.append(el("div", { className: "chips" }, m.classNames.map((c) => el("span", { className: "chip", text: c }))));
      }
      const t = s.temperature || 0.4;
      $("draw-temperature").value = String(t);
      $("draw-temperature-value").textContent = Number($("draw-temperature").value).toFixed(2);
    }
    $("draw-go").disabled = !m || !!controller;
    $("draw-count").max = String(models.maxCount);
    updatePad();
  }

  function paintPad() {
    const c = pad.getContext("2d");
    c.fillStyle = "#fffdf8";
    c.fillRect(0, 0, pad.width, pad.height);
    c.strokeStyle = "#1d1b26";
    c.lineWidth = 3;
    c.lineCap = c.lineJoin = "round";
    for (const line of strokes) {
      c.beginPath();
      c.moveTo(line[0].x, line[0].y);
      for (const p of line) c.lineTo(p.x, p.y);
      if (line.length === 1) c.lineTo(line[0].x + 0.01, line[0].y);
      c.stroke();
    }
    pad.dataset.strokes = String(strokes.length);
  }

  function updatePad() {
    const m = model();
    const can = m && (m.supportedMethods || []).includes("ContinueStrokes");
    $("pad-continue").disabled = !(can && strokes.length) || !!controller;
    paintPad();
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return { x: ((event.clientX - rect.left) * pad.width) / rect.width, y: ((event.clientY - rect.top) * pad.height) / rect.height };
  }

  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    current = [padPoint(event)];
    strokes.push(current);
    updatePad();
  });
  pad.addEventListener("pointermove", (event) => {
    if (!current) return;
    const p = padPoint(event);
    const last = current[current.length - 1];
    if (Math.hypot(p.x - last.x, p.y - last.y) >= 2) {
      current.push(p);
      paintPad();
    }
  });
  const lift = () => {
    current = null;
    updatePad();
  };
  pad.addEventListener("pointerup", lift);
  pad.addEventListener("pointercancel", lift);
  $("pad-undo").addEventListener("click", () => {
    strokes.pop();
    updatePad();
  });
  $("pad-clear").addEventListener("click", () => {
    strokes = [];
    updatePad();
  });

  function options(m) {
    const body = {
      model: m.name,
      version: String(m.version),
      count: Math.max(1, Math.min(Number($("draw-count").value) || 1, models.maxCount)),
      temperature: Number($("draw-temperature").value),
    };
    const seed = seedValue($("draw-seed"));
    if (seed !== undefined) body.seed = seed;
    const steps = Number($("draw-steps").value);
    if (steps > 0) body.maxSteps = steps;
    return body;
  }

  /** Stream drawings from `path` into one canvas each; the prefix (API points) drawn in grey. */
  async function run(path, body, prefix) {
    const m = model();
    const extent = paperExtent(m) * 0.7;
    const prefixPoints = prefix ? prefix.map(readPoint) : [];
    const drawings = Array.from({ length: body.count }, (_, index) => {
      const canvas = el("canvas", { width: RESULT_SIZE, height: RESULT_SIZE, className: "drawing" });
      const caption = el("figcaption", { text: "drawing…" });
      const figure = el("figure", { className: "item", dataset: { testid: "drawing", index: String(index), state: "drawing", points: "0" } }, canvas, caption);
      return { index, canvas, caption, figure, points: [], dirty: true, paints: 0, shown: 0 };
    });
    results.replaceChildren(...drawings.map((d) => d.figure));
    results.dataset.state = "streaming";
    results.dataset.kind = prefix ? "continue" : "generate";
    const paint = () => {
      for (const d of drawings) {
        if (!d.dirty) continue;
        paintDrawing(d.canvas, prefixPoints, d.points, extent);
        d.dirty = false;
        d.paints += 1;
        d.shown = d.points.length;
        d.figure.dataset.points = String(d.points.length);
        d.figure.dataset.paints = String(d.paints);
      }
    };
    paint();
    controller = new AbortController();
    $("draw-stop").disabled = false;
    $("draw-go").disabled = $("pad-continue").disabled = true;
    $("draw-status").textContent = "drawing…";
    let total = 0;
    try {
      for await (const message of stream("POST", path, body, { signal: controller.signal })) {
        if (message.event === "chunk") {
          paint();
          continue;
        }
        const event = message.data;
        const d = drawings[event.index || 0];
        if (!d) continue;
        if (event.point) {
          d.points.push(readPoint(event.point));
          d.dirty = true;
          total += 1;
        } else if (event.done) {
          const done = event.done;
          d.figure.dataset.state = "done";
          // How much of the drawing the canvas showed before its end arrived (live drawing).
          d.figure.dataset.shownBeforeDone = String(d.shown);
          d.figure.dataset.sampleId = done.sampleId || "";
          d.figure.dataset.pointsAtEnd = String(done.points || 0);
          d.caption.replaceChildren(
            el("span", { text: `seed ${done.seed || "0"} · ${plural(done.points || 0, "point")}${done.ended ? "" : " (cut at max)"}` }),
            el("code", { title: done.sampleId, text: shortId(done.sampleId) }),
          );
          d.dirty = true;
        }
      }
      paint();
      results.dataset.state = "done";
      $("draw-status").textContent = `${plural(total, "point")} in ${plural(drawings.length, "drawing")}`;
    } catch (err) {
      paint();
      results.dataset.state = err.name === "AbortError" ? "stopped" : "error";
      $("draw-status").textContent = err.name === "AbortError" ? `stopped after ${total} points` : "";
      throw err;
    } finally {
      controller = null;
      $("draw-stop").disabled = true;
      $("draw-go").disabled = !model();
      updatePad();
    }
  }

  $("draw-go").addEventListener("click", () =>
    action(null, async () => {
      const m = model();
      if (!m) throw new Error("pick a stroke model first");
      await run("/v1/strokes/generate", options(m), null);
    }),
  );

  $("pad-continue").addEventListener("click", () =>
    action(null, async () => {
      const m = model();
      if (!m) throw new Error("pick a stroke model first");
      const unit = paperExtent(m) / pad.width; // data units per pad pixel
      const maxPoints = (m.strokes && m.strokes.maxSteps) || 100;
      const scale = (m.strokes && m.strokes.scale) || 1;
      const prefix = strokesToPoints(strokes.map((line) => line.map((p) => ({ x: p.x * unit, y: p.y * unit }))), maxPoints, scale);
      if (prefix === null) throw new Error(`the drawing has too many strokes for this model (at most ${maxPoints} points): draw fewer`);
      if (!prefix.length) throw new Error("draw a stroke on the pad first");
      $("pad-hint").textContent = `your strokes: ${prefix.length} points`;
      await run("/v1/strokes/continue", { ...options(m), prefix: { points: prefix } }, prefix);
    }),
  );

  $("draw-stop").addEventListener("click", () => controller && controller.abort());
  $("draw-temperature").addEventListener("input", () => {
    $("draw-temperature-value").textContent = Number($("draw-temperature").value).toFixed(2);
  });

  models.onChange(() => {
    fillModelSelect(select, models.supporting("GenerateStrokes"));
    renderInfo();
  });
  select.addEventListener("change", renderInfo);
  renderInfo();
}
