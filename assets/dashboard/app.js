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
    el("td", { class: "env" }, kv([["warm", e.warm], ["busy", e.busy], ...inFlight(e), ["cold starts", e.cold_starts], ["invocations", e.invocations], ["errors", e.errors]])),
    el("td", {}, e.extensions.join(", ") || "none"))));
  const select = $("#f-function");
  for (const e of envs) {
    if (![...select.options].some((o) => o.value === e.function)) select.append(el("option", {}, e.function));
  }
  renderSections(state.sections || {});
}

// Managed instances: requests in flight per environment, out of its slots.
function inFlight(e) {
  if (e.max_concurrency == null) return [];
  const loads = (e.in_flight || []).map((l) => `#${l.environment}: ${l.in_flight}/${e.max_concurrency}`);
  return [["in flight", loads.join(", ") || "no environment"]];
}

// Data other parts of watch publish: triggers and tune reports have their
// own rendering; anything else is shown as a table of its rows or as JSON.
// Sections are updated in place, so a button keeps working across polls.
const renderers = { triggers: renderTriggers, tune: renderTune };
function renderSections(sections) {
  const root = $("#sections");
  for (const s of [...root.children]) if (!(s.dataset.section in sections)) s.remove();
  for (const [key, value] of Object.entries(sections)) {
    let s = root.querySelector(`section[data-section="${CSS.escape(key)}"]`);
    if (!s) {
      s = el("section", { "data-section": key }, el("h2", {}, value.title || key[0].toUpperCase() + key.slice(1)), el("div", { class: "body" }));
      root.append(s);
    }
    (renderers[key] || renderGeneric)($(".body", s), value);
  }
}

function renderGeneric(body, value) {
  const items = Array.isArray(value) ? value : value.rows;
  if (Array.isArray(items) && items.length && typeof items[0] === "object") {
    const cols = Object.keys(items[0]);
    body.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", {}, c)))),
      el("tbody", {}, ...items.map((r) => el("tr", {}, ...cols.map((c) => el("td", {}, typeof r[c] === "object" ? JSON.stringify(r[c]) : r[c])))))));
  } else {
    body.replaceChildren(el("pre", {}, JSON.stringify(value, null, 2)));
  }
}

// "in 4 m 10 s" for a schedule's next firing.
function until(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.round((t - Date.now()) / 1000);
  if (s < 0) return " (due)";
  return s < 60 ? ` (in ${s} s)` : s < 3600 ? ` (in ${Math.floor(s / 60)} m ${s % 60} s)` : ` (in ${Math.floor(s / 3600)} h ${Math.floor(s / 60) % 60} m)`;
}

// What a trigger is comes first in its status, then its depth and progress.
const FIRST = ["queue", "stream", "table", "bucket", "expression", "next", "routes", "visible", "in flight", "dlq"];
const rank = (k) => { const i = FIRST.indexOf(k); return i < 0 ? FIRST.length : i; };

// [{function, name, type, status: {flat display values}}]: one row each,
// kept (with its last "fire now" result) while the trigger exists.
function renderTriggers(body, list) {
  let tbody = $("tbody", body);
  if (!tbody) {
    tbody = el("tbody");
    body.replaceChildren(el("table", { id: "triggers" }, el("thead", {}, el("tr", {},
      el("th", {}, "type"), el("th", {}, "trigger"), el("th", {}, "function"), el("th", {}, "status"), el("th", {}, ""))), tbody));
  }
  const keep = new Set();
  for (const t of Array.isArray(list) ? list : []) {
    const key = `${t.function}/${t.name}`;
    keep.add(key);
    let tr = [...tbody.rows].find((r) => r.dataset.key === key);
    if (!tr) {
      const result = el("span", { class: "result" });
      const button = el("button", { class: "fire" }, "Fire now");
      button.addEventListener("click", () => fire(t, button, result));
      tr = el("tr", { "data-key": key, "data-function": t.function, "data-trigger": t.name },
        el("td", { class: "type" }, t.type), el("td", {}, el("b", {}, t.name)), el("td", {}, t.function),
        el("td", { class: "status" }), el("td", { class: "fire-cell" }, button, result));
      tbody.append(tr);
    }
    const status = Object.entries(t.status || {}).sort(([a], [b]) => rank(a) - rank(b)).map(([k, v]) => {
      const text = typeof v === "object" ? JSON.stringify(v) : String(v);
      return [k, k === "next" ? text + until(text) : text];
    });
    $(".status", tr).replaceChildren(kv(status));
  }
  for (const tr of [...tbody.rows]) if (!keep.has(tr.dataset.key)) tr.remove();
}

// The request ids anywhere in a fire result (one per invocation made).
function requestIds(v, out = []) {
  if (Array.isArray(v)) v.forEach((x) => requestIds(x, out));
  else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (/^request_?id$/i.test(k) && typeof x === "string") out.push(x); else requestIds(x, out);
    }
  }
  return out;
}

