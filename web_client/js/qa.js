// The QA review console (/qa): find recorded calls, watch one with the customer's
// emotion timeline, chat and the rep's notes in step with the video, and score it.
// Emotion scores describe the CUSTOMER; nothing here presents them as a rep score.
import { applyStrings, formatDuration as formatWait, has, loadStrings, t } from "./staff-i18n.js";
import { EmotionTimeline, formatClock } from "./timeline.js";
import { $, postJSON, setState, toast } from "./ui.js";

const REVIEW_ROLES = ["qa", "supervisor", "admin"];
const HOLD_ROLES = ["supervisor", "admin"];
// The default reasons, with short staff-facing names (common.reasons.*); a deployment's own reasons come from /api/v1/config.
const REASON_CODES = ["order", "complaint", "not_working", "wrong_info", "other"];
// Outcomes that are call states rather than a rep's disposition (qa.outcomes.*).
const OUTCOME_STATE_CODES = ["abandoned", "interrupted"];
const POLL_MS = 2000;
const SEEK_KEY_S = 5;
const SLUG = /^[a-z][a-z0-9_]{0,39}$/;
const MAX_CRITERIA = 30;

let me = null; // {id, username, display_name, role}
let csrf = null;
let started = false;
const dispositionLabels = new Map();
let listHash = "#/"; // the last list view, so "back" keeps its filters
let lastOpenedId = null; // refocused when coming back to the list
let navToken = 0; // bumped on every route; answers for an older view are dropped
let view = null; // the open session: {id, bundle, timeline, pollTimer}
let rubricLoaded = false;

window.rapport = {
  get state() {
    return document.body.dataset.state;
  },
  get video() {
    return $("qa-player");
  },
};

// --- small helpers ---

/** fetch JSON with the staff cookie; non-GET requests carry the CSRF token and a JSON body. */
async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body ?? {});
  }
  const r = await fetch(url, init);
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (r.status === 401) showLogin(); // the login expired: sign in again, then come back here
  if (!r.ok) {
    const message = data.error?.message || r.statusText || t("common.request_failed", { status: r.status });
    throw Object.assign(new Error(message), { status: r.status, code: data.error?.code });
  }
  return data;
}

const sessionUrl = (id, rest = "") => `/api/v1/qa/sessions/${encodeURIComponent(id)}${rest}`;
const percent = (v) => `${Math.round(v * 100)}%`;
const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const frustrationLevel = (v) => (v >= 0.5 ? "high" : v >= 0.3 ? "mid" : "low");
const none = () => t("common.none");
const reasonLabels = new Map();
const reasonLabel = (code) => reasonLabels.get(code) || humanize(code);
/** The catalogue's word for a server code under `prefix`, else the code made readable. */
const codeLabel = (prefix, code) => (code && has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : humanize(code));

function humanize(code) {
  if (!code) return none();
  const text = String(code).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function formatDateTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return none();
  return d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

function el(tag, { className, text, testid } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text; // user text only ever goes in as text
  if (testid) node.dataset.testid = testid;
  return node;
}

function show(testid, text) {
  const node = $(testid);
  if (text != null) node.textContent = text;
  node.hidden = false;
  return node;
}

const hide = (testid) => ($(testid).hidden = true);

const isTyping = (target) => target.closest?.("input, textarea, select, button, a, video, [role=slider], [role=button], dialog");

// --- start, sign-in, roles ---

async function init() {
  await loadStrings();
  applyStrings(document);
  for (const code of REASON_CODES) reasonLabels.set(code, t(`common.reasons.${code}`));
  $("login-form").addEventListener("submit", onLoginSubmit);
  $("logout").addEventListener("click", logout);
  wireList();
  wireSession();
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", onShortcut);
  const r = await fetch("/api/v1/me", { credentials: "same-origin" }).catch(() => null);
  if (r?.ok) start(await r.json());
  else {
    if (r && r.status !== 401) toast(t("common.login.unreachable"));
    showLogin();
  }
}

function showLogin() {
  teardownSession();
  setState("login");
}

function onLoginSubmit(ev) {
  ev.preventDefault();
  const body = { username: $("login-username").value, password: $("login-password").value };
  postJSON("/api/v1/auth/login", body).then(start, (err) => {
    const msg = err.status === 429 ? t("common.login.rate_limited") : err.status === 401 ? t("common.login.wrong") : err.message;
    show("login-error", msg);
  });
}

async function logout() {
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
  hide("login-error");
  const role = codeLabel("common.roles", me.role);
  $("user-name").textContent = me.display_name === role ? role : t("common.user_role", { name: me.display_name, role });
  if (!REVIEW_ROLES.includes(me.role)) {
    setState("forbidden");
    return;
  }
  $("qa-rubric-editor").hidden = me.role !== "admin";
  if (!started) {
    started = true;
    loadDispositions();
    loadReasons();
  }
  route();
}

const canHold = () => HOLD_ROLES.includes(me?.role);
const canErase = () => me?.role === "admin";

// --- routing: #/ (list, filters in the query) and #/sessions/{id} ---

function route() {
  if (!me || !REVIEW_ROLES.includes(me.role)) return;
  const hash = location.hash || "#/";
  const token = ++navToken;
  teardownSession();
  const match = /^#\/sessions\/([^/?#]+)$/.exec(hash);
  if (match) openSession(safeDecode(match[1]), token);
  else showList(new URLSearchParams(hash.split("?")[1] || ""), token);
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // a mistyped % escape: let the server answer 404
  }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// --- list view ---

function wireList() {
  fillSelect($("qa-filter-reason"), [...reasonLabels]);
  fillOutcomes();
  $("qa-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  $("qa-clear").addEventListener("click", () => {
    $("qa-filters").reset();
    go("#/");
  });
  $("qa-session-list").addEventListener("click", (ev) => {
    const row = ev.target.closest('[data-testid="qa-session-row"]');
    if (row) openRow(row);
  });
  $("qa-session-list").addEventListener("keydown", (ev) => {
    const row = ev.target.closest('[data-testid="qa-session-row"]');
    if (row && ev.key === "Enter") openRow(row);
  });
  wireRubricEditor();
}

