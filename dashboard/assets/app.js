// zasync's dashboard: a page per view, drawn from the HTTP API (api/v1/, relative to where
// the dashboard is served), routed by the URL's hash, refreshed by short polling. Everything
// a job stored (calls, results, failures, annotations) is shown as text, never as HTML.
"use strict";

const api = "api/v1/";
const refreshEvery = 2000; // ms between two reads of the page's data
let timer = null; // the current view's refresh
let view = null; // the current view's name and arguments, to redraw on refresh

// el makes an element: el("a", {href: "#/"}, "text", child…). Strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// call reads or acts through the API; it throws an Error with the API's message.
async function call(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem("zasync-token");
  if (token && method !== "GET") headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(api + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const e = new Error((data.error && data.error.message) || res.statusText);
    e.code = data.error && data.error.code;
    throw e;
  }
  return data;
}

function flash(text, isError) {
  const f = document.getElementById("flash");
  f.textContent = text;
  f.className = isError ? "error" : "";
  f.hidden = false;
}

// ask shows a question in the page and calls then() if it is confirmed.
function ask(question, then) {
  const box = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = question;
  box.hidden = false;
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  const done = () => { box.hidden = true; yes.onclick = null; no.onclick = null; };
  yes.onclick = () => { done(); then(); };
  no.onclick = done;
}

// act asks, then runs an action and reports its outcome, then redraws the view.
function act(question, method, path, body, describe) {
  ask(question, async () => {
    try {
      const r = await call(method, path, body);
      flash(describe(r));
    } catch (e) {
      flash(e.message, true);
    }
    draw();
  });
}

const when = (t) => (t ? new Date(t).toISOString().replace(".000Z", "Z") : "—");
function dur(ms) {
  if (ms === undefined || ms === null) return "—";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  if (s < 120) return s.toFixed(1) + " s";
  const m = s / 60;
  return m < 120 ? m.toFixed(1) + " min" : (m / 60).toFixed(1) + " h";
}
const jobLink = (job) => el("a", { href: "#/job/" + job }, job);
const qs = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== undefined)).toString();

function statusPill(j) {
  let cls = "";
  if (j.status === "completed") cls = j.failed ? "bad" : "ok";
  else if (j.status === "active") cls = "warn";
  const text = j.status === "completed" ? (j.failed ? (j.failure && j.failure.type === "CancelledError" ? "cancelled" : "failed") : "succeeded") : j.status;
  return el("span", { class: "pill " + cls }, text);
}

// chart draws a bar chart of counts (oldest first) as SVG, a bar a count, the part of each
// that failed (failed[i] of counts[i]) in red.
function chart(counts, failed, label) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 180, h = 28, max = Math.max(1, ...counts);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const bw = w / counts.length;
  counts.forEach((c, i) => {
    if (!c) return;
    const r = document.createElementNS(ns, "rect");
    const bh = Math.max(1, Math.round((c / max) * (h - 2)));
    r.setAttribute("x", (i * bw).toFixed(2));
    r.setAttribute("y", h - bh);
    r.setAttribute("width", Math.max(1, bw - 0.5).toFixed(2));
    r.setAttribute("height", bh);
    svg.append(r);
    const f = failed ? failed[i] : 0;
    if (f) {
      const fr = document.createElementNS(ns, "rect");
      const fh = Math.max(1, Math.round((f / c) * bh));
      fr.setAttribute("x", (i * bw).toFixed(2));
      fr.setAttribute("y", h - fh);
      fr.setAttribute("width", Math.max(1, bw - 0.5).toFixed(2));
      fr.setAttribute("height", fh);
      fr.setAttribute("class", "failed");
      svg.append(fr);
    }
  });
  return svg;
}

// The views. Each returns the nodes of the page.

