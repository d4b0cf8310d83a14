// Train: upload a data set, submit a job of any family with its options, watch its progress and
// newest sample grid live, cancel or resume it, then generate from the model it published.

import { call, stream } from "./api.js";
import { $, action, el, showError } from "./shared.js";
import { archiveFormat, datasetName, sha256Hex, zipFolder } from "./files.js";
import { formTables, jsonName, optionValue } from "./options.js";

const TERMINAL = new Set(["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"]);
const DATA_OF_KIND = { images: "mnist5k", strokes: "kanjivg:digits" };
const LOG_LINES = 200;

const stateName = (state) => (state || "JOB_STATE_UNSPECIFIED").replace("JOB_STATE_", "").toLowerCase();

function optionInput(scope, [name, type, fallback, help]) {
  const id = `opt-${scope}-${name}`;
  fallback = fallback || "the trainer's";
  let input;
  if (type === "bool") {
    input = el("select", { id }, el("option", { value: "", text: `default (${fallback})` }), el("option", { value: "true", text: "on" }), el("option", { value: "false", text: "off" }));
  } else if (Array.isArray(type)) {
    input = el("select", { id }, el("option", { value: "", text: `default (${fallback})` }), type.map((v) => el("option", { value: v, text: v })));
  } else {
    input = el("input", { id, placeholder: fallback, inputmode: type === "text" ? undefined : "decimal", spellcheck: "false" });
  }
  input.dataset.option = name;
  input.dataset.type = Array.isArray(type) ? "text" : type;
  input.dataset.testid = id;
  return el("label", { className: "option", title: help, for: id }, el("span", { text: name }), input);
}

function collect(container, what) {
  const out = {};
  for (const input of container.querySelectorAll("[data-option]")) {
    let value;
    try {
      value = optionValue(input.dataset.option, input.dataset.type, input.value);
    } catch (err) {
      throw new Error(`${what}: ${err.message}`);
    }
    if (value !== undefined) out[jsonName(input.dataset.option)] = value;
  }
  return out;
}

