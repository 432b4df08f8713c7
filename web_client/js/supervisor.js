// The supervisor dashboard (/supervisor): the live floor (queue, reps, calls) and reports.
// Frustration on this page is always the CUSTOMER's expression, shown per live call; nothing
// here ranks, sorts or scores reps by their customers' emotions.
import { chartLegend, clearChart, formatClock, renderBarChart } from "./charts.js";
import { $, postJSON, setState, toast } from "./ui.js";

const ALLOWED_ROLES = ["supervisor", "admin"];
const STRINGS_URL = "/static/i18n/staff-en.json";
const POLL_MS = 2000;
const TICK_MS = 1000;
const WAIT_WARN_S = 60; // the queue's waited time turns amber, then red
const WAIT_ALERT_S = 180;
const WRAP_WARN_S = 120; // a long wrap-up turns amber
const MAX_FILLED_DAYS = 400; // a day report's x axis lists every day of the period up to this
const STATUS_ORDER = ["busy", "wrap_up", "offered", "available", "away", "offline"];
const COUNTED_STATUSES = ["available", "busy", "wrap_up", "away"];

let strings = {};
let locale = "en";
let plural = new Intl.PluralRules("en");
let me = null;
let csrf = null;
let started = false;

// live floor
let floor = null; // the last /api/v1/floor answer
let floorAt = 0; // performance.now() when it arrived: ticking times count on from there
let polling = false;
let pollTimer = null;
let pollSeq = 0;
let tickTimer = null;
let lastWaiting = null;

// reports
let report = null; // {query, data}
let reportSeq = 0;
const configReasons = new Map();
const configLanguages = new Map();

window.rapport = {
  get state() {
    return document.body.dataset.state;
  },
  get floor() {
    return floor;
  },
  get report() {
    return report;
  },
  get polling() {
    return polling && !document.hidden;
  },
};

// --- strings ---

function lookup(key) {
  return key.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), strings);
}

/** The catalogue's string for `key` with {name} placeholders filled; {one, other} objects pick by vars.count. */
export function t(key, vars = {}) {
  let value = lookup(key);
  if (value && typeof value === "object" && "other" in value) value = value[plural.select(Number(vars.count) || 0)] ?? value.other;
  if (typeof value !== "string") return key;
  return value.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

async function loadStrings() {
  try {
    const r = await fetch(STRINGS_URL, { credentials: "same-origin" });
    if (r.ok) strings = await r.json();
  } catch {
    /* keys stay visible: better than a blank page */
  }
  locale = strings.locale || "en";
  plural = new Intl.PluralRules(locale);
  document.documentElement.lang = locale;
  document.documentElement.dir = strings.dir || "ltr";
  document.title = t("supervisor.page_title");
  translate(document);
}

function translate(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) node.setAttribute(attr, t(key));
    }
  }
}

// --- formatting ---

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const none = () => t("common.none");
const integer = (v) => (isNumber(v) ? new Intl.NumberFormat(locale).format(Math.round(v)) : none());
const clock = (s) => (isNumber(s) ? formatClock(s) : none());

function percent(v) {
  if (!isNumber(v)) return none();
  const digits = v > 0 && v < 0.1 ? 1 : 0;
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: digits }).format(v);
}

function rating(v) {
  return isNumber(v) ? new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(v) : none();
}

