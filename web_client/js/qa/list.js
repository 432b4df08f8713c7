// The list view (#/ with filters in the query): the recorded calls that match, one row each.
import { $, el, setState, toast } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { reasonLabel } from "../staff/deployment.js";
import { codeLabel, formatClock, formatDateTime, humanize, isNumber, none, wholePercent as percent } from "../staff/format.js";
import { signedInUser } from "../staff/session.js";
import { fillReps, selectFromQuery } from "./filters.js";
import { loadRubricOnce } from "./rubric.js";
import { dispositionLabels, go, qa } from "./state.js";

const frustrationLevel = (v) => (v >= 0.5 ? "high" : v >= 0.3 ? "mid" : "low");

export function wireList() {
  $("qa-session-list").addEventListener("click", (ev) => {
    const row = ev.target.closest('[data-testid="qa-session-row"]');
    if (row) openRow(row);
  });
  $("qa-session-list").addEventListener("keydown", (ev) => {
    const row = ev.target.closest('[data-testid="qa-session-row"]');
    if (row && ev.key === "Enter") openRow(row);
  });
}

export async function showList(query, token) {
  qa.listHash = location.hash && location.hash !== "#" ? location.hash : "#/";
  $("qa-back").href = qa.listHash;
  setState("list");
  selectFromQuery(query);
  $("qa-export").href = `/api/v1/qa/export.csv?${query}`;
  if (signedInUser().role === "admin") loadRubricOnce();
  const table = $("qa-session-table");
  table.setAttribute("aria-busy", "true");
  try {
    const answer = await api("GET", `/api/v1/qa/sessions?${query}`);
    if (token !== qa.navToken) return;
    fillReps(answer.reps || []);
    renderRows(answer.items || [], query);
  } catch (err) {
    if (token === qa.navToken && err.status !== 401) toast(err.message);
  } finally {
    table.removeAttribute("aria-busy");
  }
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
  const again = qa.lastOpenedId && [...body.rows].find((r) => r.dataset.sessionId === qa.lastOpenedId);
  qa.lastOpenedId = null;
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
  qa.lastOpenedId = row.dataset.sessionId;
  go(`#/sessions/${encodeURIComponent(row.dataset.sessionId)}`);
}
