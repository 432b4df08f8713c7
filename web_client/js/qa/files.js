// The call's photos, files and snapshots, on the player's clock: a picture's thumbnail (fetched with the
// staff cookie), a PDF as a download link, who sent it and when; the time seeks the player.
import { $, el } from "../dom.js";
import { formatSize } from "../files.js";
import { t } from "../i18n.js";
import { formatClock, isNumber } from "../staff/format.js";

const THUMB_PX = 160;

/** Wire the list: a click on a file's time seeks to it. */
export function wireFiles(seekTo) {
  $("qa-files").addEventListener("click", (ev) => {
    const time = ev.target.closest("button.stamp");
    const item = time?.closest('[data-testid="qa-file-item"]');
    if (item && Number(item.dataset.t) >= 0) seekTo(Number(item.dataset.t));
  });
}

/** Timed files first, in order; files sent before the answer (no time on the player) last. */
export function sortedFiles(files) {
  return files.filter((f) => isNumber(f.t)).sort((a, b) => a.t - b.t).concat(files.filter((f) => !isNumber(f.t)));
}

export function renderFiles(files) {
  $("qa-files").replaceChildren(...files.map(fileItem));
  $("qa-files-empty").hidden = files.length > 0;
}

export function clearFiles() {
  $("qa-files").replaceChildren();
  $("qa-files-empty").hidden = true;
}

function fileItem(file) {
  const li = el("li", { className: `chat-entry qa-file from-${file.from} kind-${file.kind}`, testid: "qa-file-item" });
  li.dataset.fileId = file.file_id;
  li.dataset.kind = file.kind;
  li.dataset.from = file.from;
  const seekable = isNumber(file.t) && file.t >= 0;
  li.dataset.t = seekable ? String(file.t) : "";
  let time;
  if (seekable) {
    time = el("button", { className: "stamp", text: formatClock(file.t), testid: "qa-file-time" });
    time.type = "button";
    time.setAttribute("aria-label", t("qa.chat.play_from", { time: formatClock(file.t) }));
  } else {
    time = el("span", { className: "stamp waiting", text: t("qa.files.waiting"), testid: "qa-file-time" });
  }
  const sender = file.kind === "snapshot" ? t("qa.files.snapshot") : t(`qa.files.from_${file.from === "rep" ? "rep" : "customer"}`);
  const who = el("span", { className: "who small muted", text: sender, testid: "qa-file-sender" });
  const body = el("div", { className: "text" });
  const link = el("a", { text: `${file.name} (${formatSize(file.size)})`, testid: "qa-file-link" });
  link.href = file.url; // the staff URL: the browser sends the login cookie
  link.rel = "noopener";
  link.download = file.name;
  if (file.media_type?.startsWith("image/")) {
    const img = el("img", { className: "qa-thumb", testid: "qa-file-image" });
    img.alt = `${file.name}, ${sender}`;
    if (file.width && file.height) {
      img.width = Math.min(THUMB_PX, file.width);
      img.height = Math.round((img.width * file.height) / file.width);
    }
    img.addEventListener("error", () => {
      img.hidden = true;
      body.append(el("p", { className: "muted small", text: t("qa.files.unavailable") }));
    });
    img.src = file.url;
    body.append(img);
  }
  body.append(link);
  li.append(time, who, body);
  return li;
}
