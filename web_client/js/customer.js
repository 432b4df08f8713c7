// The customer's phone page: start → waiting → in call → ended.
import { CallMedia, tryPlay } from "./call.js";
import { ChatPanel } from "./chat.js";
import { t, translatePage } from "./i18n.js";
import { SignalingClient } from "./signaling.js";
import { $, describeDevice, formatWait, postJSON, setState, toast } from "./ui.js";

const TOKEN_KEY = "rapport.token";
let config = { ice_servers: [], reasons: [], emotion: { available: false, default_consent: false } };
let signaling = null;
let media = null;
let chat = null;
let waitTicker = null;

const inviteCode = location.pathname.startsWith("/join/") ? decodeURIComponent(location.pathname.slice(6)) : null;

window.rapport = {
  get pc() { return media?.pc ?? null; },
  get state() { return document.body.dataset.state; },
};

async function init() {
  translatePage();
  try {
    config = await (await fetch("/api/v1/config")).json();
  } catch {
    /* keep defaults */
  }
  const select = $("reason-select");
  for (const r of config.reasons) select.add(new Option(r.label, r.code));
  const consent = $("emotion-consent");
  if (config.emotion.available) {
    consent.checked = config.emotion.default_consent;
  } else {
    $("emotion-notice").querySelector("p").textContent = t("emotion_unavailable");
    consent.closest("label").hidden = true;
  }
  const policy = config.recording?.policy || "never";
  if (policy !== "never") {
    $("recording-notice").hidden = false;
    $("recording-text").textContent = t(policy === "ask" ? "recording_ask" : "recording_always");
    $("recording-consent").closest("label").hidden = policy !== "ask";
  }
  if (inviteCode) {
    $("customer-name").closest("label").hidden = true;
    select.closest("label").hidden = true;
  }
  $("start-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    startCall().catch((err) => showStartError(err));
  });
  $("call-again").addEventListener("click", () => location.assign("/call"));
  wireControls();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else setState("start");
}

function showStartError(err) {
  const el = $("start-error");
  el.textContent = err.status === 404 ? t("invite_invalid") : err.status === 429 ? t("busy") : t("error_generic");
  el.hidden = false;
  $("start-call").disabled = false;
}

async function startCall() {
  $("start-call").disabled = true;
  const body = { device: describeDevice() };
  if (config.emotion.available) body.emotion_consent = $("emotion-consent").checked;
  if (config.recording?.policy === "ask") body.recording_consent = $("recording-consent").checked;
  let created;
  const policy = config.recording?.policy || "never";
  if (policy !== "never") {
    $("recording-notice").hidden = false;
    $("recording-text").textContent = t(policy === "ask" ? "recording_ask" : "recording_always");
    $("recording-consent").closest("label").hidden = policy !== "ask";
  }
  if (inviteCode) {
    created = await postJSON(`/api/v1/invites/${encodeURIComponent(inviteCode)}/redeem`, body);
  } else {
    body.name = $("customer-name").value.trim() || null;
    body.reason = $("reason-select").value || null;
    created = await postJSON("/api/v1/calls", body);
  }
  sessionStorage.setItem(TOKEN_KEY, created.token);
  connect(created.token);
}

function connect(token) {
  setState("waiting");
  $("end-call").textContent = t("leave_queue");
  media = new CallMedia(null, { remoteVideo: $("remote-video"), localVideo: $("local-video") });
  media.openCamera().catch((err) => toast(err.code === "insecure" ? t("insecure") : t("no_camera")));
  media.addEventListener("warning", () => toast(t("no_camera")));
  signaling = new SignalingClient(() => ({ type: "hello", token }));
  media.signaling = signaling;
  chat = new ChatPanel($("chat"), {
    youAre: "customer",
    t,
    onSend: (text) => signaling.request({ type: "chat.send", text }).catch((e) => (toast(e.message), Promise.reject(e))),
  });
  signaling.addEventListener("welcome", (ev) => onWelcome(ev.detail));
  signaling.addEventListener("queue.position", (ev) => showPosition(ev.detail));
  signaling.addEventListener("call.accepted", (ev) => onAccepted(ev.detail));
  signaling.addEventListener("chat.message", (ev) => chat.add(ev.detail));
  signaling.addEventListener("peer.state", (ev) => showPeerState(ev.detail));
  signaling.addEventListener("peer.media", (ev) => showPeerMedia(ev.detail));
  signaling.addEventListener("call.ended", (ev) => onEnded(ev.detail.state));
  signaling.addEventListener("recording.state", (ev) => showRecording(ev.detail));
  signaling.addEventListener("error", (ev) => onError(ev.detail));
  signaling.addEventListener("disconnected", (ev) => {
    if (ev.detail.code !== 4003 && document.body.dataset.state !== "ended") setBanner("reconnecting", t("reconnecting"));
  });
  signaling.connect();
}

