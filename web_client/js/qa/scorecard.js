// Scoring a call against the scorecard, and the reviews given before. Scale answers earn
// 0–4 points above 1, yes earns 1; the score is the share of points available.
import { $, el, hide, show, toast } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { formatDateTime, isNumber, wholePercent as percent } from "../staff/format.js";
import { signedInUser } from "../staff/session.js";
import { qa, sessionUrl } from "./state.js";

export function wireScorecard() {
  $("qa-scorecard").addEventListener("change", updateScoreState);
  $("qa-scorecard").addEventListener("input", () => hide("qa-score-saved"));
  $("qa-scorecard").addEventListener("submit", submitReview);
}

export function renderScorecard(scorecard, erased) {
  const usable = !erased && scorecard?.criteria?.length > 0;
  $("qa-scorecard").hidden = !usable;
  $("qa-scorecard-missing").hidden = usable || erased;
  $("qa-criteria").replaceChildren(...(usable ? scorecard.criteria.map(criterionFieldset) : []));
  updateScoreState();
}

/** An empty scorecard while a call loads. */
export function clearScorecard() {
  $("qa-criteria").replaceChildren();
  $("qa-reviews").replaceChildren();
  $("qa-scorecard").reset();
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
  const criteria = qa.view?.bundle.scorecard?.criteria || [];
  const score = complete ? scoreOf(answers, criteria) : null;
  const answered = Object.keys(answers).length;
  $("qa-score-preview").textContent =
    score != null ? t("qa.scorecard.score", { score: percent(score) }) : criteria.length ? t("qa.scorecard.answered", { answered, total: criteria.length }) : "";
}

async function submitReview(ev) {
  ev.preventDefault();
  const { answers, complete } = readAnswers();
  const view = qa.view;
  if (!complete || !view) return;
  const button = $("qa-score-submit");
  button.disabled = true;
  const body = { scorecard_id: view.bundle.scorecard.id, answers, comments: $("qa-score-comments").value.trim() };
  try {
    const review = await api("POST", sessionUrl(view.id, "/reviews"), body);
    const me = signedInUser();
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

export function renderReviews(reviews, scorecard) {
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
