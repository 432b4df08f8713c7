// The live floor: pushed over the page's WebSocket (supervisor/live.js: welcome and
// floor.update); while that socket is down, GET /api/v1/floor every 2 s, one request at a
// time, only while the tab is visible. Summary tiles, the needs-attention list
// (supervisor/attention.js), the queue, estimated waits, active calls and reps. Rows are kept
// by key, so an update never rebuilds a table. Frustration shows only per live call, as the
// CUSTOMER's expression; reps are never ranked, sorted or scored by it.
import { $, el, setText } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";
import { api } from "../staff/api.js";
import { formatClock, isNumber, none } from "../staff/format.js";
import { renderAttention } from "./attention.js";
import { markAnswered, startTicker, stopTicker, stopTicking, ticking } from "./clocks.js";
import { integer, languageLabel, priorityLabel, reasonLabel, statusLabel, tileValue } from "./format.js";

const POLL_MS = 2000;
const WAIT_WARN_S = 60; // the queue's waited time turns amber, then red
const WAIT_ALERT_S = 180;
const WRAP_WARN_S = 120; // a long wrap-up turns amber
const STATUS_ORDER = ["busy", "wrap_up", "offered", "available", "away", "offline"];
const COUNTED_STATUSES = ["available", "busy", "wrap_up", "away"];

let floor = null; // the last floor (pushed, or the /api/v1/floor answer)
let polling = false; // signed in: the page wants the floor
let live = false; // the socket pushes it: no polling
let listen = null; // (session_id, button) => void: the Listen buttons' action (supervisor/assist.js)
let pollTimer = null;
let pollSeq = 0;
let lastWaiting = null;

export const lastFloor = () => floor;
export const isPolling = () => polling && !live && !document.hidden;

/** What a Listen button does (set once by the page). */
export function onListen(handler) {
  listen = handler;
}

/** The socket pushes the floor (true), or it is down and polling takes over (false). */
export function setLive(on) {
  live = on;
  if (on) {
    pollSeq++;
    clearTimeout(pollTimer);
    pollTimer = null;
    if (polling && !document.hidden) startTicker();
  } else if (polling) pollFloor();
}

/** A floor pushed by the server (welcome, floor.update). */
export function showFloor(data) {
  if (!polling || !data) return;
  renderFloor(data, true);
  $("sup-floor-stale").hidden = true;
}

export function startPolling() {
  polling = true;
  pollFloor();
  startTicker();
}

export function stopPolling() {
  polling = false;
  pause();
}

function pause() {
  pollSeq++;
  clearTimeout(pollTimer);
  pollTimer = null;
  stopTicker();
}

/** A hidden wallboard asks nothing of the server; it catches up the moment it is shown. */
export function onVisibility() {
  if (!polling) return;
  if (document.hidden) pause();
  else {
    if (!live) pollFloor();
    startTicker();
  }
}

async function pollFloor() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!polling || live || document.hidden) return;
  const seq = ++pollSeq;
  try {
    const data = await api("GET", "/api/v1/floor");
    if (seq !== pollSeq) return;
    renderFloor(data, true);
    $("sup-floor-stale").hidden = true;
  } catch (err) {
    if (seq !== pollSeq || err.status === 401 || err.status === 403) return;
    const stale = $("sup-floor-stale");
    stale.textContent = t("supervisor.floor.stale");
    stale.hidden = false;
  } finally {
    if (polling && !live && seq === pollSeq && !document.hidden) pollTimer = setTimeout(pollFloor, POLL_MS);
  }
}

/** Draw the last answer again (new labels arrived). */
export function redrawFloor() {
  if (floor) renderFloor(floor, false);
}

function renderFloor(data, fresh) {
  floor = data;
  if (fresh) markAnswered();
  const queue = Array.isArray(data.queue) ? data.queue : [];
  const reps = Array.isArray(data.reps) ? data.reps : [];
  const calls = Array.isArray(data.calls) ? data.calls : [];
  renderTiles(queue, reps, calls);
  renderAttention(Array.isArray(data.attention) ? data.attention : [], listen, fresh);
  renderQueue(queue);
  renderEstimates(data.estimated_wait_s || {});
  renderCalls(calls);
  renderReps(reps);
  if (fresh) {
    const time = new Intl.DateTimeFormat(currentLanguage(), { timeStyle: "medium" }).format(new Date());
    setText($("sup-floor-updated"), t("supervisor.floor.updated", { time }));
  }
  if (lastWaiting !== null && lastWaiting !== queue.length) {
    $("sup-floor-announce").textContent = t("supervisor.floor.announce_waiting", { count: queue.length });
  }
  lastWaiting = queue.length;
}