function fillSelect(select, pairs) {
  for (const [value, label] of pairs) {
    const option = el("option", { text: label });
    option.value = value;
    select.append(option);
  }
}

/** Outcome choices: the deployment's dispositions, then the call states the filter also accepts. */
function fillOutcomes() {
  const select = $("qa-filter-outcome");
  const keep = select.value;
  select.replaceChildren(Object.assign(el("option", { text: t("qa.filters.any_outcome") }), { value: "" }));
  if (dispositionLabels.size) {
    const group = Object.assign(document.createElement("optgroup"), { label: t("qa.filters.dispositions") });
    fillSelect(group, [...dispositionLabels]);
    select.append(group);
  }
  const states = Object.assign(document.createElement("optgroup"), { label: t("qa.filters.call_states") });
  fillSelect(states, OUTCOME_STATE_CODES.map((code) => [code, t(`qa.outcomes.${code}`)]));
  select.append(states);
  keepChoice(select, keep);
}

/** Select `value`, adding it as an option first if the list does not offer it (an old link, say). */
function keepChoice(select, value, label = humanize(value)) {
  if (value && ![...select.options].some((o) => o.value === value)) select.append(Object.assign(el("option", { text: label }), { value }));
  select.value = value;
}

async function loadDispositions() {
  try {
    const { items } = await api("GET", "/api/v1/dispositions");
    for (const d of items || []) dispositionLabels.set(d.code, d.label || humanize(d.code));
    fillOutcomes();
  } catch {
    /* the list still works: outcomes fall back to codes */
  }
}

/** The server accepts only the deployment's reasons: offer those, with short names for the defaults. */
async function loadReasons() {
  try {
    const config = await api("GET", "/api/v1/config");
    const codes = (config.reasons || []).map((r) => [r.code, reasonLabels.get(r.code) || r.label || humanize(r.code)]);
    if (!codes.length) return;
    for (const [code, label] of codes) reasonLabels.set(code, label);
    const select = $("qa-filter-reason");
    const keep = select.value;
    select.replaceChildren(Object.assign(el("option", { text: t("qa.filters.any_reason") }), { value: "" }));
    fillSelect(select, codes);
    keepChoice(select, keep);
  } catch {
    /* keep the default reasons */
  }
}

/** The form in API units: minutes → seconds, percent → 0–1. Only filled filters are sent. */
function filterQuery() {
  const form = new FormData($("qa-filters"));
  const value = (name) => String(form.get(name) ?? "").trim();
  const query = new URLSearchParams();
  for (const name of ["from", "to", "rep_id", "reason", "outcome"]) if (value(name)) query.set(name, value(name));
  const minutes = (name, param) => value(name) !== "" && query.set(param, String(Math.round(Number(value(name)) * 60)));
  minutes("min_duration", "min_duration_s");
  minutes("max_duration", "max_duration_s");
  if (value("min_frustration") !== "") query.set("min_frustration", String(Number(value("min_frustration")) / 100));
  for (const name of ["flagged", "qa_status"]) if (value(name)) query.set(name, value(name));
  return query;
}

/** The reverse of filterQuery: fill the form from a list URL (back button, shared link). */
function selectFromQuery(query) {
  const form = $("qa-filters");
  const set = (name, v) => {
    const field = form.elements[name];
    if (field.tagName === "SELECT") keepChoice(field, v);
    else field.value = v;
  };
  for (const name of ["from", "to", "rep_id", "reason", "outcome", "flagged", "qa_status"]) set(name, query.get(name) ?? "");
  const minutes = (param) => (query.has(param) ? String(Number(query.get(param)) / 60) : "");
  set("min_duration", minutes("min_duration_s"));
  set("max_duration", minutes("max_duration_s"));
  set("min_frustration", query.has("min_frustration") ? String(Math.round(Number(query.get("min_frustration")) * 100)) : "");
}

