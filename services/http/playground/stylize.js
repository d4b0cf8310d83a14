// Stylize: a content image (uploaded, or picked from the gallery by sample id) painted in an
// uploaded style; alpha, keep colours. A style sent once is named by its id afterwards.

import { call } from "./api.js";
import { $, action, el, fillModelSelect, gallery, models, renderPicker, shortId } from "./shared.js";

/** A file as PNG base64: PNGs as they are, other images drawn once into a canvas. */
async function pngOf(file) {
  if (file.type === "image/png") {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let raw = "";
    for (let i = 0; i < bytes.length; i += 0x8000) raw += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(raw);
  }
  const bitmap = await createImageBitmap(file).catch(() => {
    throw new Error(`${file.name} is not an image this browser can read`);
  });
  const canvas = el("canvas", { width: bitmap.width, height: bitmap.height });
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return canvas.toDataURL("image/png").split(",", 2)[1];
}

export function setupStylize(ctx) {
  const select = $("stylize-model");
  let content = null; // {png} from an upload, or {sampleId} from the gallery
  let style = null; // {png, id}: the uploaded style; id once the server named it

  function ready() {
    $("stylize-go").disabled = !models.find(select.value) || !content || !style;
  }

  function renderPickers() {
    renderPicker($("stylize-picker"), (item) => {
      content = { sampleId: item.sampleId };
      $("stylize-content-file").value = "";
      $("stylize-content").src = `data:image/png;base64,${item.png}`;
      $("stylize-content").dataset.source = item.sampleId;
      renderPickers();
      ready();
    }, (item) => (content && content.sampleId === item.sampleId ? "✓" : null));
  }

  $("stylize-content-file").addEventListener("change", (event) =>
    action($("stylize-go"), async () => {
      const file = event.target.files[0];
      if (!file) return;
      content = { png: await pngOf(file) };
      $("stylize-content").src = `data:image/png;base64,${content.png}`;
      $("stylize-content").dataset.source = "file";
      renderPickers();
      ready();
    }),
  );
  $("stylize-style-file").addEventListener("change", (event) =>
    action($("stylize-go"), async () => {
      const file = event.target.files[0];
      if (!file) return;
      style = { png: await pngOf(file), id: null };
      $("stylize-style").src = `data:image/png;base64,${style.png}`;
      ready();
    }),
  );
  $("stylize-alpha").addEventListener("input", () => ($("stylize-alpha-value").textContent = $("stylize-alpha").value));

  $("stylize-go").addEventListener("click", () =>
    action($("stylize-go"), async () => {
      const model = models.find(select.value);
      const body = {
        model: model.name,
        version: String(model.version),
        styles: [style.id ? { styleId: style.id } : { image: { png: style.png } }],
        alpha: Number($("stylize-alpha").value),
        preserveColor: $("stylize-preserve").checked,
      };
      if (content.sampleId) body.contentSampleId = content.sampleId;
      else body.content = { png: content.png };
      const answer = await call("POST", "/v1/stylize", body);
      style.id = answer.styleId; // the next call names the style instead of sending it again
      const sample = answer.sample;
      const result = $("stylize-result");
      result.src = `data:image/png;base64,${sample.image.png}`;
      result.dataset.sampleId = sample.sampleId;
      $("stylize-about").textContent = `${answer.model} v${answer.version} · style ${shortId(answer.styleId)} · ${shortId(sample.sampleId)}`;
      $("stylize-about").dataset.styleId = answer.styleId;
    }),
  );

  models.onChange(() => {
    fillModelSelect(select, models.supporting("Stylize"));
    ready();
  });
  select.addEventListener("change", ready);
  gallery.onChange(renderPickers);
  ctx.onShow("stylize", renderPickers);
  renderPickers();
}
