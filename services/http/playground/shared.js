// What the tabs share: the error banner, small DOM helpers, the loaded models and the gallery.

import { ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);

/** An element with attributes, properties (`on*` handlers, dataset, text) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show an error: an ApiError as the server's code and message, anything else as its text. */
export function showError(err) {
  if (err && err.name === "AbortError") return;
  const box = $("error");
  $("error-code").textContent = err instanceof ApiError ? err.code : "error";
  $("error-message").textContent = err && err.message ? err.message : String(err);
  box.dataset.status = err instanceof ApiError ? String(err.status) : "";
  box.hidden = false;
  if (!(err instanceof ApiError)) console.warn(err); // a page bug shows in the console too
}

export function clearError() {
  $("error").hidden = true;
  $("error-message").textContent = "";
  $("error-code").textContent = "";
}

/** Run an action for a button: the button is busy meanwhile, errors go to the banner. */
export async function action(button, work) {
  clearError();
  const label = button ? button.textContent : "";
  if (button) {
    button.disabled = true;
    button.classList.add("busy");
  }
  try {
    return await work();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.classList.remove("busy");
      button.textContent = label;
    }
  }
}

/** A seed field's value: "" (the server picks) or a decimal uint64; throws on anything else. */
export function seedValue(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  if (!/^\d+$/.test(text) || BigInt(text) >= 1n << 64n) {
    throw new Error("a seed is a whole number from 0 to 18446744073709551615");
  }
  return text;
}

export function shortId(id) {
  return id && id.length > 10 ? `${id.slice(0, 8)}…` : id || "";
}

// ---- models -----------------------------------------------------------------------------------

export const models = {
  list: [], // ModelInfo, as the server answers
  maxCount: 64,
  listeners: [],
  key: (m) => `${m.name}@${m.version}`,
  find(key) {
    return this.list.find((m) => this.key(m) === key);
  },
  supporting(method) {
    return this.list.filter((m) => (m.supportedMethods || []).includes(method));
  },
  onChange(fn) {
    this.listeners.push(fn);
  },
  set(answer) {
    this.list = answer.models || [];
    this.maxCount = answer.maxCount || 64;
    for (const fn of this.listeners) fn();
  },
};

export const KIND_NAMES = {
  MODEL_KIND_GAN: "GAN",
  MODEL_KIND_VAE: "VAE",
  MODEL_KIND_AE: "autoencoder",
  MODEL_KIND_COMPLETION: "completion",
  MODEL_KIND_STROKE_VAE: "stroke model",
  MODEL_KIND_STYLE: "style model",
};

/** Fill a <select> with models (keeping the chosen one when it is still there). */
export function fillModelSelect(select, list, prefer) {
  const before = prefer || select.value;
  select.replaceChildren(
    ...list.map((m) =>
      el("option", { value: models.key(m), text: `${m.name} v${m.version}${m.latest ? " (latest)" : ""}` }),
    ),
  );
  if (!list.length) select.append(el("option", { value: "", text: "no model loaded" }));
  const keep = list.find((m) => models.key(m) === before);
  const latest = list.find((m) => m.latest) || list[0];
  select.value = keep ? before : latest ? models.key(latest) : "";
}

// ---- the gallery ------------------------------------------------------------------------------

/**
 * Images the artist made, newest first: {sampleId, png (base64), model, version, seed, label,
 * truncation, origin, parent, strength, width, height}.
 */
export const gallery = {
  items: [],
  listeners: [],
  onChange(fn) {
    this.listeners.push(fn);
  },
  add(items) {
    this.items = [...items, ...this.items];
    for (const fn of this.listeners) fn();
  },
  clear() {
    for (const item of this.items) if (item.url) URL.revokeObjectURL(item.url);
    this.items = [];
    for (const fn of this.listeners) fn();
  },
  find(sampleId) {
    return this.items.find((i) => i.sampleId === sampleId);
  },
};

/** Lines telling how a gallery image was made. */
export function provenance(item) {
  const lines = [`${item.model} v${item.version}`];
  const model = models.list.find((m) => m.name === item.model && String(m.version) === String(item.version));
  const className = (k) => (model && model.classNames && model.classNames[k]) || null;
  if (item.origin === "variation") {
    lines.push(`variation of ${shortId(item.parent)} · strength ${item.strength}`);
    lines.push(`noise seed ${item.seed}`);
  } else if (item.origin === "interpolate") {
    lines.push(`frame ${item.frame} of ${shortId(item.parent)} → ${shortId(item.parentB)}`);
  } else if (item.origin === "complete") {
    lines.push(`completion · seed ${item.seed}`);
  } else {
    lines.push(`seed ${item.seed}`);
  }
  if (item.label !== undefined && item.label !== null) {
    const name = className(item.label);
    lines.push(`class ${item.label}${name ? ` (${name})` : ""}`);
  }
  if (item.truncation !== undefined && item.truncation !== null) lines.push(`truncation ψ ${item.truncation}`);
  return lines;
}

/** A thumbnail strip of the gallery for another tab; `pick(item)` when one is clicked. */
export function renderPicker(container, pick, selected = () => null) {
  container.replaceChildren(
    ...gallery.items.map((item) =>
      el(
        "button",
        {
          type: "button",
          className: `thumb${selected(item) ? " selected" : ""}`,
          title: provenance(item).join("\n"),
          dataset: { testid: "pick", sampleId: item.sampleId, tag: selected(item) || "" },
          onclick: () => pick(item),
        },
        el("img", { src: `data:image/png;base64,${item.png}`, alt: "", className: "pixel" }),
      ),
    ),
  );
  if (!gallery.items.length) container.append(el("p", { className: "empty", text: "The gallery is empty." }));
}