function filterProblem() {
  const form = new FormData($("qa-filters"));
  const num = (name) => (form.get(name) === "" ? null : Number(form.get(name)));
  const [minD, maxD, minF] = [num("min_duration"), num("max_duration"), num("min_frustration")];
  if ([minD, maxD].some((v) => v != null && !(v >= 0))) return t("qa.filters.bad_duration");
  if (minD != null && maxD != null && minD > maxD) return t("qa.filters.duration_order");
  if (minF != null && !(minF >= 0 && minF <= 100)) return t("qa.filters.bad_frustration");
  const [from, to] = [form.get("from"), form.get("to")];
  if (from && to && from > to) return t("qa.filters.bad_range");
  return null;
}

function applyFilters() {
  const problem = filterProblem();
  if (problem) {
    show("qa-filter-error", problem);
    return;
  }
  hide("qa-filter-error");
  const query = filterQuery().toString();
  go(query ? `#/?${query}` : "#/");
}

async function showList(query, token) {
  listHash = location.hash && location.hash !== "#" ? location.hash : "#/";
  $("qa-back").href = listHash;
  setState("list");
  selectFromQuery(query);
  $("qa-export").href = `/api/v1/qa/export.csv?${query}`;
  if (me.role === "admin" && !rubricLoaded) loadRubric();
  const table = $("qa-session-table");
  table.setAttribute("aria-busy", "true");
  try {
    const answer = await api("GET", `/api/v1/qa/sessions?${query}`);
    if (token !== navToken) return;
    fillReps(answer.reps || []);
    renderRows(answer.items || [], query);
  } catch (err) {
    if (token === navToken && err.status !== 401) toast(err.message);
  } finally {
    table.removeAttribute("aria-busy");
  }
}

function fillReps(reps) {
  const select = $("qa-filter-rep");
  const keep = select.value;
  select.replaceChildren(Object.assign(el("option", { text: t("qa.filters.any_rep") }), { value: "" }));
  const name = (r) => r.display_name || t("qa.filters.rep_number", { id: r.id });
  const pairs = [...reps].sort((a, b) => name(a).localeCompare(name(b))).map((r) => [String(r.id), name(r)]);
  fillSelect(select, pairs);
  keepChoice(select, keep, t("qa.filters.rep_number", { id: keep }));
}

function renderRows(items, query) {
  const body = $("qa-session-list");
  body.replaceChildren(...items.map(sessionRow));
  $("qa-result-count").textContent = String(items.length);
  $("qa-empty").hidden = items.length > 0;
  const limit = Number(query.get("limit")) || 100;
  $("qa-list-limit").hidden = items.length < limit;
  $("qa-list-limit").textContent = t("qa.list.limit", { count: items.length });
  // Coming back from a call: put focus on its row again, once.
  const again = lastOpenedId && [...body.rows].find((r) => r.dataset.sessionId === lastOpenedId);
  lastOpenedId = null;
  if (again) again.focus();
}

function sessionRow(row) {
  const tr = el("tr", { testid: "qa-session-row" });
  tr.dataset.sessionId = row.session_id;
  tr.tabIndex = 0;
  tr.title = t("qa.list.open_row");
  tr.append(
    cell(formatDateTime(row.created_at), "nowrap"),
    cell(row.rep?.display_name || none()),
    cell(row.customer_name || t("common.guest")),
    cell(reasonLabel(row.reason)),
    cell(outcomeLabel(row)),
    cell(isNumber(row.duration_s) ? formatClock(row.duration_s) : none(), "num"),
    frustrationCell(row.peak_frustration),
    cell(row.flag_count ? String(row.flag_count) : none(), "num"),
    cell(t(row.recorded ? "common.yes" : "common.no")),
    qaCell(row),
  );
  return tr;
}

function cell(text, className) {
  return el("td", { text, className });
}

function outcomeLabel(row) {
  if (row.disposition) return dispositionLabels.get(row.disposition) || humanize(row.disposition);
  return row.state && row.state !== "ended" ? codeLabel("qa.states", row.state) : t("qa.outcomes.none");
}

/** The customer's peak: a number and a small bar, never phrased as a score of the rep. */
function frustrationCell(peak) {
  const td = el("td", { className: "frustration" });
  if (!isNumber(peak)) {
    td.append(el("span", { className: "muted", text: none() }));
    td.title = t("qa.list.no_cues");
    return td;
  }
  const level = frustrationLevel(peak);
  const bar = el("span", { className: "mini-bar" });
  bar.dataset.level = level;
  bar.setAttribute("aria-hidden", "true");
  const fill = el("span", { className: "fill" });
  fill.style.inlineSize = percent(peak);
  bar.append(fill);
  td.append(bar, el("span", { className: "num", text: percent(peak) }));
  td.dataset.level = level;
  return td;
}

function qaCell(row) {
  const td = el("td");
  const scored = row.qa_status === "scored";
  const badge = el("span", { className: `badge ${scored ? "scored" : "unscored"}`, text: t(scored ? "qa.list.scored" : "qa.list.unscored") });
  td.append(badge);
  if (scored && isNumber(row.score)) td.append(el("span", { className: "score num", text: ` ${percent(row.score)}` }));
  return td;
}

function openRow(row) {
  lastOpenedId = row.dataset.sessionId;
  go(`#/sessions/${encodeURIComponent(row.dataset.sessionId)}`);
}