/** Keep a tbody's rows in the order of `items`, reusing rows by key so focus and selection survive a poll. */
function syncRows(tbody, items, keyOf, build, update) {
  const old = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  items.forEach((item, i) => {
    const key = String(keyOf(item));
    let row = old.get(key);
    if (row) old.delete(key);
    else {
      row = build(item);
      row.dataset.key = key;
    }
    update(row, item);
    if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
  });
  for (const row of old.values()) row.remove();
}

/** A table's count, and the table or its "none" note. */
function showCount(name, count) {
  setText($(`sup-${name}-count`), integer(count));
  $(`sup-${name}-table`).hidden = count === 0;
  $(`sup-${name}-empty`).hidden = count > 0;
}

/** A new row with a test id and these cells (a class name each, or null). */
function row(testid, cellClasses) {
  const tr = el("tr", { testid });
  tr.append(...cellClasses.map((className) => el("td", { className })));
  return tr;
}

function renderTiles(queue, reps, calls) {
  setText(tileValue("sup-tile-waiting"), integer(queue.length));
  $("sup-tile-waiting").classList.toggle("active", queue.length > 0);
  const longest = Math.max(0, ...queue.map((q) => (isNumber(q.waited_s) ? q.waited_s : 0)));
  const longestNode = tileValue("sup-tile-longest");
  if (queue.length) ticking(longestNode, longest, { warn: WAIT_WARN_S, alert: WAIT_ALERT_S });
  else {
    stopTicking(longestNode);
    setText(longestNode, formatClock(0));
  }
  for (const status of COUNTED_STATUSES) {
    const n = reps.filter((r) => r.status === status).length;
    setText(tileValue(`sup-tile-${status.replace("_", "-")}`), integer(n));
  }
  setText(tileValue("sup-tile-calls"), integer(calls.length));
}

function renderQueue(queue) {
  syncRows(
    $("sup-queue-list"),
    queue,
    (q) => q.session_id,
    () => row("sup-queue-row", ["customer", null, null, null, "num waited"]),
    (tr, q) => {
      tr.dataset.sessionId = q.session_id;
      const [customer, reason, language, priority, waited] = tr.cells;
      setText(customer, q.customer_name || t("common.guest"));
      if (q.ringing) {
        const badge = el("span", { className: "badge ringing", text: t("supervisor.floor.queue.ringing"), testid: "sup-queue-ringing" });
        badge.title = t("supervisor.floor.queue.ringing_hint");
        customer.append(" ", badge);
      }
      setText(reason, reasonLabel(q.reason));
      setText(language, languageLabel(q.language));
      const p = Number(q.priority) || 0;
      if (!priority.firstChild || priority.dataset.p !== String(p)) {
        priority.dataset.p = String(p);
        priority.replaceChildren(el("span", { className: `badge priority${p > 0 ? " raised" : ""}`, text: priorityLabel(p) }));
      }
      ticking(waited, q.waited_s, { warn: WAIT_WARN_S, alert: WAIT_ALERT_S });
    },
  );
  showCount("queue", queue.length);
}

function renderEstimates(estimates) {
  const entries = Object.entries(estimates).filter(([, s]) => isNumber(s));
  entries.sort(([a], [b]) => reasonLabel(a).localeCompare(reasonLabel(b), currentLanguage()));
  const nodes = entries.map(([code, seconds]) => {
    const item = el("div", { className: "est-item", testid: "sup-est-wait-row" });
    item.dataset.reason = code;
    item.append(el("dt", { text: reasonLabel(code) }), el("dd", { className: "num", text: t("supervisor.floor.queue.estimated_value", { time: formatClock(seconds) }) }));
    return item;
  });
  $("sup-est-wait").replaceChildren(...nodes);
  $("sup-est-wait-empty").hidden = entries.length > 0;
}

function renderCalls(calls) {
  // Longest call first: a stable order that never depends on the customer's expression.
  const sorted = [...calls].sort((a, b) => (Number(b.talk_s) || 0) - (Number(a.talk_s) || 0));
  syncRows(
    $("sup-calls-list"),
    sorted,
    (c) => c.session_id,
    callRow,
    (tr, c) => {
      tr.dataset.sessionId = c.session_id;
      const [rep, reason, talk, frustration] = tr.cells;
      setText(rep.querySelector(".name"), c.rep?.display_name || none());
      renderCallBadges(rep, c);
      setText(reason, reasonLabel(c.reason));
      ticking(talk, c.talk_s);
      renderFrustration(frustration, c.customer_frustration, Boolean(c.customer_flag));
      tr.classList.toggle("flagged", Boolean(c.customer_flag));
    },
  );
  showCount("calls", calls.length);
}

