// The staff console: sign in, availability, live queue with alerts, the call view,
// customer card, chat and the customer's emotion cues.
import { CallMedia, tryPlay } from "./call.js";
import { ChatPanel } from "./chat.js";
import { SignalingClient } from "./signaling.js";
import { applyStrings, formatDuration as formatWait, has, loadStrings, t } from "./staff-i18n.js";
import { $, postJSON, setState, toast } from "./ui.js";

let csrf = null;
let signaling = null;
let media = null;
let chat = null;
let call = null;
let queue = [];
let callTimer = null;
let wrapUpSession = null;
// Reason codes as the deployment labels them (from /api/v1/config).
const reasonLabels = new Map();
const reasonLabel = (code) => (code ? reasonLabels.get(code) || code.replaceAll("_", " ") : "");

async function loadReasons() {
  const r = await fetch("/api/v1/config", { credentials: "same-origin" });
  if (!r.ok) return;
  for (const reason of (await r.json()).reasons || []) reasonLabels.set(reason.code, reason.label);
}
let offer = null;
let transferReps = [];
const spark = []; // [media_time, smoothed] for the last 60 s

window.rapport = {
  get pc() { return media?.pc ?? null; },
  get state() { return document.body.dataset.state; },
};

const none = () => t("common.none");
const languageName = (code) => (code && has(`common.languages.${code}`) ? t(`common.languages.${code}`) : null);
/** A server code for a catalogued word, or the code with spaces if the catalogue has none. */
const codeLabel = (prefix, code) => t(`${prefix}.${code}`, {}, String(code ?? "").replaceAll("_", " "));

async function init() {
  await loadStrings();
  applyStrings(document);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login().catch((err) => {
      const el = $("login-error");
      el.textContent = err.status === 429 ? t("common.login.rate_limited") : t("common.login.wrong");
      el.hidden = false;
    });
  });
  $("logout").addEventListener("click", logout);
  $("availability").addEventListener("click", toggleAvailability);
  wireCallControls();
  $("offer-accept").addEventListener("click", () => offer && acceptCall(offer.session_id, $("offer-accept")));
  $("offer-decline").addEventListener("click", () => {
    if (!offer) return;
    const sessionId = offer.session_id;
    hideOffer();
    signaling.request({ type: "call.decline", session_id: sessionId }).catch((e) => toast(e.message));
  });
  $("transfer").addEventListener("click", toggleTransfer);
  $("transfer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    transferCall().catch((err) => toast(err.message));
  });
  $("wrapup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    saveWrapUp().catch((err) => toast(err.message));
  });
  setInterval(tick, 1000);
  const me = await fetch("/api/v1/me", { credentials: "same-origin" });
  if (me.ok) start(await me.json());
  else setState("login");
}

async function login() {
  const body = { username: $("login-username").value, password: $("login-password").value };
  start(await postJSON("/api/v1/auth/login", body));
}

async function logout() {
  try {
    await postJSON("/api/v1/auth/logout", {}, { "X-CSRF-Token": csrf });
  } finally {
    location.reload();
  }
}