function humanize(code) {
  if (!code) return none();
  const text = String(code).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function reasonLabel(code) {
  if (!code) return t("common.unknown");
  const own = lookup(`common.reasons.${code}`);
  return typeof own === "string" ? own : configReasons.get(code) || humanize(code);
}

function languageLabel(code) {
  if (!code) return none();
  try {
    const name = new Intl.DisplayNames([locale], { type: "language" }).of(code);
    if (name && name !== code) return name;
  } catch {
    /* an odd code: fall through */
  }
  return configLanguages.get(code) || String(code).toUpperCase();
}

function statusLabel(status) {
  const own = lookup(`common.status.${status}`);
  return typeof own === "string" ? own : humanize(status);
}

function priorityLabel(p) {
  const n = Number(p) || 0;
  if (n === 0) return t("common.priority.normal");
  if (n === 10) return t("common.priority.high");
  return t("common.priority.level", { n });
}

const utcDate = (iso) => new Date(`${iso}T00:00:00Z`);
const isoDay = (date) => date.toISOString().slice(0, 10);
const todayUTC = () => isoDay(new Date());

function addDays(iso, days) {
  const d = utcDate(iso);
  d.setUTCDate(d.getUTCDate() + days);
  return isoDay(d);
}

function dayLabel(iso, long = false) {
  const d = utcDate(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const options = long ? { weekday: "short", day: "numeric", month: "short", year: "numeric" } : { day: "numeric", month: "short" };
  return new Intl.DateTimeFormat(locale, { ...options, timeZone: "UTC" }).format(d);
}

// --- small DOM helpers ---

function el(tag, { className, text, testid } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text; // server text only ever goes in as text
  if (testid) node.dataset.testid = testid;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
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

/** A time that keeps counting between polls: the server's seconds plus the time since the answer. */
function ticking(node, seconds, { warn = null, alert = null } = {}) {
  node.dataset.baseS = String(isNumber(seconds) ? seconds : 0);
  if (warn != null) node.dataset.warnS = String(warn);
  else delete node.dataset.warnS;
  if (alert != null) node.dataset.alertS = String(alert);
  else delete node.dataset.alertS;
  paintTick(node, elapsedS());
}

const elapsedS = () => (floorAt ? Math.max(0, (performance.now() - floorAt) / 1000) : 0);

function paintTick(node, elapsed) {
  const s = Number(node.dataset.baseS) + elapsed;
  setText(node, formatClock(s));
  const level = node.dataset.alertS && s >= Number(node.dataset.alertS) ? "alert" : node.dataset.warnS && s >= Number(node.dataset.warnS) ? "warn" : "";
  if ((node.dataset.level || "") !== level) {
    if (level) node.dataset.level = level;
    else delete node.dataset.level;
  }
}

function tick() {
  const elapsed = elapsedS();
  for (const node of document.querySelectorAll(".dashboard [data-base-s]")) paintTick(node, elapsed);
}

// --- API ---

/** fetch JSON with the staff cookie; non-GET requests carry the CSRF token. */
async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body ?? {});
  }
  const r = await fetch(url, init);
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (r.status === 401) showLogin(); // the login expired: sign in again
  else if (r.status === 403 && data.error?.code === "forbidden") showForbidden();
  if (!r.ok) {
    const message = data.error?.message || r.statusText || `HTTP ${r.status}`;
    throw Object.assign(new Error(message), { status: r.status, code: data.error?.code });
  }
  return data;
}

// --- start, sign-in, roles ---

async function init() {
  await loadStrings();
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("logout").addEventListener("click", logout);
  wireReports();
  document.addEventListener("visibilitychange", onVisibility);
  const r = await fetch("/api/v1/me", { credentials: "same-origin" }).catch(() => null);
  if (r?.ok) start(await r.json());
  else {
    if (r?.status !== 401) toast(t("common.login.unreachable"));
    showLogin();
  }
}

function showLogin() {
  stopPolling();
  me = null;
  setState("login");
  $("login-username").focus();
}

function showForbidden() {
  stopPolling();
  setState("forbidden");
}

function onLoginSubmit(ev) {
  ev.preventDefault();
  const body = { username: $("login-username").value, password: $("login-password").value };
  postJSON("/api/v1/auth/login", body).then(start, (err) => {
    const message = err.status === 429 ? t("common.login.rate_limited") : err.status === 401 ? t("common.login.wrong") : err.message;
    const box = $("login-error");
    box.textContent = message;
    box.hidden = false;
  });
}

async function logout() {
  stopPolling();
  try {
    await postJSON("/api/v1/auth/logout", {}, { "X-CSRF-Token": csrf });
  } finally {
    location.reload();
  }
}

function start(answer) {
  me = answer.user;
  csrf = answer.csrf_token;
  $("login-password").value = "";
  $("login-error").hidden = true;
  const roleKey = `common.roles.${me.role}`;
  const role = typeof lookup(roleKey) === "string" ? t(roleKey) : humanize(me.role);
  $("user-name").textContent = me.display_name && me.display_name !== role ? t("common.user_role", { name: me.display_name, role }) : role;
  if (!ALLOWED_ROLES.includes(me.role)) {
    showForbidden();
    return;
  }
  setState("dashboard");
  if (!started) {
    started = true;
    loadConfig();
    resetRange(7);
  }
  startPolling();
  loadReport();
  if (!location.hash) document.getElementById("floor").focus({ preventScroll: true });
}

