// The operations page: plain JavaScript against each service's admin routes, through the gateway.
// Everything shown is set with textContent: message bodies and reasons come from outside and are never HTML.
"use strict";

// SERVICES: deploy/ops/services.js, generated from the registry of services, loaded first.
const TOKEN_KEY = "shop-ops-token";
const $ = (selector) => document.querySelector(selector);

class SignedOut extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function call(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${token()}` } });
  if (response.status === 401) throw new SignedOut("your session ended: sign in again");
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${response.status} ${body.detail || ""}`.trim());
  return body;
}

// Asks every service; a service that fails is named in the warnings, the others still show.
async function askEach(pathOf) {
  const answers = await Promise.allSettled(SERVICES.map((service) => call("GET", pathOf(service))));
  const problems = [];
  const results = [];
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") results.push(answer.value);
    else if (answer.reason instanceof SignedOut) throw answer.reason;
    else problems.push(`${SERVICES[i]}: ${answer.reason.message}`);
  });
  return { results, problems };
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function utc(at) { return at ? new Date(at).toISOString().replace("T", " ").slice(0, 23) : ""; }

// ---- queues: one row per work queue, with its wait queues and parking queue summed beside it ----

function showQueues(answers) {
  const body = $("#queues tbody");
  body.replaceChildren();
  for (const { service, queues } of answers) {
    for (const work of queues.filter((q) => q.kind === "work")) {
      const lane = queues.filter((q) => q.lane === work.lane);
      const retrying = lane.filter((q) => q.kind === "retry").reduce((n, q) => n + (q.messages || 0), 0);
      const parked = lane.filter((q) => q.kind === "parked").reduce((n, q) => n + (q.messages || 0), 0);
      const row = body.insertRow();
      row.dataset.queue = work.name;
      row.className = work.consumers === 0 ? "idle" : "";
      cell(row, service);
      cell(row, work.exists ? work.name : `${work.name} (not declared yet)`);
      cell(row, work.messages, "number ready");
      cell(row, work.consumers, "number consumers");
      cell(row, retrying, `number retrying${retrying ? " alert" : ""}`);
      cell(row, parked, `number parked${parked ? " alert" : ""}`);
    }
  }
}

// ---- parked messages, each with its Replay button ----

function showParked(answers) {
  const body = $("#parked tbody");
  body.replaceChildren();
  let count = 0;
  for (const { service, parked } of answers) {
    for (const message of parked) {
      count += 1;
      const row = body.insertRow();
      row.dataset.messageId = message.message_id || "";
      cell(row, service);
      cell(row, message.queue);
      cell(row, message.event_type || "(none)");
      cell(row, message.message_id, "id");
      cell(row, message.correlation_id, "id");
      cell(row, message.parked_at ? utc(message.parked_at) : "");
      cell(row, message.attempts, "number");
      cell(row, message.reason, "reason");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Replay";
      button.className = "replay";
      button.disabled = !message.message_id;
      button.addEventListener("click", () => replay(service, message, button));
      row.insertCell().append(button);
    }
  }
  $("#parked-empty").hidden = count > 0;
  $("#parked").hidden = count === 0;
}

async function replay(service, message, button) {
  button.disabled = true;
  button.textContent = "Replaying…";
  // Its queue and offset, from the listing: the service reads that one entry, not the whole parking stream.
  const where = message.offset == null ? "" : `?queue=${encodeURIComponent(message.queue)}&offset=${message.offset}`;
  try {
    await call("POST", `/api/${service}/parked/${encodeURIComponent(message.message_id)}/replay${where}`);
  } catch (error) {
    return fail(error);
  }
  await refresh();
}

// ---- the history stream (every event, kept HISTORY_MAX_AGE) and each service's last rebuild or backfill ----

function showHistory(answers) {
  const stream = answers.length ? answers[0].stream : null;
  $("#history-stream").textContent = !stream ? "" : stream.messages === null ? `${stream.name} is not declared`
    : `${stream.name}: ${stream.messages} messages, offsets ${stream.first_offset ?? "-"}..${stream.last_offset ?? "-"},`
      + ` oldest event ${utc(stream.oldest_at) || "-"}`;
  const body = $("#history tbody");
  body.replaceChildren();
  for (const { service, replay } of answers.filter((answer) => answer.replay)) {
    const row = body.insertRow();
    row.dataset.service = service;
    cell(row, service);
    cell(row, replay.finished_at ? "finished" : "running (or stopped: run it again)", replay.finished_at ? "" : "alert");
    cell(row, replay.next_offset, "number offset");
    cell(row, replay.end_offset === null ? "" : replay.end_offset + 1, "number");
    cell(row, replay.replayed, "number");
    cell(row, utc(replay.started_at));
    cell(row, utc(replay.finished_at));
  }
}