// --- scorecard editor (admin, on the list view) ---

function wireRubricEditor() {
  $("qa-rubric-add").addEventListener("click", () => {
    const row = rubricRow({ id: "", label: "", type: "scale" });
    $("qa-rubric-rows").append(row);
    row.querySelector('[data-testid="qa-rubric-label"]').focus();
  });
  $("qa-rubric-save").addEventListener("click", saveRubric);
}

async function loadRubric() {
  rubricLoaded = true;
  try {
    showRubric((await api("GET", "/api/v1/qa/scorecard")) || { criteria: [] }); // null until a first rubric is saved
  } catch (err) {
    if (err.status === 404) showRubric({ criteria: [] });
    else if (err.status !== 401) {
      rubricLoaded = false;
      toast(err.message);
    }
  }
}

function showRubric(rubric) {
  const criteria = rubric.criteria?.length ? rubric.criteria : [{ id: "", label: "", type: "scale" }];
  $("qa-rubric-rows").replaceChildren(...criteria.map(rubricRow));
  $("qa-rubric-version").textContent = !rubric.id
    ? ""
    : rubric.created_at
      ? t("qa.rubric.version_since", { id: rubric.id, date: formatDateTime(rubric.created_at) })
      : t("qa.rubric.version", { id: rubric.id });
}

function rubricRow(criterion) {
  const li = el("li", { className: "rubric-row", testid: "qa-rubric-row" });
  const id = Object.assign(el("input", { testid: "qa-rubric-id" }), { value: criterion.id, maxLength: 40, placeholder: t("qa.rubric.id_placeholder") });
  id.setAttribute("aria-label", t("qa.rubric.id_label"));
  id.spellcheck = false;
  id.dataset.auto = String(!criterion.id); // a new row's id follows its label until edited
  const label = Object.assign(el("input", { testid: "qa-rubric-label" }), { value: criterion.label, maxLength: 200, placeholder: t("qa.rubric.label_placeholder") });
  label.setAttribute("aria-label", t("qa.rubric.label_label"));
  const type = el("select", { testid: "qa-rubric-type" });
  type.setAttribute("aria-label", t("qa.rubric.type_label"));
  fillSelect(type, [
    ["scale", t("qa.rubric.type_scale")],
    ["yesno", t("qa.rubric.type_yesno")],
  ]);
  type.value = criterion.type === "yesno" ? "yesno" : "scale";
  const remove = el("button", { text: t("qa.rubric.remove"), testid: "qa-rubric-remove" });
  remove.type = "button";
  remove.setAttribute("aria-label", t("qa.rubric.remove_label"));
  remove.addEventListener("click", () => li.remove());
  id.addEventListener("input", () => (id.dataset.auto = "false"));
  label.addEventListener("input", () => {
    if (id.dataset.auto === "true") id.value = slugify(label.value);
  });
  li.append(id, label, type, remove);
  return li;
}

function slugify(text) {
  const slug = text.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 40);
  return /^[a-z]/.test(slug) ? slug : slug ? `c_${slug}`.slice(0, 40) : "";
}

function readRubric() {
  return [...$("qa-rubric-rows").children].map((li) => ({
    id: li.querySelector('[data-testid="qa-rubric-id"]').value.trim(),
    label: li.querySelector('[data-testid="qa-rubric-label"]').value.trim(),
    type: li.querySelector('[data-testid="qa-rubric-type"]').value,
  }));
}

function rubricProblem(criteria) {
  if (!criteria.length) return t("qa.rubric.none");
  if (criteria.length > MAX_CRITERIA) return t("qa.rubric.too_many", { max: MAX_CRITERIA });
  const seen = new Set();
  for (const [i, c] of criteria.entries()) {
    const row = i + 1;
    if (!SLUG.test(c.id)) return t("qa.rubric.bad_id", { row });
    if (seen.has(c.id)) return t("qa.rubric.duplicate_id", { row, id: c.id });
    if (!c.label) return t("qa.rubric.empty_label", { row });
    seen.add(c.id);
  }
  return null;
}

async function saveRubric() {
  const criteria = readRubric();
  const problem = rubricProblem(criteria);
  hide("qa-rubric-status");
  if (problem) {
    show("qa-rubric-error", problem);
    return;
  }
  hide("qa-rubric-error");
  const button = $("qa-rubric-save");
  button.disabled = true;
  try {
    const saved = await api("PUT", "/api/v1/qa/scorecard", { criteria });
    showRubric(saved.criteria ? saved : { ...saved, criteria });
    show("qa-rubric-status", saved.id ? t("qa.rubric.saved_version", { id: saved.id }) : t("qa.rubric.saved"));
  } catch (err) {
    if (err.status !== 401) toast(err.message);
  } finally {
    button.disabled = false;
  }
}

// --- session view ---

