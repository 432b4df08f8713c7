// Callbacks in the console: the customers who asked to be called back (out of hours, or instead of a long
// wait), due first, as GET /api/v1/callbacks lists them for this rep (their skills and languages). Polled every
// few seconds while the tab is visible. Start makes the customer's single-use link (the callback.started
// webhook sends it; the rep can also show its QR or copy it), and the customer's call then rings here first.
// A callback started by someone else meanwhile is a 409, said in words and the list refreshed.
import { $, el } from "../dom.js";
import { formatDate, formatTime, onLanguageChange, t } from "../i18n.js";
import { api } from "../staff/api.js";
import { formatDateTime, none } from "../staff/format.js";
import { signedInUser } from "../staff/session.js";
import { languageName } from "./card.js";
import { reasonLabel } from "./labels.js";

const POLL_MS = 4000;

let items = [];
const links = new Map(); // callback id -> the invite this rep made for it (the link is shown once, here)
const errors = new Map(); // callback id -> the message of its last refused action
let timer = null;
let loading = null;
let running = false;
let wired = false;

/** Start listing (after each sign-in); polls while the tab is in view, stops when the sign-in lapses. */
export function wireCallbacks() {
  if (!wired) {
    wired = true;
    document.addEventListener("visibilitychange", () => running && (document.hidden ? stopPolling() : refresh()));
    onLanguageChange(render);
  }
  running = true;
  refresh();
}

function stopPolling() {
  clearTimeout(timer);
  timer = null;
}

/** Fetch the list now (and again in a few seconds while the page is in view). */
export function refresh() {
  stopPolling();
  loading ||= api("GET", "/api/v1/callbacks")
    .then((answer) => {
      const fresh = answer.items || [];
      $("callbacks-status").hidden = true;
      if (JSON.stringify(fresh) === JSON.stringify(items)) return; // unchanged: no redraw for screen readers to re-read
      items = fresh;
      render();
    })
    .catch((err) => {
      if (err.status === 401 || err.status === 403) return void (running = false); // signed out: the next sign-in starts again
      $("callbacks-status").textContent = t("console.callbacks.load_failed");
      $("callbacks-status").hidden = false;
    })
    .finally(() => {
      loading = null;
      if (running && !document.hidden && timer === null) timer = setTimeout(refresh, POLL_MS);
    });
  return loading;
}

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? none() : formatDateTime(iso);
}

function windowText(w) {
  if (!w) return t("console.callbacks.soonest");
  const start = new Date(w.start);
  return `${formatDate(start, { weekday: "short", day: "numeric", month: "short" })} ${formatTime(start)}–${formatTime(new Date(w.end))}`;
}

function render() {
  const list = $("callbacks-list");
  // Keep the keyboard where it was: a redraw replaces the buttons, so remember which one had focus.
  const focused = document.activeElement?.closest?.('[data-testid="callback-item"]');
  const focusedId = focused?.dataset.callbackId;
  const focusedRole = document.activeElement?.dataset?.testid;
  list.replaceChildren(...items.map(itemFor));
  $("callbacks-count").textContent = String(items.filter((c) => c.state === "requested").length);
  $("callbacks-empty").hidden = items.length > 0;
  if (focusedId && focusedRole) {
    const again = list.querySelector(`[data-callback-id="${CSS.escape(focusedId)}"] [data-testid="${CSS.escape(focusedRole)}"]`);
    again?.focus();
  }
}