async function refresh() {
  try {
    // Side by side: parked messages are read from their streams, never taken, so listing them changes no count.
    const [queues, parked, history] = await Promise.all([
      askEach((s) => `/api/${s}/queues`), askEach((s) => `/api/${s}/parked`), askEach((s) => `/api/${s}/history`),
    ]);
    showQueues(queues.results);
    showParked(parked.results);
    showHistory(history.results);
    $("#warnings").textContent = [...new Set([...queues.problems, ...parked.problems, ...history.problems])].join("; ");
    $("#refreshed").textContent = `as of ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    fail(error);
  }
}

// ---- following a request: every service says what it published and handled for a correlation id ----

async function correlationIdsOf(query) {
  const order = query.match(/^\s*(?:order\s*)?#?(\d+)\s*$/i);
  if (!order) return { ids: [query.trim()], problems: [] };
  const { results, problems } = await askEach(
    (s) => `/api/${s}/events/correlations?field=order_id&value=${encodeURIComponent(order[1])}`);
  const ids = [...new Set(results.flatMap((r) => r.correlation_ids))];
  return { ids, problems, order: order[1] };
}

async function chainOf(correlationIds) {
  const events = new Map();
  const problems = [];
  let viewer = null;  // where a trace id links to (OPS_TRACE_VIEWER_URL), when one is configured
  for (const correlationId of correlationIds) {
    const answer = await askEach((s) => `/api/${s}/events?correlation_id=${encodeURIComponent(correlationId)}`);
    problems.push(...answer.problems);
    for (const { service, published, handled, trace_viewer: traceViewer } of answer.results) {
      viewer = viewer || traceViewer;
      for (const e of [...published, ...handled]) {
        if (!events.has(e.event_id)) {
          events.set(e.event_id, { id: e.event_id, type: e.event_type, correlationId, handled: [] });
        }
      }
      for (const e of published) {
        Object.assign(events.get(e.event_id), { by: service, at: e.at, sent: e.sent_at, traceId: e.trace_id });
      }
      for (const e of handled) events.get(e.event_id).handled.push({ service, at: e.at });
    }
  }
  const when = (e) => e.at || e.handled.map((h) => h.at).sort()[0];
  return { chain: [...events.values()].sort((a, b) => new Date(when(a)) - new Date(when(b))), problems, viewer };
}

// A trace id, linked to the trace viewer when one is configured (its address comes from the services' settings).
function traceLink(traceId, viewer) {
  const element = document.createElement(viewer ? "a" : "span");
  element.className = "trace-id";
  element.textContent = traceId;
  if (viewer) {
    element.href = `${viewer}/${encodeURIComponent(traceId)}`;
    element.target = "_blank";
    element.rel = "noopener";
  }
  return element;
}

function showChain(chain, viewer) {
  const list = $("#chain");
  list.replaceChildren();
  for (const event of chain) {
    const item = document.createElement("li");
    item.dataset.eventType = event.type;
    const name = document.createElement("span");
    name.className = "event";
    name.textContent = event.type;
    const published = event.by
      ? ` published by ${event.by} at ${utc(event.at)}${event.sent ? "" : " (not sent yet)"}`
      : " (published before the outbox's retention)";
    const handled = event.handled.length
      ? ` · handled by ${event.handled.sort((a, b) => new Date(a.at) - new Date(b.at))
        .map((h) => `${h.service} at ${utc(h.at)}`).join(", ")}`
      : " · not handled by anyone yet";
    const details = document.createElement("span");
    details.className = "when";
    details.textContent = published + handled;
    const correlation = document.createElement("div");
    correlation.className = "correlation";
    correlation.textContent = `correlation id ${event.correlationId} · event id ${event.id}`;
    if (event.traceId) correlation.append(" · trace ", traceLink(event.traceId, viewer));
    item.append(name, details, correlation);
    list.append(item);
  }
}

async function trace(query) {
  $("#trace-summary").textContent = "searching…";
  $("#chain").replaceChildren();
  try {
    const { ids, problems, order } = await correlationIdsOf(query);
    const { chain, problems: more, viewer } = await chainOf(ids);
    showChain(chain, viewer);
    const what = order ? `order ${order} (correlation ids: ${ids.join(", ") || "none"})` : `correlation id ${ids[0]}`;
    $("#trace-summary").textContent = chain.length
      ? `${chain.length} event(s) for ${what}: ${chain.map((e) => e.type).join(" → ")}`
      : `no events for ${what}`;
    const traces = [...new Set(chain.map((e) => e.traceId).filter(Boolean))];
    const list = $("#trace-ids");
    list.replaceChildren(...(traces.length ? ["trace(s): "] : []));
    traces.forEach((traceId, i) => list.append(...(i ? [", "] : []), traceLink(traceId, viewer)));
    $("#warnings").textContent = [...new Set([...problems, ...more])].join("; ");
  } catch (error) {
    fail(error);
  }
}

// ---- signing in and out ----

function fail(error) {
  if (error instanceof SignedOut) return signOut(error.message);
  $("#warnings").textContent = error.message;
}

function signOut(why = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#ops").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = why;
}

async function signedIn() {
  let me;
  try {
    me = await call("GET", "/api/auth/me");
  } catch (error) {
    return signOut(error.message);
  }
  if (me.role !== "admin") return signOut("This page is for admins; that account is not one.");
  $("#who-email").textContent = me.email;
  $("#who").hidden = false;
  $("#login").hidden = true;
  $("#ops").hidden = false;
  await refresh();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  $("#login-error").textContent = "";
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: form.email.value, password: form.password.value }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("#login-error").textContent = body.detail ? `Sign-in refused: ${body.detail}` : `Sign-in failed (${response.status})`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
  form.password.value = "";
  await signedIn();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#refresh").addEventListener("click", refresh);
  $("#trace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    trace($("#trace-query").value);
  });
  if (token()) signedIn();
});
