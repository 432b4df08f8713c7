// The QA review console (/qa): find recorded calls, watch one with the customer's
// emotion timeline, chat and the rep's notes in step with the video, and score it.
// Emotion scores describe the CUSTOMER; nothing here presents them as a rep score.
//
// This file starts the page and routes by hash: #/ is the list (filters in the query,
// qa/list.js, qa/filters.js, qa/rubric.js), #/sessions/{id} one call (qa/session.js with
// qa/player.js, qa/timeline.js, qa/transcript.js, qa/scorecard.js, qa/retention.js).
import { $, exposePage } from "./dom.js";
import { loadChoices, wireFilters } from "./qa/filters.js";
import { showList, wireList } from "./qa/list.js";
import { wirePlayer } from "./qa/player.js";
import { wireRetention } from "./qa/retention.js";
import { wireRubricEditor } from "./qa/rubric.js";
import { wireScorecard } from "./qa/scorecard.js";
import { openSession, teardownSession } from "./qa/session.js";
import { REVIEW_ROLES, qa } from "./qa/state.js";
import { startStaffLanguage } from "./staff/language.js";
import { signedInUser, startSession } from "./staff/session.js";

let started = false;

exposePage({ video: () => $("qa-player") });

async function init() {
  await startStaffLanguage();
  wireFilters();
  wireList();
  wireRubricEditor();
  wirePlayer();
  wireScorecard();
  wireRetention();
  window.addEventListener("hashchange", route);
  await startSession({ roles: REVIEW_ROLES, onSignedIn, onSignedOut: teardownSession });
}

function onSignedIn(user) {
  $("qa-rubric-editor").hidden = user.role !== "admin";
  if (!started) {
    started = true;
    loadChoices();
  }
  route();
}

// --- routing: #/ (list, filters in the query) and #/sessions/{id} ---

function route() {
  if (!REVIEW_ROLES.includes(signedInUser()?.role)) return;
  const hash = location.hash || "#/";
  const token = ++qa.navToken;
  teardownSession();
  const match = /^#\/sessions\/([^/?#]+)$/.exec(hash);
  if (match) openSession(safeDecode(match[1]), token);
  else showList(new URLSearchParams(hash.split("?")[1] || ""), token);
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // a mistyped % escape: let the server answer 404
  }
}

init();