function start(me) {
  csrf = me.csrf_token;
  $("user-name").textContent = me.user.display_name;
  $("login-password").value = "";
  setState("queue");
  loadReasons().catch(() => {});
  loadDispositions().catch(() => toast(t("console.dispositions_failed")));
  signaling = new SignalingClient(() => ({ type: "hello" }));
  media = new CallMedia(signaling, { remoteVideo: $("remote-video"), localVideo: $("local-video") });
  chat = new ChatPanel($("chat"), {
    youAre: "rep",
    t: (key, vars, fallback) => t(`chat.${key}`, vars, fallback),
    onSend: (text) => signaling.request({ type: "chat.send", text }).catch((e) => (toast(e.message), Promise.reject(e))),
  });
  signaling.addEventListener("welcome", (ev) => onWelcome(ev.detail));
  signaling.addEventListener("queue.snapshot", (ev) => renderQueue(ev.detail));
  signaling.addEventListener("queue.new", () => alertNewCustomer());
  signaling.addEventListener("rep.status", (ev) => showStatus(ev.detail.status));
  signaling.addEventListener("call.accepted", (ev) => onAccepted(ev.detail));
  signaling.addEventListener("chat.message", (ev) => chat.add(ev.detail));
  signaling.addEventListener("peer.state", (ev) => {
    $("peer-reconnecting").hidden = ev.detail.state !== "reconnecting";
  });
  signaling.addEventListener("peer.media", (ev) => showPeerMedia(ev.detail));
  signaling.addEventListener("call.ended", (ev) => onEnded(ev.detail));
  signaling.addEventListener("call.offer", (ev) => showOffer(ev.detail));
  signaling.addEventListener("call.offer.cancelled", (ev) => offer?.session_id === ev.detail.session_id && hideOffer());
  signaling.addEventListener("call.transferred", (ev) => onTransferred(ev.detail));
  signaling.addEventListener("emotion.update", (ev) => showEmotion(ev.detail));
  signaling.addEventListener("recording.state", (ev) => showRecording(ev.detail));
  signaling.addEventListener("emotion.status", (ev) => showEmotionStatus(ev.detail));
  signaling.addEventListener("bye", (ev) => ev.detail.reason === "logged_out" && location.reload());
  signaling.addEventListener("error", (ev) => !ev.detail.reply_to && toast(ev.detail.message));
  signaling.connect();
}

function onWelcome(msg) {
  media.iceServers = msg.ice_servers || [];
  showStatus(msg.status);
  if (msg.call) {
    chat.replay(msg.call.chat || []);
    onAccepted(msg.call);
  } else if (msg.wrap_up && wrapUpSession !== msg.wrap_up.session_id) {
    showWrapUp(msg.wrap_up.session_id);
  }
}

function showStatus(status) {
  const button = $("availability");
  button.dataset.status = status;
  button.setAttribute("aria-pressed", String(status === "available"));
  button.textContent = t(`console.status.${["available", "busy", "wrap_up"].includes(status) ? status : "away"}`);
}

function toggleAvailability() {
  if (wrapUpSession) {
    toast(t("console.wrap_up_first"));
    $("wrapup-disposition").focus();
    return;
  }
  const next = $("availability").dataset.status === "available" ? "away" : "available";
  signaling.request({ type: "rep.status", status: next }).catch((e) => toast(e.message));
}

function renderQueue(snapshot) {
  queue = snapshot.items;
  transferReps = snapshot.reps || [];
  const list = $("queue-list");
  list.replaceChildren();
  for (const item of queue) {
    const li = document.createElement("li");
    li.dataset.testid = "queue-item";
    li.dataset.sessionId = item.session_id;
    const name = document.createElement("strong");
    name.textContent = item.customer_name || t("common.guest");
    const meta = document.createElement("span");
    meta.className = "muted small";
    meta.textContent = [reasonLabel(item.reason), item.device].filter(Boolean).join(t("common.separator"));
    const wait = document.createElement("span");
    wait.className = "wait";
    wait.dataset.queuedAt = item.queued_at;
    wait.textContent = formatWait(item.waited_s);
    const accept = document.createElement("button");
    accept.className = "primary";
    accept.dataset.testid = "accept";
    accept.textContent = t("console.queue.accept");
    accept.addEventListener("click", () => acceptCall(item.session_id, accept));
    li.append(name, meta, wait, accept);
    list.append(li);
  }
  $("queue-count").textContent = String(queue.length);
  $("queue-empty").hidden = queue.length > 0;
}

async function acceptCall(sessionId, button) {
  button.disabled = true;
  try {
    await signaling.request({ type: "call.accept", session_id: sessionId });
  } catch (err) {
    toast(err.code === "already_taken" ? t("console.queue.taken") : err.message);
    button.disabled = false;
  }
}

