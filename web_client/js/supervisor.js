// The supervisor dashboard (/supervisor): the live floor (queue, reps, calls, and the calls
// that need attention), assisting a call (listen, whisper, barge in, take over) and reports.
// Frustration on this page is always the CUSTOMER's expression, shown per live call; nothing
// here ranks, sorts or scores reps by their customers' emotions.
//
// This file starts the page; the live floor is supervisor/floor.js (pushed over the socket in
// supervisor/live.js, polled while it is down; its ticking clocks in supervisor/clocks.js), the
// needs-attention list supervisor/attention.js, the assist panel supervisor/assist.js, the
// reports supervisor/reports.js with supervisor/charts.js.
import { exposePage, setState } from "./dom.js";
import { loadDeployment } from "./staff/deployment.js";
import { startStaffLanguage } from "./staff/language.js";
import { startSession } from "./staff/session.js";
import { assistMedia, assisting, closePanel, listen, onAssistState, onCallEnded, onMediaRestart, onSocketLost, wireAssist } from "./supervisor/assist.js";
import { resetAttention, wireAttention } from "./supervisor/attention.js";
import { isPolling, lastFloor, onListen, onVisibility, redrawFloor, startPolling, stopPolling } from "./supervisor/floor.js";
import { connectLive, disconnectLive, isLive } from "./supervisor/live.js";
import { lastReport, loadReport, redrawReport, resetRange, wireReports } from "./supervisor/reports.js";

const ALLOWED_ROLES = ["supervisor", "admin"];
let started = false;

exposePage({
  floor: lastFloor,
  report: lastReport,
  polling: isPolling,
  live: isLive,
  assisting,
  pc: () => assistMedia()?.pc ?? null,
});

async function init() {
  await startStaffLanguage();
  wireReports();
  wireAttention();
  wireAssist(lastFloor);
  onListen(listen);
  document.addEventListener("visibilitychange", onVisibility);
  await startSession({ roles: ALLOWED_ROLES, leaveOnRoleRefusal: true, onSignedIn, onSignedOut });
}

function onSignedIn() {
  setState("dashboard");
  if (!started) {
    started = true;
    // The deployment's reason labels and language names, for codes the catalogue lacks.
    loadDeployment().then((config) => {
      if (!config) return; // codes are humanized instead
      redrawFloor();
      redrawReport();
    });
    resetRange(7);
  }
  startPolling();
  connectLive({
    "assist.state": onAssistState,
    "call.ended": onCallEnded,
    "media.restart": onMediaRestart,
    disconnected: onSocketLost,
  });
  loadReport();
  if (!location.hash) document.getElementById("floor").focus({ preventScroll: true });
}

function onSignedOut() {
  closePanel();
  stopPolling();
  disconnectLive();
  resetAttention();
}

init();
