// The end screen: why it ended, when, and after an answered call the rating (five stars as
// one radio group, an optional comment); after a call nobody could take in time, a callback
// request. Both are sent with the call's token.
import { $, setState } from "../dom.js";
import { postJSON } from "../http.js";
import { bindAttr, bindText, formatTime, t } from "../i18n.js";
import { emailProblem, normalPhone, phoneProblem, showError } from "./contact.js";

/**
 * Show the end screen: `textKey` says why; `endedAt` adds the time; `againKey` relabels
 * "call again"; `rateable` offers the rating, `callback` the callback request.
 */
export function showEndScreen({ textKey, endedAt = null, againKey = null, rateable = false, callback = false }) {
  bindText($("ended-text"), () => t(textKey));
  bindText($("ended-at"), endedAt ? () => t("ended_at", { time: formatTime(endedAt) }) : null);
  if (againKey) bindText($("call-again"), () => t(againKey));
  $("rating").hidden = !rateable;
  $("rating-thanks").hidden = true;
  $("callback").hidden = !callback;
  $("callback-thanks").hidden = true;
  setState("ended");
  window.scrollTo(0, 0);
  document.getElementById("ended-title").focus({ preventScroll: true });
}

/** Wire the rating and callback forms; `callToken()` is the ended call's token. */
export function wireEndScreen(callToken) {
  $("call-again").addEventListener("click", () => location.assign("/call"));
  wireRating(callToken);
  wireCallback(callToken);
}

/** Send a form's answer; on success the form gives way to its thank-you, else `onError(err)`. */
async function sendForm(form, button, thanks, url, body, onError) {
  button.disabled = true;
  try {
    await postJSON(url, body);
    form.hidden = true;
    const note = $(thanks);
    note.hidden = false;
    note.focus({ preventScroll: true });
  } catch (err) {
    onError(err);
  }
}

const refused = (err) => err.status === 404 || err.status === 409; // the call can no longer take it

function wireCallback(callToken) {
  const form = $("callback");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const phone = normalPhone($("callback-phone").value);
    const email = $("callback-email").value.trim();
    const problem = !phone && !email ? "callback_needs_contact" : emailProblem(email) || phoneProblem(phone);
    if (problem) return showError("callback-error", problem);
    const button = $("callback-submit");
    showError("callback-error", null);
    const contact = {};
    if (phone) contact.phone = phone;
    if (email) contact.email = email;
    await sendForm(form, button, "callback-thanks", "/api/v1/calls/callback", { token: callToken(), contact }, (err) => {
      showError("callback-error", refused(err) ? "callback_closed" : "callback_error");
      button.disabled = refused(err);
    });
  });
}

function chosenStars() {
  const checked = $("rating").querySelector('input[name="rating"]:checked');
  return checked ? Number(checked.value) : 0;
}

function paintStars() {
  const value = chosenStars();
  for (const star of $("rating").querySelectorAll('[data-testid="rating-star"]')) {
    star.closest(".star").classList.toggle("on", Number(star.value) <= value);
  }
  bindText($("rating-word"), value ? () => t(`rating_${value}`) : null);
}

function wireRating(callToken) {
  const form = $("rating");
  for (const star of form.querySelectorAll('[data-testid="rating-star"]')) {
    const n = Number(star.value);
    bindAttr(star, "aria-label", () => `${t("rating_star", { n })} – ${t(`rating_${n}`)}`);
    star.addEventListener("change", () => {
      paintStars();
      showError("rating-error", null);
    });
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const rating = chosenStars();
    if (!rating) {
      showError("rating-error", "rating_choose");
      form.querySelector('[data-testid="rating-star"]').focus();
      return;
    }
    const button = $("rating-submit");
    showError("rating-error", null);
    const body = { token: callToken(), rating, comment: $("rating-comment").value.trim() };
    await sendForm(form, button, "rating-thanks", "/api/v1/calls/rating", body, (err) => {
      showError("rating-error", refused(err) ? "rating_closed" : "rating_error");
      if (!refused(err)) button.disabled = false;
    });
  });
}
