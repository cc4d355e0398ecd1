// aigw console: one page, routed by the URL's fragment (#/jobs, #/jobs/ID, …).
// Every call goes to the console's own origin: session/ (sign in and out) and
// api/{router|auth|orchestrator|executors}/… (the public API, with the session's token
// added by the console). The pages never see a token. Elements are built with
// textContent only, never innerHTML, so no API value can become markup.
"use strict";

const CSRF = { "X-Aigw-Console": "1" };
const STATES = ["queued", "running", "succeeded", "failed", "canceled", "expired"];
const TERMINAL = new Set(["succeeded", "failed", "canceled", "expired"]);

let session = null; // {tenant, scopes, operator, expires_at}
let cleanups = []; // timers and streams of the page on screen

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// h builds an element: h("a", {href: "#/"}, "text", child, …).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function main() { return document.getElementById("main"); }
function show(...nodes) { main().replaceChildren(...nodes); }
function errorBox(err) { return h("div", { class: "error", role: "alert" }, err.message || String(err)); }
function fmtTime(t) { return t ? new Date(t).toLocaleString() : ""; }
function ago(t) {
  if (!t) return "";
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}
function ms(n) { return n < 1000 ? n + " ms" : (n / 1000).toFixed(1) + " s"; }
function badge(state) { return h("span", { class: "badge state-" + state, dataset: { state } }, state); }
function pretty(v) { try { return JSON.stringify(v, null, 2); } catch { return String(v); } }

// api calls the public API through the console; a 401 ends the session.
async function api(method, path, body) {
  const opts = { method, headers: { ...CSRF }, credentials: "same-origin" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("api/" + path, opts);
  if (resp.status === 401) {
    signedOut();
    throw new APIError(401, "session_expired", "Your session has ended; sign in again.");
  }
  const text = await resp.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    throw new APIError(resp.status, e.code || "error", e.message || (resp.status + " " + resp.statusText));
  }
  return data;
}

// ---- session ---------------------------------------------------------------

async function loadSession() {
  const resp = await fetch("session", { credentials: "same-origin", headers: CSRF });
  session = resp.ok ? await resp.json() : null;
  renderHeader();
}

function renderHeader() {
  const top = document.getElementById("top");
  top.hidden = !session;
  if (!session) return;
  document.getElementById("who").textContent = session.operator ? "operator" : "tenant " + session.tenant;
  document.getElementById("nav-admin").hidden = !session.operator;
}

function signedOut() {
  session = null;
  renderHeader();
  const back = location.hash && !location.hash.startsWith("#/signin") ? location.hash : "#/jobs";
  sessionStorage.setItem("aigw-after-signin", back);
  if (!location.hash.startsWith("#/signin")) location.hash = "#/signin";
}

