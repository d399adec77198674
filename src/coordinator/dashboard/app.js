// The openclaw dashboard: a small single-page app over the coordinator's JSON API.
//
// - The token lives in sessionStorage (this tab only) and goes out as a bearer header; it is
//   never put in a URL. `GET /api/v1/whoami` tells admin from tasks token: with the tasks
//   token the admin-only controls (drain, undrain) are disabled with a note.
// - Live: `GET /api/v1/events` is read with fetch() and a stream reader (an EventSource
//   cannot send a header). Task and node events patch the page and schedule a refetch of
//   what they touch; a reconnect sends Last-Event-ID and resumes; a `gap` refetches all.
//   While the stream is down the page polls every few seconds and says so. The coordinator
//   ends every stream at its lifetime (`event: error`, `stream_lifetime`); the event stream
//   and a running task's output then resume at once from their last id.
// - Every value from the API reaches the page through textContent, never as HTML.
// - Secrets (admin token only): set and delete. A value goes out in one PUT and the form
//   is cleared at once; nothing reads a value back (the API has no way to).
"use strict";

const TOKEN_KEY = "openclaw.token";
const ENDED = new Set(["completed", "failed", "cancelled", "timeout"]);
const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  role: null,
  nodes: [],
  tasks: [],
  schedules: [],
  next: null,
  lastEventId: null,
  stream: null, // AbortController of the event stream
  live: "off", // off | connecting | live | reconnecting
  openTask: null, // the task id shown in the dialog
  output: null, // AbortController of the live output
  timers: {},
  events: 0, // events received
  connects: 0, // times the event stream was opened (shown as #live's data-connects)
};

// ---- small DOM helpers ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function pill(status) {
  return el("span", { class: `pill s-${status}` }, status);
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function clock(iso) {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour12: false });
}

// Runs fn once typing has paused for ms.
function debounce(name, ms, fn) {
  clearTimeout(state.timers[name]);
  state.timers[name] = setTimeout(fn, ms);
}

// Runs fn within ms, once for however many calls come meanwhile (a busy cluster's events
// never starve the refresh, as a debounce would).
function soon(name, ms, fn) {
  if (state.timers[name]) return;
  state.timers[name] = setTimeout(() => { delete state.timers[name]; fn(); }, ms);
}

// A message at the top of the page for a few seconds (a refused drain, cancel, filter).
function notify(message) {
  const n = $("notice");
  n.textContent = message;
  n.hidden = false;
  clearTimeout(state.timers.notice);
  state.timers.notice = setTimeout(() => { n.hidden = true; }, 8000);
}

// ---- the API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const err = (data && data.error) || {};
    if (r.status === 401 && state.role) logout("The token is no longer accepted: log in again.");
    throw new ApiError(r.status, err.code || "", err.message || `${method} ${path} answered ${r.status}`);
  }
  return data;
}

// ---- login ----

async function login(token) {
  state.token = token;
  const who = await api("GET", "/api/v1/whoami");
  state.role = who.role;
  sessionStorage.setItem(TOKEN_KEY, token);
  showApp();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort();
  stopOutput();
  Object.values(state.timers).forEach((t) => { clearTimeout(t); clearInterval(t); });
  Object.assign(state, { token: null, role: null, stream: null, lastEventId: null, live: "off", timers: {}, tasks: [], nodes: [] });
  $("activity").replaceChildren(); // what the last token saw is not for the next one
  for (const d of document.querySelectorAll("dialog[open]")) d.close();
  $("app").hidden = true;
  for (const id of ["logout", "role", "live", "health"]) $(id).hidden = true;
  $("login-view").hidden = false;
  $("token").value = "";
  const e = $("login-error");
  e.textContent = message || "";
  e.hidden = !message;
  $("token").focus();
}