function showInvocation(id) {
  const tr = document.querySelector(`tr.inv[data-request-id="${CSS.escape(id)}"]`);
  if (!tr) return;
  if (tr.nextElementSibling.hidden) tr.click();
  tr.scrollIntoView({ block: "center" });
}

// Fired triggers whose invocation has not reached the page yet: a queue or
// stream trigger answers with the message it sent, and its poller invokes
// the function a moment later, with the trigger as caller ("sqs:orders").
const awaiting = [];
const firedBy = (t, inv) => inv.function === t.function && (inv.caller === `${t.type}:${t.name}` || inv.caller.endsWith(`:${t.name}`));

function linkInvocation(result, inv) {
  const a = el("a", { href: "#", class: "invocation", "data-request-id": inv.request_id }, `${inv.request_id} (${inv.status})`);
  a.addEventListener("click", (e) => { e.preventDefault(); showInvocation(inv.request_id); });
  result.querySelector(".pending")?.remove();
  result.append(" → ", a);
  result.dataset.requestIds = [result.dataset.requestIds, inv.request_id].filter(Boolean).join(" ");
}

// Called for each new invocation row: completes a waiting "fire now".
function settleFired(inv) {
  const i = awaiting.findIndex((w) => inv.seq > w.after && firedBy(w.t, inv));
  if (i >= 0) linkInvocation(awaiting.splice(i, 1)[0].result, inv);
}

async function fire(t, button, result) {
  button.disabled = true;
  result.replaceChildren("firing…");
  delete result.dataset.requestIds;
  const after = lastSeq;
  try {
    const r = await fetch(`${api}triggers/${encodeURIComponent(t.function)}/${encodeURIComponent(t.name)}/fire`, { method: "POST" });
    const text = await r.text();
    let v = null;
    try { v = JSON.parse(text); } catch (_) { /* shown as text */ }
    if (!r.ok) { result.replaceChildren(el("span", { class: "st-error" }, `HTTP ${r.status}: ${v?.message ?? text}`)); return; }
    // What the trigger did (message sent, invocation made), in short.
    result.replaceChildren(el("span", { class: "st-success" }, "fired"), " ", el("code", {}, text.length > 160 ? text.slice(0, 160) + "…" : text));
    const ids = requestIds(v);
    const already = [...rows.values()].filter((inv) => inv.seq > after && (ids.includes(inv.request_id) || (!ids.length && firedBy(t, inv))));
    if (already.length) { already.slice(0, ids.length || 1).forEach((inv) => linkInvocation(result, inv)); return; }
    if (ids.length) { ids.forEach((id) => linkInvocation(result, { request_id: id, status: "running" })); return; }
    result.append(el("span", { class: "pending" }, " · waiting for its invocation…"));
    awaiting.push({ t, after, result });
    if (awaiting.length > 50) awaiting.shift();
  } catch (e) {
    result.replaceChildren(el("span", { class: "st-error" }, e.message));
  } finally {
    button.disabled = false;
    soon();
  }
}

// [{file, saved_ms, report | error}]: `cargo fn tune` reports, one table each.
function renderTune(body, items) {
  const stamp = JSON.stringify((items || []).map((i) => [i.file, i.saved_ms]));
  if (body.dataset.stamp === stamp) return;
  body.dataset.stamp = stamp;
  body.replaceChildren(...(items || []).map((item) => {
    const d = el("div", { class: "tune", "data-file": item.file });
    const r = item.report;
    if (!r) { d.append(el("h3", {}, item.file), el("div", { class: "st-error" }, item.error)); return d; }
    d.append(el("h3", {}, `${r.function} · ${r.mode} · saved ${new Date(item.saved_ms).toLocaleString()}`), el("div", { class: "kv" }, r.label));
    const picks = r.picks || {};
    const f = (v, n) => v == null ? "" : Number(v).toFixed(n);
    d.append(el("table", {}, el("thead", {}, el("tr", {}, ...["arch", "memory", "n", "mean", "p50", "p90", "billed", "max memory", "$/million", "pick"].map((c) => el("th", {}, c)))),
      el("tbody", {}, ...(r.points || []).map((p, i) => {
        const pick = ["cost", "speed", "balanced"].filter((k) => picks[k] === i);
        return el("tr", { class: pick.length ? "picked" : "", "data-memory": p.memory_mb },
          el("td", {}, p.arch), el("td", { class: "num" }, `${p.memory_mb} MB`), el("td", { class: "num" }, p.invocations),
          el("td", { class: "num" }, `${f(p.trimmed_mean_ms, 2)} ms`), el("td", { class: "num" }, `${f(p.p50_ms, 2)} ms`),
          el("td", { class: "num" }, `${f(p.p90_ms, 2)} ms`), el("td", { class: "num" }, `${f(p.billed_mean_ms, 1)} ms`),
          el("td", { class: "num" }, `${p.max_memory_mb} MB`), el("td", { class: "num" }, `$${f(p.cost_per_million_usd, 4)}`),
          el("td", { class: "pick" }, pick.join(", ") + (p.errors ? ` (${p.errors} failed)` : "")));
      }))));
    return d;
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
  settleFired(inv);
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
