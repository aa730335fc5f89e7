// The Soorma local console (soorma.local.console): a page with no build step. It reads the platform through its own
// HTTP routes (functions/http_api.py ROUTES) on this same origin with the stack's API key, and the dead letters
// through the console's two routes. Every value from the platform is put in the page as text (textContent), never
// parsed as HTML: an event's data must not be able to run script in the page that holds the key.
"use strict";

const KEY_STORAGE = "soorma.console.apiKey";
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const GOALS_POLL_MS = 2000;
const GOAL_POLL_MS = 1000;
const SETTLE_MS = 15000; // how long a goal's view still refreshes after the goal ended (late spans and usage)
const STREAM_PATH = "/v1/stream"; // soorma.functions.http_api: STREAM_PATH, STREAM_SUBPROTOCOL, STREAM_BEARER_PROTOCOL_PREFIX
const STREAM_SUBPROTOCOL = "soorma.stream.v1";
const STREAM_BEARER_PROTOCOL_PREFIX = "base64url.bearer.soorma.";
const STREAM_SAFETY_POLL_MS = 30000; // with the stream up, a refresh now and then all the same (another user's goals)
let pollTimer = null;
let refreshNow = () => {};
let stream = null; // the view's WebSocket, closed when the view changes
let viewToken = 0; // bumped on every navigation: a late answer of an earlier view is dropped

// -- helpers ----------------------------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...nodes(children));
  return node;
}

// Children as DOM nodes: nested lists flattened, null/undefined/false left out, anything else as a text node.
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

// Replace a node's children (the DOM's replaceChildren would turn a list or a null into text).
function fill(node, ...children) {
  node.replaceChildren(...nodes(children));
  return node;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${apiKey() || ""}` }, options.headers || {});
  const init = { method: options.method || "GET", headers, cache: "no-store", credentials: "omit" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    return { status: 0, data: { message: `the local stack does not answer (${err})` } };
  }
  let data = null;
  const text = await response.text();
  try { data = text ? JSON.parse(text) : null; } catch (err) { data = { message: text }; }
  if (response.status === 401 && !options.quiet) signOut("The key was refused (401): sign in again.");
  return { status: response.status, data };
}

function problem(answer) {
  const data = answer.data || {};
  let detail = data.detail !== undefined ? data.detail : data.message;
  if (typeof detail !== "string") detail = json(detail);
  return `${answer.status || "no answer"}: ${detail || "request failed"}`;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

function ms(iso) {
  const value = iso ? Date.parse(iso) : NaN;
  return isNaN(value) ? null : value;
}

function duration(milliseconds) {
  if (milliseconds === null || milliseconds === undefined || isNaN(milliseconds)) return "";
  if (milliseconds < 1000) return `${Math.round(milliseconds)} ms`;
  if (milliseconds < 60000) return `${(milliseconds / 1000).toFixed(2)} s`;
  return `${Math.floor(milliseconds / 60000)} min ${Math.round((milliseconds % 60000) / 1000)} s`;
}

function statusBadge(status) {
  return el("span", { class: `status ${status}`, "data-status": status, text: status });
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

// Run fn now and again every interval ms (a number, or a function answering it) until it answers false or the view
// changes; refreshNow() runs it at once (a stream frame), never two at a time.
function poll(fn, interval) {
  stopPolling();
  const token = viewToken;
  let running = false;
  let pending = false;
  const tick = async () => {
    if (token !== viewToken) return;
    if (running) { pending = true; return; } // a frame during a refresh: once more right after it
    running = true;
    if (pollTimer) clearTimeout(pollTimer);
    let again = true;
    try { again = (await fn()) !== false; } catch (err) { console.error(err); }
    running = false;
    if (token !== viewToken) return;
    if (pending) { pending = false; tick(); return; }
    if (again) pollTimer = setTimeout(tick, typeof interval === "function" ? interval() : interval);
  };
  refreshNow = tick;
  tick();
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
  refreshNow = () => {};
  if (stream) stream.close();
  stream = null;
}

// The live stream (/v1/stream, docs/architecture.md "Live goal streams"). A browser's WebSocket cannot send an
// Authorization header, so the key goes as a subprotocol entry (base64url, the stream's $connect authorizer checks it
// as the header) next to the stream's own subprotocol, which the server selects: the key's entry is never echoed.
function base64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Open the stream for this view and send `message` once open; each frame goes to onFrame; onLive(true|false) says
// whether frames flow (false: it could not open or it closed, and the view polls as before).
function openStream(message, onFrame, onLive) {
  const token = viewToken;
  let socket;
  try {
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${STREAM_PATH}`,
      [STREAM_SUBPROTOCOL, STREAM_BEARER_PROTOCOL_PREFIX + base64url(apiKey() || "")]);
  } catch (err) {
    onLive(false);
    return;
  }
  stream = socket;
  socket.addEventListener("open", () => {
    if (token !== viewToken) return;
    socket.send(JSON.stringify(message));
    onLive(true);
  });
  socket.addEventListener("message", (frame) => {
    if (token !== viewToken) return;
    let data;
    try { data = JSON.parse(frame.data); } catch (err) { return; }
    onFrame(data);
  });
  socket.addEventListener("close", () => { if (token === viewToken) { stream = null; onLive(false); } });
}