function itemFor(c) {
  const li = el("li", { testid: "callback-item" });
  li.dataset.callbackId = c.id;
  li.dataset.state = c.state;
  const due = Date.parse(c.due_at) <= Date.now();
  li.classList.toggle("due", due && c.state === "requested");
  const titleId = `callback-${c.id}-name`;
  const name = el("strong", { text: c.customer_name || t("common.guest") });
  name.id = titleId;
  li.setAttribute("aria-labelledby", titleId);
  const state = el("span", { className: "badge small", testid: "callback-state", text: stateText(c) });

  const facts = el("dl", { className: "callback-facts" });
  const contact = c.contact ? [c.contact.phone, c.contact.email].filter(Boolean).join(t("common.separator")) : "";
  const rows = [
    ["reason", reasonLabel(c.reason) || none()],
    ["language", languageName(c.language) || c.language || none()],
    ["contact", contact || t("console.callbacks.no_contact")],
    ["window", windowText(c.window)],
    ["due", due ? t("console.callbacks.due_now") : when(c.due_at)],
  ];
  for (const [key, value] of rows) {
    const dd = el("dd", { text: value, testid: `callback-${key}` });
    if (key === "contact") dd.dir = "ltr";
    facts.append(el("dt", { text: t(`console.callbacks.${key}`) }), dd);
  }

  const actions = el("div", { className: "row" });
  const start = el("button", { className: "primary", testid: "callback-start", text: t("console.callbacks.start") });
  start.type = "button";
  start.disabled = c.state !== "requested";
  start.addEventListener("click", () => startCallback(c, start));
  const cancel = el("button", { testid: "callback-cancel", text: t("console.callbacks.cancel") });
  cancel.type = "button";
  cancel.addEventListener("click", () => cancelCallback(c, cancel));
  for (const button of [start, cancel]) button.setAttribute("aria-describedby", titleId);
  actions.append(start, cancel);

  li.append(name, state, facts, actions);
  const error = errors.get(c.id);
  if (error) {
    const said = el("p", { className: "error small", testid: "callback-error", text: error });
    said.setAttribute("role", "alert");
    li.append(said);
  }
  const invite = links.get(c.id);
  if (invite && c.state === "started") li.append(linkPanel(invite));
  return li;
}

function stateText(c) {
  if (c.state === "started") {
    const mine = c.started_by != null && c.started_by === signedInUser()?.id;
    return t(mine ? "console.callbacks.started_by_you" : "console.callbacks.started_by_other");
  }
  return t("console.callbacks.requested");
}

/** The customer's link, its QR code and a copy button. */
function linkPanel(invite) {
  const box = el("div", { className: "callback-link-box" });
  box.append(el("p", { className: "small", text: t("console.callbacks.link_sent") }));
  const link = el("a", { className: "mono small", testid: "callback-link", text: invite.url });
  link.href = invite.url;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  const qr = el("img", { className: "qr", testid: "callback-qr" });
  qr.src = invite.qr_png_url;
  qr.alt = t("console.callbacks.qr_alt");
  qr.width = 160;
  qr.height = 160;
  const copy = el("button", { testid: "callback-copy", text: t("console.callbacks.copy") });
  copy.type = "button";
  const copied = el("span", { className: "muted small", testid: "callback-copied" });
  copied.setAttribute("role", "status");
  copy.addEventListener("click", async () => {
    copied.textContent = t((await copyText(invite.url)) ? "console.callbacks.copied" : "console.callbacks.copy_failed");
  });
  box.append(link, qr, el("div", { className: "row" }));
  box.lastChild.append(copy, copied);
  return box;
}

/** The clipboard API where allowed (a secure context with permission), else a selected textarea and execCommand. */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { className: "visually-hidden" });
    area.value = text;
    area.setAttribute("readonly", "");
    document.body.append(area);
    area.select();
    let done = false;
    try {
      done = document.execCommand("copy");
    } catch {
      done = false;
    }
    area.remove();
    return done;
  }
}

async function startCallback(c, button) {
  button.disabled = true;
  errors.delete(c.id);
  try {
    const answer = await api("POST", `/api/v1/callbacks/${encodeURIComponent(c.id)}/start`);
    links.set(c.id, answer.invite);
    items = items.map((item) => (item.id === c.id ? answer.callback : item));
    render();
    $(`callback-link`, document.querySelector(`[data-callback-id="${CSS.escape(c.id)}"]`))?.focus();
  } catch (err) {
    errors.set(c.id, actionError(err, "start"));
    render();
  }
  refresh();
}

async function cancelCallback(c, button) {
  if (!window.confirm(t("console.callbacks.cancel_confirm", { name: c.customer_name || t("common.guest") }))) return;
  button.disabled = true;
  errors.delete(c.id);
  try {
    await api("POST", `/api/v1/callbacks/${encodeURIComponent(c.id)}/cancel`);
    links.delete(c.id);
    items = items.filter((item) => item.id !== c.id);
    render();
    $("callbacks-title").focus();
  } catch (err) {
    errors.set(c.id, actionError(err, "cancel"));
    render();
  }
  refresh();
}

function actionError(err, action) {
  if (err.status === 409 && err.code === "public_url_required") return t("console.callbacks.no_public_url");
  if (err.status === 409) return t(action === "start" ? "console.callbacks.already_started" : "console.callbacks.already_closed");
  if (err.status === 404) return t("console.callbacks.gone");
  return err.message || t("console.callbacks.failed");
}