function pageSignIn() {
  let mode = "client";
  const err = h("div");
  const fields = h("div", { class: "fields" });
  const form = h("form", { class: "card", id: "signin-form" }, fields, err,
    h("button", { type: "submit", id: "signin-submit" }, "Sign in"));
  const tabClient = h("button", { type: "button", class: "secondary", id: "tab-client" }, "API client");
  const tabAdmin = h("button", { type: "button", class: "secondary", id: "tab-admin" }, "Admin token");
  function draw() {
    tabClient.disabled = mode === "client";
    tabAdmin.disabled = mode === "admin";
    fields.replaceChildren(...(mode === "client" ? [
      h("label", {}, "Client id", h("input", { name: "client_id", id: "client_id", autocomplete: "username", required: true })),
      h("label", {}, "Client secret", h("input", { name: "client_secret", id: "client_secret", type: "password", autocomplete: "current-password", required: true })),
    ] : [
      h("label", {}, "Admin token", h("input", { name: "admin_token", id: "admin_token", type: "password", autocomplete: "current-password", required: true })),
    ]));
  }
  tabClient.addEventListener("click", () => { mode = "client"; draw(); });
  tabAdmin.addEventListener("click", () => { mode = "admin"; draw(); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const body = {};
    for (const el of form.querySelectorAll("input")) body[el.name] = el.value.trim();
    const resp = await fetch("session", { method: "POST", credentials: "same-origin",
      headers: { ...CSRF, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      err.replaceChildren(errorBox(new Error((data.error && data.error.message) || "Sign-in failed")));
      return;
    }
    session = data;
    renderHeader();
    const next = sessionStorage.getItem("aigw-after-signin") || "#/jobs";
    sessionStorage.removeItem("aigw-after-signin");
    location.hash = next;
  });
  draw();
  show(h("div", { class: "signin", id: "page-signin" },
    h("h1", {}, "Sign in to aigw"),
    h("p", { class: "muted" }, "With an API client's id and secret (your tenant's jobs), or the operator's admin token (every tenant). The console keeps only a short-lived access token, in a cookie scripts cannot read."),
    h("div", { class: "tabs" }, tabClient, tabAdmin), form));
}

// ---- jobs ------------------------------------------------------------------

async function pageJobs(params) {
  const filters = { state: params.get("state") || "", algorithm: params.get("algorithm") || "", since: params.get("since") || "" };
  const stateSel = h("select", { name: "state", id: "filter-state" }, h("option", { value: "" }, "any state"),
    STATES.map((s) => h("option", { value: s, selected: s === filters.state }, s)));
  const algoSel = h("select", { name: "algorithm", id: "filter-algorithm" }, h("option", { value: "" }, "any algorithm"));
  const sinceIn = h("select", { name: "since", id: "filter-since" },
    [["", "any time"], ["15m", "last 15 minutes"], ["1h", "last hour"], ["24h", "last 24 hours"], ["168h", "last 7 days"]]
      .map(([v, t]) => h("option", { value: v, selected: v === filters.since }, t)));
  const form = h("form", { class: "card row", id: "jobs-filter" },
    h("label", {}, "State", stateSel), h("label", {}, "Algorithm", algoSel), h("label", {}, "Created", sinceIn),
    h("button", { type: "submit" }, "Filter"),
    h("span", { class: "muted", id: "jobs-live" }, "live: refreshed every 2 s"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = "#/jobs" + (q.toString() ? "?" + q : "");
  });
  const err = h("div");
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Older jobs");
  const table = h("table", { id: "jobs-table" }, h("thead", {}, h("tr", {},
    h("th", {}, "Job"), session.operator ? h("th", {}, "Tenant") : null, h("th", {}, "Algorithm"), h("th", {}, "State"),
    h("th", {}, "Created"), h("th", { class: "num" }, "Took"), h("th", {}, "Pool"))), tbody);
  show(h("div", { id: "page-jobs" }, h("h1", {}, session.operator ? "Jobs of every tenant" : "Jobs"), form, err, table, more));

  api("GET", "router/v1/algorithms").then((d) => {
    for (const a of d.algorithms || []) algoSel.append(h("option", { value: a.name, selected: a.name === filters.algorithm }, a.name));
  }).catch(() => {});

  let cursor = "";
  let extra = []; // rows of older pages, kept under the live first page
  function query(c) {
    const q = new URLSearchParams({ limit: "50" });
    if (filters.state) q.set("state", filters.state);
    if (filters.algorithm) q.set("algorithm", filters.algorithm);
    if (filters.since) {
      const hours = { "15m": 0.25, "1h": 1, "24h": 24, "168h": 168 }[filters.since];
      if (hours) q.set("since", new Date(Date.now() - hours * 3600e3).toISOString().replace(/\.\d+Z$/, "Z"));
    }
    if (c) q.set("cursor", c);
    return "router/v1/jobs?" + q;
  }
  function row(j) {
    const took = j.started_at && j.finished_at ? ms(new Date(j.finished_at) - new Date(j.started_at)) : "";
    return h("tr", { dataset: { job: j.id } },
      h("td", {}, h("a", { href: "#/jobs/" + j.id, class: "mono" }, j.id)),
      session.operator ? h("td", {}, j.tenant) : null,
      h("td", {}, j.algorithm, j.version ? h("span", { class: "muted" }, " " + j.version) : null),
      h("td", {}, badge(j.state)), h("td", { title: fmtTime(j.created_at) }, ago(j.created_at)),
      h("td", { class: "num" }, took), h("td", {}, j.pool));
  }
  async function refresh() {
    try {
      const d = await api("GET", query(""));
      err.replaceChildren();
      const rows = (d.jobs || []).map(row);
      if (!rows.length && !extra.length) rows.push(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No jobs match.")));
      tbody.replaceChildren(...rows, ...extra);
      if (!extra.length) { cursor = d.next_cursor || ""; more.hidden = !cursor; }
    } catch (e) { if (e.status !== 401) err.replaceChildren(errorBox(e)); }
  }
  more.addEventListener("click", async () => {
    try {
      const d = await api("GET", query(cursor));
      const rows = (d.jobs || []).map(row);
      extra.push(...rows);
      tbody.append(...rows);
      cursor = d.next_cursor || "";
      more.hidden = !cursor;
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  await refresh();
  const timer = setInterval(refresh, 2000);
  cleanups.push(() => clearInterval(timer));
}

// ---- one job ---------------------------------------------------------------

async function pageJob(id) {
  let j;
  try {
    j = await api("GET", "router/v1/jobs/" + encodeURIComponent(id));
  } catch (e) {
    if (e.status === 404 || e.status === 400) return pageNotFound("No job " + id + " here.", "It does not exist, or it is another tenant's.");
    throw e;
  }
  const stateEl = h("span", { id: "job-state" });
  const fill = h("div", { class: "fill", id: "progress-fill" });
  const pct = h("span", { id: "progress-pct", class: "mono" }, "0 %");
  const progressMsg = h("span", { class: "muted", id: "progress-msg" });
  const timeline = h("ol", { class: "timeline", id: "timeline" });
  const logPre = h("pre", { id: "job-log" });
  const outputPre = h("pre", { id: "job-output" });
  const errBox = h("div", { id: "job-error" });
  const artifacts = h("div", { id: "job-artifacts" });
  const deliveries = h("div", { id: "job-deliveries" });
  const note = h("div");
  const cancelBtn = h("button", { type: "button", class: "danger", id: "job-cancel" }, "Cancel");
  const retryBtn = h("button", { type: "button", class: "secondary", id: "job-retry" }, "Retry");
  const details = h("dl", { class: "grid" });

  function setProgress(p, msg) {
    const v = Math.max(0, Math.min(100, Math.round(p * 100)));
    fill.style.width = v + "%";
    fill.classList.toggle("done", v === 100);
    pct.textContent = v + " %";
    fill.parentElement.setAttribute("aria-valuenow", String(v));
    if (msg !== undefined) progressMsg.textContent = msg || "";
  }
  function addTimeline(state, at, extra) {
    timeline.append(h("li", { dataset: { state } }, badge(state), " ", h("span", { class: "muted" }, fmtTime(at)), extra ? " " + extra : ""));
  }
  function render(job) {
    j = job;
    stateEl.replaceChildren(badge(job.state));
    cancelBtn.hidden = !(job.state === "queued" || job.state === "running");
    retryBtn.hidden = !(job.state === "failed" || job.state === "expired");
    details.replaceChildren(...[
      h("dt", {}, "Algorithm"), h("dd", {}, job.algorithm + (job.version ? " " + job.version : "")),
      h("dt", {}, "Tenant"), h("dd", {}, job.tenant),
      h("dt", {}, "Pool"), h("dd", {}, job.pool + " · priority " + job.priority),
      h("dt", {}, "Attempt"), h("dd", {}, String(job.attempt) + " of " + (job.max_retries + 1)),
      job.queue_position ? [h("dt", {}, "Queue position"), h("dd", {}, "≤ " + job.queue_position)] : null,
      job.worker ? [h("dt", {}, "Worker"), h("dd", { class: "mono" }, job.worker)] : null,
      h("dt", {}, "Input"), h("dd", {}, h("pre", { id: "job-input" }, pretty(job.input))),
    ].flat().filter(Boolean));
    if (job.state === "succeeded") setProgress(1);
    outputPre.textContent = job.output !== undefined ? pretty(job.output) : (TERMINAL.has(job.state) ? "(none)" : "(not yet)");
    errBox.replaceChildren(job.error ? h("div", { class: "error" }, job.error.code + ": " + job.error.message) : "");
    if (job.log && !logPre.textContent) logPre.textContent = job.log;
    // An artifact in the object store comes with a short-lived presigned URL.
    artifacts.replaceChildren(...(job.artifacts && job.artifacts.length ? [h("ul", {}, job.artifacts.map((a) =>
      h("li", { dataset: { artifact: a.name } }, a.url ? h("a", { href: a.url, rel: "noopener noreferrer", target: "_blank" }, a.name) : a.name,
        h("span", { class: "muted" }, " " + a.size + " bytes" + (a.sha256 ? " · sha256 " + a.sha256.slice(0, 12) + "…" : "") +
          (a.url ? "" : " (no download URL: stored without an object store)")))))] : [h("p", { class: "muted" }, "No artifacts.")]));
  }
  function timelineFromRecord(job) {
    timeline.replaceChildren();
    addTimeline("queued", job.queued_at || job.created_at);
    if (job.started_at) addTimeline("running", job.started_at);
    if (TERMINAL.has(job.state)) addTimeline(job.state, job.finished_at || job.updated_at);
  }
  async function loadDeliveries() {
    try {
      const d = await api("GET", "router/v1/jobs/" + encodeURIComponent(id) + "/deliveries");
      const ds = d.deliveries || [];
      if (!ds.length) { deliveries.replaceChildren(h("p", { class: "muted" }, j.webhook ? "No deliveries yet." : "This job has no webhook.")); return; }
      deliveries.replaceChildren(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "Status"),
        h("th", { class: "num" }, "Attempts"), h("th", {}, "Last answer"), h("th", {}, ""))),
      h("tbody", {}, ds.map((dl) => h("tr", { dataset: { delivery: dl.id, status: dl.status } }, h("td", {}, dl.event), h("td", {}, dl.status),
        h("td", { class: "num" }, dl.attempts), h("td", {}, dl.last_status_code ? String(dl.last_status_code) : (dl.last_error || "")),
        h("td", {}, dl.status === "pending" ? h("span", { class: "muted" }, "sending…") :
          h("button", { type: "button", class: "secondary redeliver", onclick: () => redeliver(dl.id) }, "Redeliver")))))));
    } catch (e) { if (e.status !== 401) deliveries.replaceChildren(errorBox(e)); }
  }
  async function redeliver(did) {
    try {
      await api("POST", "router/v1/jobs/" + encodeURIComponent(id) + "/deliveries/" + encodeURIComponent(did) + "/redeliver");
      note.replaceChildren(h("div", { class: "notice" }, "Delivery " + did + " queued again."));
      loadDeliveries();
    } catch (e) { note.replaceChildren(errorBox(e)); }
  }
  async function act(verb) {
    try {
      const job = await api("POST", "router/v1/jobs/" + encodeURIComponent(id) + "/" + verb);
      note.replaceChildren(h("div", { class: "notice", id: "job-notice" }, verb === "cancel"
        ? (job.state === "canceled" ? "Canceled." : "Asked the worker to stop the run.") : "Queued again."));
      render(job);
      if (verb === "retry") { timelineFromRecord(job); setProgress(0, ""); stream(); }
    } catch (e) { note.replaceChildren(errorBox(e)); }
  }
  cancelBtn.addEventListener("click", () => act("cancel"));
  retryBtn.addEventListener("click", () => act("retry"));

  let es = null;
  // stream follows the job's events; the timeline is rebuilt from them (the
  // stream starts at the job's first event; the browser resumes it with
  // Last-Event-ID after a drop, so nothing comes twice).
  function stream() {
    if (es) es.close();
    timeline.replaceChildren();
    es = new EventSource("api/router/v1/jobs/" + encodeURIComponent(id) + "/events");
    cleanups.push(() => es && es.close());
    es.addEventListener("state", (ev) => {
      const d = JSON.parse(ev.data);
      addTimeline(d.state, d.at, d.attempt > 1 ? "(attempt " + d.attempt + ")" : "");
      api("GET", "router/v1/jobs/" + encodeURIComponent(id)).then((job) => { render(job); if (TERMINAL.has(job.state)) loadDeliveries(); }).catch(() => {});
      if (TERMINAL.has(d.state)) { es.close(); es = null; }
    });
    es.addEventListener("progress", (ev) => { const d = JSON.parse(ev.data); setProgress(d.progress, d.message); });
    es.addEventListener("log", (ev) => {
      const d = JSON.parse(ev.data);
      logPre.textContent += (d.lines || []).join("\n") + "\n";
      logPre.scrollTop = logPre.scrollHeight;
    });
    es.addEventListener("output", (ev) => {
      const d = JSON.parse(ev.data);
      if (d.output !== undefined) outputPre.textContent = pretty(d.output);
    });
    es.onerror = () => {
      // The browser reconnects with Last-Event-ID; a lost session shows up on the next API call.
      api("GET", "router/v1/jobs/" + encodeURIComponent(id)).then(render).catch(() => {});
    };
  }

  show(h("div", { id: "page-job", dataset: { job: id } },
    h("h1", {}, "Job ", h("span", { class: "mono" }, id), " ", stateEl),
    h("div", { class: "actions" }, cancelBtn, retryBtn), note,
    h("section", { class: "card" }, h("div", { class: "progress" },
      h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", id: "progress" }, fill), pct), progressMsg),
    h("div", { class: "split" },
      h("section", { class: "card" }, h("h2", {}, "Details"), details),
      h("section", { class: "card" }, h("h2", {}, "Timeline"), timeline)),
    errBox,
    h("section", { class: "card" }, h("h2", {}, "Output"), outputPre),
    h("section", { class: "card" }, h("h2", {}, "Log"), logPre),
    h("section", { class: "card" }, h("h2", {}, "Artifacts"), artifacts),
    h("section", { class: "card" }, h("h2", {}, "Webhook deliveries"), deliveries)));
  render(j);
  timelineFromRecord(j);
  loadDeliveries();
  if (!TERMINAL.has(j.state)) stream();
  // Webhook deliveries change on the orchestrator's ticks: refresh them while they may.
  const dtimer = setInterval(() => { if (j.webhook) loadDeliveries(); }, 3000);
  cleanups.push(() => clearInterval(dtimer));
}

// ---- pools -----------------------------------------------------------------

// keyed keeps container's children one per item, in the items' order: a
// child whose item is unchanged (same signature, by default its JSON) stays
// as it is, a changed one is replaced by make(item), a gone one is removed.
// Live pages redraw only what changed, so a reader's selection, focus and
// notices stay.
function keyed(container, items, keyOf, make, sigOf) {
  const old = container.keyedRows || new Map();
  const next = new Map();
  let prev = null;
  for (const it of items) {
    const k = keyOf(it);
    const sig = sigOf ? sigOf(it) : JSON.stringify(it);
    let e = old.get(k);
    if (!e || e.sig !== sig) {
      const el = make(it);
      if (e) e.el.replaceWith(el);
      e = { el, sig };
    }
    next.set(k, e);
    const at = prev ? prev.nextSibling : container.firstChild;
    if (at !== e.el) container.insertBefore(e.el, at);
    prev = e.el;
  }
  for (const [k, e] of old) if (!next.has(k)) e.el.remove();
  container.keyedRows = next;
}

// agoEl is a "… ago" that ticks (see tickAgo) without a redraw.
function agoEl(t) { return h("span", { dataset: { ago: t || "" }, title: fmtTime(t) }, ago(t)); }
function tickAgo(root) { for (const el of root.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago); }

async function pagePools() {
  const err = h("div");
  const empty = h("p", { class: "muted", hidden: true }, "No pools yet: start a worker.");
  const tenantBox = h("div");
  const summaryBody = h("tbody");
  const summaryTable = h("table", { id: "pools-table", hidden: true }, h("thead", {}, h("tr", {}, h("th", {}, "Pool"), h("th", { class: "num" }, "Workers"),
    h("th", { class: "num" }, "Slots busy"), h("th", { class: "num" }, "GPUs busy"), h("th", { class: "num" }, "Queued"),
    h("th", { class: "num" }, "Running"), h("th", { class: "num" }, "Dead"), h("th", { class: "num" }, "Oldest wait"))), summaryBody);
  const details = h("div");
  const sections = new Map(); // pool → its operator section's parts
  const root = h("div", { id: "page-pools", dataset: { refreshes: "0" } }, h("h1", {}, "Pools"), err, empty, summaryTable, tenantBox, details);
  show(root);

  async function refresh() {
    root.dataset.refreshes = String(+root.dataset.refreshes + 1);
    let d;
    try { d = await api("GET", "router/v1/pools"); err.replaceChildren(); } catch (e) { if (e.status !== 401) err.replaceChildren(errorBox(e)); return; }
    const pools = d.pools || [];
    empty.hidden = pools.length > 0;
    if (!session.operator) { keyed(tenantBox, pools, (p) => p.name, tenantPool); return; }
    summaryTable.hidden = !pools.length;
    keyed(summaryBody, pools, (p) => p.name, summaryRow, (p) => JSON.stringify([p.name, (p.workers || []).length, p.slots, p.gpus, p.queue]));
    // The details of the pools with workers or jobs.
    const active = pools.filter((p) => (p.workers || []).length || p.queue.depth || p.queue.running || p.queue.delayed || p.queue.dead);
    keyed(details, active, (p) => p.name, (p) => section(p).el, (p) => p.name);
    for (const p of active) updateSection(sections.get(p.name), p);
    for (const name of [...sections.keys()]) if (!active.some((p) => p.name === name)) sections.delete(name);
    tickAgo(root);
  }
  function summaryRow(p) {
    return h("tr", { dataset: { pool: p.name } }, h("td", {}, p.name), h("td", { class: "num" }, (p.workers || []).length),
      h("td", { class: "num" }, p.slots.busy + " / " + p.slots.total), h("td", { class: "num" }, p.gpus.busy + " / " + p.gpus.total),
      h("td", { class: "num" }, p.queue.depth), h("td", { class: "num" }, p.queue.running), h("td", { class: "num" }, p.queue.dead),
      h("td", { class: "num" }, p.queue.oldest_wait_ms ? ms(p.queue.oldest_wait_ms) : ""));
  }
  function counts(c) { return c.busy + " busy / " + c.total + " (" + c.free + " free)"; }
  function tenantPool(p) {
    return h("section", { class: "card", dataset: { pool: p.name } }, h("h2", {}, p.name),
      h("dl", { class: "grid" }, h("dt", {}, "Workers"), h("dd", {}, p.workers), h("dt", {}, "Slots"), h("dd", {}, counts(p.slots)),
        h("dt", {}, "GPUs"), h("dd", {}, counts(p.gpus)), h("dt", {}, "Your jobs"), h("dd", {}, p.jobs.queued + " queued, " + p.jobs.running + " running")));
  }
  // section makes a pool's section once; updateSection changes its parts.
  function section(p) {
    const s = {
      stats: h("dl", { class: "grid" }),
      workers: h("tbody"),
      noWorkers: h("p", { class: "muted" }, "No live workers."),
      notice: h("div", { class: "redrive-notice" }),
      deadErr: h("div"),
      deadBody: h("tbody"),
      noDead: h("p", { class: "muted" }, "None."),
      dead: -1,
    };
    const path = "router/v1/admin/pools/" + encodeURIComponent(p.name) + "/dead-letters";
    s.path = path;
    s.redriveAll = h("button", { type: "button", class: "secondary", hidden: true, onclick: async () => {
      try { const r = await api("POST", path + "/redrive"); s.notice.replaceChildren(h("div", { class: "notice" }, r.redriven + " redriven.")); loadDeadLetters(s); } catch (e) { s.deadErr.replaceChildren(errorBox(e)); }
    } }, "Redrive all");
    s.workersTable = h("table", { class: "workers" }, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Kind"), h("th", {}, "Address"),
      h("th", {}, "Version"), h("th", {}, "Slots"), h("th", {}, "GPUs"), h("th", { class: "num" }, "Jobs held"), h("th", {}, "Heartbeat"))), s.workers);
    s.deadTable = h("table", { hidden: true }, h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Tenant"), h("th", {}, "Algorithm"), h("th", {}, "Reason"),
      h("th", { class: "num" }, "Deliveries"), h("th", {}, "Dead since"), h("th", {}, ""))), s.deadBody);
    s.el = h("section", { class: "card pool", dataset: { pool: p.name } }, h("h2", {}, p.name), s.stats,
      h("h2", {}, "Workers and executors"), s.workersTable, s.noWorkers,
      h("h2", {}, "Dead letters"), h("div", { id: "dead-" + p.name }, s.notice, s.deadErr, s.redriveAll, s.deadTable, s.noDead));
    sections.set(p.name, s);
    return s;
  }
  function updateSection(s, p) {
    const q = p.queue || {};
    const ready = q.ready || {};
    const stats = [counts(p.slots), counts(p.gpus), q, q.oldest_wait_ms];
    const sig = JSON.stringify(stats);
    if (s.statsSig !== sig) {
      s.statsSig = sig;
      s.stats.replaceChildren(
        h("dt", {}, "Slots"), h("dd", {}, counts(p.slots)), h("dt", {}, "GPUs"), h("dd", {}, counts(p.gpus)),
        h("dt", {}, "Queue"), h("dd", {}, "depth " + q.depth + " — high " + (ready.high || 0) + ", normal " + (ready.normal || 0) + ", low " + (ready.low || 0) +
          "; running " + q.running + ", delayed " + q.delayed + ", dead " + q.dead),
        h("dt", {}, "Oldest wait"), h("dd", {}, q.oldest_wait_ms ? ms(q.oldest_wait_ms) : "none waiting"));
    }
    const ws = p.workers || [];
    s.workersTable.hidden = !ws.length;
    s.noWorkers.hidden = ws.length > 0;
    keyed(s.workers, ws, (w) => w.node, workerRow);
    // The dead letters: read again when their count changes (a redrive reads them itself).
    if (q.dead !== s.dead) { s.dead = q.dead; loadDeadLetters(s); }
  }
  function workerRow(w) {
    const kind = w.kind || "agent";
    return h("tr", { dataset: { worker: w.node, kind } },
      h("td", { class: "mono" }, w.node, w.draining ? " (draining)" : ""), h("td", {}, h("span", { class: "badge kind-" + kind }, kind)),
      h("td", { class: "mono addr" }, w.addr || ""), h("td", {}, w.version), h("td", {}, w.slots_busy + " / " + w.slots),
      h("td", {}, (w.gpus || []).length ? w.gpus.map((g) => h("div", {}, "#" + g.index + " " + g.name + " — " + g.memory_used_mb + " / " + g.memory_total_mb + " MiB" +
        ", " + (g.utilization_pct || 0) + " % utilised" + (g.busy ? ", in use" : ""))) : h("span", { class: "muted" }, "none")),
      h("td", { class: "num held" }, w.jobs_held || 0), h("td", { class: "heartbeat" }, agoEl(w.heartbeat_at)));
  }
  async function loadDeadLetters(s) {
    if (!s.dead) { keyed(s.deadBody, [], (x) => x.id, () => null); s.deadTable.hidden = true; s.redriveAll.hidden = true; s.noDead.hidden = false; return; }
    try {
      const d = await api("GET", s.path + "?limit=50");
      const dl = d.dead_letters || [];
      s.deadErr.replaceChildren();
      s.deadTable.hidden = !dl.length;
      s.redriveAll.hidden = !dl.length;
      s.noDead.hidden = dl.length > 0;
      keyed(s.deadBody, dl, (x) => x.id, (x) => deadRow(s, x), (x) => JSON.stringify([x.id, x.reason, x.deliveries, x.dead_at]));
      tickAgo(s.deadBody);
    } catch (e) {
      if (e.status === 401) return;
      s.deadErr.replaceChildren(e.status === 404 ? h("p", { class: "muted" }, "This API has no dead-letter endpoint.") : errorBox(e));
    }
  }
  function deadRow(s, x) {
    return h("tr", { dataset: { deadLetter: x.id, job: x.job_id } }, h("td", {}, h("a", { href: "#/jobs/" + x.job_id, class: "mono" }, x.job_id)), h("td", {}, x.tenant),
      h("td", {}, x.algorithm), h("td", {}, x.reason), h("td", { class: "num" }, x.deliveries), h("td", {}, agoEl(x.dead_at)),
      h("td", {}, h("button", { type: "button", class: "secondary redrive", onclick: async () => {
        try {
          await api("POST", s.path + "/" + encodeURIComponent(x.id) + "/redrive");
          s.notice.replaceChildren(h("div", { class: "notice" }, "Job " + x.job_id + " queued again."));
          loadDeadLetters(s);
        } catch (e) { s.deadErr.replaceChildren(errorBox(e)); }
      } }, "Redrive")));
  }
  await refresh();
  const timer = setInterval(refresh, 5000);
  cleanups.push(() => clearInterval(timer));
}

