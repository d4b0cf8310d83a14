// Complete: an uploaded or gallery image, a hole painted with a brush or dragged as boxes, the
// model's candidate fillings, one of them chosen.

import { call, canvasPng } from "./api.js";
import { $, action, el, fillModelSelect, gallery, models, renderPicker, seedValue, shortId } from "./shared.js";

const DISPLAY = 384; // the editor's longer side in CSS pixels
const HOLE_COLOR = "#e86a5c";

export function setupComplete(ctx) {
  const select = $("complete-model");
  const image = $("complete-image");
  const overlay = $("complete-mask");
  let source = null; // what was loaded: an ImageBitmap or <img>, drawn at the model's size
  let sourceItem = null; // the gallery item it came from, if any
  let ops = []; // the hole: [{type: "brush", size, points}] and [{type: "box", x0, y0, x1, y1}], overlay pixels
  let drag = null;

  function current() {
    return models.find(select.value);
  }

  function size() {
    const out = (current() && current().output) || { width: 28, height: 28, channels: 1 };
    return out;
  }

  function layout() {
    const { width, height } = size();
    image.width = width;
    image.height = height;
    const scale = DISPLAY / Math.max(width, height);
    overlay.width = Math.round(width * scale);
    overlay.height = Math.round(height * scale);
    $("editor").style.width = `${overlay.width}px`;
    $("editor").style.height = `${overlay.height}px`;
    drawSource();
    drawOps();
  }

  function drawSource() {
    const c = image.getContext("2d", { willReadFrequently: true });
    const { width, height, channels } = size();
    c.fillStyle = "#000";
    c.fillRect(0, 0, width, height);
    if (!source) return;
    c.imageSmoothingEnabled = true;
    c.imageSmoothingQuality = "high";
    c.drawImage(source, 0, 0, width, height);
    if (channels === 1) {
      // Show what a grayscale model sees.
      const data = c.getImageData(0, 0, width, height);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {
        const y = Math.round(0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
        px[i] = px[i + 1] = px[i + 2] = y;
        px[i + 3] = 255;
      }
      c.putImageData(data, 0, 0);
    }
  }

  function paintOps(c, list, color) {
    c.fillStyle = c.strokeStyle = color;
    c.lineCap = c.lineJoin = "round";
    for (const op of list) {
      if (op.type === "box") {
        c.fillRect(Math.min(op.x0, op.x1), Math.min(op.y0, op.y1), Math.abs(op.x1 - op.x0), Math.abs(op.y1 - op.y0));
      } else {
        c.lineWidth = op.size;
        c.beginPath();
        c.moveTo(op.points[0].x, op.points[0].y);
        for (const p of op.points) c.lineTo(p.x, p.y);
        if (op.points.length === 1) c.lineTo(op.points[0].x + 0.01, op.points[0].y);
        c.stroke();
      }
    }
  }

  function drawOps() {
    const c = overlay.getContext("2d");
    c.clearRect(0, 0, overlay.width, overlay.height);
    paintOps(c, ops, HOLE_COLOR);
    overlay.dataset.ops = String(ops.length);
    updateGo();
  }

  function updateGo() {
    $("complete-go").disabled = !(source && ops.length && current());
    $("editor-hint").textContent = !source
      ? "Load an image, then paint the part to fill (or drag a box)."
      : ops.length
        ? "Ready: complete the hole, or paint more."
        : "Paint the part to fill with the brush, or drag a box.";
  }

  /** The hole as the API's Mask: boxes when only boxes were drawn, else a PNG (white = known). */
  function mask() {
    const { width, height } = size();
    const sx = width / overlay.width;
    const sy = height / overlay.height;
    if (ops.every((op) => op.type === "box")) {
      const boxes = ops
        .map((op) => {
          const x = Math.max(0, Math.floor(Math.min(op.x0, op.x1) * sx));
          const y = Math.max(0, Math.floor(Math.min(op.y0, op.y1) * sy));
          const x1 = Math.min(width, Math.ceil(Math.max(op.x0, op.x1) * sx));
          const y1 = Math.min(height, Math.ceil(Math.max(op.y0, op.y1) * sy));
          return { x, y, width: x1 - x, height: y1 - y };
        })
        .filter((b) => b.width > 0 && b.height > 0);
      if (!boxes.length) throw new Error("the box is empty: drag a larger one");
      return { holes: { boxes } };
    }
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const c = canvas.getContext("2d");
    c.fillStyle = "#fff";
    c.fillRect(0, 0, width, height);
    c.scale(sx, sy);
    paintOps(c, ops, "#000");
    const px = c.getImageData(0, 0, width, height).data;
    let hole = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] < 128) hole++;
    if (hole === 0) throw new Error("the hole covers no whole pixel: paint a little more");
    if (hole === width * height) throw new Error("the hole covers the whole image: leave some of it");
    return { png: canvasPng(canvas) };
  }

  function point(event) {
    const rect = overlay.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * overlay.width) / rect.width,
      y: ((event.clientY - rect.top) * overlay.height) / rect.height,
    };
  }

  overlay.addEventListener("pointerdown", (event) => {
    if (!source) return;
    overlay.setPointerCapture(event.pointerId);
    const p = point(event);
    const tool = $("tool-box").checked ? "box" : "brush";
    drag = tool === "box"
      ? { type: "box", x0: p.x, y0: p.y, x1: p.x, y1: p.y }
      : { type: "brush", size: Number($("brush-size").value), points: [p] };
    ops.push(drag);
    drawOps();
  });
  overlay.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const p = point(event);
    if (drag.type === "box") {
      drag.x1 = p.x;
      drag.y1 = p.y;
    } else {
      drag.points.push(p);
    }
    drawOps();
  });
  const end = () => {
    if (drag && drag.type === "box" && (Math.abs(drag.x1 - drag.x0) < 2 || Math.abs(drag.y1 - drag.y0) < 2)) {
      ops.pop(); // a click, not a box
    }
    drag = null;
    drawOps();
  };
  overlay.addEventListener("pointerup", end);
  overlay.addEventListener("pointercancel", end);

  $("mask-clear").addEventListener("click", () => {
    ops = [];
    drawOps();
  });

  function load(bitmap, item) {
    source = bitmap;
    sourceItem = item;
    ops = [];
    image.dataset.source = item ? item.sampleId : "file";
    drawSource();
    drawOps();
    renderPickers();
  }

  function loadItem(item) {
    const img = new Image();
    img.onload = () => load(img, item);
    img.src = `data:image/png;base64,${item.png}`;
  }

  $("complete-file").addEventListener("change", () =>
    action(null, async () => {
      const file = $("complete-file").files[0];
      if (!file) return;
      let bitmap;
      try {
        bitmap = await createImageBitmap(file);
      } catch {
        throw new Error(`${file.name} is not an image this browser can read`);
      }
      load(bitmap, null);
    }),
  );

  function renderPickers() {
    renderPicker($("complete-picker"), loadItem, (item) => (sourceItem && item.sampleId === sourceItem.sampleId ? "✓" : null));
  }

  $("complete-go").addEventListener("click", () =>
    action($("complete-go"), async () => {
      const model = current();
      const body = {
        model: model.name,
        version: String(model.version),
        image: { png: canvasPng(image) },
        mask: mask(),
        count: Math.max(1, Math.min(Number($("complete-count").value) || 1, models.maxCount)),
      };
      const seed = seedValue($("complete-seed"));
      if (seed !== undefined) body.seed = seed;
      const answer = await call("POST", "/v1/complete", body);
      const list = $("complete-candidates");
      list.dataset.method = answer.method || "";
      list.replaceChildren(
        ...(answer.candidates || []).map((c) => {
          const item = {
            sampleId: c.sampleId,
            png: c.image.png,
            model: answer.model,
            version: answer.version,
            seed: c.seed || "0",
            label: c.label,
            origin: "complete",
            width: model.output.width,
            height: model.output.height,
          };
          const choose = el("button", { type: "button", className: "primary", dataset: { testid: "choose" }, text: "Choose" });
          const fig = el(
            "figure",
            { className: "item", dataset: { testid: "candidate", sampleId: c.sampleId } },
            el("img", { src: `data:image/png;base64,${c.image.png}`, alt: `candidate ${c.index || 0}`, className: "pixel" }),
            el("figcaption", {}, el("span", { text: `seed ${item.seed}` }), el("code", { text: shortId(c.sampleId) })),
            el("div", { className: "actions" }, choose),
          );
          choose.addEventListener("click", () => {
            for (const other of list.children) other.classList.remove("chosen");
            fig.classList.add("chosen");
            choose.textContent = "Chosen";
            gallery.add([item]);
            loadItem(item);
          });
          return fig;
        }),
      );
    }),
  );

  models.onChange(() => {
    fillModelSelect(select, models.supporting("Complete"));
    layout();
  });
  select.addEventListener("change", layout);
  gallery.onChange(renderPickers);
  ctx.onShow("complete", renderPickers);
  layout();
  renderPickers();
}
