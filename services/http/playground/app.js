// The playground's entry: the token, the tabs, the models; each tab lives in its own module.

import { call, getToken, setToken } from "./api.js";
import { $, action, clearError, models, showError } from "./shared.js";
import { setupGenerate } from "./generate.js";
import { setupInterpolate } from "./interpolate.js";
import { setupComplete } from "./complete.js";
import { setupDraw } from "./draw.js";
import { setupStylize } from "./stylize.js";
import { setupTrain } from "./train.js";

const TABS = ["generate", "interpolate", "complete", "stylize", "draw", "train"];
const tabHooks = {};

export function showTab(name) {
  for (const tab of TABS) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (tabHooks[name]) tabHooks[name]();
}

/** Load the server's models (every tab's model list follows). */
export async function loadModels() {
  const state = $("server-state");
  try {
    const answer = await call("GET", "/v1/models");
    models.set(answer);
    state.textContent = `${models.list.length} model${models.list.length === 1 ? "" : "s"}`;
    state.dataset.state = "ok";
    return true;
  } catch (err) {
    state.textContent = err.status === 401 || err.status === 403 ? "token needed" : "unavailable";
    state.dataset.state = "error";
    showError(err);
    return false;
  }
}

function setupToken() {
  const input = $("token");
  input.value = getToken();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    action($("token-save"), async () => {
      if (await loadModels()) {
        const tab = TABS.find((t) => !$(`panel-${t}`).hidden);
        if (tabHooks[tab]) tabHooks[tab]();
      }
    });
  });
}

function setupTabs() {
  for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("error-close").addEventListener("click", clearError);
}

function start() {
  setupToken();
  setupTabs();
  const ctx = { showTab, loadModels, onShow: (tab, fn) => (tabHooks[tab] = fn) };
  setupGenerate(ctx);
  setupInterpolate(ctx);
  setupComplete(ctx);
  setupStylize(ctx);
  setupDraw(ctx);
  setupTrain(ctx);
  const first = location.hash.slice(1);
  showTab(TABS.includes(first) ? first : "generate");
  loadModels();
  document.body.dataset.ready = "true";
}

start();