// ---- algorithms ------------------------------------------------------------

async function pageAlgorithms() {
  const d = await api("GET", "router/v1/algorithms");
  const algos = d.algorithms || [];
  show(h("div", { id: "page-algorithms" }, h("h1", {}, "Algorithms"),
    algos.length ? h("table", { id: "algorithms-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Version"), h("th", {}, "Versions"),
      h("th", {}, "Pool"), h("th", {}, "Resources"), h("th", {}, "Timeout"), h("th", {}, "Description"))),
    h("tbody", {}, algos.map((a) => h("tr", { dataset: { algorithm: a.name } }, h("td", {}, h("a", { href: "#/algorithms/" + a.name }, a.name)),
      h("td", {}, a.version), h("td", {}, (a.versions || []).join(", ")), h("td", {}, a.pool), h("td", {}, resources(a.resources)),
      h("td", {}, a.timeout_ms ? ms(a.timeout_ms) : ""), h("td", {}, a.description || ""))))) : h("p", { class: "muted" }, "No algorithms registered.")));
}

function resources(r) {
  r = r || {};
  const parts = [];
  if (r.gpus) parts.push(r.gpus + " GPU");
  if (r.memory_mb) parts.push(r.memory_mb + " MB");
  return parts.join(", ") || "CPU";
}

