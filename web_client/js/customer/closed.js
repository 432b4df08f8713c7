// Business hours on the customer page: out of hours the start form gives way to "We're closed; we open
// again at …" and a callback form (phone or email, and a preferred time from the next open slots); while
// waiting, once the estimated wait passes the centre's threshold, "Leave a callback request instead of
// waiting" (the request is sent with the call's token, then the customer leaves the queue).
import { $ } from "../dom.js";
import { postJSON } from "../http.js";
import { bindText, currentLanguage, formatDate, formatTime, onLanguageChange, t } from "../i18n.js";
import { emailProblem, normalPhone, phoneProblem, showError } from "./contact.js";

let hours = null;

/** The queue's state for a reason code ("*" when there is none). */
function queueFor(code) {
  const queues = hours?.queues || [];
  return queues.find((q) => q.queue === code) || queues.find((q) => q.queue === "*") || null;
}

function when(iso) {
  const d = new Date(iso);
  return `${formatDate(d, { weekday: "short", day: "numeric", month: "short" })} ${formatTime(d)}`;
}

/** Show or hide the closed panel for `reason` (the start form's choice). */
export function showOpenState(reason) {
  const queue = queueFor(reason || "*");
  const closed = Boolean(queue && !queue.open);
  $("closed-panel").hidden = !closed;
  $("start-call").hidden = closed;
  if (!closed) return;
  bindText($("closed-text"), () =>
    queue.next_opening ? t("closed_reopens", { time: when(queue.next_opening) }) : t("closed_no_opening"),
  );
  fillSlots($("closed-window"), queue.callback_slots || []);
}

function fillSlots(select, slots) {
  const render = () => {
    const soonest = new Option(t("callback_window_soonest"), "");
    select.replaceChildren(soonest, ...slots.map((s) => new Option(`${when(s.start)} – ${formatTime(new Date(s.end))}`, `${s.start}|${s.end}`)));
  };
  render();
  onLanguageChange(render);
}

function contactFrom(prefix) {
  const phone = normalPhone($(`${prefix}-phone`).value);
  const email = $(`${prefix}-email`).value.trim();
  const problem = !phone && !email ? "callback_needs_contact" : emailProblem(email) || phoneProblem(phone);
  const contact = {};
  if (phone) contact.phone = phone;
  if (email) contact.email = email;
  return { contact, problem };
}

async function send(form, prefix, body) {
  const { contact, problem } = contactFrom(prefix);
  if (problem) return showError(`${prefix}-error`, problem), false;
  showError(`${prefix}-error`, null);
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    await postJSON("/api/v1/calls/callback", { ...body, contact });
    form.hidden = true;
    const note = $(`${prefix}-thanks`);
    note.hidden = false;
    note.focus({ preventScroll: true });
    return true;
  } catch (err) {
    button.disabled = false;
    showError(`${prefix}-error`, err.status === 429 ? "callback_too_many" : err.status === 409 ? "callback_not_now" : "callback_error");
    return false;
  }
}

/** Wire the closed panel; `reason()` is the start form's reason, `name()` the name typed there. */
export function wireClosed(config, { reason, name }) {
  hours = config.hours || null;
  const form = $("closed-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const [start, end] = ($("closed-window").value || "").split("|");
    const body = { reason: reason() || null, language: currentLanguage(), name: name() || null };
    if (start && end) body.window = { start, end };
    await send(form, "closed", body);
  });
}

/** While waiting: offer the callback once the estimated wait passes the threshold. */
export function offerCallbackInstead(estimateS, token, leave) {
  const threshold = Number(hours?.callback_wait_threshold_s);
  const offer = $("callback-instead");
  if (!Number.isFinite(threshold) || !(estimateS > threshold)) return;
  offer.hidden = false;
  if (offer.dataset.wired) return;
  offer.dataset.wired = "1";
  $("callback-instead-open").addEventListener("click", () => {
    $("callback-instead-form").hidden = false;
    $("callback-instead-open").hidden = true;
    $("instead-phone").focus();
  });
  $("callback-instead-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (await send($("callback-instead-form"), "instead", { token: token() })) leave();
  });
}