function showApp() {
  $("login-view").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  const role = $("role");
  role.hidden = false;
  role.textContent = state.role === "admin" ? "admin token" : "tasks token (read, submit, cancel)";
  $("nodes-note").hidden = state.role === "admin";
  $("secrets-card").hidden = state.role !== "admin";
  refreshAll();
  follow();
}

// ---- cluster summary ----

function stat(label, value, sub) {
  return el("div", { class: "stat", "data-stat": label }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: "sub" }, sub));
}

// "6 completed, 2 failed, 1 timed out, 4 cancelled": the parts add up to the Ended count
// (timed out and cancelled are named when there are any).
function endedParts(n) {
  const parts = [`${n("completed")} completed`, `${n("failed")} failed`];
  if (n("timeout")) parts.push(`${n("timeout")} timed out`);
  if (n("cancelled")) parts.push(`${n("cancelled")} cancelled`);
  return parts.join(", ");
}

async function refreshSummary() {
  const h = await api("GET", "/api/v1/cluster/health");
  const t = h.tasks_by_status || {};
  const n = (k) => t[k] || 0;
  $("summary").replaceChildren(
    stat("Nodes online", `${h.online_nodes} / ${h.total_nodes}`, `${h.offline_nodes} offline, ${h.nodes_by_status.maintenance || 0} draining`),
    stat("Slots in use", `${h.used_capacity} / ${h.total_capacity}`, `${Math.round(h.capacity_utilization)}% used, ${h.available_capacity} free`),
    stat("Waiting", n("pending") + n("scheduled"), `${n("pending")} pending, ${n("scheduled")} scheduled`),
    stat("Running", n("running"), "tasks on nodes now"),
    stat("Ended", n("completed") + n("failed") + n("timeout") + n("cancelled"), endedParts(n)),
  );
  const health = $("health");
  health.hidden = false;
  health.className = `pill s-${h.healthy ? "healthy" : "unhealthy"}`;
  health.textContent = h.healthy ? "healthy" : "no node online";
}

// ---- nodes ----

function meter(label, percent) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  const fill = el("span", { class: `fill${p > 85 ? " hot" : ""}` });
  fill.style.width = `${p}%`; // through CSSOM: the page's CSP allows no inline style attribute
  return el("div", { class: "meter", title: `${label} ${p.toFixed(1)}%` },
    el("span", {}, label), el("span", { class: "track" }, fill), el("span", {}, `${Math.round(p)}%`));
}

async function refreshNodes() {
  state.nodes = await api("GET", "/api/v1/nodes");
  renderNodes();
}

function renderNodes() {
  const admin = state.role === "admin";
  const rows = state.nodes.map((n) => {
    const skills = n.available_skills.map((s) => el("span", { class: "chip" }, s));
    for (const [s, why] of Object.entries(n.unavailable_skills || {})) {
      skills.push(el("span", { class: "chip off", title: why }, s));
    }
    const up = n.status !== "offline";
    const action = n.draining
      ? el("button", { class: "small quiet", type: "button", disabled: !admin, title: admin ? "Take tasks again" : "needs the admin token", onclick: () => drain(n.node_id, false) }, "Undrain")
      : el("button", { class: "small quiet", type: "button", disabled: !admin || !up, title: admin ? "No new tasks; running ones finish" : "needs the admin token", onclick: () => drain(n.node_id, true) }, "Drain");
    return el("tr", { "data-node": n.node_id },
      el("td", { "data-label": "Node" }, el("div", {}, el("b", {}, n.node_id), el("div", { class: "sub" }, n.hostname))),
      el("td", { "data-label": "Status" }, el("div", {}, pill(n.status), n.draining && n.status !== "maintenance" ? el("div", { class: "sub" }, "draining") : null,
        el("div", { class: "sub" }, n.last_heartbeat ? `heartbeat ${ago(n.last_heartbeat)}` : ""))),
      el("td", { "data-label": "Platform" }, el("div", {}, `${n.platform} / ${n.arch}`, el("div", { class: "sub" }, n.version ? `v${n.version}` : ""))),
      el("td", { "data-label": "Load" }, el("div", {},
        el("div", { class: "sub" }, `${n.running_tasks} / ${n.max_concurrent_tasks} slots`),
        meter("cpu", n.cpu_usage), meter("mem", n.memory_usage), meter("disk", n.disk_usage))),
      el("td", { "data-label": "Skills" }, el("div", { class: "chips" }, skills)),
      el("td", { "data-label": "" }, action));
  });
  $("nodes").querySelector("tbody").replaceChildren(...rows);
  $("nodes-empty").hidden = rows.length > 0;
  $("node-ids").replaceChildren(...state.nodes.map((n) => el("option", { value: n.node_id })));
  const skills = new Set(state.nodes.flatMap((n) => n.available_skills));
  $("skill-names").replaceChildren(...[...skills].sort().map((s) => el("option", { value: s })));
}