async function pageAlgorithm(name, params) {
  let a;
  try {
    const v = params.get("version");
    a = await api("GET", "router/v1/algorithms/" + encodeURIComponent(name) + (v ? "?version=" + encodeURIComponent(v) : ""));
  } catch (e) {
    if (e.status === 404) return pageNotFound("No algorithm " + name + ".", "");
    throw e;
  }
  const schema = a.input_schema || {};
  const form = schemaForm(schema);
  const err = h("div");
  const raw = h("textarea", { id: "run-raw", hidden: true, rows: 8 });
  const rawToggle = h("label", { class: "check" }, h("input", { type: "checkbox", id: "run-raw-toggle", onchange: (ev) => {
    raw.hidden = !ev.target.checked;
    form.el.hidden = ev.target.checked;
    if (ev.target.checked) { try { raw.value = pretty(form.value()); } catch { raw.value = "{}"; } }
  } }), " edit the input as JSON");
  const priority = h("select", { id: "run-priority" }, ["normal", "high", "low"].map((p) => h("option", { value: p }, p)));
  const version = h("select", { id: "run-version" }, (a.versions || [a.version]).map((v) => h("option", { value: v, selected: v === a.version }, v)));
  const webhook = h("input", { id: "run-webhook", type: "url", placeholder: "https://example.com/hook (optional)", size: 40 });
  const run = h("form", { class: "card", id: "run-form" }, h("h2", {}, "Run it"), form.el, raw, rawToggle,
    h("div", { class: "row" }, h("label", {}, "Version", version), h("label", {}, "Priority", priority), h("label", {}, "Webhook", webhook),
      h("button", { type: "submit", id: "run-submit" }, "Run")), err);
  run.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    let input;
    try { input = raw.hidden ? form.value() : JSON.parse(raw.value); } catch (e) { err.replaceChildren(errorBox(e)); return; }
    const body = { input, version: version.value, policy: { priority: priority.value } };
    if (webhook.value.trim()) body.webhook = webhook.value.trim();
    try {
      const job = await api("POST", "router/v1/algorithms/" + encodeURIComponent(name) + "/jobs", body);
      location.hash = "#/jobs/" + job.id;
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  show(h("div", { id: "page-algorithm", dataset: { algorithm: name } },
    h("h1", {}, a.name, " ", h("span", { class: "muted" }, a.version)),
    a.description ? h("p", {}, a.description) : null,
    h("div", { class: "split" },
      h("section", { class: "card" }, h("h2", {}, "Definition"), h("dl", { class: "grid" },
        h("dt", {}, "Versions"), h("dd", {}, (a.versions || []).join(", ")), h("dt", {}, "Pool"), h("dd", {}, a.pool),
        h("dt", {}, "Resources"), h("dd", {}, resources(a.resources)), h("dt", {}, "Timeout"), h("dd", {}, a.timeout_ms ? ms(a.timeout_ms) : "none"),
        h("dt", {}, "Retries"), h("dd", {}, String(a.max_retries)), h("dt", {}, "Updated"), h("dd", {}, fmtTime(a.updated_at)))),
      h("section", { class: "card" }, h("h2", {}, "Input schema"), h("pre", { id: "input-schema" }, pretty(schema)))),
    run));
}

// schemaForm makes inputs for an object schema's properties (strings,
// numbers, integers, booleans, enums; anything else as JSON), and returns the
// form element and a function that reads its value.
function schemaForm(schema) {
  const props = (schema && schema.type === "object" && schema.properties) || null;
  if (!props) {
    const ta = h("textarea", { name: "input", id: "input-json", rows: 6 }, "{}");
    return { el: h("div", {}, h("label", {}, "Input (JSON)", ta)), value: () => JSON.parse(ta.value) };
  }
  const required = new Set(schema.required || []);
  const readers = [];
  const fields = Object.entries(props).map(([key, p]) => {
    p = p || {};
    const id = "input-" + key;
    const label = key + (required.has(key) ? " *" : "");
    const hint = [p.description, p.minimum !== undefined ? "min " + p.minimum : "", p.maximum !== undefined ? "max " + p.maximum : ""].filter(Boolean).join(", ");
    let el, read;
    if (Array.isArray(p.enum)) {
      el = h("select", { id, name: key }, required.has(key) ? null : h("option", { value: "" }, ""),
        p.enum.map((v) => h("option", { value: JSON.stringify(v), selected: p.default === v }, String(v))));
      read = () => (el.value === "" ? undefined : JSON.parse(el.value));
    } else if (p.type === "boolean") {
      el = h("input", { id, name: key, type: "checkbox", checked: p.default === true });
      read = () => el.checked;
      return [h("label", { class: "check" }, el, " " + label), read, key];
    } else if (p.type === "integer" || p.type === "number") {
      el = h("input", { id, name: key, type: "number", step: p.type === "integer" ? "1" : "any", min: p.minimum, max: p.maximum,
        value: p.default, required: required.has(key) });
      read = () => (el.value === "" ? undefined : Number(el.value));
    } else if (p.type === "string") {
      const long = (p.maxLength || 0) > 200 && !p.format;
      el = long ? h("textarea", { id, name: key, rows: 3, required: required.has(key) }, p.default || "")
        : h("input", { id, name: key, type: "text", value: p.default, required: required.has(key), size: 40 });
      read = () => (el.value === "" && !required.has(key) ? undefined : el.value);
    } else {
      el = h("textarea", { id, name: key, rows: 4, placeholder: "JSON" }, p.default !== undefined ? pretty(p.default) : "");
      read = () => (el.value.trim() === "" ? undefined : JSON.parse(el.value));
    }
    return [h("label", {}, label, el, hint ? h("span", { class: "muted" }, hint) : null), read, key];
  });
  for (const [, read, key] of fields) readers.push([key, read]);
  return {
    el: h("div", { class: "row", id: "schema-form" }, fields.map((f) => f[0])),
    value: () => {
      const out = {};
      for (const [key, read] of readers) { const v = read(); if (v !== undefined) out[key] = v; }
      return out;
    },
  };
}

// ---- admin -----------------------------------------------------------------

async function pageAdmin() {
  if (!session.operator) return pageNotFound("Nothing here.", "The admin page is for the operator (sign in with the admin token).");
  const err = h("div");
  const created = h("div", { id: "client-created" });
  const tbody = h("tbody");
  const secrets = h("div", { id: "webhook-secrets" });
  const name = h("input", { id: "new-client-name", required: true, placeholder: "billing-service" });
  const tenant = h("input", { id: "new-client-tenant", required: true, placeholder: "acme" });
  const scopes = ["jobs:read", "jobs:write"].map((s) => h("input", { type: "checkbox", value: s, checked: true, id: "scope-" + s.replace(":", "-") }));
  const form = h("form", { class: "card", id: "new-client" }, h("h2", {}, "New API client"),
    h("div", { class: "row" }, h("label", {}, "Name", name), h("label", {}, "Tenant", tenant),
      scopes.map((s) => h("label", { class: "check" }, s, " " + s.value)), h("button", { type: "submit" }, "Create")), created);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    created.replaceChildren();
    try {
      const c = await api("POST", "auth/admin/clients", { name: name.value.trim(), tenant: tenant.value.trim(),
        scopes: scopes.filter((s) => s.checked).map((s) => s.value) });
      created.replaceChildren(h("div", { class: "notice" }, h("strong", {}, "Copy the secret now: it is not shown again."),
        h("dl", { class: "grid" }, h("dt", {}, "client_id"), h("dd", { class: "mono", id: "created-id" }, c.client_id),
          h("dt", {}, "client_secret"), h("dd", { class: "mono", id: "created-secret" }, c.client_secret))));
      name.value = "";
      load();
    } catch (e) { created.replaceChildren(errorBox(e)); }
  });
  async function load() {
    try {
      const d = await api("GET", "auth/admin/clients");
      const cs = d.clients || [];
      tbody.replaceChildren(...cs.map((c) => h("tr", { dataset: { client: c.client_id } }, h("td", { class: "mono" }, c.client_id), h("td", {}, c.name),
        h("td", {}, c.tenant), h("td", {}, (c.scopes || []).join(" ")), h("td", {}, fmtTime(c.created_at)),
        h("td", {}, c.revoked_at ? h("span", { class: "muted" }, "revoked " + fmtTime(c.revoked_at)) :
          h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm("Revoke " + c.name + "? Its tokens stop working when they expire.")) return;
            try { await api("DELETE", "auth/admin/clients/" + encodeURIComponent(c.client_id)); load(); } catch (e) { err.replaceChildren(errorBox(e)); }
          } }, "Revoke")))));
      const tenants = [...new Set(cs.map((c) => c.tenant))].sort();
      secrets.replaceChildren(...tenants.map(secretRow), lookup);
    } catch (e) { if (e.status !== 401) err.replaceChildren(errorBox(e)); }
  }
  const executorsSection = adminExecutors();
  // Any tenant's secret, also of one without clients.
  const other = h("input", { id: "secret-tenant", placeholder: "tenant", size: 16 });
  const lookup = h("form", { class: "row", id: "secret-lookup" }, other, h("button", { type: "submit", class: "secondary" }, "Look up"));
  lookup.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = other.value.trim();
    if (t && !secrets.querySelector('[data-tenant="' + CSS.escape(t) + '"]')) secrets.insertBefore(secretRow(t), lookup);
    other.value = "";
  });
  function secretRow(t) {
    const out = h("span", { class: "mono" });
    const fetchSecret = (method) => async () => {
      try {
        const s = await api(method, "orchestrator/admin/tenants/" + encodeURIComponent(t) + "/webhook-secret");
        out.textContent = s.secret;
      } catch (e) { out.replaceChildren(errorBox(e)); }
    };
    return h("div", { class: "row", dataset: { tenant: t } }, h("strong", {}, t),
      h("button", { type: "button", class: "secondary", onclick: fetchSecret("GET") }, "Show"),
      h("button", { type: "button", class: "secondary", onclick: () => { if (confirm("Rotate " + t + "'s webhook secret?")) fetchSecret("POST")(); } }, "Rotate"), out);
  }

  show(h("div", { id: "page-admin" }, h("h1", {}, "Admin"), err, form,
    h("section", { class: "card" }, h("h2", {}, "API clients"), h("table", { id: "clients-table" }, h("thead", {}, h("tr", {},
      h("th", {}, "Client id"), h("th", {}, "Name"), h("th", {}, "Tenant"), h("th", {}, "Scopes"), h("th", {}, "Created"), h("th", {}, ""))), tbody)),
    h("section", { class: "card" }, h("h2", {}, "Tenants' webhook secrets"),
      h("p", { class: "muted" }, "Receivers verify the webhook-signature header with their tenant's secret (Standard Webhooks). Rotating keeps the old secret valid for a while."), secrets),
    quotaSection(), executorsSection.el));
  await Promise.all([load(), executorsSection.load()]);
}

