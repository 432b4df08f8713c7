// The staff console: sign in, availability, live queue with alerts, the call view,
// customer card, chat and the customer's emotion cues.
//
// This file holds the desk (queue, offers, the call, transfer, wrap-up); the customer card
// is console/card.js, the emotion panel console/emotion.js, the ringing console/alert.js,
// asking for help and a supervisor's listen, whisper and barge-in console/assist.js, the
// callbacks list console/callbacks.js.
import { CallMedia, tryPlay, wireMediaToggles } from "./call.js";
import { ChatPanel } from "./chat.js";
import { fileItem, replayInOrder, upload } from "./files.js";
import { alertNewCustomer, askToNotify, notifyRinging } from "./console/alert.js";
import { wireAssist } from "./console/assist.js";
import { wireCallbacks } from "./console/callbacks.js";
import { languageName, showCard } from "./console/card.js";
import { resetEmotion, showEmotion, showEmotionStatus } from "./console/emotion.js";
import { codeLabel, reasonLabel } from "./console/labels.js";
import { $, exposePage, setState, toast } from "./dom.js";
import { t } from "./i18n.js";
import { SignalingClient } from "./signaling.js";
import { api } from "./staff/api.js";
import { deploymentReasons, loadDeployment } from "./staff/deployment.js";
import { formatDuration as formatWait, none } from "./staff/format.js";
import { startStaffLanguage } from "./staff/language.js";
import { csrfToken, startSession } from "./staff/session.js";

let signaling = null;
let media = null;
let chat = null;
let call = null;
let queue = [];
// The queue's version (queue.snapshot, then each queue.delta follows it), or null while a resync is asked for.
let queueCopy = null;
let wrapUpSession = null;
let offer = null;
let ringingNote = null; // the desktop notification of the ringing call, closed when it stops
let transferReps = [];
let assist = null;
let takenOver = null; // the session a supervisor took from us: its call.ended owes no wrap-up

exposePage({ pc: () => media?.pc ?? null });

async function init() {
  await startStaffLanguage();
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
  await startSession({ showRole: false, onSignedIn: start });
}

function start() {
  setState("queue");
  loadDeployment();
  loadDispositions().catch(() => toast(t("console.dispositions_failed")));
  wireCallbacks(); // the callbacks list under the queue, polled while the tab is in view
  signaling = new SignalingClient(() => ({ type: "hello" }));
  media = new CallMedia(signaling, { remoteVideo: $("remote-video"), localVideo: $("local-video"), thirdPartyVideo: $("third-party-video") });
  assist = wireAssist({ send: (message) => signaling.request(message), media: () => media, toast });
  chat = new ChatPanel($("chat"), {
    youAre: "rep",
    t: (key, vars, fallback) => t(`chat.${key}`, vars, fallback),
    onSend: (text) => signaling.request({ type: "chat.send", text }).catch((e) => (toast(e.message), Promise.reject(e))),
  });
  const on = (type, handle) => signaling.addEventListener(type, (ev) => handle(ev.detail));
  on("welcome", onWelcome);
  // A status change needs the socket: until it is up (and while it is down) the toggle would only fail.
  on("connected", () => ($("availability").disabled = false));
  on("disconnected", () => ($("availability").disabled = true));
  on("queue.snapshot", onQueueSnapshot);
  on("queue.delta", onQueueDelta);
  on("queue.new", () => alertNewCustomer());
  on("rep.status", (msg) => showStatus(msg.status));
  on("call.accepted", onAccepted);
  on("chat.message", (msg) => chat.add(msg));
  on("file.shared", (msg) => isOurCall(msg) && showFile(msg.file));
  on("snapshot.failed", (msg) => isOurCall(msg) && ($("snapshot-status").textContent = t("console.snapshot.failed")));
  wireFiles();
  on("peer.state", (msg) => ($("peer-reconnecting").hidden = msg.state !== "reconnecting"));
  on("peer.media", showPeerMedia);
  on("media.restart", () => media.pc && media.restart()); // the call's media moved to another node: offer again
  on("call.ended", onEnded);
  on("call.offer", showOffer);
  on("call.offer.cancelled", (msg) => offer?.session_id === msg.session_id && hideOffer());
  on("call.transferred", onTransferred);
  on("emotion.update", showEmotion);
  on("recording.state", showRecording);
  on("emotion.status", showEmotionStatus);
  on("help.state", (msg) => isOurCall(msg) && assist.onHelpState(msg));
  on("assist.state", (msg) => isOurCall(msg) && assist.onAssistState(msg));
  on("whisper.message", (msg) => isOurCall(msg) && assist.onWhisper(msg));
  on("call.taken_over", onTakenOver);
  on("bye", (msg) => ["logged_out", "disabled"].includes(msg.reason) && location.reload());
  on("error", (msg) => !msg.reply_to && toast(msg.message));
  signaling.connect();
}