async function drain(node, on) {
  try {
    await api("POST", `/api/v1/nodes/${encodeURIComponent(node)}/${on ? "drain" : "undrain"}`);
    refreshNodes();
    refreshSummary();
  } catch (e) {
    notify(e.message);
  }
}

// ---- secrets (admin) ----

async function refreshSecrets() {
  if (state.role !== "admin") return;
  const list = await api("GET", "/api/v1/secrets");
  const rows = list.secrets.map((s) => {
    const scope = s.scope ? [s.scope.node && `node ${s.scope.node}`, s.scope.platform, ...(s.scope.tags || []).map((t) => `#${t}`)].filter(Boolean).join(" ") : "every node";
    return el("tr", { "data-secret": s.name },
      el("td", { "data-label": "Name" }, el("div", {}, el("b", {}, s.name), s.readable ? null : el("div", { class: "sub error" }, "cannot be read: set it again"))),
      el("td", { "data-label": "Scope" }, scope),
      el("td", { "data-label": "Set" }, el("div", {}, ago(s.set_at), el("div", { class: "sub" }, s.set_by))),
      el("td", { "data-label": "" }, el("button", { class: "small quiet", type: "button", onclick: () => deleteSecret(s.name) }, "Delete")));
  });
  $("secrets").querySelector("tbody").replaceChildren(...rows);
  $("secrets-empty").hidden = rows.length > 0;
}