let audioCtx = null;
function alertNewCustomer() {
  document.body.classList.add("ringing");
  setTimeout(() => document.body.classList.remove("ringing"), 3000);
  beep(880, 0.15);
  setTimeout(() => beep(660, 0.2), 200);
  const title = document.title;
  document.title = t("console.new_customer_title");
  setTimeout(() => (document.title = title), 4000);
}

function beep(freq, seconds) {
  try {
    audioCtx ||= new AudioContext();
    const osc = audioCtx.createOscillator();
    const gain = audioCtx.createGain();
    osc.frequency.value = freq;
    gain.gain.value = 0.1;
    osc.connect(gain).connect(audioCtx.destination);
    osc.start();
    osc.stop(audioCtx.currentTime + seconds);
  } catch {
    /* no audio device: the visual alert remains */
  }
}

function showRecording(state) {
  $("recording-indicator").hidden = !state?.recording;
  if (state?.state === "truncated") toast(t("console.call.recording_truncated"));
}

async function onAccepted(msg) {
  showRecording(msg.recording);
  call = { ...msg, startedAt: msg.answered_at ? Date.parse(msg.answered_at) : Date.now() };
  setState("in-call");
  $("call-ended").hidden = true;
  $("customer-name").textContent = msg.customer.name || t("common.guest");
  $("customer-reason").textContent = reasonLabel(msg.customer.reason) || none();
  $("customer-device").textContent = msg.customer.device || none();
  $("session-id").textContent = msg.session_id;
  $("customer-camera").textContent = none();
  showCard(msg.customer);
  hideOffer();
  $("transfer-form").hidden = true;
  spark.length = 0;
  resetEmotion();
  chat.replay(msg.chat || []);
  try {
    await media.openCamera().catch(() => toast(t("console.call.no_camera")));
    await media.start();
  } catch (err) {
    toast(err.message);
  }
  if (!(await tryPlay($("remote-video")))) $("tap-to-play").hidden = false;
}

function showPeerMedia(msg) {
  const notes = [];
  if (msg.audio === false) notes.push(t("console.call.peer_muted"));
  if (msg.video === false) notes.push(t("console.call.peer_camera_off"));
  $("peer-media").textContent = notes.join(t("common.separator"));
  $("peer-media").hidden = notes.length === 0;
  if (msg.facing) $("customer-camera").textContent = t(msg.facing === "environment" ? "console.customer.back_camera" : "console.customer.front_camera");
}

function onEnded(msg) {
  media.stop();
  const minutes = call ? formatWait((Date.now() - call.startedAt) / 1000) : "";
  const next = t(msg.wrap_up ? "console.call.next_wrap_up" : "console.call.next_away");
  const reason = msg.reason ? codeLabel("console.call.end_reasons", msg.reason) : none();
  $("call-ended").textContent = t("console.call.ended", { reason, duration: minutes, next });
  $("call-ended").hidden = false;
  call = null;
  setState("queue");
  if (msg.wrap_up) showWrapUp(msg.session_id);
}

function showOffer(msg) {
  offer = { ...msg, until: Date.now() + msg.ring_timeout_s * 1000 };
  const item = msg.item || {};
  const text = [item.customer_name || t("common.guest"), reasonLabel(item.reason), languageName(item.language)].filter(Boolean).join(t("common.separator"));
  $("offer-text").textContent = msg.transfer ? t("console.offer.transferred", { text }) : text;
  $("offer-note").textContent = msg.note ? t("console.offer.note", { note: msg.note }) : "";
  $("offer-note").hidden = !msg.note;
  $("offer").hidden = false;
  $("offer-accept").disabled = false;
  tickOffer();
  alertNewCustomer();
}

function tickOffer() {
  if (!offer) return;
  $("offer-countdown").textContent = String(Math.max(0, Math.ceil((offer.until - Date.now()) / 1000)));
}

function hideOffer() {
  offer = null;
  $("offer").hidden = true;
}

