// The cargo fn watch dashboard: polls /_cargo-fn/api/state and
// /_cargo-fn/api/environments, follows invocations over server-sent events.
"use strict";
const api = "/_cargo-fn/api/";
const $ = (s, root = document) => root.querySelector(s);
const rows = new Map(); // seq -> invocation summary
let lastSeq = 0;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}
const ms = (v) => v == null ? "" : `${v.toFixed(2)} ms`;
const time = (t) => new Date(t).toLocaleTimeString([], { hour12: false }) + "." + String(t % 1000).padStart(3, "0");

async function getJson(path) {
  const r = await fetch(api + path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function kv(pairs) {
  const d = el("div", { class: "kv" });
  pairs.forEach(([k, v], i) => { if (i) d.append(" · "); d.append(`${k} `, el("b", {}, v)); });
  return d;
}

async function refresh() {
  let state, envs;
  try { [state, envs] = await Promise.all([getJson("state"), getJson("environments")]); }
  catch (_) { $("#build").textContent = "disconnected"; $("#build").className = "badge bad"; return; }
  const b = state.build, badge = $("#build"), errBox = $("#build-error");
  badge.textContent = b.state === "serving" ? `serving generation ${b.generation}`
    : b.state === "failed" ? `build failed (serving generation ${b.generation})`
    : `building… (serving generation ${b.generation})`;
  badge.className = "badge " + (b.state === "serving" ? "ok" : b.state === "failed" ? "bad" : "busy");
  errBox.hidden = b.state !== "failed";
  errBox.textContent = b.state === "failed" ? b.error : "";
  const info = new Map(state.functions.map((f) => [f.name, f]));
  const body = $("#functions tbody");
  body.replaceChildren(...envs.map((e) => el("tr", { "data-function": e.function },
    el("td", {}, el("b", {}, e.function)),
    el("td", {}, kv((info.get(e.function)?.settings) ?? [["memory", `${e.memory_mb} MB`], ["timeout", `${e.timeout_s} s`]])),
    el("td", { class: "env" }, kv([["warm", e.warm], ["busy", e.busy], ["cold starts", e.cold_starts], ["invocations", e.invocations], ["errors", e.errors]])),
    el("td", {}, e.extensions.join(", ") || "none"))));
  const select = $("#f-function");
  for (const e of envs) {
    if (![...select.options].some((o) => o.value === e.function)) select.append(el("option", {}, e.function));
  }
  renderSections(state.sections || {});
}

// Data other parts of watch publish (triggers, tune reports): shown only
// when present, as a table of its rows or as JSON.
function renderSections(sections) {
  const root = $("#sections");
  root.replaceChildren(...Object.entries(sections).map(([key, value]) => {
    const s = el("section", { "data-section": key }, el("h2", {}, value.title || key));
    const items = Array.isArray(value) ? value : value.rows;
    if (Array.isArray(items) && items.length && typeof items[0] === "object") {
      const cols = Object.keys(items[0]);
      s.append(el("table", {}, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))),
        el("tbody", {}, ...items.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c])))))));
    } else {
      s.append(el("pre", {}, JSON.stringify(value, null, 2)));
    }
    return s;
  }));
}

function visible(inv) {
  const f = $("#f-function").value, s = $("#f-status").value;
  return (!f || inv.function === f) && (!s || inv.status === s);
}

function logLine(text) {
  const cls = /^(START|END) /.test(text) ? "platform" : /^REPORT /.test(text) ? "report"
    : /(ERROR|Error:|panicked|Task timed out)/.test(text) ? "err" : "";
  return el("div", { class: cls }, text);
}