async function setSecret(form) {
  const f = form.elements;
  const err = $("secret-error");
  err.hidden = true;
  const name = f.name.value.trim();
  const body = { value: f.value.value };
  const tags = f.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) body.scope = { tags };
  f.value.value = ""; // the value leaves the page now, whatever the answer
  try {
    await api("PUT", `/api/v1/secrets/${encodeURIComponent(name)}`, body);
    form.reset();
    await refreshSecrets();
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

async function deleteSecret(name) {
  if (!confirm(`Delete secret ${name}? Tasks that use it will fail.`)) return;
  try {
    await api("DELETE", `/api/v1/secrets/${encodeURIComponent(name)}`);
    await refreshSecrets();
  } catch (e) {
    notify(e.message);
  }
}

// ---- skills ----

// `sha256:ab12cd34ef56`: enough of a digest to tell versions apart.
function shortDigest(d) {
  return d ? d.slice(0, 19) : "unknown";
}

async function refreshSkills() {
  renderSkills(await api("GET", "/api/v1/skills"));
}

// One row per skill: its nodes (struck through where it cannot run now, with the reason),
// and its version, or "drift" with each version and the nodes that have it.
function renderSkills(view) {
  const rows = view.skills.map((s) => {
    const nodes = s.nodes.map((n) => el("span", { class: n.runnable ? "chip" : "chip off", title: n.reason || `${n.source || ""} ${n.digest || ""}`.trim(), "data-node": n.node_id }, n.node_id));
    const versions = s.digests.map((d) => el("div", { class: "sub", "data-digest": d }, `${shortDigest(d)} on ${s.nodes.filter((n) => n.digest === d).map((n) => n.node_id).join(", ")}`));
    const version = s.drift
      ? el("div", {}, pill("drift"), versions)
      : el("div", { class: "id" }, s.digests.length ? shortDigest(s.digests[0]) : "unknown");
    return el("tr", { "data-skill": s.name, "data-drift": s.drift ? "true" : "false" },
      el("td", { "data-label": "Skill" }, el("b", {}, s.name)),
      el("td", { "data-label": "Nodes" }, el("div", { class: "chips" }, nodes)),
      el("td", { "data-label": "Version" }, version));
  });
  $("skills").querySelector("tbody").replaceChildren(...rows);
  $("skills-empty").hidden = rows.length > 0;
  const drift = $("skills-drift");
  drift.hidden = view.drifted.length === 0;
  drift.textContent = `Different versions on different nodes: ${view.drifted.join(", ")}`;
}

// ---- tasks ----

function filters() {
  const f = new FormData($("filters"));
  const q = new URLSearchParams();
  for (const k of ["status", "node", "skill"]) {
    const v = String(f.get(k) || "").trim();
    if (v) q.set(k, v);
  }
  return q;
}

async function refreshTasks(more) {
  const q = filters();
  // A refresh keeps as many rows as are shown (older pages included), up to the API's 1000.
  q.set("limit", String(more ? 50 : Math.min(1000, Math.max(50, state.tasks.length))));
  if (more && state.next) q.set("after", state.next);
  const page = await api("GET", `/api/v1/tasks?${q}`);
  state.tasks = more ? state.tasks.concat(page.tasks) : page.tasks;
  state.next = page.next;
  renderTasks();
}

function renderTasks() {
  const rows = state.tasks.map((t) => {
    const ended = ENDED.has(t.status);
    const note = t.pending_reason || t.error || (t.cancel_requested && !ended ? "cancel requested" : "");
    const cancel = ended ? null : el("button", { class: "small quiet", type: "button", onclick: (ev) => { ev.stopPropagation(); cancelTask(t.task_id); } }, "Cancel");
    return el("tr", { "data-task": t.task_id, "data-status": t.status, tabindex: "0", onclick: () => openTask(t.task_id),
      onkeydown: (ev) => { if (ev.key === "Enter") openTask(t.task_id); } },
      el("td", { "data-label": "Task" }, el("div", {}, el("b", {}, t.name), el("div", { class: "id sub" }, t.task_id))),
      el("td", { "data-label": "Status" }, pill(t.status)),
      el("td", { "data-label": "Skill" }, t.required_skills[0] || ""),
      el("td", { "data-label": "Node" }, t.assigned_node || "—"),
      el("td", { "data-label": "Submitted" }, el("span", { title: t.submitted_at }, ago(t.submitted_at))),
      el("td", { "data-label": "Note", class: "sub" }, note),
      el("td", { "data-label": "" }, cancel));
  });
  $("tasks").querySelector("tbody").replaceChildren(...rows);
  $("tasks-empty").hidden = rows.length > 0;
  $("more").hidden = !state.next;
}

async function cancelTask(id) {
  try {
    await api("POST", `/api/v1/tasks/${encodeURIComponent(id)}/cancel`);
    refreshTasks();
    if (state.openTask === id) showTask(id);
  } catch (e) {
    notify(e.message);
  }
}

// ---- one task ----

function field(name, value) {
  if (value === null || value === undefined || value === "") return [];
  return [el("dt", {}, name), el("dd", {}, value)];
}

async function openTask(id) {
  state.openTask = id;
  $("task-title").textContent = id;
  $("task-body").replaceChildren(el("p", { class: "note" }, "loading…"));
  if (!$("task-dialog").open) $("task-dialog").showModal();
  await showTask(id);
}

async function showTask(id) {
  let t;
  try {
    t = await api("GET", `/api/v1/tasks/${encodeURIComponent(id)}`);
  } catch (e) {
    $("task-body").replaceChildren(el("p", { class: "error" }, e.message));
    return;
  }
  if (state.openTask !== id) return;
  $("task-title").textContent = `${t.name} · ${t.task_id}`;
  const ended = ENDED.has(t.status);
  const body = [
    el("dl", { class: "fields" },
      field("status", pill(t.status)),
      field("why it waits", t.pending_reason),
      field("skills", t.required_skills.join(", ") + (t.optional_skills.length ? ` (prefers ${t.optional_skills.join(", ")})` : "")),
      field("node", t.assigned_node),
      field("attempt", t.attempt ? `${t.attempt} (${t.retry_count} of ${t.max_retries} retries spent)` : "not placed yet"),
      field("priority", t.priority),
      field("submitted", `${t.submitted_at} (${ago(t.submitted_at)}, from ${t.origin})`),
      field("started", t.started_at),
      field("ended", t.completed_at),
      field("timeout", `${t.timeout} s per attempt`),
      field("part of", t.parent ? taskLink(t.parent, t.step ? `${t.parent} (as ${t.step})` : t.parent) : ""),
      field("depends on", (t.depends_on || []).length ? [...t.depends_on.map((d) => taskLink(d, d)), ` (on parent failure: ${t.on_parent_failure || "cancel"})`] : ""),
      field("schedule", t.schedule ? `${t.schedule.name} (${t.schedule.due_at || "run now"})` : "")),
  ];
  state.openChildren = new Set((t.children || []).map((c) => c.task_id));
  if (t.children) body.push(...linkedTable(t));
  if (!ended) body.push(el("p", {}, el("button", { type: "button", class: "quiet", onclick: () => cancelTask(t.task_id) }, t.cancel_requested ? "Cancel requested…" : "Cancel this task")));
  if (t.error) body.push(el("h3", {}, "Error"), el("pre", { class: "box error" }, t.error));
  if (t.result !== null && t.result !== undefined) {
    body.push(el("h3", {}, "Result"), el("pre", { class: "box" }, typeof t.result === "string" ? t.result : JSON.stringify(t.result, null, 2)));
  }
  body.push(el("h3", {}, "Output"), el("pre", { class: "box", id: "output" }, el("span", { class: "note" }, "…")));
  body.push(el("h3", {}, "History"), el("ol", { class: "events" }, (t.events || []).map((e) =>
    el("li", {}, el("time", { title: e.at }, clock(e.at)), " ", el("b", {}, e.event), e.node_id ? ` on ${e.node_id}` : "", e.attempt ? ` (attempt ${e.attempt})` : "", e.message ? ` — ${e.message}` : ""))));
  $("task-body").replaceChildren(...body);
  showOutput(t);
}

// A link that opens another task in the dialog.
function taskLink(id, text) {
  return el("a", { href: "#", class: "id", onclick: (ev) => { ev.preventDefault(); openTask(id); } }, text);
}

// A group's children: a workflow's steps (with the steps each needs) or a fan-out's nodes.
function linkedTable(t) {
  const workflow = t.group === "workflow";
  const names = new Map(t.children.map((c) => [c.task_id, c.step || c.task_id]));
  const rows = t.children.map((c) =>
    el("tr", { "data-step": c.step || c.task_id, "data-status": c.status },
      el("td", { "data-label": workflow ? "Step" : "Node" }, taskLink(c.task_id, c.step || c.task_id)),
      el("td", { "data-label": "Status" }, pill(c.status)),
      el("td", { "data-label": "Node" }, c.assigned_node || "–"),
      el("td", { "data-label": "Needs", class: "needs" }, (c.depends_on || []).map((d) => names.get(d) || d).join(", ") || "–")));
  return [
    el("h3", {}, workflow ? `Steps (${t.children.length})` : `Nodes (${t.children.length}; nodes that joined later are not added)`),
    el("table", { class: "steps" },
      el("thead", {}, el("tr", {}, el("th", {}, workflow ? "Step" : "Node"), el("th", {}, "Status"), el("th", {}, "Runs on"), el("th", {}, "Needs"))),
      el("tbody", {}, rows)),
  ];
}

// Live output: JSON when the task has ended, the follow stream while it runs.
async function showOutput(t) {
  stopOutput();
  const box = $("output");
  const add = (line) => box.append(el("span", { class: line.stream === "stderr" ? "stderr" : "" }, line.text.endsWith("\n") ? line.text : `${line.text}\n`));
  const path = `/api/v1/tasks/${encodeURIComponent(t.task_id)}/output`;
  try {
    if (ENDED.has(t.status)) {
      const out = await api("GET", path);
      box.replaceChildren();
      out.lines.forEach(add);
      if (out.truncated) box.prepend(el("span", { class: "note" }, "(older lines were dropped)\n"));
      if (!out.lines.length) box.append(el("span", { class: "note" }, "no output"));
      return;
    }
    const ctl = new AbortController();
    state.output = ctl;
    // The stream resumes after the last line it showed: after a planned end (the
    // coordinator's max_stream_lifetime, or a client that fell behind) at once, after a
    // dropped connection with a growing delay, until the task's `end`.
    let lastId = null;
    let first = true;
    let ended = false;
    let delay = 500;
    while (!ended) {
      let planned = false;
      try {
        const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const r = await fetch(`${path}?follow=true`, { headers, signal: ctl.signal });
        if (!r.ok) throw new ApiError(r.status, ((await r.json().catch(() => ({}))).error || {}).code, `output answered ${r.status}`);
        if (first) box.replaceChildren(el("span", { class: "note" }, "no output yet"));
        await readEvents(r, (ev) => {
          if (ev.id) lastId = ev.id;
          if (ev.event === "output") {
            if (first) box.replaceChildren();
            first = false;
            add(JSON.parse(ev.data));
          }
          if (ev.event === "error") planned = resumeAtOnce(ev);
          if (ev.event === "end") {
            ended = true;
            if (state.openTask === t.task_id) showTask(t.task_id);
          }
        });
        delay = 500;
      } catch (e) {
        if (e.name === "AbortError" || e instanceof ApiError) throw e;
      }
      if (!ended && !planned) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10000);
      }
      if (ctl.signal.aborted) return;
    }
  } catch (e) {
    if (e.name === "AbortError") return;
    box.replaceChildren(el("span", { class: "note" }, e.code === "not_found" ? "this coordinator does not keep task output" : `no output: ${e.message}`));
  }
}