function wireSession() {
  const video = $("qa-player");
  video.addEventListener("timeupdate", () => highlightChat(video.currentTime));
  video.addEventListener("seeked", () => highlightChat(video.currentTime));
  video.addEventListener("error", () => video.getAttribute("src") && show("qa-player-error"));
  $("qa-compose-retry").addEventListener("click", retryCompose);
  $("qa-chat").addEventListener("click", (ev) => {
    const line = ev.target.closest('[data-testid="qa-chat-line"]');
    if (line && Number(line.dataset.t) >= 0) seekTo(Number(line.dataset.t));
  });
  $("qa-scorecard").addEventListener("change", updateScoreState);
  $("qa-scorecard").addEventListener("input", () => hide("qa-score-saved"));
  $("qa-scorecard").addEventListener("submit", submitReview);
  $("qa-legal-hold").addEventListener("change", toggleLegalHold);
  $("qa-erase").addEventListener("click", () => {
    const dialog = $("qa-erase-dialog");
    dialog.returnValue = ""; // Esc keeps the previous value; never let an old "erase" through
    dialog.showModal();
  });
  $("qa-erase-dialog").addEventListener("close", () => $("qa-erase-dialog").returnValue === "erase" && eraseSession());
}

async function openSession(id, token) {
  hide("qa-list-notice"); // the erase notice is for the one list visit after it
  setState("session");
  resetSessionView(id);
  window.scrollTo(0, 0);
  let bundle;
  try {
    bundle = await api("GET", sessionUrl(id));
  } catch (err) {
    if (token !== navToken || err.status === 401) return;
    $("qa-session-customer").textContent = t("qa.session.not_found");
    show("qa-session-error", err.status === 404 ? t("qa.session.not_found_text") : err.message);
    return;
  }
  if (token !== navToken) return;
  const timeline = new EmotionTimeline($("qa-timeline"), { onSeek: (at) => seekTo(at) });
  view = { id, bundle, timeline, pollTimer: null };
  timeline.attachVideo($("qa-player"));
  renderSession(bundle);
  $("qa-session-customer").focus();
}

/** Stop polling, release the player and timeline, close the dialog: nothing of a left view keeps running. */
function teardownSession() {
  if (!view) return;
  clearTimeout(view.pollTimer);
  view.timeline.destroy();
  view = null;
  const video = $("qa-player");
  video.pause();
  video.removeAttribute("src");
  video.load();
  if ($("qa-erase-dialog").open) $("qa-erase-dialog").close("cancel");
}

function resetSessionView(id) {
  $("qa-session-customer").textContent = t("qa.session.loading");
  for (const testid of ["qa-session-reason", "qa-session-rep", "qa-session-date", "qa-session-duration"]) $(testid).textContent = none();
  $("qa-session-id").textContent = id;
  const parts = ["qa-session-error", "qa-erased", "qa-player-error", "qa-no-recording", "qa-compose-failed", "qa-tracks", "qa-record-controls", "qa-score-saved", "qa-keys"];
  for (const testid of parts) hide(testid);
  $("qa-player").hidden = true;
  document.querySelector(".player-note.compose").hidden = true;
  $("qa-timeline").replaceChildren();
  $("qa-chat").replaceChildren();
  $("qa-criteria").replaceChildren();
  $("qa-reviews").replaceChildren();
  $("qa-scorecard").reset();
  updateScoreState();
}

function renderSession(bundle) {
  const session = bundle.session || {};
  renderHeader(session);
  $("qa-erased").hidden = session.state !== "erased";
  renderPlayer(bundle.player);
  renderTracks(bundle.recordings || []);
  const chat = sortedChat(bundle.chat || []);
  view.timeline.setData({ timeline: bundle.timeline || [], flags: bundle.flags || [], marks: chat.map((m) => m.t) });
  renderChat(chat);
  renderWrapup(session, bundle.notes);
  renderScorecard(bundle.scorecard, session.state === "erased");
  renderReviews(bundle.reviews || [], bundle.scorecard);
  renderRecordControls(session);
}

function renderHeader(session) {
  $("qa-session-customer").textContent = session.customer_name || t("common.guest");
  $("qa-session-reason").textContent = reasonLabel(session.reason);
  $("qa-session-rep").textContent = session.rep?.display_name || t("qa.session.not_answered");
  $("qa-session-date").textContent = formatDateTime(session.created_at);
  const talked = (Date.parse(session.ended_at) - Date.parse(session.answered_at)) / 1000;
  $("qa-session-duration").textContent = Number.isFinite(talked) ? formatWait(talked) : none();
  $("qa-session-id").textContent = session.session_id || view.id;
}

// --- player: the composed side-by-side file, or its progress, or why there is none ---

function renderPlayer(player) {
  const state = !player ? "none" : ["complete", "failed"].includes(player.state) ? player.state : "preparing";
  $("qa-no-recording").hidden = state !== "none";
  document.querySelector(".player-note.compose").hidden = state !== "preparing";
  $("qa-compose-failed").hidden = state !== "failed";
  $("qa-player").hidden = state !== "complete";
  $("qa-keys").hidden = state !== "complete";
  if (state === "complete") setVideoSource(player.url);
  else if (state === "preparing") {
    showComposeProgress(player); // pending or composing: ask again until it settles
    schedulePoll();
  } else if (state === "failed") {
    $("qa-compose-error").textContent = player.error || player.reason || player.message || t("qa.player.failed_default");
  }
}