async function overview() {
  const { queues } = await call("GET", "queues");
  // Completions per minute over the last hour, for the first queues.
  const rates = await Promise.all(queues.slice(0, 50).map((q) => call("GET", "queues/" + q.name + "/throughput").catch(() => null)));
  const rows = queues.map((q, i) =>
    el("tr", { "data-queue": q.name },
      el("td", {}, el("a", { href: "#/queue/" + q.name }, q.name)),
      el("td", {}, q.paused ? el("span", { class: "pill warn" }, "paused") : el("span", { class: "pill ok" }, "running")),
      el("td", { class: "num" }, q.due), el("td", { class: "num" }, q.scheduled), el("td", { class: "num" }, q.put_back),
      el("td", { class: "num" }, q.held),
      el("td", { class: "num" }, el("span", { class: q.dispatchers_alive ? "ok" : "muted" }, q.dispatchers_alive)),
      el("td", { class: "num" }, el("span", { class: q.dispatchers_dead ? "bad" : "muted" }, q.dispatchers_dead)),
      el("td", { class: "rate" }, rates[i] ? [chart(rates[i].points.map((p) => p.completed), rates[i].points.map((p) => p.failed),
        "jobs completed per minute, last hour, failures in red"), " ",
        el("span", { class: "muted" }, rates[i].points.reduce((n, p) => n + p.completed, 0) + " in the last hour, " +
          rates[i].points.reduce((n, p) => n + p.failed, 0) + " failed")] : "—"),
      el("td", {}, pauseButton(q))));
  return [
    el("h1", {}, "Queues"),
    queues.length ? el("table", { id: "queues" },
      el("thead", {}, el("tr", {}, ["queue", "state", "due", "scheduled", "put back", "held", "dispatchers alive", "dead", "completed per minute, last hour (failed in red)", ""].map((h, i) => el("th", { class: i >= 2 && i <= 7 ? "num" : "" }, h)))),
      el("tbody", {}, rows)) : el("p", { class: "muted" }, "No queue has been used yet."),
  ];
}

function pauseButton(q) {
  return q.paused
    ? el("button", { "data-action": "resume", onclick: () => act("Resume queue " + q.name + "?", "POST", "queues/" + q.name + "/resume", undefined, () => "Queue " + q.name + " resumed") }, "Resume")
    : el("button", { "data-action": "pause", onclick: () => act("Pause queue " + q.name + "? No dispatcher will claim from it.", "POST", "queues/" + q.name + "/pause", undefined, () => "Queue " + q.name + " paused") }, "Pause");
}