function liveNote(id) {
  const note = el("span", { class: "note", id, "data-mode": "polling" });
  return { note, set: (live, interval) => {
    note.dataset.mode = live ? "stream" : "polling";
    note.textContent = live ? `live (stream) · ${new Date().toLocaleTimeString()}`
      : `live (polling every ${interval / 1000} s) · ${new Date().toLocaleTimeString()}`;
  } };
}

// -- sign in ----------------------------------------------------------------------------------------------------
function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  stopPolling();
  showLogin(message || "");
}

function showLogin(message) {
  document.getElementById("nav").hidden = true;
  fill(document.getElementById("main"));
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("api-key").focus();
}

async function signIn(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
  const answer = await api("/v1/goals?limit=1", { quiet: true });
  if (answer.status !== 200) {
    sessionStorage.removeItem(KEY_STORAGE);
    showLogin(answer.status === 401 || answer.status === 403 ? "The stack refused this key." : problem(answer));
    return false;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  route();
  return true;
}

// -- views ------------------------------------------------------------------------------------------------------
const views = {
  goals: goalsView,
  goal: goalView,
  inputs: inputsView,
  agents: agentsView,
  "dead-letters": deadLettersView,
  memory: memoryView,
};

function route() {
  if (!apiKey()) { showLogin(""); return; }
  viewToken += 1;
  stopPolling();
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "goals").split("/");
  const view = views[name] || goalsView;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === (name === "goal" ? "goals" : name));
  }
  const main = document.getElementById("main");
  fill(main);
  view(main, rest.map(decodeURIComponent));
}

// Goals: submit one, and the latest goals with their live status (polled).
function goalsView(main) {
  const error = el("p", { class: "error", role: "alert" });
  const goalType = el("input", { id: "goal-type", placeholder: "e.g. research.goal", required: true });
  const data = el("textarea", { id: "goal-data", rows: 2 });
  data.value = "{}";
  const form = el("form", {
    id: "submit-goal", class: "panel",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      let parsed;
      try { parsed = JSON.parse(data.value || "{}"); } catch (err) { error.textContent = `data is not JSON: ${err.message}`; return; }
      const answer = await api("/v1/goals", { method: "POST", body: { goal_type: goalType.value.trim(), data: parsed } });
      if (answer.status !== 202 && answer.status !== 200) { error.textContent = problem(answer); return; }
      location.hash = `#/goal/${encodeURIComponent(answer.data.goal_id)}`;
    },
  }, el("h2", { text: "Submit a goal" }),
  el("div", { class: "row" }, el("label", {}, "Goal type ", goalType), el("label", {}, "Data (JSON) ", data),
    el("button", { type: "submit", id: "submit-goal-button", text: "Submit" })), error);

  const statusFilter = el("select", { id: "goal-status-filter", onchange: () => refresh() },
    ["", "running", "input-required", "completed", "failed", "cancelled", "queued", "pending"].map(
      (s) => el("option", { value: s, text: s || "any status" })));
  const body = el("tbody", { id: "goal-rows" });
  const listError = el("p", { class: "error" });
  const live = liveNote("goals-live");
  let streaming = false;
  main.append(form, el("div", { class: "panel" },
    el("div", { class: "row" }, el("h2", { text: "Goals", style: { flex: "1" } }), statusFilter, live.note),
    el("table", { id: "goals" }, el("thead", {}, el("tr", {},
      ["Goal", "Type", "Status", "Created", "Took", "Error"].map((h) => el("th", { text: h })))), body), listError));

  const refresh = async () => {
    const query = statusFilter.value ? `&status=${encodeURIComponent(statusFilter.value)}` : "";
    const answer = await api(`/v1/goals?limit=50${query}`);
    if (answer.status !== 200) { listError.textContent = problem(answer); return; }
    listError.textContent = "";
    live.set(streaming, GOALS_POLL_MS);
    fill(body, ...answer.data.goals.map((goal) => {
      const took = goal.completed_at ? ms(goal.completed_at) - ms(goal.created_at) : Date.now() - ms(goal.created_at);
      return el("tr", { "data-goal-id": goal.goal_id },
        el("td", {}, el("a", { href: `#/goal/${encodeURIComponent(goal.goal_id)}`, class: "mono", text: goal.goal_id })),
        el("td", { text: goal.goal_type }), el("td", {}, statusBadge(goal.status)),
        el("td", { text: when(goal.created_at) }), el("td", { text: duration(took) + (goal.completed_at ? "" : " …") }),
        el("td", { class: "error", text: goal.error || "" }));
    }));
    if (!answer.data.goals.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "note", text: "no goals yet" })));
  };
  poll(refresh, () => (streaming ? STREAM_SAFETY_POLL_MS : GOALS_POLL_MS));
  // every event of this key's identity, whatever its goal, from now on: each one refreshes the list
  openStream({ action: "subscribe" }, (frame) => { if (frame.type === "event") refreshNow(); },
    (up) => { streaming = up; live.set(up, GOALS_POLL_MS); if (!up) refreshNow(); });
}

