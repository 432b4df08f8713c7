// The customer's phone page: start (intake, with self-help articles for the chosen
// reason) → waiting → in call → ended (with the post-call rating).
//
// This file holds start-up and the call; the start screen is customer/intake.js (its contact
// checks customer/contact.js, self-help customer/help.js), the language picker
// customer/language.js, the end screen with the rating and callback request customer/ended.js,
// what the customer is told about a supervisor (joined, left, may listen) customer/assist.js.
import { CallMedia, tryPlay, wireMediaToggles } from "./call.js";
import { ChatPanel } from "./chat.js";
import { fileItem, replayInOrder, takeStill, upload } from "./files.js";
import { resetAssist, showHandler, showMonitored, showParty } from "./customer/assist.js";
import { offerCallbackInstead, showOpenState, wireClosed } from "./customer/closed.js";
import { showEndScreen, wireEndScreen } from "./customer/ended.js";
import { renderHelp } from "./customer/help.js";
import { chosenReason, setupIntake, wireIntake } from "./customer/intake.js";
import { fillLanguagePicker, initialLanguage } from "./customer/language.js";
import { $, exposePage, setState, toast } from "./dom.js";
import { bindText, currentLanguage, formatTime, onLanguageChange, setLanguage, setLanguages, t } from "./i18n.js";
import { SignalingClient } from "./signaling.js";

const TOKEN_KEY = "rapport.token";

let config = {
  ice_servers: [],
  reasons: [],
  emotion: { available: false, default_consent: false },
  recording: { policy: "never" },
  languages: null,
  language: null,
};
let signaling = null;
let media = null;
let chat = null;
let waitTicker = null;
let callToken = null; // kept after the call ends, for the rating
let answered = false;
let leftForCallback = false; // the customer left the queue after asking for a callback

const joinToken = location.pathname.startsWith("/join/") ? decodeURIComponent(location.pathname.slice(6)) : null;

exposePage({ pc: () => media?.pc ?? null });

// ---------------------------------------------------------------- start-up

async function init() {
  wireIntake((token) => {
    sessionStorage.setItem(TOKEN_KEY, token);
    connect(token);
  });
  wireControls();
  wireEndScreen(() => callToken);
  const fetched = await fetchConfig();
  if (fetched) config = { ...config, ...fetched };
  config.reasons = Array.isArray(config.reasons) ? config.reasons : [];
  config.emotion = config.emotion || { available: false, default_consent: false };
  setLanguages(config.languages);
  fillLanguagePicker();
  await setLanguage(initialLanguage(config.language));
  $("language-select").value = currentLanguage();
  onLanguageChange((code) => {
    $("language-select").value = code;
    reformatChatTimes();
    refreshHelp(code);
  });
  // The server localises the help articles; ask again when our language is not its pick.
  if (currentLanguage() !== config.language) refreshHelp(currentLanguage());

  setupIntake(config, joinToken);
  wireClosed(config, { reason: () => $("reason-select").value, name: () => $("customer-name").value.trim() });
  if (!joinToken) {
    // Out of hours the form gives way to a callback request (an invite's link opens its call whenever).
    showOpenState($("reason-select").value);
    $("reason-select").addEventListener("change", () => showOpenState($("reason-select").value));
  }
  bindText($("call-again"), () => t("call_again"));
  bindText($("mute"), () => t(media && !media.audioEnabled ? "unmute" : "mute"));
  bindText($("camera-toggle"), () => t(media && !media.videoEnabled ? "camera_on" : "camera_off"));
  bindText($("end-call"), () => t(answered ? "end" : "leave_queue"));

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else setState("start");
}