/** The deployment's reason labels and language names, as fallbacks for codes the catalogue lacks. */
async function loadConfig() {
  try {
    const config = await api("GET", "/api/v1/config");
    for (const r of config.reasons || []) if (r?.code) configReasons.set(r.code, r.label || humanize(r.code));
    for (const l of config.languages || []) if (l?.code) configLanguages.set(l.code, l.name || l.code);
    if (floor) renderFloor(floor, false);
    if (report) renderReport(report.query, report.data);
  } catch {
    /* codes are humanized instead */
  }
}

// --- live floor ---

function startPolling() {
  polling = true;
  pollFloor();
  startTicker();
}

function stopPolling() {
  polling = false;
  pollSeq++;
  clearTimeout(pollTimer);
  pollTimer = null;
  stopTicker();
}

function startTicker() {
  if (!tickTimer && !document.hidden) tickTimer = setInterval(tick, TICK_MS);
}

function stopTicker() {
  clearInterval(tickTimer);
  tickTimer = null;
}

function onVisibility() {
  if (!polling) return;
  if (document.hidden) {
    // A hidden wallboard asks nothing of the server; it catches up the moment it is shown.
    pollSeq++;
    clearTimeout(pollTimer);
    pollTimer = null;
    stopTicker();
  } else {
    pollFloor();
    startTicker();
  }
}

async function pollFloor() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!polling || document.hidden) return;
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
    if (polling && seq === pollSeq && !document.hidden) pollTimer = setTimeout(pollFloor, POLL_MS);
  }
}

function renderFloor(data, fresh) {
  floor = data;
  if (fresh) floorAt = performance.now();
  const queue = Array.isArray(data.queue) ? data.queue : [];
  const reps = Array.isArray(data.reps) ? data.reps : [];
  const calls = Array.isArray(data.calls) ? data.calls : [];
  renderTiles(queue, reps, calls);
  renderQueue(queue);
  renderEstimates(data.estimated_wait_s || {});
  renderCalls(calls);
  renderReps(reps);
  if (fresh) {
    const time = new Intl.DateTimeFormat(locale, { timeStyle: "medium" }).format(new Date());
    setText($("sup-floor-updated"), t("supervisor.floor.updated", { time }));
  }
  if (lastWaiting !== null && lastWaiting !== queue.length) {
    $("sup-floor-announce").textContent = t("supervisor.floor.announce_waiting", { count: queue.length });
  }
  lastWaiting = queue.length;
}

function tileValue(testid) {
  return $(testid).querySelector(".tile-value");
}

function renderTiles(queue, reps, calls) {
  setText(tileValue("sup-tile-waiting"), integer(queue.length));
  $("sup-tile-waiting").classList.toggle("active", queue.length > 0);
  const longest = Math.max(0, ...queue.map((q) => (isNumber(q.waited_s) ? q.waited_s : 0)));
  const longestNode = tileValue("sup-tile-longest");
  if (queue.length) ticking(longestNode, longest, { warn: WAIT_WARN_S, alert: WAIT_ALERT_S });
  else {
    delete longestNode.dataset.baseS;
    delete longestNode.dataset.level;
    setText(longestNode, formatClock(0));
  }
  for (const status of COUNTED_STATUSES) {
    const n = reps.filter((r) => r.status === status).length;
    setText(tileValue(`sup-tile-${status.replace("_", "-")}`), integer(n));
  }
  setText(tileValue("sup-tile-calls"), integer(calls.length));
}