// One goal: its facts, a waterfall of its events, tasks and (when the platform records them) spans, its usage, and
// its input requests with an answer form. Polled until the goal ends.
function goalView(main, [goalId]) {
  const header = el("div", { class: "panel", id: "goal-header" });
  const timeline = el("div", { class: "panel", id: "timeline" }, el("h2", { text: "Timeline" }));
  const result = el("div", { class: "panel", id: "goal-outcome", hidden: true });
  const usage = el("div", { class: "panel", id: "usage", hidden: true });
  const inputs = el("div", { class: "panel", id: "goal-inputs", hidden: true });
  const error = el("p", { class: "error", role: "alert" });
  const live = liveNote("goal-live");
  let streaming = false;
  main.append(el("p", { class: "row" }, el("a", { href: "#/goals", text: "← all goals", style: { flex: "1" } }), live.note),
    error, header, inputs, timeline, usage, result);
  const opened = new Set(); // rows whose detail is open, kept across refreshes
  let optional = { trace: true, usage: true }; // stop asking once a route answered 404

  const refresh = async () => {
    const path = `/v1/goals/${encodeURIComponent(goalId)}`;
    const [goal, events, trace, cost] = await Promise.all([
      api(path), api(`${path}/events?limit=1000`),
      optional.trace ? api(`${path}/trace`) : null, optional.usage ? api(`${path}/usage`) : null,
    ]);
    if (goal.status !== 200) { error.textContent = problem(goal); return goal.status >= 500 || goal.status === 0; }
    error.textContent = "";
    if (trace && trace.status === 404) optional.trace = false;
    if (cost && cost.status === 404) optional.usage = false;
    live.set(streaming, GOAL_POLL_MS);
    renderGoalHeader(header, goal.data);
    renderResult(result, goal.data);
    renderInputs(inputs, goal.data, refresh);
    renderWaterfall(timeline, goal.data, events.status === 200 ? events.data.events : [],
      trace && trace.status === 200 ? trace.data.spans || [] : null, opened);
    renderUsage(usage, cost && cost.status === 200 ? cost.data : null);
    // an agent sends its spans and the runtime its usage when its delivery ends, a moment after the goal's last
    // event: keep refreshing a little past the end so they show up
    const ended = ms(goal.data.completed_at);
    return !TERMINAL.has(goal.data.status) || (ended !== null && Date.now() - ended < SETTLE_MS);
  };
  // with the stream up, a frame (an event, the goal's end) refreshes; the slower polls pick up the spans and usage
  // that agents report after their delivery, which the stream does not carry
  poll(refresh, () => (streaming ? GOAL_POLL_MS * 3 : GOAL_POLL_MS));
  openStream({ action: "follow", goal_id: goalId, after: 0 },
    (frame) => { if (frame.type === "event" || frame.type === "end") refreshNow(); },
    (up) => { streaming = up; live.set(up, GOAL_POLL_MS); });
}