// adminExecutors: the executor credentials of remote executors (aigw-worker
// --join): create one for a pool (its token shown once), list, revoke (its
// next call is refused and the jobs it held are queued again).
function adminExecutors() {
  const err = h("div");
  const created = h("div", { id: "executor-created" });
  const tbody = h("tbody");
  const none = h("p", { class: "muted", hidden: true }, "No executor credentials yet.");
  const pool = h("input", { id: "new-executor-pool", required: true, placeholder: "edge" });
  const name = h("input", { id: "new-executor-name", required: true, placeholder: "laptop-1" });
  const form = h("form", { class: "row", id: "new-executor" }, h("label", {}, "Pool", pool), h("label", {}, "Name", name),
    h("button", { type: "submit" }, "Create"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    created.replaceChildren();
    try {
      const c = await api("POST", "executors/admin/executors", { pool: pool.value.trim(), name: name.value.trim() });
      created.replaceChildren(h("div", { class: "notice" }, h("strong", {}, "Copy the token now: it is not shown again."),
        h("dl", { class: "grid" }, h("dt", {}, "id"), h("dd", { class: "mono", id: "executor-created-id" }, c.id),
          h("dt", {}, "token"), h("dd", { class: "mono", id: "executor-created-token" }, c.token)),
        h("p", { class: "muted" }, "On the executor: aigw-worker --join <the gateway>/function/executors --token <the token>")));
      name.value = "";
      load();
    } catch (e) { created.replaceChildren(errorBox(e)); }
  });
  async function load() {
    try {
      const d = await api("GET", "executors/admin/executors");
      const xs = d.executors || [];
      none.hidden = xs.length > 0;
      keyed(tbody, xs, (x) => x.id, (x) => h("tr", { dataset: { executor: x.id } }, h("td", { class: "mono" }, x.id), h("td", {}, x.name),
        h("td", {}, x.pool), h("td", {}, fmtTime(x.created_at)),
        h("td", {}, x.revoked_at ? h("span", { class: "muted" }, "revoked " + fmtTime(x.revoked_at)) :
          h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm("Revoke executor " + x.name + "? Its next call is refused and the jobs it holds are queued again.")) return;
            try { await api("DELETE", "executors/admin/executors/" + encodeURIComponent(x.id)); load(); } catch (e) { err.replaceChildren(errorBox(e)); }
          } }, "Revoke"))));
      err.replaceChildren();
    } catch (e) {
      if (e.status === 401) return;
      err.replaceChildren(e.status === 404 ? h("p", { class: "muted" }, "This gateway serves no executors function.") : errorBox(e));
    }
  }
  const el = h("section", { class: "card", id: "executors" }, h("h2", {}, "Remote executors"),
    h("p", { class: "muted" }, "Machines outside the private network serve a pool with a pool-scoped token; they never hold the Redis or MongoDB credentials. The pools page shows them live."),
    form, created, err, h("table", { id: "executors-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Name"), h("th", {}, "Pool"),
      h("th", {}, "Created"), h("th", {}, ""))), tbody), none);
  return { el, load };
}