async function queue(name) {
  const [q, rate] = await Promise.all([call("GET", "queues/" + name), call("GET", "queues/" + name + "/throughput")]);
  const counts = rate.points.map((p) => p.completed);
  const failures = rate.points.map((p) => p.failed);
  const big = chart(counts, failures, "jobs completed per minute, last hour, failures in red");
  big.setAttribute("width", 720);
  big.setAttribute("height", 90);
  return [
    el("h1", {}, "Queue ", q.name, " ", q.paused ? el("span", { class: "pill warn" }, "paused") : el("span", { class: "pill ok" }, "running")),
    el("div", { class: "actions" }, pauseButton(q), el("a", { href: "#/put/" + q.name, id: "put-link" }, "put a job"),
      ["pending", "active", "failed"].map((st) => el("a", { href: "#/jobs?" + qs({ state: st, queue: q.name }) }, st + " jobs"))),
    el("dl", { id: "queue" }, [["due", q.due], ["scheduled", q.scheduled], ["put back", q.put_back], ["held by agents", q.held],
      ["dispatchers", q.dispatchers_alive + " alive, " + q.dispatchers_dead + " dead"]].map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h2", {}, "Completed per minute, last hour (", counts.reduce((a, b) => a + b, 0), " in all, ",
      failures.reduce((a, b) => a + b, 0), " failed, in red)"), big,
    el("h2", {}, "Dispatchers"),
    q.dispatchers && q.dispatchers.length ? el("table", {},
      el("thead", {}, el("tr", {}, ["uuid", "where", "state", "last ping", "agents"].map((h) => el("th", {}, h)))),
      el("tbody", {}, q.dispatchers.map((d) => el("tr", {}, el("td", {}, d.uuid), el("td", {}, (d.host || "?") + " pid " + (d.pid || "?")),
        el("td", {}, d.state), el("td", {}, dur(d.since_ping_ms) + " ago"),
        el("td", {}, d.agents.map((a) => a.name + " " + a.held + "/" + a.size).join(", ")))))) : el("p", { class: "muted" }, "No activated dispatcher."),
    el("h2", {}, "Quotas"),
    q.quotas.length ? el("table", { id: "quotas" },
      el("thead", {}, el("tr", {}, ["quota", "slots used", "held by"].map((h) => el("th", {}, h)))),
      el("tbody", {}, q.quotas.map((u) => el("tr", { "data-quota": u.name }, el("td", {}, u.name), el("td", {}, u.holders.length + " of " + u.size),
        el("td", {}, u.holders.length ? u.holders.map((h, i) => [i ? ", " : "", jobLink(h)]) : "—"))))) : el("p", { class: "muted" }, "No quota."),
  ];
}

// putForm is the page that puts a job into a queue through the API: the call and the put's
// options, each left empty for the handler's defaults.
function putForm(name) {
  const field = (label, input, hint) => el("label", {}, el("span", {}, label), input, hint ? el("small", { class: "muted" }, hint) : null);
  const input = (n, attrs) => el("input", Object.assign({ name: n, autocomplete: "off" }, attrs || {}));
  const form = el("form", { id: "put", class: "put" },
    field("handler", input("handler", { required: true })),
    field("args", input("args", { placeholder: "[1, \"two\"]" }), "a JSON array"),
    field("kwargs", input("kwargs", { placeholder: "{\"name\": \"value\"}" }), "a JSON object"),
    field("begin in", input("begin_in_s", { type: "number", min: "0", step: "any" }), "seconds from now"),
    field("begin by", input("begin_by_s", { type: "number", min: "0", step: "any" }), "seconds after that, or it fails"),
    field("run timeout", input("run_timeout_s", { type: "number", min: "0", step: "any" }), "seconds a run may take"),
    field("retry policy", input("retry", { placeholder: "RetryCommonFourTimes" }), "a policy's name, e.g. NeverRetry or RetryBackoff(5,1s,1m0s)"),
    field("priority", input("priority", { type: "number", min: "1", max: "9", step: "1", placeholder: "5" }), "1 to 9, higher claimed first"),
    field("quotas", input("quotas"), "names, comma separated"),
    field("unique key", input("unique_key"), "put nothing if a job of the queue holds this key (pending, scheduled or active)"),
    field("debounce", input("debounce", { type: "checkbox" }), "if the key's job is still pending, give it this call and begin time instead"),
    el("div", {}, el("button", { type: "submit" }, "Put")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = (n) => form.elements[n].value.trim();
    const body = { handler: v("handler") };
    try {
      for (const [k, what] of [["args", "a JSON array"], ["kwargs", "a JSON object"]]) {
        if (!v(k)) continue;
        try { body[k] = JSON.parse(v(k)); } catch (err) { throw new Error(k + ": want " + what + " (" + err.message + ")"); }
      }
      for (const k of ["begin_in", "begin_by", "run_timeout"]) if (v(k + "_s")) body[k + "_ms"] = Math.round(Number(v(k + "_s")) * 1000);
      if (v("retry")) body.retry = v("retry");
      if (v("priority")) body.priority = Number(v("priority"));
      if (v("quotas")) body.quotas = v("quotas").split(",").map((q) => q.trim()).filter(Boolean);
      if (v("unique_key")) body.unique_key = v("unique_key");
      if (form.elements.debounce.checked) body.debounce = true;
      const j = await call("POST", "queues/" + encodeURIComponent(name) + "/jobs", body);
      // A put that made nothing stays on the form, saying which job holds the key; one that
      // made or changed a job opens it.
      if (j.duplicate && !j.debounced) flash("Nothing put: " + j.job + " holds the key");
      else location.hash = "#/job/" + j.job;
    } catch (err) {
      flash(err.message, true);
    }
  });
  return [el("h1", {}, "Put a job into ", el("a", { href: "#/queue/" + name }, name)), form];
}

const states = ["pending", "assigned", "active", "callbacks", "succeeded", "failed"];
// The completion windows a jobs page offers, in minutes.
const windows = [["", "any time"], ["5", "last 5 minutes"], ["60", "last hour"], ["1440", "last day"]];

async function jobs(params) {
  const state = params.get("state") || "failed";
  const filters = { queue: params.get("queue") || "", callable: params.get("callable") || "", uuid: params.get("uuid") || "",
    within: params.get("within") || "" };
  const cursor = params.get("cursor") || "";
  const completed = state === "succeeded" || state === "failed";
  const since = completed && filters.within ? new Date(Date.now() - Number(filters.within) * 60000).toISOString() : "";
  const page = await call("GET", "jobs?" + qs({ state, queue: filters.queue, callable: filters.callable, uuid: filters.uuid,
    completed_since: since, limit: 50, cursor }));
  const selected = new Set();
  const bulk = (action) => {
    const refs = [...selected];
    if (!refs.length) return flash("Select jobs first.", true);
    ask(action + " " + refs.length + " selected jobs?", async () => {
      let done = 0;
      const errors = [];
      for (const r of refs) {
        try { await call("POST", "jobs/" + r + "/" + action.toLowerCase()); done++; } catch (e) { errors.push(r + ": " + e.message); }
      }
      flash(action + ": " + done + " of " + refs.length + " done" + (errors.length ? "; " + errors.join("; ") : ""), errors.length > 0);
      draw();
    });
  };
  const filterForm = el("form", { class: "filters", id: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    location.hash = "#/jobs?" + qs({ state, queue: f.get("queue"), callable: f.get("callable"), uuid: f.get("uuid"), within: f.get("within") || "" });
  } },
  el("input", { name: "queue", placeholder: "queue (glob)", value: filters.queue }),
  el("input", { name: "callable", placeholder: "handler (glob), e.g. email.*", value: filters.callable }),
  el("input", { name: "uuid", placeholder: "dispatcher UUID", value: filters.uuid }),
  completed ? el("select", { name: "within", "aria-label": "completed within" },
    windows.map(([v, label]) => el("option", { value: v, selected: v === filters.within }, "completed " + label))) : null,
  el("button", { type: "submit" }, "Filter"));
  const rows = page.jobs.map((j) => {
    const box = el("input", { type: "checkbox", "data-job": j.job, onchange: (e) => (e.target.checked ? selected.add(j.job) : selected.delete(j.job)) });
    return el("tr", { "data-job": j.job },
      el("td", {}, box), el("td", {}, jobLink(j.job)), el("td", {}, j.call), el("td", {}, statusPill(j)),
      el("td", {}, when(j.completed || j.active_start || j.begin_after)), el("td", { class: "num" }, dur(j.active_ms)),
      el("td", {}, j.failure ? j.failure.type + ": " + j.failure.message : j.result ? JSON.stringify(j.result) : ""));
  });
  return [
    el("h1", {}, "Jobs"),
    el("div", { class: "tabs" }, states.map((s) => el("a", { href: "#/jobs?" + qs({ state: s, ...filters }), class: s === state ? "active" : "" }, s))),
    filterForm,
    el("div", { class: "actions" },
      ["Retry", "Cancel", "Delete"].map((a) => el("button", { "data-bulk": a.toLowerCase(), class: a === "Delete" ? "danger" : "", onclick: () => bulk(a) }, a + " selected"))),
    page.jobs.length ? el("table", { id: "jobs" },
      el("thead", {}, el("tr", {}, ["", "job", "call", "state", "when", "ran", "outcome"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : el("p", { class: "muted", id: "no-jobs" }, "No " + state + " job."),
    page.next_cursor ? el("p", {}, el("a", { id: "next-page", href: "#/jobs?" + qs({ state, ...filters, cursor: page.next_cursor }) }, "Next page →")) : null,
  ];
}

// partsTable draws a composite's parts in order, its postprocess last, and below each part
// that is a composite itself its own parts: a tree, three levels deep at most.
async function partsTable(parts, depth) {
  const rows = [];
  for (const [i, p] of parts.entries()) {
    rows.push(el("tr", { "data-job": p.job },
      el("td", {}, i < parts.length - 1 ? String(i + 1) : "postprocess"), el("td", {}, jobLink(p.job)), el("td", {}, p.call),
      el("td", {}, statusPill(p)),
      el("td", {}, p.failure ? p.failure.type + ": " + p.failure.message : p.result ? JSON.stringify(p.result) : "")));
    if (depth < 2 && (p.handler === "zasync.serial" || p.handler === "zasync.parallel")) {
      const sub = await call("GET", "jobs/" + p.job);
      if (sub.detail.parts.length) {
        rows.push(el("tr", { class: "subparts" }, el("td", {}, "↳"), el("td", { colspan: 4 }, await partsTable(sub.detail.parts, depth + 1))));
      }
    }
  }
  return el("table", { id: depth === 0 ? "parts" : undefined, class: "parts" },
    el("thead", {}, el("tr", {}, ["", "job", "call", "state", "outcome"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

async function job(ref) {
  const j = await call("GET", "jobs/" + ref);
  const d = j.detail;
  const rows = [
    ["job", j.job], ["call", j.call], ["status", statusPill(j)], ["attempt", j.attempt], ["priority", j.priority],
    ["begin after", when(j.begin_after)], ["started", when(j.active_start)], ["ended", when(j.active_end)],
    ["completed", when(j.completed)], ["waited", dur(j.wait_ms)], ["ran", dur(j.active_ms)],
    ["agent", j.agent ? j.dispatcher + "/" + j.agent : "—"],
    ["retry policy", d.retry_policy || "RetryCommonFourTimes"],
    ["run timeout", d.run_timeout_ms ? dur(d.run_timeout_ms) : "none"],
    ["unique key", j.unique_key || "—"],
    ["metadata", d.meta && Object.keys(d.meta).length ? Object.entries(d.meta).map(([k, v]) => k + "=" + v).join(", ") : "—"],
    ["this attempt", Object.keys(d.retry_counts).length
      ? Object.entries(d.retry_counts).map(([k, v]) => k + ": " + v).join(", ") + " (as its retry policy counts them)" : "—"],
    ["callback of", j.parent ? jobLink(j.queue + "/" + j.parent) : "—"],
    ["part of", j.composite ? jobLink(j.queue + "/" + j.composite) : "—"],
    ["callbacks", j.callbacks && j.callbacks.length ? j.callbacks.map((c, i) => [i ? ", " : "", jobLink(c)]) : "—"],
  ];
  const outcome = j.failure
    ? [el("h2", {}, "Failure"), el("pre", { id: "traceback" }, d.traceback || j.failure.type + ": " + j.failure.message)]
    : j.result ? [el("h2", {}, "Result"), el("pre", { id: "result" }, JSON.stringify(j.result, null, 2))] : [];
  const refPath = "jobs/" + j.job;
  return [
    el("h1", {}, "Job ", j.id),
    el("div", { class: "actions" },
      el("button", { "data-action": "retry", onclick: () => act("Run job " + j.job + " again?", "POST", refPath + "/retry", undefined, (r) => "Job put back to run again (" + r.earlier_attempts + " earlier attempts kept)") }, "Retry"),
      el("button", { "data-action": "cancel", onclick: () => act("Cancel job " + j.job + "?", "POST", refPath + "/cancel", undefined, (r) => "Job cancelled (was " + r.was + ")") }, "Cancel"),
      el("button", { "data-action": "delete", class: "danger", onclick: () => act("Delete job " + j.job + " for good?", "POST", refPath + "/delete", undefined, () => { location.hash = "#/jobs?state=" + (j.failed ? "failed" : "succeeded"); return "Job deleted"; }) }, "Delete")),
    el("dl", { id: "job" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h2", {}, "Arguments"), el("pre", {}, JSON.stringify({ args: d.args, kwargs: d.kwargs }, null, 2)),
    outcome,
    d.parts.length ? [el("h2", {}, "Parts"), await partsTable(d.parts, 0)] : [],
    el("h2", {}, "Annotations"),
    Object.keys(d.annotations).length
      ? el("pre", { id: "annotations" }, JSON.stringify(d.annotations, null, 2)) : el("p", { class: "muted" }, "None."),
    el("h2", {}, "Earlier attempts"),
    d.earlier_attempts.length ? el("table", { id: "attempts" },
      el("thead", {}, el("tr", {}, ["attempt", "by", "started", "completed", "how it ended"].map((h) => el("th", {}, h)))),
      el("tbody", {}, d.earlier_attempts.map((a) => el("tr", {},
        el("td", {}, a.attempt), el("td", {}, a.owner || "—"), el("td", {}, when(a.active_start)), el("td", {}, when(a.completed)),
        el("td", {}, ending(a))))))
      : el("p", { class: "muted" }, "None: this is its first run."),
  ];
}

// ending says how an earlier attempt ended, and whether its process came back too late to
// commit (the fence refused it).
function ending(a) {
  const how = a.interrupted ? "interrupted: its dispatcher stopped or was found dead, at " + when(a.active_end)
    : a.failure ? (a.failure.type === "CancelledError" ? "cancelled" : "failed: " + a.failure.type + ": " + a.failure.message)
    : a.completed ? "succeeded" : "taken from it";
  if (!a.late_commit) return how;
  return [how, el("br"), el("span", { class: "pill bad late" }, "late commit refused"),
    " at " + when(a.late_commit) + ": its process still ran it after losing it; the fence kept nothing of it"];
}

// eventWords says what a dispatcher event was, for the history table.
const eventWords = {
  activated: ["started", ""], stopped: ["stopped cleanly", ""],
  found_dead: ["found dead by a sibling", "bad"], came_back: ["came back: it was alive after all", "warn"],
};

async function dispatchers() {
  const [{ dispatchers }, { events }] = await Promise.all([call("GET", "dispatchers"), call("GET", "dispatchers/events?limit=100")]);
  const rows = dispatchers.map((d) => {
    const share = d.ping_death_interval_ms ? Math.min(1, d.since_ping_ms / d.ping_death_interval_ms) : 0;
    const used = d.agents.reduce((n, a) => n + a.held, 0);
    const size = d.agents.reduce((n, a) => n + a.size, 0);
    return el("tr", { "data-dispatcher": d.uuid },
      el("td", {}, d.queue), el("td", {}, d.uuid), el("td", {}, (d.host || "?") + " pid " + (d.pid || "?")),
      el("td", { class: "state" }, { alive: el("span", { class: "pill ok" }, "alive"), dead: el("span", { class: "pill bad" }, "DEAD") }[d.state] ||
        el("span", { class: "pill" }, "stopped")),
      el("td", {}, d.buried ? when(d.buried) : "—"),
      el("td", {}, el("span", { class: "bar" + (d.alive ? "" : " bad"), "data-share": share.toFixed(2) }), " ",
        dur(d.since_ping_ms) + " of " + dur(d.ping_death_interval_ms)),
      el("td", { class: "num" }, used ? el("a", { href: "#/jobs?" + qs({ state: "active", queue: d.queue, uuid: d.uuid }) }, used + " of " + size) : "0 of " + size),
      el("td", {}, d.agents.map((a) => a.name + " " + a.held + "/" + a.size).join(", ")));
  });
  return [
    el("h1", {}, "Dispatchers"),
    el("p", { class: "muted" }, "Every dispatcher that has served a queue: alive, DEAD (it missed its pings: a sibling is about to hand its jobs on), or stopped (cleanly, or buried by a sibling that found it dead: see when it was last found dead)."),
    dispatchers.length ? el("table", { id: "dispatchers" },
      el("thead", {}, el("tr", {}, ["queue", "uuid", "where", "state", "last found dead", "last ping (of the death interval)", "slots used", "agents"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : el("p", { class: "muted" }, "No activated dispatcher."),
    el("h2", {}, "History"),
    el("p", { class: "muted" }, "Starts, stops, deaths found by a sibling (with the jobs it handed on) and returns, newest first."),
    events.length ? el("table", { id: "events" },
      el("thead", {}, el("tr", {}, ["when", "queue", "dispatcher", "what happened", "jobs handed on"].map((h) => el("th", {}, h)))),
      el("tbody", {}, events.map((e) => {
        const [words, tone] = eventWords[e.kind] || [e.kind, ""];
        return el("tr", { "data-kind": e.kind, "data-dispatcher": e.dispatcher },
          el("td", {}, when(e.at)), el("td", {}, e.queue), el("td", {}, e.dispatcher),
          el("td", {}, el("span", { class: "pill " + tone }, words)), el("td", { class: "num" }, e.jobs ? String(e.jobs) : "—"));
      }))) : el("p", { class: "muted" }, "Nothing yet."),
  ];
}

async function schedules() {
  const { schedules } = await call("GET", "schedules");
  return [
    el("h1", {}, "Schedules"),
    el("p", { class: "muted" }, "Periodic jobs: every process that declares a schedule tries each of its ticks, and each tick's job is put once. A schedule that no process declares any more does not tick; it is listed for a day, then forgotten."),
    schedules.length ? el("table", { id: "schedules" },
      el("thead", {}, el("tr", {}, ["queue", "name", "schedule", "call", "missed ticks", "next tick", "last tick", "declared by"].map((h) => el("th", {}, h)))),
      el("tbody", {}, schedules.map((s) => el("tr", { "data-schedule": s.queue + "/" + s.name },
        el("td", {}, el("a", { href: "#/queue/" + s.queue }, s.queue)), el("td", {}, s.name), el("td", {}, el("code", { class: "nowrap" }, s.spec)),
        el("td", {}, el("code", {}, s.call || s.handler)), el("td", {}, s.missed),
        el("td", { class: "nowrap" }, s.next_tick ? when(s.next_tick) : el("span", { class: "pill warn" }, "not ticking: no process declares it")),
        el("td", {}, s.last_tick ? [when(s.last_tick), " ", jobLink(s.queue + "/" + s.last_job)] : "—"),
        el("td", {}, s.declarers.length ? s.declarers.map((d) => d.uuid + " (" + (d.host || "?") + " pid " + (d.pid || "?") + ")").join(", ") : "—"))))) :
      el("p", { class: "muted" }, "No schedule. Declare one with runtime.Every, or zasync serve --every."),
  ];
}

// route reads the hash: #/, #/jobs?…, #/job/queue/id, #/queue/name, #/put/queue,
// #/dispatchers, #/schedules. A still view (a form) is drawn once, not refreshed.
function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/job/")) return { name: "job", run: () => job(path.slice(5)), nav: "jobs" };
  if (path === "/jobs") return { name: "jobs", run: () => jobs(params), nav: "jobs" };
  if (path.startsWith("/put/")) return { name: "put", run: async () => putForm(path.slice(5)), nav: "overview", still: true };
  if (path.startsWith("/queue/")) return { name: "queue", run: () => queue(path.slice(7)), nav: "overview" };
  if (path === "/dispatchers") return { name: "dispatchers", run: dispatchers, nav: "dispatchers" };
  if (path === "/schedules") return { name: "schedules", run: schedules, nav: "schedules" };
  return { name: "overview", run: overview, nav: "overview" };
}

// draw draws the current view; a view whose page holds a form being typed in, or a
// question being asked, is not redrawn under the user's hands, nor, on a periodic refresh
// (refresh set), one whose jobs are selected for a bulk action.
async function draw(refresh) {
  const r = route();
  view = r;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === r.nav);
  try {
    const nodes = await r.run();
    if (view !== r) return; // the user went elsewhere meanwhile
    const main = document.getElementById("view");
    const focused = document.activeElement;
    if (focused && main.contains(focused) && focused.tagName === "INPUT" && focused.type !== "checkbox") return;
    // Jobs selected for a bulk action stay where they are: the periodic refresh waits until
    // the action, or until none is selected.
    if (refresh && main.dataset.view === r.name && main.querySelector("input[type=checkbox]:checked")) return;
    const checked = new Set([...main.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.dataset.job));
    main.replaceChildren(...nodes.flat().filter(Boolean));
    for (const b of main.querySelectorAll("input[type=checkbox]")) {
      if (checked.has(b.dataset.job)) { b.checked = true; b.dispatchEvent(new Event("change")); }
    }
    for (const b of main.querySelectorAll(".bar")) b.style.width = Math.round(60 * Number(b.dataset.share)) + "px";
    main.dataset.view = r.name;
  } catch (e) {
    document.getElementById("view").replaceChildren(el("p", { class: "bad", id: "error" }, e.message));
  }
}

// find opens the page of the job whose id (queue/id, or an id alone: each queue is tried)
// was typed in the search box.
async function find(text) {
  const ref = text.trim();
  if (!ref) return;
  if (ref.includes("/")) { location.hash = "#/job/" + ref; return; }
  const { queues } = await call("GET", "queues");
  for (const q of queues) {
    try { await call("GET", "jobs/" + q.name + "/" + ref); location.hash = "#/job/" + q.name + "/" + ref; return; } catch (e) { /* not in this queue */ }
  }
  flash("No job " + ref + " in any queue.", true);
}

function start() {
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    find(document.getElementById("search").value).catch((err) => flash(err.message, true));
  });
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = document.getElementById("token");
    sessionStorage.setItem("zasync-token", t.value);
    t.value = "";
    flash("Token set for this tab.");
  });
  window.addEventListener("hashchange", () => { document.getElementById("flash").hidden = true; draw(); });
  draw();
  timer = setInterval(() => { if (document.getElementById("confirm").hidden && !(view && view.still)) draw(true); }, refreshEvery);
}

document.addEventListener("DOMContentLoaded", start);