function renderGoalHeader(panel, goal) {
  const took = goal.completed_at ? duration(ms(goal.completed_at) - ms(goal.created_at)) : "running";
  const facts = [["Goal", goal.goal_id], ["Type", goal.goal_type], ["Created", when(goal.created_at)],
    ["Completed", when(goal.completed_at)], ["Took", took], ["Events", goal.events], ["Session", goal.session_id]];
  fill(panel, el("div", { class: "row" }, el("h2", { text: goal.goal_type, style: { flex: "1" } }),
    statusBadge(goal.status)),
  el("dl", { class: "facts" }, facts.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => [el("dt", { text: k }), el("dd", { class: "mono", text: String(v) })])),
  goal.error ? el("p", { class: "error", id: "goal-error", text: goal.error }) : null);
}

function renderResult(panel, goal) {
  const hasResult = goal.result !== null && goal.result !== undefined;
  panel.hidden = !hasResult;
  if (hasResult) fill(panel, el("h2", { text: "Result" }), el("pre", { id: "goal-result", text: json(goal.result) }));
}

// The spans in tree order: each span right below its parent (children by start time), with its depth and its agent
// (its own soorma.agent attribute or its nearest ancestor's: a handler's span carries only the handler's name).
function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    const parent = span.parent_span_id && byId.get(span.parent_span_id);
    if (parent && parent !== span) (children.get(parent.span_id) || children.set(parent.span_id, []).get(parent.span_id)).push(span);
    else roots.push(span);
  }
  const byStart = (a, b) => (ms(a.start_time) - ms(b.start_time)) || (ms(a.end_time) - ms(b.end_time));
  const ordered = [];
  const seen = new Set();
  const walk = (span, depth, agent) => {
    if (seen.has(span.span_id)) return; // a cycle in bad data: each span once
    seen.add(span.span_id);
    const own = (span.attributes || {})["soorma.agent"] || agent;
    ordered.push({ span, depth, agent: own });
    for (const child of (children.get(span.span_id) || []).sort(byStart)) walk(child, depth + 1, own);
  };
  for (const root of roots.sort(byStart)) walk(root, 0, null);
  for (const span of spans) walk(span, 0, null); // spans only reachable through a cycle
  return ordered;
}

