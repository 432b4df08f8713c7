// "Needs attention" (issue 14): live calls whose customer looks frustrated, that run far past
// the reason's usual handle time, or whose rep asked for help, in the server's order (most
// urgent first). It names the call and its rep and says why; it never scores the rep.
//
// Optional alerts for a call that newly needs attention (or a new reason on one): a beep, and
// a desktop notification. Both are off until the supervisor turns them on; the browser's
// notification permission is asked for only then. The choices are kept in localStorage.
import { beep } from "../console/alert.js";
import { $, el, setText } from "../dom.js";
import { t } from "../i18n.js";
import { none } from "../staff/format.js";
import { ticking } from "./clocks.js";
import { integer, reasonLabel } from "./format.js";

const SOUND_KEY = "rapport.attention.sound";
const NOTIFY_KEY = "rapport.attention.notify";
const WHY_ORDER = ["help", "frustration", "long_call"];

let seen = null; // "session:why" keys of the last render; null before the first
let listenButtons = null; // the page's Listen action for the items' buttons

/** Restore and wire the two toggles. */
export function wireAttention() {
  const sound = $("attention-sound");
  const notify = $("attention-notify");
  sound.checked = localStorage.getItem(SOUND_KEY) === "1";
  notify.checked = localStorage.getItem(NOTIFY_KEY) === "1" && notificationsGranted();
  sound.addEventListener("change", () => localStorage.setItem(SOUND_KEY, sound.checked ? "1" : "0"));
  notify.addEventListener("change", async () => {
    if (notify.checked && !(await askPermission())) {
      notify.checked = false;
      show("attention-notify-denied", t("supervisor.attention.notify_denied"));
    } else $("attention-notify-denied").hidden = true;
    localStorage.setItem(NOTIFY_KEY, notify.checked ? "1" : "0");
  });
}

const notificationsGranted = () => "Notification" in window && Notification.permission === "granted";

/** Asked only when the supervisor turns notifications on (a click: browsers want a gesture). */
async function askPermission() {
  if (!("Notification" in window)) return false;
  if (Notification.permission === "granted") return true;
  if (Notification.permission === "denied") return false;
  try {
    return (await Notification.requestPermission()) === "granted";
  } catch {
    return false;
  }
}

function show(testid, text) {
  const node = $(testid);
  node.textContent = text;
  node.hidden = false;
}

/** Draw the list in the order given; `fresh`: this is the server's news (alerts may fire). */
export function renderAttention(items, onListen, fresh) {
  listenButtons = onListen;
  const list = $("attention-list");
  const old = new Map([...list.children].map((li) => [li.dataset.sessionId, li]));
  items.forEach((item, i) => {
    let li = old.get(item.session_id);
    if (li) old.delete(item.session_id);
    else li = attentionItem(item.session_id);
    updateItem(li, item);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const li of old.values()) li.remove();
  setText($("attention-count"), integer(items.length));
  $("attention-empty").hidden = items.length > 0;
  list.hidden = items.length === 0;
  if (fresh) alertNew(items);
}

function attentionItem(sessionId) {
  const li = el("li", { className: "attention-item", testid: "attention-item" });
  li.dataset.sessionId = sessionId;
  const head = el("div", { className: "head" });
  head.append(el("strong", { className: "rep" }), el("span", { className: "muted reason" }), el("span", { className: "num talk" }));
  const whys = el("div", { className: "whys" });
  const button = el("button", { className: "primary listen", text: t("supervisor.assist.listen"), testid: "assist-listen" });
  button.type = "button";
  button.addEventListener("click", () => listenButtons?.(li.dataset.sessionId, button));
  li.append(head, whys, button);
  return li;
}

const repName = (item) => item.rep?.display_name || t("supervisor.attention.no_rep");
const whyLabel = (why) => t(`supervisor.attention.why.${why}`);
const sortedWhys = (item) =>
  [...new Set(Array.isArray(item.why) ? item.why : [])].sort((a, b) => rank(a) - rank(b));
const rank = (why) => (WHY_ORDER.includes(why) ? WHY_ORDER.indexOf(why) : WHY_ORDER.length);

function updateItem(li, item) {
  li.dataset.urgency = String(Number(item.urgency) || 0);
  setText(li.querySelector(".rep"), repName(item));
  setText(li.querySelector(".reason"), item.reason ? reasonLabel(item.reason) : none());
  ticking(li.querySelector(".talk"), item.talk_s);
  const whys = sortedWhys(item);
  const box = li.querySelector(".whys");
  if (box.dataset.whys !== whys.join(",")) {
    box.dataset.whys = whys.join(",");
    box.replaceChildren(
      ...whys.map((why) => {
        const badge = el("span", { className: `badge why why-${why}`, text: whyLabel(why), testid: "attention-why" });
        badge.dataset.why = why;
        return badge;
      }),
    );
  }
  li.querySelector(".listen").setAttribute("aria-label", t("supervisor.assist.listen_label", { rep: repName(item) }));
}

/** Beep and notify for what was not on the list before (nothing on the page's first floor). */
function alertNew(items) {
  const now = new Set(items.flatMap((item) => sortedWhys(item).map((why) => `${item.session_id}:${why}`)));
  const first = seen === null;
  const fresh = first ? [] : items.filter((item) => sortedWhys(item).some((why) => !seen.has(`${item.session_id}:${why}`)));
  seen = now;
  if (!fresh.length) return;
  const item = fresh[0];
  const why = sortedWhys(item).map(whyLabel).join(t("common.separator"));
  $("attention-announce").textContent = t("supervisor.attention.announce", { rep: repName(item), why });
  if ($("attention-sound").checked) {
    beep(660, 0.15);
    setTimeout(() => beep(880, 0.2), 180);
  }
  if ($("attention-notify").checked && notificationsGranted()) {
    try {
      const note = new Notification(t("supervisor.attention.notify_title"), {
        body: t("supervisor.attention.notify_body", { rep: repName(item), reason: reasonLabel(item.reason), why }),
        tag: `rapport-attention-${item.session_id}`,
      });
      note.addEventListener("click", () => {
        window.focus();
        $("attention-list").scrollIntoView({ block: "nearest" });
      });
    } catch {
      /* some browsers only notify from a service worker: the list and the sound remain */
    }
  }
}

/** Signed out: the next sign-in starts without alerts for what is already there. */
export function resetAttention() {
  seen = null;
}
