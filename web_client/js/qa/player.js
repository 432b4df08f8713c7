// The player: the composed side-by-side file, or its progress while it is made (asking again
// every 2 s), or why there is none; the per-track downloads; seeking and the K/J/L keys.
import { $, el, hide, show, toast } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { codeLabel, isNumber } from "../staff/format.js";
import { wireFiles } from "./files.js";
import { qa, sessionUrl } from "./state.js";
import { highlightChat, wireTranscript } from "./transcript.js";

const POLL_MS = 2000;
const SEEK_KEY_S = 5;

const isTyping = (target) => target.closest?.("input, textarea, select, button, a, video, [role=slider], [role=button], dialog");

export function wirePlayer() {
  const video = $("qa-player");
  video.addEventListener("timeupdate", () => highlightChat(video.currentTime));
  video.addEventListener("seeked", () => highlightChat(video.currentTime));
  video.addEventListener("error", () => video.getAttribute("src") && show("qa-player-error"));
  $("qa-compose-retry").addEventListener("click", retryCompose);
  wireTranscript(seekTo);
  wireFiles(seekTo);
  document.addEventListener("keydown", onShortcut);
}

export function renderPlayer(player) {
  const state = !player ? "none" : ["complete", "failed"].includes(player.state) ? player.state : "preparing";
  $("qa-no-recording").hidden = state !== "none";
  document.querySelector(".player-note.compose").hidden = state !== "preparing";
  $("qa-compose-failed").hidden = state !== "failed";
  $("qa-player").hidden = state !== "complete";
  $("qa-keys").hidden = state !== "complete";
  if (state === "complete") setVideoSource(player.url);
  else if (state === "preparing") {
    showComposeProgress(player); // pending or composing: ask again until it settles
    schedulePoll();
  } else if (state === "failed") {
    $("qa-compose-error").textContent = player.error || player.reason || player.message || t("qa.player.failed_default");
  }
}

function setVideoSource(url) {
  const video = $("qa-player");
  if (!url || video.getAttribute("src") === url) return;
  hide("qa-player-error");
  video.src = url;
}

function showComposeProgress(player) {
  const pct = player.state === "composing" && isNumber(player.progress) ? Math.round(Math.min(1, Math.max(0, player.progress)) * 100) : 0;
  const bar = $("qa-compose-progress");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.querySelector(".fill").style.inlineSize = `${pct}%`;
  $("qa-compose-status").textContent = player.state === "pending" ? t("qa.player.pending") : t("qa.player.preparing_pct", { pct });
}

function schedulePoll() {
  if (!qa.view) return;
  clearTimeout(qa.view.pollTimer);
  qa.view.pollTimer = setTimeout(pollBundle, POLL_MS);
}

async function pollBundle() {
  const polled = qa.view;
  if (!polled) return;
  try {
    const bundle = await api("GET", sessionUrl(polled.id));
    if (qa.view !== polled) return;
    polled.bundle.player = bundle.player;
    polled.bundle.recordings = bundle.recordings;
    renderTracks(bundle.recordings || []);
    renderPlayer(bundle.player); // schedules the next poll while still pending or composing
  } catch (err) {
    if (qa.view !== polled || err.status === 401 || err.status === 404) return;
    toast(err.message);
    schedulePoll();
  }
}

async function retryCompose() {
  const button = $("qa-compose-retry");
  button.disabled = true;
  try {
    await api("POST", sessionUrl(qa.view.id, "/compose"), {});
    renderPlayer({ ...qa.view.bundle.player, state: "pending", progress: 0 });
  } catch (err) {
    if (err.status !== 401) toast(err.message);
  } finally {
    button.disabled = false;
  }
}

export function renderTracks(recordings) {
  const list = $("qa-track-list");
  list.replaceChildren(...recordings.map(trackItem));
  $("qa-tracks").hidden = recordings.length === 0;
}

function trackItem(rec) {
  const li = el("li");
  const kind = rec.kind ? t(`qa.tracks.kinds.${rec.kind}`, {}, rec.kind) : t("qa.tracks.track");
  const name = t("qa.tracks.name", { participant: codeLabel("qa.participants", rec.participant), kind });
  const playable = rec.url && rec.state !== "failed" && rec.state !== "recording";
  const link = playable ? el("a", { text: name, testid: "qa-track-link" }) : el("span", { text: name });
  if (playable) {
    link.href = rec.url;
    link.download = "";
  }
  const details = [rec.state && rec.state !== "complete" ? codeLabel("qa.tracks.states", rec.state) : null, isNumber(rec.size) ? formatBytes(rec.size) : null];
  li.append(link);
  if (details.some(Boolean)) li.append(el("span", { className: "muted small", text: ` ${details.filter(Boolean).join(t("common.separator"))}` }));
  return li;
}

function formatBytes(n) {
  if (n < 1024) return t("qa.bytes.b", { n });
  if (n < 1024 ** 2) return t("qa.bytes.kb", { n: Math.round(n / 1024) });
  if (n < 1024 ** 3) return t("qa.bytes.mb", { n: Math.round((n / 1024 ** 2) * 10) / 10 });
  return t("qa.bytes.gb", { n: Math.round((n / 1024 ** 3) * 100) / 100 });
}

/** Jump the video (when there is one) and the chart and transcript to a second of the call. */
export function seekTo(at) {
  const video = $("qa-player");
  if (video.getAttribute("src")) video.currentTime = at;
  qa.view?.timeline.setTime(at);
  highlightChat(at);
}

/** K play/pause, J/L ±5 s, when focus is not in a control. */
function onShortcut(ev) {
  if (!qa.view || ev.altKey || ev.ctrlKey || ev.metaKey || isTyping(ev.target)) return;
  const video = $("qa-player");
  if (!video.getAttribute("src")) return;
  const key = ev.key.toLowerCase();
  if (key === "k") {
    if (video.paused) video.play().catch(() => {});
    else video.pause();
  } else if (key === "j" || key === "l") {
    const target = video.currentTime + (key === "j" ? -SEEK_KEY_S : SEEK_KEY_S);
    seekTo(Math.max(0, Math.min(Number.isFinite(video.duration) ? video.duration : target, target)));
  } else return;
  ev.preventDefault();
}