function showCard(customer) {
  $("customer-language").textContent = languageName(customer.language) || customer.language || none();
  const contact = customer.contact || {};
  $("customer-contact").textContent = [contact.email, contact.phone].filter(Boolean).join(t("common.separator")) || none();
  $("customer-identified").hidden = !customer.identified;
  $("customer-ref").textContent = customer.ref || "";
  const context = $("customer-context");
  context.replaceChildren();
  for (const [key, value] of Object.entries(customer.context || {})) {
    const dt = document.createElement("dt");
    dt.textContent = key.replaceAll("_", " ");
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    context.append(dt, dd);
  }
  context.hidden = context.childElementCount === 0;
  const history = customer.history || [];
  const list = $("customer-history");
  list.replaceChildren(
    ...history.map((h) => {
      const li = document.createElement("li");
      li.dataset.testid = "customer-history-item";
      const head = document.createElement("strong");
      head.textContent = t("console.customer.history_item", {
        date: new Date(h.date).toLocaleDateString(),
        reason: reasonLabel(h.reason) || none(),
        outcome: (h.outcome || "").replaceAll("_", " "),
      });
      li.append(head);
      if (h.notes) {
        const notes = document.createElement("p");
        notes.className = "small";
        notes.textContent = h.notes;
        li.append(notes);
      }
      return li;
    }),
  );
  $("customer-history-count").textContent = String(history.length);
  $("customer-history-box").hidden = history.length === 0;
}

function toggleTransfer() {
  const form = $("transfer-form");
  form.hidden = !form.hidden;
  $("transfer").setAttribute("aria-expanded", String(!form.hidden));
  if (form.hidden) return;
  const select = $("transfer-target");
  select.replaceChildren();
  const reps = document.createElement("optgroup");
  reps.label = t("console.transfer.reps");
  for (const rep of transferReps) {
    if (rep.status !== "available") continue;
    reps.append(new Option(rep.display_name, `rep:${rep.id}`));
  }
  const queues = document.createElement("optgroup");
  queues.label = t("console.transfer.queues");
  for (const [reason, label] of reasonLabels) {
    queues.append(new Option(t("console.transfer.queue", { reason: label }), `queue:${reason}`));
  }
  select.append(reps, queues);
  select.focus();
}

async function transferCall() {
  const [kind, value] = $("transfer-target").value.split(":");
  const note = $("transfer-note").value.trim();
  const message = { type: "call.transfer", ...(note ? { note } : {}) };
  if (kind === "rep") message.rep_id = Number(value);
  else message.reason = value;
  await signaling.request(message);
}

function onTransferred(msg) {
  media.stop();
  call = null;
  $("transfer-form").hidden = true;
  $("call-ended").textContent = t(msg.to === "rep" ? "console.call.transferred_rep" : "console.call.transferred_queue");
  $("call-ended").hidden = false;
  setState("queue");
}

async function loadDispositions() {
  const r = await fetch("/api/v1/dispositions", { credentials: "same-origin" });
  if (!r.ok) return;
  const select = $("wrapup-disposition");
  const groups = new Map();
  for (const d of (await r.json()).items) {
    if (!groups.has(d.category)) {
      const group = document.createElement("optgroup");
      group.label = d.category;
      groups.set(d.category, group);
      select.append(group);
    }
    groups.get(d.category).append(new Option(d.label, d.code));
  }
}

function showWrapUp(sessionId) {
  wrapUpSession = sessionId;
  const form = $("wrapup-form");
  form.reset();
  form.hidden = false;
  $("wrapup-disposition").focus();
}

async function saveWrapUp() {
  const body = { disposition: $("wrapup-disposition").value, notes: $("wrapup-notes").value };
  await postJSON(`/api/v1/sessions/${encodeURIComponent(wrapUpSession)}/wrapup`, body, { "X-CSRF-Token": csrf });
  wrapUpSession = null;
  $("wrapup-form").hidden = true;
  $("call-ended").hidden = true;
}