// Whether an `error` event ends its stream on purpose, to be resumed at once from the last
// id: `stream_lifetime` (coordinator.max_stream_lifetime) or `lagged`.
function resumeAtOnce(ev) {
  try { return ["stream_lifetime", "lagged"].includes(JSON.parse(ev.data).code); } catch { return false; }
}

function stopOutput() {
  if (state.output) state.output.abort();
  state.output = null;
}

// ---- submit ----

function openSubmit() {
  $("submit-error").hidden = true;
  $("submit-dialog").showModal();
  $("submit").elements.name.focus();
}

async function submitTask(form) {
  const f = form.elements;
  const err = $("submit-error");
  const body = {
    name: f.name.value.trim(),
    required_skills: f.skills.value.split(",").map((s) => s.trim()).filter(Boolean),
    priority: f.priority.value,
  };
  if (f.description.value.trim()) body.description = f.description.value;
  if (f.parameters.value.trim()) {
    try { body.parameters = JSON.parse(f.parameters.value); } catch (e) {
      err.textContent = `Parameters are not JSON: ${e.message}`;
      err.hidden = false;
      return;
    }
  }
  if (f.timeout.value) body.timeout = Number(f.timeout.value);
  if (f.max_retries.value) body.max_retries = Number(f.max_retries.value);
  const secrets = f.secrets.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (secrets.length) body.secrets = secrets;
  try {
    const t = await api("POST", "/api/v1/tasks", body);
    $("submit-dialog").close();
    form.reset();
    await refreshTasks();
    openTask(t.task_id);
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

// ---- live updates ----

function setLive(s) {
  state.live = s;
  const l = $("live");
  l.hidden = false;
  l.dataset.state = s;
  l.textContent = { connecting: "connecting", live: "live", reconnecting: "reconnecting…", polling: "live updates unavailable: refreshing every 5 s" }[s] || s;
}

// Reads a text/event-stream body, calling `on({id, event, data})` for each event.
async function readEvents(response, on) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const k = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (k === "data") ev.data += (ev.data ? "\n" : "") + v;
        else if (k === "id") ev.id = v;
        else if (k === "event") ev.event = v;
      }
      if (ev.data || ev.event !== "message") on(ev);
    }
  }
}

