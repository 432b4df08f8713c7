// Assisting one call (issue 14): Listen from the floor opens the assist panel. The page says
// assist.start, then offers media for that call (js/call.js, the fixed four m-lines): slot 0
// brings the customer, slot 1 the rep, and our own mic and camera go out on slot 0. The server
// passes them on only as the mode allows: listen (nobody hears us), whisper (the rep only),
// barge (both). Mode changes need no new offer. Leave ends our part; the call goes on.
import { CallMedia, tryPlay } from "../call.js";
import { $, setText, toast } from "../dom.js";
import { t } from "../i18n.js";
import { socket } from "./live.js";

const MODES = ["listen", "whisper", "barge"];

let current = null; // {sessionId, rep, mode, media, takenOver}
let busy = false;
let lastFloor = () => null;

const lastFloorCall = (floor, sessionId) => (floor?.calls || []).find((c) => c.session_id === sessionId) || null;

function errorText(err) {
  const key = `supervisor.assist.errors.${err?.code}`;
  const text = t(key);
  return text === key ? err?.message || String(err) : text;
}

/** Wire the panel's buttons; `floor()` gives the last floor (for the rep's name). */
export function wireAssist(floor) {
  $("assist-whisper").addEventListener("click", () => toggleMode("whisper"));
  $("assist-barge").addEventListener("click", () => toggleMode("barge"));
  // After a take-over the call is ours: the same button ends it.
  $("assist-leave").addEventListener("click", () => (current?.takenOver ? endCall() : leave()));
  $("assist-take-over").addEventListener("click", (ev) => takeOver(ev.currentTarget));
  $("whisper-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sendWhisper();
  });
  lastFloor = floor;
}

export const assisting = () => current?.sessionId ?? null;
export const assistMedia = () => current?.media ?? null;

/** A Listen button: join this call listening (leaving another call first). */
export async function listen(sessionId, button) {
  const signaling = socket();
  if (busy || !sessionId) return;
  if (!signaling?.connected) {
    toast(t("supervisor.assist.errors.offline"));
    return;
  }
  if (current?.sessionId === sessionId) {
    $("assist-panel").scrollIntoView({ block: "nearest" });
    return;
  }
  busy = true;
  if (button) button.disabled = true;
  try {
    if (current) await leave({ quiet: true });
    await signaling.request({ type: "assist.start", session_id: sessionId, mode: "listen" });
    await join(sessionId, "listen", false);
  } catch (err) {
    toast(errorText(err));
    if (current?.sessionId === sessionId) closePanel();
  } finally {
    busy = false;
    if (button) button.disabled = false;
  }
}

/** The assist panel and its media for a call the server has us in (``mode``), offering for it. */
async function join(sessionId, mode, takenOver) {
  const signaling = socket();
  const call = lastFloorCall(lastFloor(), sessionId);
  const media = new CallMedia(signaling, {
    remoteVideo: $("assist-video-customer"),
    thirdPartyVideo: $("assist-video-rep"),
    localVideo: $("assist-video-self"),
    sessionId,
  });
  media.showThirdParty(true); // the rep, in every mode
  current = { sessionId, rep: call?.rep?.display_name || null, mode, media, takenOver };
  openPanel();
  await media.openCamera().catch(() => toast(t("supervisor.assist.no_camera")));
  if (current?.media !== media) return; // left meanwhile
  await media.start();
  tryPlay($("assist-video-customer"));
}

function openPanel() {
  const panel = $("assist-panel");
  panel.hidden = false;
  panel.dataset.sessionId = current.sessionId;
  setText($("assist-title"), t("supervisor.assist.title", { rep: current.rep || t("supervisor.attention.no_rep") }));
  $("whisper-text").value = "";
  showMode(current.mode);
  panel.scrollIntoView({ block: "nearest" });
  panel.focus({ preventScroll: true });
}

function showMode(mode) {
  if (!current) return;
  current.mode = mode;
  const panel = $("assist-panel");
  panel.dataset.mode = mode || "";
  for (const m of ["whisper", "barge"]) $(`assist-${m}`).setAttribute("aria-pressed", String(mode === m));
  setText($("assist-mode"), current.takenOver ? t("supervisor.assist.taken_over") : MODES.includes(mode) ? t(`supervisor.assist.mode.${mode}`) : "");
  // After a take-over there is no rep to whisper to, and nobody else to take it from.
  for (const id of ["assist-whisper", "assist-barge", "assist-take-over", "whisper-send", "whisper-text"]) $(id).disabled = current.takenOver;
  setText($("assist-leave"), t(current.takenOver ? "supervisor.assist.end_call" : "supervisor.assist.leave"));
}