function wireCallControls() {
  $("mute").addEventListener("click", (ev) => {
    const muting = media.audioEnabled;
    media.setAudio(!muting);
    ev.currentTarget.setAttribute("aria-pressed", String(muting));
    ev.currentTarget.textContent = t(muting ? "console.call.unmute" : "console.call.mute");
  });
  $("camera-toggle").addEventListener("click", (ev) => {
    const off = media.videoEnabled;
    media.setVideo(!off);
    ev.currentTarget.setAttribute("aria-pressed", String(off));
    ev.currentTarget.textContent = t(off ? "console.call.camera_on" : "console.call.camera_off");
  });
  $("end-call").addEventListener("click", () => signaling.send({ type: "call.end", reason: "resolved" }));
  $("tap-to-play").addEventListener("click", async (ev) => (ev.currentTarget.hidden = await tryPlay($("remote-video"))));
}

function tick() {
  document.querySelectorAll(".queue-list .wait").forEach((el) => {
    el.textContent = formatWait((Date.now() - Date.parse(el.dataset.queuedAt)) / 1000);
  });
  if (call) $("call-timer").textContent = formatWait((Date.now() - call.startedAt) / 1000);
  tickOffer();
}

// --- emotion cues: they describe the customer's expression, never the rep ---

function resetEmotion() {
  $("emotion-flag").hidden = true;
  $("emotion-off").hidden = true;
  $("emotion-label").textContent = none();
  $("emotion-face").textContent = "";
  setMeter(0);
  drawSpark();
}

function setMeter(value) {
  const pct = Math.round(value * 100);
  const meter = $("emotion-meter");
  meter.setAttribute("aria-valuenow", String(pct));
  meter.querySelector(".fill").style.setProperty("inline-size", `${pct}%`);
  meter.dataset.level = value >= 0.5 ? "high" : value >= 0.3 ? "mid" : "low";
}

let flagWasActive = false;
function showEmotion(u) {
  $("emotion-off").hidden = true;
  document.querySelector(".emotion").classList.remove("off");
  setMeter(u.smoothed);
  $("emotion-label").textContent = u.face_present ? (u.dominant ? t(`console.emotion.expressions.${u.dominant}`, {}, u.dominant) : none()) : t("console.emotion.no_face");
  $("emotion-face").textContent = u.face_present ? "" : t("console.emotion.face_hidden");
  $("emotion-label").dataset.face = String(u.face_present);
  spark.push([u.media_time, u.smoothed]);
  while (spark.length && spark[0][0] < u.media_time - 60) spark.shift();
  drawSpark();
  const flag = $("emotion-flag");
  if (u.flag_active) {
    flag.textContent = t("console.emotion.flag", { seconds: Math.max(1, Math.round(u.flag_seconds)) });
    flag.hidden = false;
    if (!flagWasActive && $("emotion-sound").checked) beep(440, 0.3);
  } else {
    flag.hidden = true;
  }
  flagWasActive = u.flag_active;
}

function showEmotionStatus(s) {
  if (s.status === "off" || s.status === "unavailable") {
    const off = $("emotion-off");
    off.textContent = s.status === "off" ? t("console.emotion.off") : s.message;
    off.dataset.status = s.status;
    off.hidden = false;
    $("emotion-flag").hidden = true;
    document.querySelector(".emotion").classList.add("off");
    setMeter(0);
  } else if (s.status === "degraded" || s.status === "starting") {
    $("emotion-service").textContent = s.message;
  } else {
    $("emotion-service").textContent = "";
  }
}

function drawSpark() {
  const canvas = $("emotion-sparkline");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (spark.length < 2) return;
  const end = spark[spark.length - 1][0];
  ctx.strokeStyle = "#c0392b";
  ctx.lineWidth = 2;
  ctx.beginPath();
  spark.forEach(([at, v], i) => {
    const x = canvas.width * (1 - (end - at) / 60);
    const y = canvas.height * (1 - v);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

init();
