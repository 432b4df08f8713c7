// The list's filter form: its choices (reasons, outcomes, reps), and the form to and from
// the list URL's query (which is the API's filter query).
import { $, el, hide, show } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { loadDeployment, reasonLabel } from "../staff/deployment.js";
import { humanize } from "../staff/format.js";
import { dispositionLabels, go } from "./state.js";

// The default reasons, with short staff-facing names (common.reasons.*); a deployment's own reasons come from /api/v1/config.
const REASON_CODES = ["order", "complaint", "not_working", "wrong_info", "other"];
// Outcomes that are call states rather than a rep's disposition (qa.outcomes.*).
const OUTCOME_STATE_CODES = ["abandoned", "interrupted"];

export function wireFilters() {
  fillSelect($("qa-filter-reason"), REASON_CODES.map((code) => [code, reasonLabel(code)]));
  fillOutcomes();
  $("qa-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    applyFilters();
  });
  $("qa-clear").addEventListener("click", () => {
    $("qa-filters").reset();
    go("#/");
  });
}

/** The choices that come from the server; the list works without them (codes show instead). */
export function loadChoices() {
  loadDispositions();
  loadReasons();
}

export function fillSelect(select, pairs) {
  for (const [value, label] of pairs) {
    const option = el("option", { text: label });
    option.value = value;
    select.append(option);
  }
}

const anyOption = (key) => Object.assign(el("option", { text: t(key) }), { value: "" });

/** Outcome choices: the deployment's dispositions, then the call states the filter also accepts. */
function fillOutcomes() {
  const select = $("qa-filter-outcome");
  const keep = select.value;
  select.replaceChildren(anyOption("qa.filters.any_outcome"));
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
  const config = await loadDeployment();
  const codes = (config?.reasons || []).map((r) => [r.code, reasonLabel(r.code)]);
  if (!codes.length) return; // keep the default reasons
  const select = $("qa-filter-reason");
  const keep = select.value;
  select.replaceChildren(anyOption("qa.filters.any_reason"));
  fillSelect(select, codes);
  keepChoice(select, keep);
}

/** The reps in the list's answer, by name. */
export function fillReps(reps) {
  const select = $("qa-filter-rep");
  const keep = select.value;
  select.replaceChildren(anyOption("qa.filters.any_rep"));
  const name = (r) => r.display_name || t("qa.filters.rep_number", { id: r.id });
  const pairs = [...reps].sort((a, b) => name(a).localeCompare(name(b))).map((r) => [String(r.id), name(r)]);
  fillSelect(select, pairs);
  keepChoice(select, keep, t("qa.filters.rep_number", { id: keep }));
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
export function selectFromQuery(query) {
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