/** Photos and PDFs in the chat, and the customer's camera snapshots in their own panel. */
function wireFiles() {
  const input = $("file-input");
  input.addEventListener("change", () => {
    const file = input.files?.[0];
    input.value = "";
    if (!file || !call) return;
    const url = `/api/v1/sessions/${encodeURIComponent(call.session_id)}/files?name=${encodeURIComponent(file.name)}`;
    upload(url, file, { headers: { "X-CSRF-Token": csrfToken() }, progress: $("file-progress") }).catch((err) =>
      toast(err.code === "unsupported_type" ? t("console.files.refused") : err.message),
    );
  });
  $("snapshot-take").addEventListener("click", () => {
    $("snapshot-status").textContent = t("console.snapshot.waiting");
    signaling.request({ type: "snapshot.take" }).catch((e) => ($("snapshot-status").textContent = e.message));
  });
}

function showFile(file) {
  if (document.querySelector(`[data-file-id="${CSS.escape(file.file_id)}"]`)) return;
  if (file.kind === "snapshot") {
    const item = fileItem(file, { youAre: "rep" });
    item.dataset.testid = "snapshot-item";
    $("snapshot-list").prepend(item);
    $("snapshot-status").textContent = "";
  } else {
    $("chat").querySelector('[data-testid="chat-log"]').append(fileItem(file, { youAre: "rep" }));
  }
}

/** A message about the call on screen (or naming none). */
const isOurCall = (msg) => !msg.session_id || call?.session_id === msg.session_id;

