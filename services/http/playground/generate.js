// Generate: pick a model, see its figures, draw samples by seed, class and count into the gallery;
// variations of any gallery image.

import { base64ToBytes, call, randomSeed } from "./api.js";
import {
  $,
  KIND_NAMES,
  action,
  el,
  fillModelSelect,
  gallery,
  models,
  provenance,
  seedValue,
  shortId,
} from "./shared.js";

// Figures of the quality meter worth a line, in this order (each with its "_floor").
const SCORES = [
  ["fid", "FID", "lower is better"],
  ["kid", "KID", "lower is better"],
  ["precision", "precision", "higher is better"],
  ["recall", "recall", "higher is better"],
  ["coverage", "coverage", "classes covered"],
  ["confident", "confident", "share read with confidence"],
];

let lastSeed = null;

function format(value) {
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(3);
}

/** A model's card: kind, sizes, quality figures, classes. */
export function renderModelInfo(container, model) {
  container.replaceChildren();
  if (!model) {
    container.append(el("p", { className: "empty", text: "No model is loaded on the server." }));
    return;
  }
  const out = model.output || {};
  const facts = [
    ["kind", KIND_NAMES[model.kind] || model.kind],
    ["images", out.width ? `${out.width}×${out.height}, ${out.channels === 3 ? "RGB" : "grayscale"}` : "—"],
    ["latent", model.latentDim ? `${model.latentDim} numbers` : "none"],
    ["runs on", (model.executionProvider || "").replace("ExecutionProvider", "") || "—"],
    ["exported", model.created ? model.created.replace("T", " ").replace(/\+00:00|Z$/, " UTC") : "—"],
  ];
  container.append(
    el("dl", { className: "facts" }, facts.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
  );
  const scores = (model.quality && model.quality.scores) || {};
  const rows = SCORES.filter(([key]) => key in scores).map(([key, label, hint]) =>
    el(
      "tr",
      { dataset: { score: key } },
      el("th", { text: label, title: hint }),
      el("td", { text: format(scores[key]) }),
      el("td", { className: "floor", text: `${key}_floor` in scores ? `floor ${format(scores[`${key}_floor`])}` : "" }),
    ),
  );
  if (rows.length) {
    const details = (model.quality && model.quality.details) || {};
    const n = "n" in scores ? ` · ${scores.n} samples` : "";
    container.append(
      el("h3", { text: "Quality" }),
      el("table", { className: "quality", dataset: { testid: "model-quality" } }, rows),
      el("small", { className: "hint", text: `${details.source || "meter"}${n}${details.data ? ` · ${details.data}` : ""}` }),
    );
  } else {
    container.append(el("p", { className: "hint", dataset: { testid: "model-quality" }, text: "exported without quality scores" }));
  }
  const classes = model.classNames && model.classNames.length
    ? model.classNames
    : Array.from({ length: model.numClasses || 0 }, (_, k) => String(k));
  if (classes.length) {
    container.append(
      el("h3", { text: `${classes.length} classes` }),
      el("div", { className: "chips", dataset: { testid: "model-classes" } }, classes.map((c) => el("span", { className: "chip", text: c }))),
    );
  }
}

function downloadName(item) {
  const seed = item.seed !== undefined && item.seed !== null ? `-seed${item.seed}` : "";
  return `${item.model}-v${item.version}${seed}-${item.sampleId.slice(0, 8)}.png`;
}

function card(item, onVariations) {
  if (!item.url) item.url = URL.createObjectURL(new Blob([base64ToBytes(item.png)], { type: "image/png" }));
  return el(
    "figure",
    { className: "item", dataset: { testid: "gallery-item", sampleId: item.sampleId, origin: item.origin } },
    el("img", { src: `data:image/png;base64,${item.png}`, alt: provenance(item).join(", "), className: "pixel" }),
    el(
      "figcaption",
      { dataset: { testid: "provenance" } },
      provenance(item).map((line) => el("span", { text: line })),
      el("code", { title: item.sampleId, text: shortId(item.sampleId) }),
    ),
    el(
      "div",
      { className: "actions" },
      el("button", { type: "button", className: "ghost", dataset: { testid: "variations" }, onclick: (e) => onVariations(item, e.currentTarget), text: "Variations" }),
      el("a", { href: item.url, download: downloadName(item), className: "button ghost", dataset: { testid: "download" }, text: "PNG" }),
    ),
  );
}

/** Gallery items of an answer's samples, each with how it was made (`made`: origin, size, ...). */
function galleryItems(answer, made) {
  return (answer.samples || []).map((s) => ({
    sampleId: s.sampleId,
    png: s.image.png,
    model: answer.model,
    version: answer.version,
    seed: s.seed || "0",
    label: s.label,
    ...made,
  }));
}

export function setupGenerate(ctx) {
  const select = $("gen-model");
  const labelField = $("gen-label-field");

  function current() {
    return models.find(select.value);
  }

  function refreshControls() {
    const model = current();
    renderModelInfo($("model-info"), model);
    const classes = model ? model.numClasses || 0 : 0;
    labelField.hidden = classes === 0;
    $("gen-label").replaceChildren(
      el("option", { value: "", text: "any (by seed)" }),
      ...Array.from({ length: classes }, (_, k) =>
        el("option", { value: String(k), text: (model.classNames && model.classNames[k]) || String(k) }),
      ),
    );
    $("gen-count").max = String(models.maxCount);
    $("gen-go").disabled = !model;
  }

  models.onChange(() => {
    fillModelSelect(select, models.supporting("Generate"));
    refreshControls();
  });
  select.addEventListener("change", refreshControls);

  $("gen-dice").addEventListener("click", () => {
    $("gen-seed").value = randomSeed();
  });
  $("gen-reuse").addEventListener("click", () => {
    if (lastSeed !== null) $("gen-seed").value = lastSeed;
  });
  $("gen-strength").addEventListener("input", () => {
    $("gen-strength-value").textContent = $("gen-strength").value;
  });

  $("gen-form").addEventListener("submit", (event) => {
    event.preventDefault();
    action($("gen-go"), async () => {
      const model = current();
      if (!model) throw new Error("pick a model first");
      const body = { model: model.name, version: String(model.version), count: Number($("gen-count").value) || 1 };
      const seed = seedValue($("gen-seed"));
      if (seed !== undefined) body.seed = seed;
      const label = $("gen-label").value;
      if (!labelField.hidden && label !== "") body.label = Number(label);
      const truncation = $("gen-truncation").value.trim();
      if (truncation !== "") body.truncation = Number(truncation);
      const answer = await call("POST", "/v1/generate", body);
      lastSeed = answer.seed || "0";
      $("gen-last-seed").textContent = `last seed ${lastSeed}`;
      $("gen-reuse").disabled = false;
      gallery.add(galleryItems(answer, { truncation: body.truncation, origin: "generate",
        width: model.output.width, height: model.output.height }));
    });
  });

  async function variations(item, button) {
    await action(button, async () => {
      const strength = Number($("gen-strength").value);
      const answer = await call("POST", "/v1/variations", { sampleId: item.sampleId, count: 4, strength });
      gallery.add(galleryItems(answer, { origin: "variation", parent: item.sampleId, strength,
        width: item.width, height: item.height }));
    });
  }

  function renderGallery() {
    const grid = $("gallery");
    grid.replaceChildren(...gallery.items.map((item) => card(item, variations)));
    $("gallery-empty").hidden = gallery.items.length > 0;
    $("gallery-count").textContent = gallery.items.length ? `${gallery.items.length} images` : "empty";
  }

  gallery.onChange(renderGallery);
  $("gallery-clear").addEventListener("click", () => gallery.clear());
  renderGallery();
  refreshControls();

  ctx.selectModel = (name, version) => {
    const key = `${name}@${version}`;
    if (models.find(key)) {
      select.value = key;
      refreshControls();
    }
  };
}