async function follow() {
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  let delay = 500;
  setLive("connecting");
  while (!ctl.signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const r = await fetch("/api/v1/events", { headers, signal: ctl.signal });
      if (r.status === 401) return logout("The token is no longer accepted: log in again.");
      if (!r.ok) throw new Error(`the event stream answered ${r.status}`);
      const resumed = state.lastEventId !== null;
      setLive("live");
      state.connects += 1;
      $("live").dataset.connects = String(state.connects);
      clearInterval(state.timers.poll);
      delay = 500;
      // What changed before the stream opened is fetched now (a resume gets it from the stream).
      if (!resumed) refreshAll();
      let planned = false;
      await readEvents(r, (ev) => {
        if (ev.event === "error") planned = resumeAtOnce(ev);
        onEvent(ev);
      });
      // A planned end (the stream's lifetime): resume at once, still live.
      if (planned && !ctl.signal.aborted) continue;
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(state.live === "live" ? "reconnecting" : "polling");
    if (state.live === "polling" && !state.timers.poll) state.timers.poll = setInterval(refreshAll, 5000);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// ---- schedules ----

async function refreshSchedules() {
  state.schedules = (await api("GET", "/api/v1/schedules")).schedules;
  renderSchedules();
}

function renderSchedules() {
  const rows = state.schedules.map((s) => {
    const last = s.last_run;
    const lastText = last ? `${ago(last.fired_at)} · ${last.status || last.outcome}` : "never";
    const when = s.cron ? `cron ${s.cron} (${s.tz})` : s.every ? `every ${s.every}` : `at ${clock(s.at)}`;
    return el("tr", { "data-schedule": s.name, "data-status": s.status },
      el("td", { "data-label": "Schedule" }, el("div", {}, el("b", {}, s.name), el("div", { class: "sub id" }, s.schedule_id))),
      el("td", { "data-label": "Status" }, pill(s.status)),
      el("td", { "data-label": "When" }, when),
      el("td", { "data-label": "Skill" }, el("span", { class: "chip" }, s.task.required_skills[0] || "")),
      el("td", { "data-label": "Next due" }, s.next_due ? el("time", { title: s.next_due }, clock(s.next_due)) : "–"),
      el("td", { "data-label": "Last run", class: "last-run" },
        last && last.task_id ? el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openTask(last.task_id); } }, lastText) : lastText),
      el("td", { "data-label": "" }, el("button", { class: "small quiet", type: "button", title: "Fire it now", onclick: () => runSchedule(s.name) }, "Run now")));
  });
  $("schedules").querySelector("tbody").replaceChildren(...rows);
  $("schedules-empty").hidden = rows.length > 0;
}