function onError(err) {
  if (err.code === "token_invalid") {
    sessionStorage.removeItem(TOKEN_KEY);
    signaling.close();
    media?.stop();
    setState("start");
    return;
  }
  if (!err.reply_to) toast(err.message);
}

function onWelcome(msg) {
  setBanner("reconnecting", null);
  media.iceServers = msg.ice_servers || [];
  chat.replay(msg.chat || []);
  $("emotion-consent-live").checked = !!msg.session.emotion_consent;
  $("emotion-consent-live").closest("label").hidden = !config.emotion.available;
  if (msg.session.state === "active" && msg.call) onAccepted(msg.call);
}

function showPosition(msg) {
  $("queue-position").textContent = t("position", msg.position);
  let remaining = msg.estimated_wait_s;
  $("estimated-wait").textContent = t("estimated", formatWait(remaining));
  clearInterval(waitTicker);
  waitTicker = setInterval(() => {
    remaining = Math.max(0, remaining - 1);
    $("estimated-wait").textContent = t("estimated", formatWait(remaining));
  }, 1000);
}

function showRecording(state) {
  $("recording-indicator").hidden = !state?.recording;
}

async function onAccepted(msg) {
  clearInterval(waitTicker);
  showRecording(msg.recording);
  setState("in-call");
  $("end-call").textContent = t("end");
  $("call-state").textContent = t("in_call_with", msg.rep?.display_name || "");
  try {
    await media.openCamera().catch(() => null);
    await media.start();
  } catch (err) {
    toast(err.message || t("error_generic"));
  }
  if (!(await tryPlay($("remote-video")))) $("tap-to-play").hidden = false;
}

function showPeerState(msg) {
  setBanner("reconnecting", msg.state === "reconnecting" ? t("rep_reconnecting") : null);
}

function showPeerMedia(msg) {
  const notes = [];
  if (msg.audio === false) notes.push(t("rep_muted"));
  if (msg.video === false) notes.push(t("rep_camera_off"));
  setBanner("peer-media", notes.join(" · ") || null);
}

function setBanner(testid, text) {
  const el = $(testid);
  el.textContent = text || "";
  el.hidden = !text;
}

function onEnded(state) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(waitTicker);
  media?.stop();
  signaling?.close();
  $("ended-text").textContent = state === "abandoned" ? t("abandoned_text") : t("ended_text");
  setState("ended");
}

function wireControls() {
  $("mute").addEventListener("click", (ev) => {
    const muted = media.audioEnabled;
    media.setAudio(!muted);
    ev.currentTarget.setAttribute("aria-pressed", String(muted));
    ev.currentTarget.textContent = muted ? t("unmute") : t("mute");
  });
  $("camera-toggle").addEventListener("click", (ev) => {
    const off = media.videoEnabled;
    media.setVideo(!off);
    ev.currentTarget.setAttribute("aria-pressed", String(off));
    ev.currentTarget.textContent = off ? t("camera_on") : t("camera_off");
  });
  $("flip-camera").addEventListener("click", () => media.flipCamera().catch((e) => toast(e.message)));
  $("end-call").addEventListener("click", () => signaling?.send({ type: "call.end" }));
  $("tap-to-play").addEventListener("click", async (ev) => {
    ev.currentTarget.hidden = await tryPlay($("remote-video"));
  });
  $("emotion-consent-live").addEventListener("change", (ev) => {
    signaling?.request({ type: "consent.emotion", enabled: ev.currentTarget.checked }).catch((e) => toast(e.message));
  });
}

init();
