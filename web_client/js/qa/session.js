// The session view (#/sessions/{id}): one recorded call with its header, player, emotion
// timeline, transcript, files and snapshots, the rep's wrap-up, the scorecard and the retention controls.
import { $, hide, setState, show } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { reasonLabel } from "../staff/deployment.js";
import { formatDateTime, formatDuration, humanize, none } from "../staff/format.js";
import { renderPlayer, renderTracks, seekTo } from "./player.js";
import { closeEraseDialog, renderRecordControls } from "./retention.js";
import { clearFiles, renderFiles, sortedFiles } from "./files.js";
import { clearScorecard, renderReviews, renderScorecard } from "./scorecard.js";
import { dispositionLabels, qa, sessionUrl } from "./state.js";
import { EmotionTimeline } from "./timeline.js";
import { renderChat, sortedChat } from "./transcript.js";

const HEADER_FIELDS = ["qa-session-reason", "qa-session-rep", "qa-session-date", "qa-session-duration"];
// Parts that only some calls have: hidden until the call's bundle says otherwise.
const OPTIONAL_PARTS = ["qa-session-error", "qa-erased", "qa-player-error", "qa-no-recording", "qa-compose-failed", "qa-tracks", "qa-record-controls", "qa-score-saved", "qa-keys"];

export async function openSession(id, token) {
  hide("qa-list-notice"); // the erase notice is for the one list visit after it
  setState("session");
  resetSessionView(id);
  window.scrollTo(0, 0);
  let bundle;
  try {
    bundle = await api("GET", sessionUrl(id));
  } catch (err) {
    if (token !== qa.navToken || err.status === 401) return;
    $("qa-session-customer").textContent = t("qa.session.not_found");
    show("qa-session-error", err.status === 404 ? t("qa.session.not_found_text") : err.message);
    return;
  }
  if (token !== qa.navToken) return;
  const timeline = new EmotionTimeline($("qa-timeline"), { onSeek: (at) => seekTo(at) });
  qa.view = { id, bundle, timeline, pollTimer: null };
  timeline.attachVideo($("qa-player"));
  renderSession(bundle);
  $("qa-session-customer").focus();
}

/** Stop polling, release the player and timeline, close the dialog: nothing of a left view keeps running. */
export function teardownSession() {
  const { view } = qa;
  if (!view) return;
  clearTimeout(view.pollTimer);
  view.timeline.destroy();
  qa.view = null;
  const video = $("qa-player");
  video.pause();
  video.removeAttribute("src");
  video.load();
  closeEraseDialog();
}

function resetSessionView(id) {
  $("qa-session-customer").textContent = t("qa.session.loading");
  for (const testid of HEADER_FIELDS) $(testid).textContent = none();
  $("qa-session-id").textContent = id;
  for (const testid of OPTIONAL_PARTS) hide(testid);
  $("qa-player").hidden = true;
  document.querySelector(".player-note.compose").hidden = true;
  $("qa-timeline").replaceChildren();
  $("qa-chat").replaceChildren();
  clearFiles();
  clearScorecard();
}

function renderSession(bundle) {
  const session = bundle.session || {};
  renderHeader(session);
  $("qa-erased").hidden = session.state !== "erased";
  renderPlayer(bundle.player);
  renderTracks(bundle.recordings || []);
  const chat = sortedChat(bundle.chat || []);
  const files = sortedFiles(bundle.files || []);
  qa.view.timeline.setData({
    timeline: bundle.timeline || [],
    flags: bundle.flags || [],
    marks: chat.map((m) => m.t),
    snapshots: files.filter((f) => f.kind === "snapshot").map((f) => f.t),
    assist: bundle.assist || [],
    whispers: bundle.whispers || [],
  });
  renderChat(chat);
  renderFiles(files);
  renderWrapup(session, bundle.notes);
  renderScorecard(bundle.scorecard, session.state === "erased");
  renderReviews(bundle.reviews || [], bundle.scorecard);
  renderRecordControls(session);
}

function renderHeader(session) {
  $("qa-session-customer").textContent = session.customer_name || t("common.guest");
  $("qa-session-reason").textContent = reasonLabel(session.reason);
  $("qa-session-rep").textContent = session.rep?.display_name || t("qa.session.not_answered");
  $("qa-session-date").textContent = formatDateTime(session.created_at);
  const talked = (Date.parse(session.ended_at) - Date.parse(session.answered_at)) / 1000;
  $("qa-session-duration").textContent = Number.isFinite(talked) ? formatDuration(talked) : none();
  $("qa-session-id").textContent = session.session_id || qa.view.id;
}

/** The rep's disposition and notes, or that there are none yet. */
function renderWrapup(session, bundleNotes) {
  const disposition = $("qa-disposition");
  const notes = $("qa-notes");
  const noteText = session.notes ?? bundleNotes ?? "";
  if (!session.disposition) {
    disposition.textContent = t("qa.wrapup.none");
    disposition.classList.add("muted");
    notes.hidden = !noteText;
    notes.textContent = noteText;
    hide("qa-wrapped-at");
    return;
  }
  disposition.classList.remove("muted");
  disposition.textContent = session.disposition_label || dispositionLabels.get(session.disposition) || humanize(session.disposition);
  notes.hidden = false;
  notes.textContent = noteText || t("qa.wrapup.no_notes");
  notes.classList.toggle("muted", !noteText);
  if (session.wrapped_at) show("qa-wrapped-at", t("qa.wrapup.saved_at", { date: formatDateTime(session.wrapped_at) }));
}