/** A call's row: rep (with help and assist badges), reason, talk time, frustration, and Listen. */
function callRow() {
  const tr = row("sup-call-row", ["rep", null, "num talk", "frustration", "actions"]);
  tr.cells[0].append(el("span", { className: "name" }));
  const button = el("button", { className: "listen", text: t("supervisor.assist.listen"), testid: "assist-listen" });
  button.type = "button";
  button.addEventListener("click", () => listen?.(tr.dataset.sessionId, button));
  tr.cells[4].append(button);
  return tr;
}

/** "Asked for help" while the rep asks; who assists the call and how. */
function renderCallBadges(cell, call) {
  const badge = (testid, text) => {
    let node = cell.querySelector(`[data-testid="${testid}"]`);
    if (text && !node) cell.append((node = el("span", { className: `badge ${testid}`, testid })));
    if (!text) node?.remove();
    else setText(node, text);
  };
  badge("sup-call-help", call.help ? t("supervisor.attention.why.help") : null);
  const assist = call.assist;
  const who = assist?.supervisor?.display_name;
  const mode = assist?.mode ? t(`supervisor.assist.${assist.mode}`) : null;
  badge("sup-call-assist", mode && (who ? `${who}${t("common.separator")}${mode}` : mode));
  const button = cell.parentElement?.querySelector('[data-testid="assist-listen"]');
  if (button) button.setAttribute("aria-label", t("supervisor.assist.listen_label", { rep: call.rep?.display_name || t("supervisor.attention.no_rep") }));
}

/** The customer's live frustration: a small meter (role=meter, 0–100) and a flag badge. */
function renderFrustration(cell, value, flagged) {
  if (!isNumber(value)) {
    if (cell.dataset.kind !== "none") {
      cell.dataset.kind = "none";
      const text = el("span", { className: "muted no-cues", text: t("supervisor.floor.calls.no_cues"), testid: "sup-call-no-cues" });
      text.title = t("supervisor.floor.calls.no_cues_hint");
      cell.replaceChildren(text);
    }
  } else {
    if (cell.dataset.kind !== "meter") {
      cell.dataset.kind = "meter";
      const meter = el("span", { className: "mini-meter", testid: "sup-call-frustration" });
      meter.setAttribute("role", "meter");
      meter.setAttribute("aria-valuemin", "0");
      meter.setAttribute("aria-valuemax", "100");
      meter.setAttribute("aria-label", t("supervisor.floor.calls.frustration_meter"));
      meter.append(el("span", { className: "fill" }));
      cell.replaceChildren(meter, el("span", { className: "num pct" }));
    }
    const pct = Math.round(Math.min(1, Math.max(0, value)) * 100);
    const meter = cell.querySelector('[role="meter"]');
    meter.setAttribute("aria-valuenow", String(pct));
    meter.setAttribute("aria-valuetext", `${pct}%`);
    meter.dataset.level = pct >= 50 ? "high" : pct >= 30 ? "mid" : "low";
    meter.firstChild.style.inlineSize = `${pct}%`; // CSSOM, allowed by the CSP
    setText(cell.querySelector(".pct"), `${pct}%`);
  }
  let badge = cell.querySelector('[data-testid="sup-call-flag"]');
  if (flagged && !badge) {
    badge = el("span", { className: "badge flag", text: t("supervisor.floor.calls.flag"), testid: "sup-call-flag" });
    badge.title = t("supervisor.floor.calls.flag_hint");
    cell.append(badge);
  } else if (!flagged && badge) badge.remove();
}

function repRow() {
  const tr = row("sup-rep-row", ["rep", null, "num since"]);
  const status = el("span", { className: "status", testid: "sup-rep-status" });
  const dot = el("span", { className: "dot" });
  dot.setAttribute("aria-hidden", "true");
  status.append(dot, el("span", { className: "status-text" }));
  tr.cells[1].append(status);
  return tr;
}

function renderReps(reps) {
  const rank = (s) => {
    const i = STATUS_ORDER.indexOf(s);
    return i < 0 ? STATUS_ORDER.length : i;
  };
  const name = (r) => r.display_name || `#${r.id}`;
  // By status, then alphabetically: a roster, not a league table.
  const sorted = [...reps].sort((a, b) => rank(a.status) - rank(b.status) || name(a).localeCompare(name(b), currentLanguage()));
  syncRows(
    $("sup-reps-list"),
    sorted,
    (r) => r.id,
    repRow,
    (tr, r) => {
      tr.dataset.repId = String(r.id);
      tr.dataset.status = r.status || "";
      if (r.session_id) tr.dataset.sessionId = r.session_id;
      else delete tr.dataset.sessionId;
      const [rep, status, since] = tr.cells;
      setText(rep, name(r));
      status.firstChild.dataset.status = r.status || "";
      setText(status.querySelector(".status-text"), statusLabel(r.status));
      ticking(since, r.idle_s, { warn: r.status === "wrap_up" ? WRAP_WARN_S : null });
    },
  );
  showCount("reps", reps.length);
}