async function runSchedule(name) {
  try {
    await api("POST", `/api/v1/schedules/${encodeURIComponent(name)}/run`);
  } catch (e) {
    notify(e.message);
  }
}

function onEvent(ev) {
  if (ev.id) state.lastEventId = ev.id;
  if (ev.event === "gap") return refreshAll();
  if (ev.event === "error") return; // lagged or stream_lifetime: the stream ends, and follow() resumes from lastEventId
  if (ev.event !== "task" && ev.event !== "node" && ev.event !== "schedule") return;
  let e;
  try { e = JSON.parse(ev.data); } catch { return; }
  state.events += 1;
  activity(e);
  if (e.kind === "task") {
    const row = state.tasks.find((t) => t.task_id === e.task_id);
    if (row) {
      row.status = e.status;
      if (e.node_id) row.assigned_node = e.node_id;
      renderTasks();
    }
    soon("tasks", 250, () => refreshTasks().catch(() => {}));
    const open = state.openTask;
    if (open === e.task_id || (state.openChildren && state.openChildren.has(e.task_id))) soon("task", 250, () => showTask(open));
  } else if (e.kind === "schedule") {
    soon("schedules", 250, () => refreshSchedules().catch(() => {}));
  } else {
    soon("nodes", 250, () => refreshNodes().catch(() => {}));
    soon("skills", 250, () => refreshSkills().catch(() => {}));
  }
  soon("summary", 400, () => refreshSummary().catch(() => {}));
}