// quotaSection reads and sets one tenant's quotas per pool (GET/PUT
// /v1/admin/tenants/{tenant}/quotas): concurrent runs, GPU-seconds per
// window, and fair-share weights (the tenant's, and a pool's own).
function quotaSection() {
  const tenant = h("input", { id: "quota-tenant", required: true, placeholder: "acme", size: 16 });
  const lookup = h("form", { class: "row", id: "quota-lookup" }, h("label", {}, "Tenant", tenant), h("button", { type: "submit", class: "secondary" }, "Load"));
  const box = h("div", { id: "quota-editor" });
  const note = h("div", { id: "quota-note" });
  lookup.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = tenant.value.trim();
    note.replaceChildren();
    if (!t) return;
    try { edit(await api("GET", "router/v1/admin/tenants/" + encodeURIComponent(t) + "/quotas")); } catch (e) { box.replaceChildren(); note.replaceChildren(errorBox(e)); }
  });
  function num(v, attrs) { return h("input", { type: "number", min: "0", value: v === undefined || v === null ? "" : v, ...attrs }); }
  function edit(q) {
    const rows = h("tbody");
    const weight = num(q.weight, { id: "quota-weight", step: "any", placeholder: "1" });
    function row(p) {
      p = p || {};
      const tr = h("tr", { class: "quota-row", dataset: { pool: p.pool || "" } },
        h("td", {}, h("input", { class: "pool", name: "pool", value: p.pool || "", placeholder: "gpu", required: true })),
        h("td", {}, num(p.max_running, { name: "max_running", step: "1", placeholder: "no limit" })),
        h("td", {}, num(p.gpu_seconds, { name: "gpu_seconds", step: "any", placeholder: "no limit" })),
        h("td", {}, h("input", { name: "window", value: p.window || "", placeholder: "24h", size: 8 })),
        h("td", {}, num(p.weight, { name: "weight", step: "any", placeholder: "tenant's" })),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: () => tr.remove() }, "Remove")));
      return tr;
    }
    rows.append(...(q.pools || []).map(row));
    const form = h("form", { id: "quota-form" },
      h("div", { class: "row" }, h("label", {}, "Fair-share weight in every pool", weight)),
      h("table", { class: "quotas", id: "quota-table" }, h("thead", {}, h("tr", {}, h("th", {}, "Pool"), h("th", {}, "Max running"),
        h("th", {}, "GPU-seconds"), h("th", {}, "Window"), h("th", {}, "Weight"), h("th", {}, ""))), rows),
      h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "quota-add", onclick: () => rows.append(row()) }, "Add a pool"),
        h("button", { type: "submit", id: "quota-save" }, "Save " + q.tenant + "'s quotas")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      note.replaceChildren();
      // Empty fields are no limit (left out); the API checks every value and names a bad one.
      const body = { pools: [...rows.querySelectorAll("tr")].map((tr) => {
        const f = (n) => tr.querySelector('[name="' + n + '"]').value.trim();
        const p = { pool: f("pool") };
        if (f("max_running") !== "") p.max_running = Number(f("max_running"));
        if (f("gpu_seconds") !== "") p.gpu_seconds = Number(f("gpu_seconds"));
        if (f("window") !== "") p.window = f("window");
        if (f("weight") !== "") p.weight = Number(f("weight"));
        return p;
      }) };
      if (weight.value.trim() !== "") body.weight = Number(weight.value);
      try {
        const saved = await api("PUT", "router/v1/admin/tenants/" + encodeURIComponent(q.tenant) + "/quotas", body);
        edit(saved);
        note.replaceChildren(h("div", { class: "notice", id: "quota-saved" }, "Saved " + saved.tenant + "'s quotas."));
      } catch (e) { note.replaceChildren(errorBox(e)); }
    });
    box.replaceChildren(h("h3", {}, "Quotas of ", h("span", { class: "mono", id: "quota-of" }, q.tenant)), form);
  }
  return h("section", { class: "card", id: "quotas" }, h("h2", {}, "Tenants' quotas"),
    h("p", { class: "muted" }, "Per pool: how many of the tenant's jobs run at once (more wait in the queue), and GPU-seconds per window (submits beyond get 429). Empty is no limit. A quota lowered below current use stops nothing; new work waits. Weights share a pool's slots between tenants with work waiting (default 1)."),
    lookup, box, note);
}