/** A call we took over: end it as its handler (answered by call.ended). */
async function endCall() {
  try {
    await socket().request({ type: "call.end", reason: "resolved" });
  } catch (err) {
    toast(errorText(err));
  }
}

/** Whisper and Barge in are toggles: pressing the one that is on goes back to listening. */
async function toggleMode(mode) {
  // Allowed while our media is still being set up: the mode is the server's to apply once it flows.
  if (!current) return;
  const next = current.mode === mode ? "listen" : mode;
  const before = current.mode;
  showMode(next);
  try {
    await socket().request({ type: "assist.mode", mode: next });
  } catch (err) {
    showMode(before);
    toast(errorText(err));
  }
}

async function leave({ quiet = false } = {}) {
  if (!current) return;
  const signaling = socket();
  closePanel();
  try {
    await signaling?.request({ type: "assist.leave" });
    if (!quiet) toast(t("supervisor.assist.left"));
  } catch (err) {
    // not_assisting: the server already let us go (the call ended); nothing is owed.
    if (!quiet && err.code !== "not_assisting") toast(errorText(err));
  }
}

/** Two clicks: the first arms the button, the second (within 5 s) takes the call over. */
async function takeOver(button) {
  if (!current || current.takenOver) return;
  if (button.dataset.armed !== "true") {
    button.dataset.armed = "true";
    button.textContent = t("supervisor.assist.take_over_confirm");
    setTimeout(() => disarm(button), 5000);
    return;
  }
  disarm(button);
  try {
    await socket().request({ type: "assist.take_over" });
    current.takenOver = true;
    showMode("barge");
    toast(t("supervisor.assist.taken_over"));
  } catch (err) {
    toast(errorText(err));
  }
}

function disarm(button) {
  delete button.dataset.armed;
  button.textContent = t("supervisor.assist.take_over");
}

async function sendWhisper() {
  const input = $("whisper-text");
  const text = input.value.trim();
  if (!current || !text) return;
  try {
    await socket().request({ type: "whisper.send", text });
    input.value = "";
    setText($("whisper-status"), t("supervisor.assist.whisper_sent"));
  } catch (err) {
    toast(errorText(err));
  }
}

/** assist.state (supervisor audience): the mode now and whether the call is ours (`handler`), or mode null:
 * out of it (`reason` left, or ended). */
export function onAssistState(msg) {
  if (!current && msg.handler && msg.mode) {
    // Back after a reload or a lost network: the call we took over waited for us; offer for it again.
    join(msg.session_id, msg.mode, true).catch((err) => {
      toast(errorText(err));
      closePanel();
    });
    return;
  }
  if (!current || (msg.session_id && msg.session_id !== current.sessionId)) return;
  if (msg.mode == null) {
    closePanel();
    if (msg.reason === "ended") toast(t("supervisor.assist.ended"));
    return;
  }
  if (msg.handler) current.takenOver = true;
  showMode(msg.mode);
}

/** call.ended (supervisor audience): back to the floor. */
export function onCallEnded(msg) {
  if (!current || (msg.session_id && msg.session_id !== current.sessionId)) return;
  closePanel();
  toast(t("supervisor.assist.ended"));
}

/** The socket went down: the server let our assist go with it. */
export function onSocketLost() {
  if (!current) return;
  closePanel();
  toast(t("supervisor.assist.lost"));
}

/** The call's media moved to another node: offer again. */
export function onMediaRestart() {
  current?.media?.restart();
}

export function closePanel() {
  current?.media?.stop();
  current = null;
  const panel = $("assist-panel");
  panel.hidden = true;
  delete panel.dataset.sessionId;
  delete panel.dataset.mode;
  setText($("whisper-status"), "");
  setText($("assist-leave"), t("supervisor.assist.leave"));
  for (const id of ["assist-whisper", "assist-barge", "assist-take-over", "whisper-send", "whisper-text"]) $(id).disabled = false;
  for (const id of ["assist-video-customer", "assist-video-self"]) $(id).srcObject = null;
}