async function fetchConfig(lang = null) {
  try {
    // An invite's link names the language the calling system gave it.
    const query = new URLSearchParams();
    if (lang) query.set("lang", lang);
    if (joinToken) query.set("invite", joinToken);
    const url = `/api/v1/config${query.size ? `?${query}` : ""}`;
    const r = await fetch(url, { credentials: "same-origin" });
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

/** Fetch the reasons' help articles in `lang` and show them if that is still the page's language. */
async function refreshHelp(lang) {
  const fresh = await fetchConfig(lang);
  if (!fresh || !Array.isArray(fresh.reasons) || lang !== currentLanguage()) return;
  const byCode = new Map(fresh.reasons.map((r) => [r.code, r]));
  for (const r of config.reasons) r.help = byCode.get(r.code)?.help ?? r.help;
  renderHelp(chosenReason());
}

// ---------------------------------------------------------------- calling

function connect(token) {
  callToken = token;
  answered = false;
  setState("waiting");
  bindText($("end-call"), () => t(answered ? "end" : "leave_queue"));
  bindText($("queue-position"), () => t("connecting"));
  media = new CallMedia(null, { remoteVideo: $("remote-video"), localVideo: $("local-video"), thirdPartyVideo: $("third-party-video") });
  media
    .openCamera()
    .then(mirrorSelfView)
    .catch((err) => toast(err.code === "insecure" ? t("insecure") : t("no_camera")));
  media.addEventListener("warning", () => toast(t("no_camera")));
  signaling = new SignalingClient(() => ({ type: "hello", token }));
  media.signaling = signaling;
  chat = new ChatPanel($("chat"), {
    youAre: "customer",
    t,
    onSend: (text) => signaling.request({ type: "chat.send", text }).catch((e) => (toast(chatError(e)), Promise.reject(e))),
  });
  const add = chat.add.bind(chat);
  // A customer's chat lines are numbered within the call (`seq`); the panel knows lines by `id`.
  chat.add = (msg) => {
    add({ ...msg, id: msg.seq ?? msg.id });
    reformatChatTimes();
  };
  signaling.addEventListener("welcome", (ev) => onWelcome(ev.detail));
  signaling.addEventListener("queue.position", (ev) => showPosition(ev.detail));
  signaling.addEventListener("call.accepted", (ev) => onAccepted(ev.detail));
  signaling.addEventListener("chat.message", (ev) => chat.add(ev.detail));
  signaling.addEventListener("file.shared", (ev) => showFile(ev.detail.file));
  signaling.addEventListener("snapshot.request", () => sendSnapshot());
  wireFileInput();
  signaling.addEventListener("peer.state", (ev) => showPeerState(ev.detail));
  signaling.addEventListener("peer.media", (ev) => showPeerMedia(ev.detail));
  // The call's media moved to another media node: offer again (the rep shows "reconnecting" meanwhile).
  signaling.addEventListener("media.restart", () => answered && media?.restart());
  signaling.addEventListener("call.ended", (ev) => onEnded(ev.detail));
  signaling.addEventListener("call.transferred", () => onTransferred());
  signaling.addEventListener("recording.state", (ev) => showRecording(ev.detail));
  signaling.addEventListener("call.party", (ev) => showParty(ev.detail, media));
  signaling.addEventListener("call.monitored", (ev) => showMonitored(ev.detail));
  signaling.addEventListener("call.handler", (ev) => showHandler(ev.detail));
  signaling.addEventListener("error", (ev) => onError(ev.detail));
  signaling.addEventListener("disconnected", (ev) => {
    if (ev.detail.code !== 4003 && document.body.dataset.state !== "ended") setBanner("reconnecting", "reconnecting");
  });
  signaling.connect();
}

/** Photos and PDFs in the chat: sent over HTTP with the call token, progress shown, refusals in words. */
function wireFileInput() {
  const input = $("file-input");
  if (input.dataset.wired) return;
  input.dataset.wired = "1";
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    sendFile(file, file.name, "file").catch((err) => toast(fileError(err)));
  });
}

function sendFile(blob, name, kind) {
  const url = `/api/v1/calls/files?name=${encodeURIComponent(name)}&kind=${kind}`;
  return upload(url, blob, { headers: { "X-Call-Token": callToken }, progress: $("file-progress") });
}

function fileError(err) {
  if (err.code === "unsupported_type") return t("file_refused");
  if (err.status === 413) return t("file_too_large");
  return err.message;
}

function showFile(file, { replayed = false } = {}) {
  if (document.querySelector(`[data-file-id="${CSS.escape(file.file_id)}"]`)) return;
  if (file.kind === "snapshot" && !replayed) toast(t("agent_took_photo"));
  const item = fileItem(file, { fetchHeaders: { "X-Call-Token": callToken }, youAre: "customer" });
  $("chat").querySelector('[data-testid="chat-log"]').append(item);
}

/** The rep asked for a still of the camera: take one at its own resolution and send it. */
async function sendSnapshot() {
  const track = media?.stream?.getVideoTracks?.()[0];
  try {
    const still = await takeStill(track, $("local-video"));
    await sendFile(still, "snapshot.jpg", "snapshot");
  } catch {
    /* the rep hears after a while that no photo came */
  }
}

/** Chat times in the page's language (Persian digits for fa), and each line in its own direction. */
function reformatChatTimes() {
  for (const line of document.querySelectorAll('[data-testid="chat-line"]')) {
    const time = line.querySelector("time");
    if (time?.dateTime) time.textContent = formatTime(time.dateTime);
    line.querySelector("p")?.setAttribute("dir", "auto");
  }
}

function mirrorSelfView() {
  // A selfie camera is shown as a mirror, as people expect; the back camera is not.
  $("local-video").classList.toggle("mirrored", media?.facing === "user");
}

function chatError(err) {
  if (err.code === "rate_limited") return t("chat_slow_down");
  if (err.code === "chat_full") return t("chat_full");
  return err.message;
}

function onError(err) {
  if (err.code === "token_invalid") {
    sessionStorage.removeItem(TOKEN_KEY);
    signaling.close();
    media?.stop();
    clearInterval(waitTicker);
    setState("start");
    return;
  }
  if (!err.reply_to) toast(err.message);
}