function renderQueue(queue) {
  const body = $("sup-queue-list");
  syncRows(
    body,
    queue,
    (q) => q.session_id,
    () => {
      const tr = el("tr", { testid: "sup-queue-row" });
      tr.append(el("td", { className: "customer" }), el("td"), el("td"), el("td"), el("td", { className: "num waited" }));
      return tr;
    },
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
  setText($("sup-queue-count"), integer(queue.length));
  $("sup-queue-table").hidden = queue.length === 0;
  $("sup-queue-empty").hidden = queue.length > 0;
}

function renderEstimates(estimates) {
  const list = $("sup-est-wait");
  const entries = Object.entries(estimates).filter(([, s]) => isNumber(s));
  entries.sort(([a], [b]) => reasonLabel(a).localeCompare(reasonLabel(b), locale));
  const nodes = entries.flatMap(([code, seconds]) => {
    const item = el("div", { className: "est-item", testid: "sup-est-wait-row" });
    item.dataset.reason = code;
    item.append(el("dt", { text: reasonLabel(code) }), el("dd", { className: "num", text: t("supervisor.floor.queue.estimated_value", { time: formatClock(seconds) }) }));
    return [item];
  });
  list.replaceChildren(...nodes);
  $("sup-est-wait-empty").hidden = entries.length > 0;
}

function renderCalls(calls) {
  // Longest call first: a stable order that never depends on the customer's expression.
  const sorted = [...calls].sort((a, b) => (Number(b.talk_s) || 0) - (Number(a.talk_s) || 0));
  syncRows(
    $("sup-calls-list"),
    sorted,
    (c) => c.session_id,
    () => {
      const tr = el("tr", { testid: "sup-call-row" });
      tr.append(el("td", { className: "rep" }), el("td"), el("td", { className: "num talk" }), el("td", { className: "frustration" }));
      return tr;
    },
    (tr, c) => {
      tr.dataset.sessionId = c.session_id;
      const [rep, reason, talk, frustration] = tr.cells;
      setText(rep, c.rep?.display_name || none());
      setText(reason, reasonLabel(c.reason));
      ticking(talk, c.talk_s);
      renderFrustration(frustration, c.customer_frustration, Boolean(c.customer_flag));
      tr.classList.toggle("flagged", Boolean(c.customer_flag));
    },
  );
  setText($("sup-calls-count"), integer(calls.length));
  $("sup-calls-table").hidden = calls.length === 0;
  $("sup-calls-empty").hidden = calls.length > 0;
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

function renderReps(reps) {
  const rank = (s) => {
    const i = STATUS_ORDER.indexOf(s);
    return i < 0 ? STATUS_ORDER.length : i;
  };
  const name = (r) => r.display_name || `#${r.id}`;
  // By status, then alphabetically: a roster, not a league table.
  const sorted = [...reps].sort((a, b) => rank(a.status) - rank(b.status) || name(a).localeCompare(name(b), locale));
  syncRows(
    $("sup-reps-list"),
    sorted,
    (r) => r.id,
    () => {
      const tr = el("tr", { testid: "sup-rep-row" });
      const status = el("span", { className: "status", testid: "sup-rep-status" });
      const dot = el("span", { className: "dot" });
      dot.setAttribute("aria-hidden", "true");
      status.append(dot, el("span", { className: "status-text" }));
      const statusCell = el("td");
      statusCell.append(status);
      tr.append(el("td", { className: "rep" }), statusCell, el("td", { className: "num since" }));
      return tr;
    },
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
  setText($("sup-reps-count"), integer(reps.length));
  $("sup-reps-table").hidden = reps.length === 0;
  $("sup-reps-empty").hidden = reps.length > 0;
}

// --- reports ---

/** How each chart reads a report row; values are per category, in API units. */
const CHARTS = [
  {
    id: "volume",
    testid: "sup-chart-volume",
    kind: "number",
    mode: "stacked",
    valueLabels: true,
    format: integer,
    series: [
      { id: "answered", value: (r) => r.answered },
      { id: "abandoned", value: (r) => r.abandoned },
      { id: "other", value: (r) => otherCalls(r), optional: true },
    ],
    desc: (tot) => t("supervisor.reports.charts.volume.desc", { calls: integer(tot.calls), answered: integer(tot.answered), abandoned: integer(tot.abandoned) }),
  },
  {
    id: "wait",
    testid: "sup-chart-wait",
    kind: "time",
    mode: "grouped",
    format: clock,
    series: [
      { id: "wait_p50", value: (r) => r.wait_p50_s },
      { id: "wait_p90", value: (r) => r.wait_p90_s },
    ],
    desc: (tot) => t("supervisor.reports.charts.wait.desc", { p50: clock(tot.wait_p50_s), p90: clock(tot.wait_p90_s) }),
  },
  {
    id: "handle",
    testid: "sup-chart-handle",
    kind: "time",
    valueLabels: true,
    format: clock,
    series: [{ id: "handle", value: (r) => r.handle_avg_s }],
    desc: (tot) => t("supervisor.reports.charts.handle.desc", { value: clock(tot.handle_avg_s) }),
  },
  {
    id: "abandon",
    testid: "sup-chart-abandon",
    kind: "percent",
    valueLabels: true,
    format: percent,
    series: [{ id: "abandonment", value: (r) => r.abandonment_rate }],
    desc: (tot) => t("supervisor.reports.charts.abandon.desc", { value: percent(tot.abandonment_rate) }),
  },
  {
    id: "rating",
    testid: "sup-chart-rating",
    kind: "rating",
    yMax: 5,
    valueLabels: true,
    format: rating,
    series: [{ id: "rating", value: (r) => (r.ratings ? r.rating_avg : null) }],
    tooltip: (cat, _s, v) => t("supervisor.reports.charts.rating.tooltip", { label: cat.longLabel, value: rating(v), count: integer(cat.row?.ratings ?? 0) }),
    desc: (tot) =>
      isNumber(tot.rating_avg) && tot.ratings
        ? t("supervisor.reports.charts.rating.desc", { value: rating(tot.rating_avg), count: integer(tot.ratings) })
        : t("supervisor.reports.charts.rating.desc_none"),
  },
  {
    id: "flags",
    testid: "sup-chart-flags",
    kind: "percent",
    valueLabels: true,
    format: percent,
    series: [{ id: "flags", value: (r) => r.flagged_share }],
    desc: (tot) => t("supervisor.reports.charts.flags.desc", { value: percent(tot.flagged_share) }),
  },
];

function otherCalls(row) {
  const rest = (Number(row.calls) || 0) - (Number(row.answered) || 0) - (Number(row.abandoned) || 0);
  return rest > 0 ? rest : 0;
}

function wireReports() {
  const form = $("sup-report-form");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadReport();
  });
  for (const button of form.querySelectorAll("[data-days]")) {
    button.addEventListener("click", () => {
      resetRange(Number(button.dataset.days));
      loadReport();
    });
  }
  const charts = $("sup-charts");
  for (const def of CHARTS) {
    const base = `supervisor.reports.charts.${def.id}`;
    const figure = el("figure", { className: "card chart", testid: def.testid });
    figure.dataset.chart = def.id;
    const caption = el("figcaption");
    caption.append(el("h3", { className: "chart-title", text: t(`${base}.title`) }), el("p", { className: "muted small chart-sub", text: t(`${base}.sub`) }));
    const box = el("div", { className: "chart-box" });
    figure.append(caption, box);
    if (def.series.length > 1) figure.append(el("div", { className: "legend-slot" }));
    charts.append(figure);
  }
}

function resetRange(days) {
  const to = todayUTC();
  $("sup-report-to").value = to;
  $("sup-report-from").value = addDays(to, -(Math.max(1, days) - 1));
}

function reportQuery() {
  const from = $("sup-report-from").value;
  const to = $("sup-report-to").value;
  const group = $("sup-report-group").value === "reason" ? "reason" : "day";
  if (!from || !to) return { problem: t("supervisor.reports.missing_dates") };
  if (from > to) return { problem: t("supervisor.reports.bad_range") };
  return { query: new URLSearchParams({ from, to, group }) };
}

async function loadReport() {
  const { query, problem } = reportQuery();
  const error = $("sup-report-error");
  if (problem) {
    error.textContent = problem;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  $("sup-export").href = `/api/v1/reports.csv?${query}`;
  const seq = ++reportSeq;
  const section = document.getElementById("reports");
  section.setAttribute("aria-busy", "true");
  setText($("sup-report-status"), t("supervisor.reports.loading"));
  try {
    const data = await api("GET", `/api/v1/reports?${query}`);
    if (seq !== reportSeq) return;
    report = { query, data };
    renderReport(query, data);
  } catch (err) {
    if (seq !== reportSeq) return;
    setText($("sup-report-status"), "");
    if (err.status !== 401 && err.status !== 403) {
      error.textContent = err.message;
      error.hidden = false;
    }
  } finally {
    if (seq === reportSeq) section.removeAttribute("aria-busy");
  }
}

function renderReport(query, data) {
  const group = data.group || query.get("group");
  const from = query.get("from");
  const to = query.get("to");
  const rows = Array.isArray(data.rows) ? data.rows : [];
  const totals = data.totals || {};
  const groupWord = t(`supervisor.reports.status_group_${group === "reason" ? "reason" : "day"}`);
  setText($("sup-report-status"), t("supervisor.reports.status", { from: dayLabel(from, true), to: dayLabel(to, true), group: groupWord }));
  const empty = rows.length === 0 || !(Number(totals.calls) > 0);
  $("sup-report-empty").hidden = !empty;
  $("sup-report-body").hidden = empty;
  if (empty) {
    for (const def of CHARTS) clearChart($(def.testid).querySelector(".chart-box"));
    return;
  }
  renderTotals(totals);
  renderCharts(categoriesFor(group, rows, from, to), group, totals);
  renderTable(group, rows, totals);
}

function renderTotals(tot) {
  setText(tileValue("sup-total-calls"), integer(tot.calls));
  setText(tileValue("sup-total-answered"), integer(tot.answered));
  setText(tileValue("sup-total-abandoned"), integer(tot.abandoned));
  setText(tileValue("sup-total-abandonment"), percent(tot.abandonment_rate));
  setText(tileValue("sup-total-wait"), t("supervisor.reports.totals.wait_value", { p50: clock(tot.wait_p50_s), p90: clock(tot.wait_p90_s) }));
  setText(tileValue("sup-total-handle"), clock(tot.handle_avg_s));
  const ratings = Number(tot.ratings) || 0;
  setText(tileValue("sup-total-rating"), ratings ? rating(tot.rating_avg) : none());
  setText($("sup-total-rating").querySelector(".tile-note"), t("supervisor.reports.totals.ratings", { count: ratings }));
  setText(tileValue("sup-total-flags"), percent(tot.flagged_share));
}

/** One category per row; by day, every day of the period, so quiet days show as gaps. */
function categoriesFor(group, rows, from, to) {
  if (group !== "day") {
    return rows.map((row) => ({ key: row.key, label: reasonLabel(row.key), longLabel: reasonLabel(row.key), row }));
  }
  const byDay = new Map(rows.map((row) => [row.key, row]));
  const days = [];
  for (let d = from; d <= to && days.length < MAX_FILLED_DAYS; d = addDays(d, 1)) days.push(d);
  for (const key of byDay.keys()) if (!days.includes(key)) days.push(key);
  days.sort();
  return days.map((key) => ({ key, label: dayLabel(key), longLabel: dayLabel(key, true), row: byDay.get(key) || { key, calls: 0 } }));
}

function renderCharts(categories, group, totals) {
  const xLabel = t(group === "reason" ? "supervisor.reports.x_reason" : "supervisor.reports.x_day");
  for (const def of CHARTS) {
    const figure = $(def.testid);
    const base = `supervisor.reports.charts.${def.id}`;
    let series = def.series.map((s) => ({ id: s.id, label: t(`supervisor.reports.series.${s.id}`), values: categories.map((c) => numberOrNull(s.value(c.row))) }));
    series = series.filter((s, i) => !def.series[i].optional || s.values.some((v) => v > 0));
    renderBarChart(figure.querySelector(".chart-box"), {
      title: t(`${base}.title`),
      description: `${def.desc(totals)} ${t("supervisor.reports.chart_more")}`,
      xLabel,
      yLabel: t(`${base}.y`),
      kind: def.kind,
      mode: def.mode || "grouped",
      yMax: def.yMax ?? null,
      valueLabels: Boolean(def.valueLabels),
      format: def.format,
      tooltip: def.tooltip,
      categories,
      series,
    });
    const slot = figure.querySelector(".legend-slot");
    if (slot) slot.replaceChildren(chartLegend(series));
  }
}

const numberOrNull = (v) => (isNumber(v) ? v : null);

function renderTable(group, rows, tot) {
  setText($("sup-report-key-head"), t(group === "reason" ? "supervisor.reports.columns.key_reason" : "supervisor.reports.columns.key_day"));
  const cells = (r) => [
    integer(r.calls),
    integer(r.answered),
    integer(r.abandoned),
    percent(r.abandonment_rate),
    clock(r.wait_p50_s),
    clock(r.wait_p90_s),
    clock(r.handle_avg_s),
    r.ratings ? rating(r.rating_avg) : none(),
    integer(r.ratings ?? 0),
    percent(r.flagged_share),
  ];
  const line = (r, label, { testid, header = "th" } = {}) => {
    const tr = el("tr", { testid });
    if (r.key != null) tr.dataset.key = String(r.key);
    const head = el(header, { text: label });
    head.setAttribute("scope", "row");
    tr.append(head, ...cells(r).map((text) => el("td", { className: "num", text })));
    return tr;
  };
  const label = (key) => (group === "reason" ? reasonLabel(key) : dayLabel(key, true));
  $("sup-report-rows").replaceChildren(...rows.map((r) => line(r, label(r.key), { testid: "sup-report-row" })));
  $("sup-report-total-row").replaceChildren(line({ ...tot, key: null }, t("supervisor.reports.table_total")));
}

init();