function setVideoSource(url) {
  const video = $("qa-player");
  if (!url || video.getAttribute("src") === url) return;
  hide("qa-player-error");
  video.src = url;
}

function showComposeProgress(player) {
  const pct = player.state === "composing" && isNumber(player.progress) ? Math.round(Math.min(1, Math.max(0, player.progress)) * 100) : 0;
  const bar = $("qa-compose-progress");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.querySelector(".fill").style.inlineSize = `${pct}%`;
  $("qa-compose-status").textContent =
    player.state === "pending" ? t("qa.player.pending") : t("qa.player.preparing_pct", { pct });
}

function schedulePoll() {
  if (!view) return;
  clearTimeout(view.pollTimer);
  view.pollTimer = setTimeout(pollBundle, POLL_MS);
}

async function pollBundle() {
  const polled = view;
  if (!polled) return;
  try {
    const bundle = await api("GET", sessionUrl(polled.id));
    if (view !== polled) return;
    polled.bundle.player = bundle.player;
    polled.bundle.recordings = bundle.recordings;
    renderTracks(bundle.recordings || []);
    renderPlayer(bundle.player); // schedules the next poll while still pending or composing
  } catch (err) {
    if (view !== polled || err.status === 401 || err.status === 404) return;
    toast(err.message);
    schedulePoll();
  }
}

async function retryCompose() {
  const button = $("qa-compose-retry");
  button.disabled = true;
  try {
    await api("POST", sessionUrl(view.id, "/compose"), {});
    renderPlayer({ ...view.bundle.player, state: "pending", progress: 0 });
  } catch (err) {
    if (err.status !== 401) toast(err.message);
  } finally {
    button.disabled = false;
  }
}

function renderTracks(recordings) {
  const list = $("qa-track-list");
  list.replaceChildren(...recordings.map(trackItem));
  $("qa-tracks").hidden = recordings.length === 0;
}

function trackItem(rec) {
  const li = el("li");
  const kind = rec.kind ? t(`qa.tracks.kinds.${rec.kind}`, {}, rec.kind) : t("qa.tracks.track");
  const name = t("qa.tracks.name", { participant: codeLabel("qa.participants", rec.participant), kind });
  const playable = rec.url && rec.state !== "failed" && rec.state !== "recording";
  const link = playable ? el("a", { text: name, testid: "qa-track-link" }) : el("span", { text: name });
  if (playable) {
    link.href = rec.url;
    link.download = "";
  }
  const details = [rec.state && rec.state !== "complete" ? codeLabel("qa.tracks.states", rec.state) : null, isNumber(rec.size) ? formatBytes(rec.size) : null];
  li.append(link);
  if (details.some(Boolean)) li.append(el("span", { className: "muted small", text: ` ${details.filter(Boolean).join(t("common.separator"))}` }));
  return li;
}

function formatBytes(n) {
  if (n < 1024) return t("qa.bytes.b", { n });
  if (n < 1024 ** 2) return t("qa.bytes.kb", { n: (n / 1024).toFixed(0) });
  if (n < 1024 ** 3) return t("qa.bytes.mb", { n: (n / 1024 ** 2).toFixed(1) });
  return t("qa.bytes.gb", { n: (n / 1024 ** 3).toFixed(2) });
}

/** Jump the video (when there is one) and the chart and transcript to a second of the call. */
function seekTo(at) {
  const video = $("qa-player");
  if (video.getAttribute("src")) video.currentTime = at;
  view?.timeline.setTime(at);
  highlightChat(at);
}

// --- chat transcript, in the player's clock ---

function sortedChat(chat) {
  return chat.filter((m) => isNumber(m.t)).sort((a, b) => a.t - b.t).concat(chat.filter((m) => !isNumber(m.t)));
}

function renderChat(chat) {
  $("qa-chat").replaceChildren(...chat.map(chatLine));
  $("qa-chat-empty").hidden = chat.length > 0;
}

function chatLine(msg) {
  const seekable = isNumber(msg.t) && msg.t >= 0;
  const li = el("li", { className: `chat-entry from-${msg.from}`, testid: "qa-chat-line" });
  li.dataset.t = isNumber(msg.t) ? String(msg.t) : "";
  const time = seekable ? el("button", { className: "stamp", text: formatClock(msg.t) }) : el("span", { className: "stamp waiting", text: t("qa.chat.waiting") });
  if (seekable) {
    time.type = "button";
    time.setAttribute("aria-label", t("qa.chat.play_from", { time: formatClock(msg.t) }));
  } else {
    time.title = t("qa.chat.waiting_hint");
  }
  const who = el("span", { className: "who" });
  const role = msg.from === "rep" || msg.from === "customer" ? t(`qa.chat.role_${msg.from}`) : "";
  who.append(el("strong", { text: msg.name || codeLabel("qa.participants", msg.from) }), el("span", { className: "role small muted", text: ` ${role}` }));
  const text = el("p", { className: "text", text: msg.text }); // untrusted: textContent only
  li.classList.toggle("seekable", seekable);
  li.append(time, who, text);
  return li;
}