// The waterfall: one row per goal / event / task / span on a shared time axis. An event is drawn from its parent
// event (the hop that caused it) to its own time, so the bar is the hop's latency; a task from start to end.
function renderWaterfall(panel, goal, events, spans, opened) {
  const rows = [];
  const start = ms(goal.created_at);
  const now = Date.now();
  const end0 = goal.completed_at ? ms(goal.completed_at) : now;
  rows.push({ kind: "goal", key: "goal", label: goal.goal_type, start, end: end0, status: goal.status, detail: null });
  const eventTime = new Map(events.map((e) => [e.event_id, ms(e.time)]));
  for (const event of events) {
    const at = ms(event.time);
    const from = event.parent_event_id && eventTime.has(event.parent_event_id) ? eventTime.get(event.parent_event_id) : at;
    rows.push({ kind: "event", key: `event:${event.event_id}`, label: event.type, sub: event.source, start: from, end: at,
      instant: from === at, detail: event });
  }
  for (const task of goal.tasks || []) {
    const from = ms(task.started_at);
    if (from === null) continue;
    const to = ms(task.completed_at) ?? (TERMINAL.has(goal.status) ? from : now);
    rows.push({ kind: "task", key: `task:${task.task_id}`, label: task.event_type || task.task_id, sub: task.agent,
      start: from, end: to, status: task.status, running: !task.completed_at, detail: task });
  }
  const spanRows = (spans ? spanTree(spans) : []).map(({ span, depth, agent }) => ({
    kind: "span", key: `span:${span.span_id}`, parent: span.parent_span_id ? `span:${span.parent_span_id}` : null,
    label: span.name, sub: agent, depth, start: ms(span.start_time), end: ms(span.end_time), status: span.status,
    detail: span, ms: span.duration_ms }));
  const times = [...rows, ...spanRows].flatMap((r) => [r.start, r.end]).filter((t) => t !== null);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1);
  const span = t1 - t0;
  const pct = (t) => ((t - t0) / span) * 100;
  rows.sort((a, b) => (a.kind === "goal" ? -1 : b.kind === "goal" ? 1 : (a.start - b.start) || (a.end - b.end)));
  // the spans as a tree right below the goal (a span under its parent), then the events and tasks in time order
  rows.splice(1, 0, ...spanRows);

  const legend = el("div", { class: "legend" }, ["goal", "event", "task", "span"].filter((k) => k !== "span" || spans)
    .map((k) => el("span", {}, el("i", { class: `wf-bar ${k}`, style: { position: "static", display: "inline-block" } }), k)),
  spans && spans.length ? null : el("span", { class: "note", id: "no-spans",
    text: spans ? "spans: none recorded for this goal yet" : "spans: not recorded by this platform" }));
  const axis = el("div", { class: "wf-axis" }, [0, 0.25, 0.5, 0.75, 1].map((f) => el("span", { text: duration(span * f) })));
  const list = el("div", { class: "waterfall", id: "waterfall" });
  for (const row of rows) {
    const took = row.ms ?? (row.end !== null && row.start !== null ? row.end - row.start : null);
    const left = pct(row.start ?? t0);
    const width = Math.max(pct(row.end ?? row.start ?? t0) - left, 0);
    const classes = `wf-bar ${row.kind}${row.status === "failed" || row.status === "error" || row.status === "ERROR" ? " failed" : ""}`;
    const mark = row.instant ? el("div", { class: "wf-mark", style: { left: `${left}%` } })
      : el("div", { class: classes, style: { left: `${left}%`, width: `${width}%` } });
    const label = `${row.label}${row.sub ? ` · ${row.sub}` : ""}`;
    const line = el("div", {
      class: `wf-row${row.detail ? " clickable" : ""}`, "data-kind": row.kind, "data-key": row.key,
      "data-parent": row.parent || undefined, "data-depth": row.kind === "span" ? row.depth : undefined,
      "data-status": row.status || "", title: label,
      onclick: () => { if (!row.detail) return; opened.has(row.key) ? opened.delete(row.key) : opened.add(row.key); renderWaterfall(panel, goal, events, spans, opened); },
    }, el("div", { class: "wf-label", style: { paddingLeft: `${(row.depth || 0) * 12}px` } },
      el("span", { class: "kind", text: row.kind }), label),
    el("div", { class: "wf-track" }, mark),
    el("div", { class: "wf-dur", text: row.instant ? "" : `${duration(took)}${row.running ? " …" : ""}` }),
    el("div", { class: "wf-status", text: row.kind === "goal" ? "" : row.status || "" }));
    list.append(line);
    if (row.detail && opened.has(row.key)) list.append(el("pre", { class: "wf-detail", text: json(row.detail) }));
  }
  fill(panel, el("h2", { text: "Timeline" }), legend, axis, list);
}

// A figure as people read it: counts whole, GB-seconds to 6 significant digits (the sums carry float noise).
function amount(value) {
  const number = Number(value);
  return Number.isInteger(number) ? String(number) : String(Number(number.toPrecision(6)));
}

function renderUsage(panel, usage) {
  if (!usage) { panel.hidden = true; return; }
  panel.hidden = false;
  const figures = usage.usage || {};
  const cost = usage.cost_usd || {};
  const rows = Object.keys(figures).map((k) => el("tr", { "data-figure": k }, el("td", { text: k }), el("td", { class: "mono", text: amount(figures[k]) }),
    el("td", { class: "mono", text: cost[k] !== undefined ? `$${Number(cost[k]).toFixed(6)}` : "" })));
  if (cost.total !== undefined) rows.push(el("tr", { "data-figure": "total" }, el("th", { text: "total" }), el("td"), el("th", { class: "mono", text: `$${Number(cost.total).toFixed(6)}` })));
  fill(panel, el("h2", { text: "Usage and cost" }), table(["figure", "amount", "cost (USD)"], rows));
}

// Input requests of a goal (the goal view) with a form for each pending one.
function renderInputs(panel, goal, refresh) {
  const requests = goal.input_requests || [];
  if (!requests.length) { panel.hidden = true; return; }
  if (panel.contains(document.activeElement)) return; // do not replace a form the person is typing in
  panel.hidden = false;
  fill(panel, el("h2", { text: "Input requests" }), requests.map((r) => inputRequest(goal.goal_id, r, refresh)));
}

