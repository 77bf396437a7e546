// The dashboard's "Durable executions" section: each function's executions
// from the local durable execution service of `cargo fn watch`, read through
// the Lambda API it serves on this same address
// (ListDurableExecutionsByFunction, GetDurableExecutionHistory), and for each
// opened execution a timeline: one lane per operation (steps with their
// retries, waits, callbacks, chained invokes, child contexts) and one for the
// invocations, the first run and each replay. Self-contained: it touches only
// the #durable section.
"use strict";
(() => {
  const LAMBDA = "/2025-12-01/";
  const section = document.getElementById("durable");
  if (!section) return;
  const tbody = section.querySelector("tbody");
  const opened = new Map(); // ARN -> timeline element
  // `/_cargo-fn/#durable=ARN` opens that execution's timeline (a link to it).
  if (location.hash.startsWith("#durable=")) opened.set(decodeURIComponent(location.hash.slice(9)), true);
  const enc = encodeURIComponent;

  function node(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
    return e;
  }

  async function lambda(path) {
    const r = await fetch(LAMBDA + path, { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  // Timestamps are epoch seconds (fractions allowed), as the API sends them.
  const ms = (t) => (t == null ? null : Math.round(t * 1000));
  const clock = (t) => (t == null ? "" : new Date(ms(t)).toLocaleTimeString([], { hour12: false }));
  const span = (m) => (m == null ? "" : m < 1000 ? `${Math.round(m)} ms` : m < 120000 ? `${(m / 1000).toFixed(1)} s`
    : m < 2 * 86400000 ? `${Math.round(m / 60000)} min` : `${(m / 86400000).toFixed(1)} days`);

  const KINDS = [["ChainedInvoke", "invoke"], ["Execution", "execution"], ["Context", "context"],
    ["Callback", "callback"], ["Step", "step"], ["Wait", "wait"], ["Invocation", "invocation"]];
  const kindOf = (type) => (KINDS.find(([p]) => type.startsWith(p)) || [, "event"])[1];
  const phaseOf = (type) => type.replace(/^(ChainedInvoke|Execution|Context|Callback|Step|Wait|Invocation)/, "");
  const DONE = ["Succeeded", "Failed", "TimedOut", "Stopped", "Cancelled"];

  // Events -> lanes: [{id, kind, name, status, start, end, attempts, detail}],
  // and the invocations as [{label, start, end, error}].
  function lanes(events) {
    const ops = new Map();
    const runs = [];
    for (const e of events) {
      const type = e.EventType || "";
      const kind = kindOf(type);
      const t = ms(e.EventTimestamp);
      if (kind === "invocation") {
        const d = e.InvocationCompletedDetails || {};
        runs.push({ start: ms(d.StartTimestamp) ?? t, end: ms(d.EndTimestamp) ?? t, error: !!d.Error });
        continue;
      }
      if (kind === "execution") continue;
      const id = e.Id || `#${e.EventId}`;
      let op = ops.get(id);
      if (!op) {
        op = { id, kind, name: e.Name || e.SubType || kind, status: "Started", start: t, end: null, attempts: 0, detail: "", depth: 0 };
        const parent = e.ParentId && ops.get(e.ParentId);
        if (parent) op.depth = parent.depth + 1;
        ops.set(id, op);
      }
      const phase = phaseOf(type);
      if (phase === "Failed" && e.StepFailedDetails) {
        const r = e.StepFailedDetails.RetryDetails || {};
        op.attempts = Math.max(op.attempts, r.CurrentAttempt || op.attempts + 1);
        if (r.NextAttemptDelaySeconds != null) { op.status = "Retrying"; op.detail = `retry in ${r.NextAttemptDelaySeconds} s`; continue; }
      }
      if (e.CallbackStartedDetails) op.detail = `callback id ${e.CallbackStartedDetails.CallbackId}`;
      if (e.WaitStartedDetails) op.detail = `${e.WaitStartedDetails.Duration} s`;
      if (e.ChainedInvokeStartedDetails) op.detail = `→ ${e.ChainedInvokeStartedDetails.FunctionName}`;
      if (DONE.includes(phase)) { op.status = phase; op.end = t; }
    }
    return { ops: [...ops.values()], runs };
  }

  function timeline(exec, events) {
    const { ops, runs } = lanes(events);
    const t0 = ms(exec.StartTimestamp);
    const t1 = Math.max(ms(exec.EndTimestamp) ?? Date.now(), ...ops.map((o) => o.end ?? o.start ?? t0), t0 + 1);
    const pos = (a, b) => {
      const left = ((a - t0) / (t1 - t0)) * 100;
      const width = Math.max(((b - a) / (t1 - t0)) * 100, 0.6);
      return `left:${left.toFixed(2)}%;width:${Math.min(width, 100 - left).toFixed(2)}%`;
    };
    const lane = (label, cls, bars, note) => node("div", { class: "lane" },
      node("div", { class: "label" }, label),
      node("div", { class: "track" }, ...bars),
      node("div", { class: "note" }, note));
    const rows = ops.map((o) => lane(
      `${"\u00a0\u00a0".repeat(o.depth)}${o.kind} ${o.name}`,
      o.kind,
      [node("span", { class: `bar ${o.kind} st-${o.status.toLowerCase()}`, style: pos(o.start ?? t0, o.end ?? t1),
        title: `${o.kind} ${o.name}: ${o.status}` }, "")],
      [o.status.toLowerCase(), o.attempts > 1 ? `attempt ${o.attempts}` : "", o.detail, o.end != null && o.start != null ? span(o.end - o.start) : ""]
        .filter(Boolean).join(" · ")));
    rows.push(lane("invocations", "invocation",
      runs.map((r, i) => node("span", { class: `bar invocation${r.error ? " st-failed" : ""}`, style: pos(r.start, r.end),
        title: i === 0 ? "first run" : `replay ${i}` }, i === 0 ? "run" : `replay ${i}`)),
      `${runs.length} (${Math.max(runs.length - 1, 0)} replays)`));
    return node("div", { class: "durable-timeline", "data-arn": exec.DurableExecutionArn },
      node("div", { class: "kv" }, `${clock(exec.StartTimestamp)} → ${exec.EndTimestamp ? clock(exec.EndTimestamp) : "now"} · `, node("b", {}, span(t1 - t0))),
      ...rows);
  }

  async function refreshTimeline(exec, cell) {
    try {
      const h = await lambda(`durable-executions/${enc(exec.DurableExecutionArn)}/history?IncludeExecutionData=true`);
      cell.replaceChildren(timeline(exec, h.Events || []));
    } catch (err) {
      cell.replaceChildren(node("div", { class: "st-error" }, String(err)));
    }
  }

  function row(exec, fn) {
    const arn = exec.DurableExecutionArn;
    const tr = node("tr", { class: "durable-exec", "data-arn": arn, "data-status": exec.Status },
      node("td", {}, node("b", {}, exec.DurableExecutionName)),
      node("td", {}, fn),
      node("td", { class: `st-${String(exec.Status).toLowerCase()}` }, exec.Status),
      node("td", { class: "num" }, clock(exec.StartTimestamp)),
      node("td", { class: "num" }, span(((exec.EndTimestamp ?? Date.now() / 1000) - exec.StartTimestamp) * 1000)),
      node("td", { class: "arn" }, arn));
    tr.addEventListener("click", () => {
      if (opened.has(arn)) opened.delete(arn); else opened.set(arn, true);
      poll();
    });
    return tr;
  }

  let busy = false;
  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const state = await fetch("/_cargo-fn/api/state", { cache: "no-store" }).then((r) => r.json());
      const all = [];
      for (const f of state.functions || []) {
        try {
          const list = await lambda(`functions/${enc(f.name)}/durable-executions?ReverseOrder=true&MaxItems=25`);
          for (const e of list.DurableExecutions || []) all.push([e, f.name]);
        } catch (_) { /* not durable, or no durable service: nothing to show */ }
      }
      all.sort((a, b) => b[0].StartTimestamp - a[0].StartTimestamp);
      section.hidden = all.length === 0;
      const out = [];
      for (const [e, fn] of all) {
        out.push(row(e, fn));
        if (opened.has(e.DurableExecutionArn)) {
          const cell = node("td", { colspan: "6" });
          const keep = tbody.querySelector(`tr.durable-details[data-arn="${CSS.escape(e.DurableExecutionArn)}"] td`);
          if (keep) cell.replaceChildren(...keep.childNodes);
          out.push(node("tr", { class: "durable-details", "data-arn": e.DurableExecutionArn }, cell));
          refreshTimeline(e, cell);
        }
      }
      tbody.replaceChildren(...out);
    } catch (_) {
      // watch stopped or restarting: the main page shows "disconnected".
    } finally {
      busy = false;
    }
  }

  poll();
  setInterval(poll, 2000);
})();