/** Highlight the last message sent at or before the playhead. */
function highlightChat(at) {
  const lines = [...$("qa-chat").children];
  let current = null;
  for (const line of lines) {
    const lineT = line.dataset.t === "" ? NaN : Number(line.dataset.t);
    if (lineT >= 0 && lineT <= at + 0.25) current = line;
  }
  for (const line of lines) {
    const on = line === current;
    line.classList.toggle("current", on);
    if (on) line.setAttribute("aria-current", "true");
    else line.removeAttribute("aria-current");
  }
  if (current && !$("qa-player").paused) keepInView($("qa-chat"), current);
}

/** Scroll the transcript itself (not the page) so the current line is visible. */
function keepInView(box, line) {
  const top = line.offsetTop - box.offsetTop;
  if (top < box.scrollTop || top + line.offsetHeight > box.scrollTop + box.clientHeight) {
    box.scrollTop = Math.max(0, top - box.clientHeight / 3);
  }
}

// --- the rep's wrap-up ---

function renderWrapup(session, bundleNotes) {
  const disposition = $("qa-disposition");
  const notes = $("qa-notes");
  const noteText = session.notes ?? bundleNotes ?? "";
  if (!session.disposition) {
    disposition.textContent = t("qa.wrapup.none");
    disposition.classList.add("muted");
    notes.hidden = !noteText;
    notes.textContent = noteText;
    hide("qa-wrapped-at");
    return;
  }
  disposition.classList.remove("muted");
  disposition.textContent = session.disposition_label || dispositionLabels.get(session.disposition) || humanize(session.disposition);
  notes.hidden = false;
  notes.textContent = noteText || t("qa.wrapup.no_notes");
  notes.classList.toggle("muted", !noteText);
  if (session.wrapped_at) show("qa-wrapped-at", t("qa.wrapup.saved_at", { date: formatDateTime(session.wrapped_at) }));
}

// --- scorecard ---

function renderScorecard(scorecard, erased) {
  const usable = !erased && scorecard?.criteria?.length > 0;
  $("qa-scorecard").hidden = !usable;
  $("qa-scorecard-missing").hidden = usable || erased;
  $("qa-criteria").replaceChildren(...(usable ? scorecard.criteria.map(criterionFieldset) : []));
  updateScoreState();
}

function criterionFieldset(criterion, index) {
  const fieldset = el("fieldset", { className: "criterion", testid: "qa-criterion" });
  fieldset.dataset.criterionId = criterion.id;
  fieldset.dataset.type = criterion.type === "yesno" ? "yesno" : "scale";
  fieldset.append(el("legend", { text: criterion.label || criterion.id }));
  const choices =
    fieldset.dataset.type === "yesno"
      ? [
          ["true", t("common.yes")],
          ["false", t("common.no")],
        ]
      : [1, 2, 3, 4, 5].map((n) => [String(n), String(n)]);
  const group = el("div", { className: "choices" });
  for (const [value, text] of choices) {
    const label = el("label", { className: "choice" });
    const input = Object.assign(document.createElement("input"), { type: "radio", name: `criterion-${index}`, value });
    input.dataset.criterionId = criterion.id;
    label.append(input, el("span", { text }));
    group.append(label);
  }
  fieldset.append(group);
  if (fieldset.dataset.type === "scale") fieldset.append(el("p", { className: "scale-hint small muted", text: t("qa.scorecard.scale_hint") }));
  return fieldset;
}

/** {answers, complete}: answers as the API wants them, complete when every criterion has one. */
function readAnswers() {
  const answers = {};
  let complete = true;
  for (const fieldset of $("qa-criteria").children) {
    const picked = fieldset.querySelector("input:checked");
    if (!picked) {
      complete = false;
      continue;
    }
    answers[fieldset.dataset.criterionId] = fieldset.dataset.type === "yesno" ? picked.value === "true" : Number(picked.value);
  }
  return { answers, complete: complete && $("qa-criteria").children.length > 0 };
}

/** The server's formula: scale answers earn 0–4 points above 1, yes earns 1. */
function scoreOf(answers, criteria) {
  let earned = 0;
  let available = 0;
  for (const c of criteria) {
    const a = answers[c.id];
    if (c.type === "yesno") {
      available += 1;
      earned += a === true ? 1 : 0;
    } else {
      available += 4;
      earned += isNumber(a) ? a - 1 : 0;
    }
  }
  return available ? earned / available : null;
}

function updateScoreState() {
  const { answers, complete } = readAnswers();
  $("qa-score-submit").disabled = !complete;
  const criteria = view?.bundle.scorecard?.criteria || [];
  const score = complete ? scoreOf(answers, criteria) : null;
  const answered = Object.keys(answers).length;
  $("qa-score-preview").textContent =
    score != null ? t("qa.scorecard.score", { score: percent(score) }) : criteria.length ? t("qa.scorecard.answered", { answered, total: criteria.length }) : "";
}