function inputRequest(goalId, request, onAnswered) {
  const box = el("div", { class: "input-request", "data-request-id": request.request_id },
    el("div", { class: "row" }, el("strong", { text: request.prompt || "(no prompt)", style: { flex: "1" } }), statusBadge(request.status)),
    el("p", { class: "note", text: `goal ${goalId} · task ${request.task_id}${request.agent ? ` · agent ${request.agent}` : ""}${request.timeout_at ? ` · times out ${when(request.timeout_at)}` : ""}` }));
  if (request.schema) box.append(el("details", {}, el("summary", { text: "answer schema" }), el("pre", { text: json(request.schema) })));
  if (request.status !== "pending") {
    box.append(el("pre", { text: `answer: ${json(request.answer)}${request.answered_by ? ` (by ${request.answered_by})` : ""}` }));
    return box;
  }
  const answer = el("textarea", { class: "answer", rows: 2, placeholder: "the answer, as JSON (e.g. {\"approved\": true})" });
  const error = el("p", { class: "error", role: "alert" });
  box.append(el("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      let value;
      try { value = JSON.parse(answer.value); } catch (err) { error.textContent = `the answer is not JSON: ${err.message}`; return; }
      const sent = await api(`/v1/goals/${encodeURIComponent(goalId)}/input/${encodeURIComponent(request.request_id)}`,
        { method: "POST", body: { answer: value } });
      if (sent.status !== 200) { error.textContent = problem(sent); return; }
      answer.blur();
      onAnswered();
    },
  }, el("label", {}, "Answer (JSON) ", answer), el("button", { type: "submit", text: "Answer" }), error));
  return box;
}

// Every input request waiting for a person, across the goals that wait for one.
function inputsView(main) {
  const panel = el("div", { class: "panel", id: "inputs" }, el("h2", { text: "Waiting for a person" }));
  const list = el("div");
  const error = el("p", { class: "error" });
  panel.append(error, list);
  main.append(panel);
  const refresh = async () => {
    if (list.contains(document.activeElement)) return; // someone is typing an answer
    const goals = await api("/v1/goals?status=input-required&limit=100");
    if (goals.status !== 200) { error.textContent = problem(goals); return; }
    const answers = await Promise.all(goals.data.goals.map((g) =>
      api(`/v1/goals/${encodeURIComponent(g.goal_id)}/input?status=pending`).then((a) => [g, a])));
    const boxes = [];
    for (const [goal, answer] of answers) {
      if (answer.status !== 200) continue;
      for (const request of answer.data.input_requests) {
        const box = inputRequest(goal.goal_id, request, refresh);
        box.prepend(el("p", {}, el("a", { href: `#/goal/${encodeURIComponent(goal.goal_id)}`, text: `${goal.goal_type} ${goal.goal_id}` })));
        boxes.push(box);
      }
    }
    error.textContent = "";
    fill(list, ...(boxes.length ? boxes : [el("p", { class: "note", text: "no input request is waiting" })]));
  };
  poll(refresh, GOALS_POLL_MS * 2);
}

// Agents and their subscriptions, from the registry.
async function agentsView(main) {
  const panel = el("div", { class: "panel", id: "agents" }, el("h2", { text: "Agents" }));
  main.append(panel);
  const answer = await api("/v1/agents");
  if (answer.status !== 200) { panel.append(el("p", { class: "error", text: problem(answer) })); return; }
  const tags = (items) => (items || []).map((t) => el("span", { class: "tag", text: t }));
  const rows = answer.data.agents.map((a) => {
    const deployment = a.deployment || {};
    const subscriptions = (deployment.subscriptions || []).map((s) => `${s.topic}:${s.eventType ?? s.event_type}`);
    return el("tr", { "data-agent": a.name },
      el("td", {}, el("strong", { text: a.name }), el("div", { class: "note", text: a.description || "" })),
      el("td", { text: a.version }),
      el("td", {}, tags(a.consumedEvents ?? a.consumed_events), subscriptions.length ? el("div", { class: "note" }, "on the bus: ", tags(subscriptions)) : null),
      el("td", {}, tags(a.producedEvents ?? a.produced_events)),
      el("td", { class: "mono", text: deployment.functionName ?? deployment.function_name ?? "" }),
      el("td", { text: when(a.lastHeartbeat ?? a.last_heartbeat) }));
  });
  panel.append(rows.length ? table(["Agent", "Version", "Subscribes to", "Produces", "Function", "Last heartbeat"], rows)
    : el("p", { class: "note", text: "no agent registered" }));
}