// ---- routing ---------------------------------------------------------------

function pageNotFound(title, detail) {
  show(h("div", { class: "notfound", id: "page-404" }, h("div", { class: "code" }, "404"), h("h1", {}, title || "Not found"),
    detail ? h("p", { class: "muted" }, detail) : null, h("p", {}, h("a", { href: "#/jobs" }, "Back to the jobs"))));
}

async function route() {
  for (const f of cleanups.splice(0)) f();
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  const [pathPart, queryPart] = hash.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(queryPart || "");
  if (parts[0] === "signin") { pageSignIn(); return; }
  if (!session) { await loadSession(); if (!session) { signedOut(); return; } }
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.dataset.nav === parts[0]);
  try {
    if (parts[0] === "jobs" && parts.length === 1) await pageJobs(params);
    else if (parts[0] === "jobs" && parts.length === 2) await pageJob(parts[1]);
    else if (parts[0] === "pools") await pagePools();
    else if (parts[0] === "algorithms" && parts.length === 1) await pageAlgorithms();
    else if (parts[0] === "algorithms" && parts.length === 2) await pageAlgorithm(parts[1], params);
    else if (parts[0] === "admin") await pageAdmin();
    else pageNotFound("No page " + pathPart + ".", "");
  } catch (e) {
    if (e.status === 401) return;
    show(errorBox(e));
  }
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("signout").addEventListener("click", async () => {
    await fetch("session", { method: "DELETE", credentials: "same-origin", headers: CSRF });
    session = null;
    renderHeader();
    sessionStorage.removeItem("aigw-after-signin");
    location.hash = "#/signin";
  });
  route();
});