function addInvocation(inv) {
  if (rows.has(inv.seq)) return;
  rows.set(inv.seq, inv);
  lastSeq = Math.max(lastSeq, inv.seq);
  const select = $("#f-function");
  if (![...select.options].some((o) => o.value === inv.function)) select.append(el("option", {}, inv.function));
  const tr = el("tr", { class: "inv", "data-seq": inv.seq, "data-request-id": inv.request_id, "data-function": inv.function, "data-status": inv.status },
    el("td", { class: "num" }, time(inv.started_ms)),
    el("td", {}, inv.function),
    el("td", { class: "caller" }, inv.caller),
    el("td", { class: "num duration" }, ms(inv.duration_ms)),
    el("td", { class: "num" }, `${inv.billed_ms} ms`),
    el("td", { class: "num" }, inv.init_ms == null ? "warm" : ms(inv.init_ms)),
    el("td", { class: "num" }, `${inv.max_memory_mb}/${inv.memory_mb} MB`),
    el("td", { class: "num" }, `$${inv.cost_usd.toFixed(10)}`),
    el("td", { class: `st-${inv.status}` }, inv.error_type ? `${inv.status} (${inv.error_type})` : inv.status));
  const details = $("#details").content.firstElementChild.cloneNode(true);
  details.hidden = true;
  $(".log", details).append(...inv.log.map(logLine));
  tr.addEventListener("click", () => toggle(tr, details, inv));
  tr.hidden = !visible(inv);
  const body = $("#invocations tbody");
  body.prepend(tr, details);
  // When the row reached the page: the test reads it to measure latency.
  tr.dataset.shownMs = String(Date.now());
  $("#count").textContent = `${rows.size} shown`;
  soon();
}

// Environments and counters change with each invocation: refresh shortly
// after one arrives (once for a burst), besides the regular poll.
let pending = null;
function soon() {
  if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150);
}

async function toggle(tr, details, inv) {
  const open = details.hidden;
  details.hidden = !open;
  tr.classList.toggle("open", open);
  if (!open || details.dataset.loaded) return;
  details.dataset.loaded = "1";
  const payload = $(".payload", details), response = $(".response", details);
  try {
    const full = await getJson(`invocations/${inv.seq}`);
    payload.value = full.payload + (full.payload_truncated ? "\n…(cut)" : "");
    response.textContent = full.response + (full.response_truncated ? "\n…(cut)" : "");
  } catch (e) {
    payload.value = ""; response.textContent = `gone from the history (${e.message})`;
  }
  const result = $(".result", details);
  const invoke = async (body) => {
    result.textContent = "invoking…";
    try {
      const r = await fetch(`/2015-03-31/functions/${encodeURIComponent(inv.function)}/invocations`, { method: "POST", body });
      result.textContent = `HTTP ${r.status}` + (r.headers.get("x-amz-function-error") ? " (function error)" : "");
    } catch (e) { result.textContent = e.message; }
  };
  $(".again", details).addEventListener("click", () => invoke(payload.value));
  $(".edit", details).addEventListener("click", () => {
    payload.readOnly = false; payload.focus(); $(".send", details).hidden = false;
  });
  $(".send", details).addEventListener("click", () => {
    try { JSON.parse(payload.value); } catch (e) { result.textContent = `not JSON: ${e.message}`; return; }
    invoke(payload.value);
  });
}

function refilter() {
  for (const tr of document.querySelectorAll("tr.inv")) {
    const inv = rows.get(Number(tr.dataset.seq));
    tr.hidden = !visible(inv);
    if (tr.hidden) { tr.nextElementSibling.hidden = true; tr.classList.remove("open"); }
  }
}

function follow() {
  const live = $("#live");
  const source = new EventSource(`${api}events?after=${lastSeq}`);
  source.addEventListener("invocation", (e) => addInvocation(JSON.parse(e.data)));
  source.onopen = () => { live.className = "badge ok"; };
  source.onerror = () => { live.className = "badge off"; };
}

async function start() {
  $("#f-function").addEventListener("change", refilter);
  $("#f-status").addEventListener("change", refilter);
  try { (await getJson("invocations?limit=200")).forEach(addInvocation); } catch (_) { /* shown by refresh */ }
  follow();
  await refresh();
  setInterval(refresh, 2000);
}
start();
