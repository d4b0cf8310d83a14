// Interpolate: two gallery images (the same model), the frames between them, a slider to scrub.

import { call } from "./api.js";
import { $, action, el, gallery, models, renderPicker } from "./shared.js";

export function setupInterpolate(ctx) {
  const ends = { a: null, b: null };
  let next = "a";
  let frames = [];
  let answerOf = null;
  let timer = null;

  function renderEnd(which) {
    const box = $(`interp-${which}`);
    const item = ends[which];
    box.replaceChildren(
      item
        ? el("img", { src: `data:image/png;base64,${item.png}`, alt: which.toUpperCase(), className: "pixel" })
        : el("span", { text: which.toUpperCase() }),
    );
    box.dataset.sampleId = item ? item.sampleId : "";
  }

  function renderPickers() {
    // Ends that left the gallery (cleared) are dropped.
    for (const which of ["a", "b"]) if (ends[which] && !gallery.find(ends[which].sampleId)) ends[which] = null;
    renderPicker($("interp-picker"), pick, (item) =>
      ends.a && item.sampleId === ends.a.sampleId ? "A" : ends.b && item.sampleId === ends.b.sampleId ? "B" : null,
    );
    renderEnd("a");
    renderEnd("b");
    $("interp-go").disabled = !(ends.a && ends.b);
  }

  function pick(item) {
    ends[next] = item;
    next = next === "a" ? "b" : "a";
    renderPickers();
  }

  function show(index) {
    const frame = frames[index];
    if (!frame) return;
    $("interp-frame").src = `data:image/png;base64,${frame.image.png}`;
    $("interp-frame").dataset.index = String(index);
    const t = frames.length > 1 ? index / (frames.length - 1) : 0;
    $("interp-t").textContent = `t = ${t.toFixed(2)}`;
    for (const [k, node] of [...$("interp-strip").children].entries()) node.classList.toggle("selected", k === index);
  }

  function stop() {
    if (timer) clearInterval(timer);
    timer = null;
    $("interp-play").textContent = "▶";
  }

  $("interp-go").addEventListener("click", () =>
    action($("interp-go"), async () => {
      const { a, b } = ends;
      if (a.model !== b.model || String(a.version) !== String(b.version)) {
        throw new Error(`both ends must come from the same model (A is ${a.model} v${a.version}, B ${b.model} v${b.version})`);
      }
      stop();
      const steps = Math.max(2, Math.min(Number($("interp-steps").value) || 12, models.maxCount));
      const answer = await call("POST", "/v1/interpolate", {
        model: a.model,
        version: String(a.version),
        start: { sampleId: a.sampleId },
        end: { sampleId: b.sampleId },
        steps,
        method: $("interp-method").value,
      });
      frames = answer.frames || [];
      answerOf = { answer, a, b };
      const slider = $("interp-slider");
      slider.max = String(frames.length - 1);
      slider.value = "0";
      slider.disabled = $("interp-play").disabled = $("interp-keep").disabled = frames.length === 0;
      $("interp-frame").hidden = false;
      $("interp-empty").hidden = true;
      $("interp-strip").replaceChildren(
        ...frames.map((f, k) =>
          el("img", {
            src: `data:image/png;base64,${f.image.png}`,
            alt: `frame ${k}`,
            className: "pixel",
            dataset: { testid: "interp-thumb" },
            onclick: () => {
              slider.value = String(k);
              show(k);
            },
          }),
        ),
      );
      show(0);
    }),
  );

  $("interp-slider").addEventListener("input", () => show(Number($("interp-slider").value)));

  $("interp-play").addEventListener("click", () => {
    if (timer) return stop();
    $("interp-play").textContent = "❚❚";
    let k = Number($("interp-slider").value);
    let dir = 1;
    timer = setInterval(() => {
      if (k + dir < 0 || k + dir >= frames.length) dir = -dir;
      k += dir;
      $("interp-slider").value = String(k);
      show(k);
    }, 120);
  });

  $("interp-keep").addEventListener("click", () => {
    const index = Number($("interp-slider").value);
    const frame = frames[index];
    if (!frame || !answerOf) return;
    const { answer, a, b } = answerOf;
    gallery.add([
      {
        sampleId: frame.sampleId,
        png: frame.image.png,
        model: answer.model,
        version: answer.version,
        label: frame.label,
        origin: "interpolate",
        frame: index,
        parent: a.sampleId,
        parentB: b.sampleId,
        width: a.width,
        height: a.height,
      },
    ]);
  });

  gallery.onChange(renderPickers);
  ctx.onShow("interpolate", renderPickers);
  renderPickers();
}