export function setupTrain(ctx) {
  let pending = null; // {bytes, format, label} to upload
  let datasets = { datasets: [], builtin: [] };
  let watching = null; // {jobId, controller, lastSeq}
  let published = null;
  let tables = { common: [], families: {} }; // the job form's options (GET /v1/families)

  // ---- data sets ----

  async function loadDatasets(prefer) {
    datasets = await call("GET", "/v1/datasets");
    const rows = [
      ...(datasets.builtin || []).map((name) => el("tr", { dataset: { dataset: name } }, el("td", { text: name }), el("td", { colspan: "3", className: "hint", text: "built-in" }), el("td"))),
      ...(datasets.datasets || []).map((d) =>
        el(
          "tr",
          { dataset: { dataset: d.name } },
          el("td", { text: d.name }),
          el("td", { text: d.count || "0" }),
          el("td", { text: (d.shape || []).join("×") }),
          el("td", { text: (d.classNames || []).join(", ") || "—" }),
          el("td", {}, el("button", { type: "button", className: "ghost", text: "Delete", onclick: (e) => deleteDataset(d.name, e.currentTarget) })),
        ),
      ),
    ];
    $("dataset-list").replaceChildren(...rows);
    fillDatasets(prefer);
  }

  function fillDatasets(prefer) {
    const select = $("job-dataset");
    const before = prefer || select.value;
    const names = [...(datasets.builtin || []), ...(datasets.datasets || []).map((d) => d.name)];
    select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    const family = tables.families[$("job-family").value];
    const fallback = family ? DATA_OF_KIND[family.data] : "";
    select.value = names.includes(before) ? before : names.includes(fallback) ? fallback : names[0] || "";
  }

  async function deleteDataset(name, button) {
    await action(button, async () => {
      await call("DELETE", `/v1/datasets/${encodeURIComponent(name)}`);
      await loadDatasets();
    });
  }

  $("upload-file").addEventListener("change", () => {
    const file = $("upload-file").files[0];
    $("upload-folder").value = "";
    pending = null;
    if (!file) return updateUpload();
    const format = archiveFormat(file.name);
    if (!format) {
      showError(new Error(`${file.name}: upload a .zip, a .tar(.gz) or an .npz (or pick a folder)`));
      return updateUpload();
    }
    pending = { file, format, label: file.name };
    $("upload-name").value = datasetName(file.name);
    updateUpload();
  });

  $("upload-folder").addEventListener("change", () => {
    const files = [...$("upload-folder").files];
    $("upload-file").value = "";
    pending = null;
    if (files.length) {
      const top = (files[0].webkitRelativePath || files[0].name).split("/")[0];
      pending = { files, format: "zip", label: `${top}/ (${files.length} files)` };
      $("upload-name").value = datasetName(top);
    }
    updateUpload();
  });

  function updateUpload() {
    $("upload-go").disabled = !pending;
    $("upload-result").textContent = pending ? `to upload: ${pending.label}` : "";
  }

  $("upload-go").addEventListener("click", () =>
    action($("upload-go"), async () => {
      const name = $("upload-name").value.trim();
      if (!name) throw new Error("name the data set");
      $("upload-result").textContent = "reading…";
      let bytes;
      if (pending.files) {
        const zipped = await zipFolder(pending.files);
        if (!zipped.count) throw new Error("the folder holds no files");
        bytes = zipped.bytes;
      } else {
        bytes = new Uint8Array(await pending.file.arrayBuffer());
      }
      const sha256 = await sha256Hex(bytes);
      $("upload-result").textContent = `uploading ${(bytes.length / 1024).toFixed(0)} KiB…`;
      const query = new URLSearchParams({ format: pending.format, sha256 });
      let d;
      try {
        d = await call("PUT", `/v1/datasets/${encodeURIComponent(name)}?${query}`, bytes, {
          contentType: pending.format === "zip" ? "application/zip" : "application/octet-stream",
        });
      } catch (err) {
        $("upload-result").textContent = "";
        throw err;
      }
      const classes = d.classNames && d.classNames.length ? `, classes ${d.classNames.join(", ")}` : ", unlabelled";
      const skipped = Number(d.skippedFiles || 0) ? `, ${d.skippedFiles} unreadable files left out` : "";
      $("upload-result").textContent = `${d.name}: ${d.count} examples of ${(d.shape || []).join("×")}${classes}${skipped}`;
      $("upload-result").dataset.dataset = d.name;
      await loadDatasets(d.name);
    }),
  );

  // ---- the job form ----

  async function loadFamilies() {
    tables = formTables(await call("GET", "/v1/families"));
    $("job-family").replaceChildren(
      ...Object.entries(tables.families).map(([name, f]) => el("option", { value: name, text: name, title: f.summary })),
    );
    $("job-common").replaceChildren(...tables.common.map((o) => optionInput("common", o)));
    renderFamilyOptions();
  }

  function renderFamilyOptions() {
    const family = tables.families[$("job-family").value];
    if (!family) return;
    $("job-family-options").replaceChildren(...family.options.map((o) => optionInput(family.label, o)));
    $("job-family-details").querySelector("summary").textContent = `${family.label} options`;
    $("job-family-summary").textContent = family.summary ? `${family.summary}; trains on ${family.data}` : "";
    fillDatasets();
  }
  $("job-family").addEventListener("change", renderFamilyOptions);

  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    action($("job-submit"), async () => {
      const family = $("job-family").value;
      const spec = { family, dataset: $("job-dataset").value };
      if (!spec.dataset) throw new Error("choose a data set (or upload one)");
      const common = collect($("job-common"), "training options");
      if (Object.keys(common).length) spec.options = common;
      spec[jsonName(tables.families[family].field)] = collect($("job-family-options"), `${family} options`);
      const modelName = $("job-model-name").value.trim();
      if (modelName) spec.modelName = modelName;
      if ($("job-publish").checked) {
        if (!modelName) throw new Error("name the model to publish (or untick publish)");
        spec.publish = true;
      }
      const retries = $("job-max-retries").value.trim();
      if (retries) spec.maxRetries = Number(retries);
      const nproc = $("job-nproc").value.trim();
      if (nproc) spec.nproc = Number(nproc);
      // A retried submit (a lost answer) must not start a second job.
      spec.idempotencyKey = `playground-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
      const job = await call("POST", "/v1/jobs", spec);
      await loadJobs();
      watch(job);
    });
  });

  // ---- jobs ----

  async function loadJobs() {
    const answer = await call("GET", "/v1/jobs?page_size=20");
    $("job-list").replaceChildren(
      ...(answer.jobs || []).map((job) =>
        el(
          "tr",
          { dataset: { jobId: job.jobId, state: stateName(job.state) } },
          el("td", {}, el("code", { text: job.jobId.slice(0, 8) })),
          el("td", { text: (job.spec && job.spec.family) || "" }),
          el("td", { text: (job.spec && job.spec.modelName) || "—" }),
          el("td", {}, el("span", { className: `state ${stateName(job.state)}`, text: stateName(job.state) })),
          el("td", { text: `${job.step || 0} / ${job.totalSteps || "?"}` }),
          el("td", {}, el("button", { type: "button", className: "ghost", text: "Watch", onclick: () => watch(job) })),
        ),
      ),
    );
    if (!(answer.jobs || []).length) $("job-list").append(el("tr", {}, el("td", { colspan: "6", className: "empty", text: "No jobs yet." })));
  }

  $("jobs-refresh").addEventListener("click", () => action($("jobs-refresh"), loadJobs));

  function setState(state, reason) {
    const badge = $("job-state");
    badge.textContent = stateName(state) + (reason ? `: ${reason}` : "");
    badge.className = `state ${stateName(state)}`;
    $("job-view").dataset.state = stateName(state);
    const done = TERMINAL.has(state);
    $("job-cancel").hidden = done;
    $("job-resume").hidden = !(state === "JOB_STATE_FAILED" || state === "JOB_STATE_CANCELLED");
  }

  function figures(container, values, digits = 4) {
    container.replaceChildren(
      ...Object.entries(values || {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: typeof v === "number" ? v.toPrecision(digits) : String(v) }))),
    );
  }

  function log(text, level = "info") {
    const pre = $("job-log");
    pre.append(el("span", { className: `log-${level}`, text: `${text}\n` }));
    while (pre.childNodes.length > LOG_LINES) pre.firstChild.remove();
    pre.scrollTop = pre.scrollHeight;
  }

  function apply(event) {
    if (event.state) {
      setState(event.state.state, event.state.reason);
      log(`state ${stateName(event.state.state)}${event.state.reason ? `: ${event.state.reason}` : ""}`);
    } else if (event.progress) {
      const p = event.progress;
      const step = Number(p.step || 0);
      const total = Number(p.totalSteps || 0);
      $("job-progress").max = total || 1;
      $("job-progress").value = step;
      const speed = p.stepsPerSecond ? `${p.stepsPerSecond.toFixed(2)} steps/s` : "";
      const eta = p.etaSeconds ? `, ${Math.ceil(p.etaSeconds)} s left` : "";
      $("job-step").textContent = `step ${step} of ${total}${p.epoch ? ` · epoch ${p.epoch}` : ""} · ${speed}${eta}`;
      $("job-view").dataset.step = String(step);
      figures($("job-losses"), p.losses);
    } else if (event.grid) {
      const g = event.grid;
      grids.set(g.name || "samples", g);
      showGrid(gridShown || "samples");
    } else if (event.evaluation) {
      figures($("job-scores"), event.evaluation.scores);
      log(`evaluation at step ${event.evaluation.step || 0}`);
    } else if (event.log) {
      log(event.log.text || "", event.log.level || "info");
    } else if (event.checkpoint) {
      log(`checkpoint ${event.checkpoint.name} (step ${event.checkpoint.step || 0})`);
    } else if (event.published) {
      published = event.published;
      const box = $("job-published");
      const fid = published.quality && "fid" in published.quality ? ` · FID ${published.quality.fid.toFixed(1)}` : "";
      box.textContent = `published ${published.name} v${published.version}${fid}`;
      box.hidden = false;
      log(box.textContent);
    }
  }

  // The newest grid of each name ("samples", and a family's extra ones such as "classes").
  const grids = new Map();
  let gridShown = null;

  function showGrid(name) {
    const g = grids.get(name) || grids.values().next().value;
    if (!g) return;
    gridShown = name;
    const img = $("job-grid");
    img.src = `data:image/png;base64,${g.png}`;
    img.hidden = false;
    img.dataset.step = String(g.step || 0);
    img.dataset.name = g.name || "samples";
    $("job-grid-caption").textContent = `${g.name || "samples"} at step ${g.step || 0}`;
    const names = [...grids.keys()];
    $("job-grid-names").replaceChildren(
      ...(names.length > 1 ? names : []).map((n) =>
        el("button", { type: "button", className: `ghost${n === img.dataset.name ? " selected" : ""}`, text: n, onclick: () => showGrid(n) }),
      ),
    );
  }

  async function watch(job) {
    if (watching) watching.controller.abort();
    const me = { jobId: job.jobId, controller: new AbortController(), lastSeq: 0 };
    watching = me;
    published = job.published || null;
    $("job-view").hidden = false;
    $("job-view").dataset.jobId = job.jobId;
    $("job-id").textContent = job.jobId;
    $("job-log").replaceChildren();
    $("job-losses").replaceChildren();
    $("job-scores").replaceChildren();
    $("job-grid").hidden = true;
    $("job-grid-caption").textContent = "no sample grid yet";
    $("job-grid-names").replaceChildren();
    grids.clear();
    gridShown = null;
    $("job-published").hidden = !published;
    if (published) $("job-published").textContent = `published ${published.name} v${published.version}`;
    $("job-generate").hidden = true;
    $("job-progress").value = 0;
    $("job-step").textContent = "";
    setState(job.state, job.reason);
    let tries = 0;
    while (watching === me) {
      try {
        const query = me.lastSeq ? `?from_seq=${me.lastSeq + 1}` : "";
        for await (const message of stream("GET", `/v1/jobs/${encodeURIComponent(job.jobId)}/events${query}`, undefined, { signal: me.controller.signal })) {
          if (message.event !== "data") continue;
          tries = 0;
          me.lastSeq = Number(message.data.seq || message.id || me.lastSeq);
          apply(message.data);
        }
        break; // the job ended and every event was sent
      } catch (err) {
        if (err.name === "AbortError" || watching !== me) return;
        // A dropped connection resumes after the last event seen; a refusal is shown.
        if (err.status || err.code !== "UNAVAILABLE" || ++tries > 5) {
          showError(err);
          return;
        }
        await new Promise((r) => setTimeout(r, 1000 * tries));
      }
    }
    if (watching !== me) return;
    watching = null;
    await finished(job.jobId);
  }

  async function finished(jobId) {
    try {
      const job = await call("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
      setState(job.state, job.reason);
      if (job.published) published = job.published;
      await loadJobs();
      if (published && job.state === "JOB_STATE_SUCCEEDED") {
        await ctx.loadModels();
        $("job-generate").textContent = `Generate with ${published.name} v${published.version}`;
        $("job-generate").hidden = false;
      }
    } catch (err) {
      showError(err);
    }
  }

  $("job-cancel").addEventListener("click", () =>
    action($("job-cancel"), async () => {
      const id = $("job-view").dataset.jobId;
      const job = await call("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`);
      log(job.cancelRequested ? "cancel requested: stopping after the current step" : `state ${stateName(job.state)}`);
      if (TERMINAL.has(job.state)) setState(job.state, job.reason);
    }),
  );

  $("job-resume").addEventListener("click", () =>
    action($("job-resume"), async () => {
      const id = $("job-view").dataset.jobId;
      const job = await call("POST", `/v1/jobs/${encodeURIComponent(id)}/resume`);
      await loadJobs();
      watch(job);
    }),
  );

  $("job-generate").addEventListener("click", () => {
    if (!published) return;
    ctx.showTab("generate");
    ctx.selectModel(published.name, published.version);
  });

  let loaded = false;
  ctx.onShow("train", async () => {
    if (loaded) return;
    loaded = true;
    const ok = await action(null, async () => {
      try {
        await loadDatasets();
      } catch (err) {
        // No training routes on this server: say so in the tab rather than as an error.
        if (err.status === 404 && err.code === "NOT_FOUND") {
          $("train-unavailable").hidden = false;
          return false;
        }
        throw err;
      }
      $("train-unavailable").hidden = true;
      await loadFamilies();
      await loadJobs();
      return true;
    });
    loaded = Boolean(ok); // a refused load (no token yet, say) is tried again next time
    if (ok) $("panel-train").dataset.loaded = "true";
  });
}