function onWelcome(msg) {
  media.iceServers = msg.ice_servers || [];
  showStatus(msg.status);
  if (msg.call) {
    onAccepted(msg.call); // with the chat and files so far: a reload loses nothing
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
  if (next === "available") askToNotify();
  signaling.request({ type: "rep.status", status: next }).catch((e) => toast(e.message));
}

function onQueueSnapshot(snapshot) {
  queueCopy = { version: snapshot.version, items: snapshot.items, reps: snapshot.reps || [] };
  renderQueue(queueCopy);
}

/** A queue.delta applies to the version before it only (docs/protocol.md, server/calls/queue_feed.py's apply). */
function onQueueDelta(delta) {
  if (queueCopy === null) return; // a resync is on its way: its snapshot replaces the copy
  const fits = delta.version === queueCopy.version + 1 && delta.upserts.every((u) => Number.isInteger(u.index) && u.index >= 0);
  if (!fits) return resyncQueue();
  const gone = new Set(delta.removed.concat(delta.upserts.map((u) => u.item.session_id)));
  const items = queueCopy.items.filter((item) => !gone.has(item.session_id));
  for (const upsert of [...delta.upserts].sort((a, b) => a.index - b.index)) {
    if (upsert.index > items.length) return resyncQueue();
    items.splice(upsert.index, 0, upsert.item);
  }
  queueCopy = { version: delta.version, items, reps: delta.reps ?? queueCopy.reps };
  renderQueue(queueCopy);
}

function resyncQueue() {
  queueCopy = null;
  // Not answered (say the socket is reconnecting, whose hello brings a snapshot anyway): ask again shortly.
  signaling.request({ type: "queue.resync" }).catch(() => setTimeout(() => queueCopy === null && resyncQueue(), 2000));
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
  assist.reset();
  resetEmotion();
  replayInOrder(msg.chat, msg.files, { line: (m) => chat.add(m), file: showFile });
  // Accepted from the queue (whose row is gone now) or the offer: the keyboard goes on at the call's controls.
  const at = document.activeElement;
  if (!at || at === document.body || !at.isConnected || at.closest(".queue")) $("mute").focus();
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

/** The call is over (or passed on): the summary line, back to the queue. */
function leaveCall(summary) {
  media.stop();
  assist.reset();
  call = null;
  $("call-ended").textContent = summary;
  $("call-ended").hidden = false;
  setState("queue");
}

function onEnded(msg) {
  if (msg.session_id && msg.session_id === takenOver) return; // already left, and nothing to wrap up
  const minutes = call ? formatWait((Date.now() - call.startedAt) / 1000) : "";
  const next = t(msg.wrap_up ? "console.call.next_wrap_up" : "console.call.next_away");
  const reason = msg.reason ? codeLabel("console.call.end_reasons", msg.reason) : none();
  leaveCall(t("console.call.ended", { reason, duration: minutes, next }));
  if (msg.wrap_up) showWrapUp(msg.session_id);
}

/** A supervisor took the call: leave it, say who, and owe no wrap-up. */
function onTakenOver(msg) {
  if (call && msg.session_id && call.session_id !== msg.session_id) return;
  takenOver = msg.session_id || call?.session_id || null;
  const summary = t("console.assist.taken_over", { name: msg.by?.display_name || t("console.assist.someone") });
  leaveCall(summary);
  toast(summary);
}

function onTransferred(msg) {
  $("transfer-form").hidden = true;
  leaveCall(t(msg.to === "rep" ? "console.call.transferred_rep" : "console.call.transferred_queue"));
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
  ringingNote = notifyRinging($("offer-text").textContent, `offer-${msg.session_id}`);
}

function tickOffer() {
  if (!offer) return;
  $("offer-countdown").textContent = String(Math.max(0, Math.ceil((offer.until - Date.now()) / 1000)));
}

function hideOffer() {
  offer = null;
  $("offer").hidden = true;
  ringingNote?.close();
  ringingNote = null;
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
  for (const [reason, label] of deploymentReasons) {
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

async function loadDispositions() {
  const { items } = await api("GET", "/api/v1/dispositions");
  const select = $("wrapup-disposition");
  const groups = new Map();
  for (const d of items) {
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
  await api("POST", `/api/v1/sessions/${encodeURIComponent(wrapUpSession)}/wrapup`, body);
  wrapUpSession = null;
  const hadFocus = $("wrapup-form").contains(document.activeElement);
  $("wrapup-form").hidden = true;
  $("call-ended").hidden = true;
  if (hadFocus) $("availability").focus(); // the next step is the rep's status
}

function wireCallControls() {
  wireMediaToggles(() => media, (key) => t(`console.call.${key}`));
  $("end-call").addEventListener("click", () => signaling.send({ type: "call.end", reason: "resolved" }));
  $("tap-to-play").addEventListener("click", async (ev) => (ev.currentTarget.hidden = await tryPlay($("remote-video"))));
}

function tick() {
  document.querySelectorAll(".queue-list .wait").forEach((node) => {
    node.textContent = formatWait((Date.now() - Date.parse(node.dataset.queuedAt)) / 1000);
  });
  if (call) $("call-timer").textContent = formatWait((Date.now() - call.startedAt) / 1000);
  tickOffer();
}

init();