function onWelcome(msg) {
  setBanner("reconnecting", null);
  media.iceServers = msg.ice_servers || [];
  // After a reload or reconnect: the chat and the files so far, in the order they came (shown once each).
  replayInOrder(msg.chat, msg.files, { line: (m) => chat.add(m), file: (f) => showFile(f, { replayed: true }) });
  $("emotion-consent-live").checked = !!msg.session?.emotion_consent;
  $("emotion-consent-live").closest("label").hidden = !config.emotion.available;
  if (msg.session?.state === "active" && msg.call) onAccepted(msg.call);
}

function waitText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s === 0) return t("wait_soon");
  if (s < 60) return t("wait_seconds", { n: s });
  return t("wait_minutes", { n: Math.max(1, Math.round(s / 60)) });
}

function showPosition(msg) {
  const position = Number(msg.position) || 1;
  bindText($("queue-position"), () => (position <= 1 ? t("queue_next") : t("queue_position", { n: position })));
  clearInterval(waitTicker);
  const estimate = $("estimated-wait");
  if (typeof msg.estimated_wait_s !== "number") {
    bindText(estimate, null);
    return;
  }
  let remaining = msg.estimated_wait_s;
  offerCallbackInstead(remaining, () => callToken, () => {
    leftForCallback = true;
    signaling?.send({ type: "call.end" });
  });
  bindText(estimate, () => t("estimated", { wait: waitText(remaining) }));
  waitTicker = setInterval(() => {
    remaining = Math.max(0, remaining - 1);
    estimate.textContent = t("estimated", { wait: waitText(remaining) });
  }, 1000);
}

function showRecording(state) {
  $("recording-indicator").hidden = !state?.recording;
}

async function onAccepted(msg) {
  clearInterval(waitTicker);
  answered = true;
  showRecording(msg.recording);
  setState("in-call");
  bindText($("end-call"), () => t("end"));
  const name = msg.rep?.display_name;
  bindText($("call-state"), () => (name ? t("in_call_with", { name }) : t("in_call_agent")));
  try {
    await media.openCamera().catch(() => null);
    mirrorSelfView();
    await media.start();
  } catch (err) {
    toast(err.message || t("error_generic"));
  }
  if (!(await tryPlay($("remote-video")))) $("tap-to-play").hidden = false;
}

/** The rep handed the call on: wait again (media and chat stay) until the next one answers. */
function onTransferred() {
  setState("waiting");
  bindText($("queue-position"), () => t("transferring"));
}

function showPeerState(msg) {
  setBanner("reconnecting", msg.state === "reconnecting" ? "rep_reconnecting" : null);
}

function showPeerMedia(msg) {
  const keys = [];
  if (msg.audio === false) keys.push("rep_muted");
  if (msg.video === false) keys.push("rep_camera_off");
  setBanner("peer-media", keys.length ? keys : null);
}

/** A banner showing one or more catalogue keys (joined), or hidden for null. */
function setBanner(testid, keys) {
  const el = $(testid);
  if (!keys) {
    bindText(el, null);
    el.hidden = true;
    return;
  }
  const list = Array.isArray(keys) ? keys : [keys];
  bindText(el, () => list.map((k) => t(k)).join(" · "));
  el.hidden = false;
}

function onEnded({ state, reason, callback } = {}) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(waitTicker);
  media?.stop();
  signaling?.close();
  setBanner("reconnecting", null);
  setBanner("peer-media", null);
  resetAssist();
  // Nobody could take the call in time: say so, and offer a callback beside "call again".
  const timedOut = reason === "max_wait";
  // Left the queue for a callback: the end screen itself confirms the request.
  const textKey = leftForCallback ? "callback_thanks" : timedOut ? "max_wait_text" : state === "abandoned" ? "abandoned_text" : "ended_text";
  showEndScreen({
    textKey,
    endedAt: new Date(),
    // Only a call someone answered can be rated; leaving the queue cannot.
    rateable: Boolean(answered && state !== "abandoned" && callToken),
    callback: Boolean(timedOut && callback && callToken),
  });
}

function wireControls() {
  wireMediaToggles(() => media, (key) => t(key));
  $("flip-camera").addEventListener("click", () =>
    media
      ?.flipCamera()
      .then(mirrorSelfView)
      .catch((e) => toast(e.message)),
  );
  $("end-call").addEventListener("click", () => signaling?.send({ type: "call.end" }));
  $("tap-to-play").addEventListener("click", async (ev) => {
    const button = ev.currentTarget;
    button.hidden = await tryPlay($("remote-video"));
  });
  $("emotion-consent-live").addEventListener("change", (ev) => {
    signaling?.request({ type: "consent.emotion", enabled: ev.currentTarget.checked }).catch((e) => toast(e.message));
  });
}

init();