async function submitReview(ev) {
  ev.preventDefault();
  const { answers, complete } = readAnswers();
  if (!complete || !view) return;
  const button = $("qa-score-submit");
  button.disabled = true;
  const body = { scorecard_id: view.bundle.scorecard.id, answers, comments: $("qa-score-comments").value.trim() };
  try {
    const review = await api("POST", sessionUrl(view.id, "/reviews"), body);
    review.reviewer ??= { id: me.id, display_name: me.display_name };
    view.bundle.reviews = [review, ...(view.bundle.reviews || [])];
    renderReviews(view.bundle.reviews, view.bundle.scorecard);
    $("qa-scorecard").reset();
    updateScoreState();
    show("qa-score-saved");
  } catch (err) {
    if (err.status !== 401) toast(err.message);
    updateScoreState();
  }
}

function renderReviews(reviews, scorecard) {
  const newestFirst = [...reviews].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  $("qa-reviews").replaceChildren(...newestFirst.map((r) => reviewItem(r, scorecard)));
  $("qa-reviews-empty").hidden = reviews.length > 0;
}

function reviewItem(review, scorecard) {
  const li = el("li", { className: "review", testid: "qa-review" });
  const head = el("div", { className: "review-head" });
  head.append(el("strong", { text: review.reviewer?.display_name || t("qa.scorecard.reviewer") }), el("span", { className: "muted small", text: formatDateTime(review.created_at) }));
  if (isNumber(review.score)) head.append(el("span", { className: "badge score", text: percent(review.score), testid: "qa-review-score" }));
  li.append(head);
  if (review.comments) li.append(el("p", { className: "review-comments", text: review.comments }));
  li.append(answersDetails(review, scorecard));
  return li;
}

function answersDetails(review, scorecard) {
  const sameVersion = scorecard && scorecard.id === review.scorecard_id;
  const labels = new Map(sameVersion ? scorecard.criteria.map((c) => [c.id, c.label]) : []);
  const details = el("details", { className: "small" });
  const version = review.scorecard_id ?? t("qa.scorecard.unknown_version");
  details.append(el("summary", { text: sameVersion ? t("qa.scorecard.answers") : t("qa.scorecard.answers_version", { version }) }));
  const dl = el("dl", { className: "answers" });
  for (const [id, value] of Object.entries(review.answers || {})) {
    const shown = value === true ? t("common.yes") : value === false ? t("common.no") : t("qa.scorecard.scale_value", { value });
    dl.append(el("dt", { text: labels.get(id) || id }), el("dd", { text: shown }));
  }
  details.append(dl);
  return details;
}

// --- retention: legal hold (supervisor, admin) and erasure (admin) ---

function renderRecordControls(session) {
  if (!canHold() || session.state === "erased") return;
  show("qa-record-controls");
  $("qa-legal-hold").checked = Boolean(session.legal_hold);
  $("qa-erase-box").hidden = !canErase();
  updateEraseState();
}

function updateEraseState() {
  const held = $("qa-legal-hold").checked;
  $("qa-erase").disabled = held;
  $("qa-erase-hint").textContent = t(held ? "qa.retention.erase_blocked" : "qa.retention.erase_hint");
}

async function toggleLegalHold() {
  const box = $("qa-legal-hold");
  const hold = box.checked;
  const note = $("qa-legal-hold-note").value.trim();
  box.disabled = true;
  try {
    await api("PUT", `/api/v1/sessions/${encodeURIComponent(view.id)}/legal-hold`, note ? { hold, note } : { hold });
    view.bundle.session.legal_hold = hold;
  } catch (err) {
    box.checked = !hold;
    if (err.status !== 401) toast(err.message);
  } finally {
    box.disabled = false;
    updateEraseState();
  }
}

async function eraseSession() {
  if (!view) return;
  const { id } = view;
  $("qa-erase").disabled = true;
  try {
    const answer = await api("DELETE", `/api/v1/sessions/${encodeURIComponent(id)}`, {});
    lastOpenedId = null;
    go(listHash);
    show("qa-list-notice", erasedSummary(answer.erased));
  } catch (err) {
    if (err.status !== 401) toast(err.message);
    updateEraseState();
  }
}

function erasedSummary(counts) {
  const parts = Object.entries(counts || {}).map(([what, count]) =>
    has(`qa.retention.counts.${what}`) ? t(`qa.retention.counts.${what}`, { count }) : t("qa.retention.count_other", { count, what: what.replaceAll("_", " ") }),
  );
  return parts.length ? t("qa.retention.erased_counts", { parts: parts.join(t("qa.retention.list_separator")) }) : t("qa.retention.erased");
}

// --- keyboard: K play/pause, J/L ±5 s, when focus is not in a control ---

function onShortcut(ev) {
  if (!view || ev.altKey || ev.ctrlKey || ev.metaKey || isTyping(ev.target)) return;
  const video = $("qa-player");
  if (!video.getAttribute("src")) return;
  const key = ev.key.toLowerCase();
  if (key === "k") {
    if (video.paused) video.play().catch(() => {});
    else video.pause();
  } else if (key === "j" || key === "l") {
    const target = video.currentTime + (key === "j" ? -SEEK_KEY_S : SEEK_KEY_S);
    seekTo(Math.max(0, Math.min(Number.isFinite(video.duration) ? video.duration : target, target)));
  } else return;
  ev.preventDefault();
}

init();