// Dead letters of this key's platform tenant, with a replay button each.
function deadLettersView(main) {
  const panel = el("div", { class: "panel", id: "dead-letters" });
  const notice = el("p", { class: "ok", role: "status", id: "dlq-notice" });
  const error = el("p", { class: "error", role: "alert" });
  const list = el("div");
  panel.append(el("h2", { text: "Dead letters" }),
    el("p", { class: "note", text: "Events that failed every delivery. Fix the agent, then replay: the event goes back to the agent that failed it." }),
    notice, error, list);
  main.append(panel);
  const refresh = async () => {
    const answer = await api("/console/api/dead-letters");
    if (answer.status !== 200) { error.textContent = problem(answer); return; }
    error.textContent = "";
    const rows = answer.data.dead_letters.map((d) => el("tr", { "data-event-id": d.event_id || "" },
      el("td", { class: "mono", text: d.event_id || "" }), el("td", { text: d.event_type || "" }),
      el("td", { text: d.agent || "" }), el("td", { text: d.deliveries ?? "" }),
      el("td", { text: when(d.dead_lettered_at) }), el("td", { class: "error", text: d.error || "" }),
      el("td", {}, el("button", {
        type: "button", class: "replay", text: "Replay", disabled: !d.event_id,
        onclick: async (event) => {
          event.target.disabled = true;
          const sent = await api("/console/api/dead-letters/replay", { method: "POST", body: { event_id: d.event_id } });
          if (sent.status !== 200) { error.textContent = problem(sent); event.target.disabled = false; return; }
          notice.textContent = sent.data.replayed.map((r) => `replayed ${r.event_id} (${r.event_type}) to ${r.agent}`).join("; ");
          refresh();
        },
      }))));
    fill(list, rows.length ? table(["Event", "Type", "Agent", "Deliveries", "Dead-lettered", "Error", ""], rows)
      : el("p", { class: "note", text: "no dead letters" }));
  };
  poll(refresh, GOALS_POLL_MS * 2);
}

// Memory of a service tenant and user (the key's own unless named; the platform decides who may name another).
function memoryView(main) {
  const tenant = el("input", { id: "memory-tenant", placeholder: "the key's own" });
  const user = el("input", { id: "memory-user", placeholder: "the key's own" });
  const kinds = { semantic: "Knowledge (semantic)", plans: "Plans", sessions: "Sessions", episodic: "Interactions of an agent (episodic)" };
  const kind = el("select", { id: "memory-kind" }, Object.entries(kinds).map(([v, t]) => el("option", { value: v, text: t })));
  const agent = el("input", { id: "memory-agent", placeholder: "agent id (interactions only)" });
  const out = el("div", { id: "memory-items" });
  const form = el("form", {
    class: "panel",
    onsubmit: async (event) => {
      event.preventDefault();
      const headers = {};
      if (tenant.value.trim()) headers["X-Soorma-Service-Tenant"] = tenant.value.trim();
      if (user.value.trim()) headers["X-Soorma-Service-User"] = user.value.trim();
      const paths = {
        semantic: "/v1/memory/semantic?limit=100", plans: "/v1/memory/plans?limit=100", sessions: "/v1/memory/sessions?limit=100",
        episodic: `/v1/memory/episodic/recent?limit=100&agent_id=${encodeURIComponent(agent.value.trim())}`,
      };
      const answer = await api(paths[kind.value], { headers });
      if (answer.status !== 200) { fill(out, el("p", { class: "error", text: problem(answer) })); return; }
      const items = Array.isArray(answer.data) ? answer.data : answer.data.items || [];
      fill(out, el("p", { class: "note", text: `${items.length} item(s)` }), items.map((item) => el("pre", { text: json(item) })));
    },
  }, el("h2", { text: "Memory" }),
  el("div", { class: "row" }, el("label", {}, "Service tenant ", tenant), el("label", {}, "Service user ", user),
    el("label", {}, "What ", kind), el("label", {}, "Agent ", agent), el("button", { type: "submit", text: "Show" })));
  main.append(form, el("div", { class: "panel" }, out));
}

// -- start ------------------------------------------------------------------------------------------------------
function start() {
  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(document.getElementById("api-key").value.trim());
  });
  document.getElementById("sign-out").addEventListener("click", () => signOut(""));
  window.addEventListener("hashchange", () => { if (apiKey()) route(); });
  if (apiKey()) { signIn(apiKey()); } else { showLogin(""); }
}

start();
