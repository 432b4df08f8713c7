// Self-help: the chosen reason's articles above the call button (title, body, an optional
// http(s) link opened in a new tab), with "Did this solve it?".
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { svg } from "../svg.js";
import { showEndScreen } from "./ended.js";

function safeLink(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const u = new URL(url, location.href);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}

/** `reason`'s articles, shown above the call button (hidden when there are none). */
export function renderHelp(reason) {
  const articles = Array.isArray(reason?.help) ? reason.help.filter((a) => a && (a.title || a.body)) : [];
  const panel = $("help");
  const list = $("help-articles");
  list.replaceChildren();
  panel.hidden = !articles.length;
  for (const a of articles) {
    const item = document.createElement("li");
    item.className = "help-article";
    item.dataset.testid = "help-article";
    // An article the deployment did not translate keeps its own direction (English in a Persian page).
    item.dir = "auto";
    const title = document.createElement("h3");
    title.textContent = a.title || "";
    item.append(title);
    if (a.body) {
      const body = document.createElement("p");
      body.textContent = a.body;
      item.append(body);
    }
    const href = safeLink(a.url);
    if (href) item.append(readMore(href));
    list.append(item);
  }
}

function readMore(href) {
  const link = document.createElement("a");
  link.href = href;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.className = "read-more";
  link.dir = document.documentElement.dir;
  const label = document.createElement("span");
  label.dataset.i18n = "help_read_more";
  label.textContent = t("help_read_more");
  const arrow = svg("svg", { viewBox: "0 0 24 24", "aria-hidden": "true", class: "link-icon flip-rtl" });
  svg("path", { d: "M5 12h14M13 6l6 6-6 6" }, arrow);
  link.append(label, arrow);
  return link;
}

/** "I still need a person" starts the call; "Yes, that solved it" ends on a friendly note. */
export function wireHelp({ onNeedPerson }) {
  $("help-need-person").addEventListener("click", () => onNeedPerson());
  $("help-solved").addEventListener("click", () => showEndScreen({ textKey: "solved_text", againKey: "start_over" }));
}
