// The chat transcript, in the player's clock: a line's time seeks the video, and the line
// at or before the playhead is highlighted.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";
import { codeLabel, formatClock, isNumber } from "../staff/format.js";

/** Wire the transcript: a click on a line seeks to it. */
export function wireTranscript(seekTo) {
  $("qa-chat").addEventListener("click", (ev) => {
    const line = ev.target.closest('[data-testid="qa-chat-line"]');
    if (line && Number(line.dataset.t) >= 0) seekTo(Number(line.dataset.t));
  });
}

/** Timed lines first, in order; lines sent before the answer (no time) last. */
export function sortedChat(chat) {
  return chat.filter((m) => isNumber(m.t)).sort((a, b) => a.t - b.t).concat(chat.filter((m) => !isNumber(m.t)));
}

export function renderChat(chat) {
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
export function highlightChat(at) {
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