function activity(e) {
  const what = e.kind === "task"
    ? [el("b", {}, `task ${e.event}`), " ", el("span", { class: "id" }, e.task_id), e.skill ? ` (${e.skill})` : "", e.node_id ? ` on ${e.node_id}` : ""]
    : e.kind === "schedule"
    ? [el("b", {}, `schedule ${e.event}`), " ", el("span", { class: "id" }, e.schedule_id), e.task_id ? ` → ${e.task_id}` : ""]
    : [el("b", {}, `node ${e.event}`), " ", e.node_id || ""];
  const subject = e.kind === "schedule" ? e.schedule_id : e.task_id || e.node_id;
  const item = el("li", { "data-event": `${e.kind}:${e.event}`, "data-subject": subject || "" },
    el("time", { title: e.at }, clock(e.at)), el("span", {}, what), e.message ? el("span", { class: "sub" }, e.message) : null);
  const list = $("activity");
  list.prepend(item);
  while (list.children.length > 100) list.lastChild.remove();
}

function refreshAll() {
  return Promise.all([refreshSummary(), refreshNodes(), refreshSkills(), refreshTasks(), refreshSecrets(), refreshSchedules()]).catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) console.warn(e);
  });
}

// ---- wiring ----

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    const err = $("login-error");
    err.hidden = true;
    try {
      await login(token);
    } catch (e) {
      state.token = null;
      err.textContent = e.status === 401 ? "This token is not valid: use admin.token or tasks.token from the coordinator's data folder."
        : e.status === 403 ? "This token cannot read the cluster (a worker token or a node secret): use the admin or the tasks token."
        : `Cannot log in: ${e.message}`;
      err.hidden = false;
    }
  });
  $("logout").addEventListener("click", () => logout());
  $("filters").addEventListener("input", () => debounce("filter", 200, () => { state.tasks = []; refreshTasks().catch((e) => notify(e.message)); }));
  $("filters").addEventListener("submit", (ev) => ev.preventDefault());
  $("more").addEventListener("click", () => refreshTasks(true));
  $("new-task").addEventListener("click", openSubmit);
  $("secret-form").addEventListener("submit", (ev) => { ev.preventDefault(); setSecret(ev.target); });
  $("submit").addEventListener("submit", (ev) => { ev.preventDefault(); submitTask(ev.target); });
  for (const b of document.querySelectorAll("[data-close]")) b.addEventListener("click", () => b.closest("dialog").close());
  $("task-dialog").addEventListener("close", () => { state.openTask = null; stopOutput(); });
  setInterval(() => { if (state.role && state.live === "live") { refreshNodes().catch(() => {}); refreshSummary().catch(() => {}); } }, 15000);
  if (state.token) {
    login(state.token).catch(() => logout("Log in again."));
  } else {
    logout();
  }
});
