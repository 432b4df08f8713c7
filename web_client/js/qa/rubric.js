// The scorecard editor (admins, on the list view): criteria with a slug id, a label and a
// type; saving makes a new version.
import { $, el, hide, show, toast } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { formatDateTime } from "../staff/format.js";
import { fillSelect } from "./filters.js";

const SLUG = /^[a-z][a-z0-9_]{0,39}$/;
const MAX_CRITERIA = 30;
let rubricLoaded = false;

export function wireRubricEditor() {
  $("qa-rubric-add").addEventListener("click", () => {
    const row = rubricRow({ id: "", label: "", type: "scale" });
    $("qa-rubric-rows").append(row);
    row.querySelector('[data-testid="qa-rubric-label"]').focus();
  });
  $("qa-rubric-save").addEventListener("click", saveRubric);
}

/** Load the current rubric into the editor, the first time the list shows (and again after a failure). */
export async function loadRubricOnce() {
  if (rubricLoaded) return;
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

function labelled(node, key) {
  node.setAttribute("aria-label", t(key));
  return node;
}

function rubricRow(criterion) {
  const li = el("li", { className: "rubric-row", testid: "qa-rubric-row" });
  const id = Object.assign(el("input", { testid: "qa-rubric-id" }), { value: criterion.id, maxLength: 40, placeholder: t("qa.rubric.id_placeholder") });
  labelled(id, "qa.rubric.id_label");
  id.spellcheck = false;
  id.dataset.auto = String(!criterion.id); // a new row's id follows its label until edited
  const label = Object.assign(el("input", { testid: "qa-rubric-label" }), { value: criterion.label, maxLength: 200, placeholder: t("qa.rubric.label_placeholder") });
  labelled(label, "qa.rubric.label_label");
  const type = labelled(el("select", { testid: "qa-rubric-type" }), "qa.rubric.type_label");
  fillSelect(type, [
    ["scale", t("qa.rubric.type_scale")],
    ["yesno", t("qa.rubric.type_yesno")],
  ]);
  type.value = criterion.type === "yesno" ? "yesno" : "scale";
  const remove = labelled(el("button", { text: t("qa.rubric.remove"), testid: "qa-rubric-remove" }), "qa.rubric.remove_label");
  remove.type = "button";
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
