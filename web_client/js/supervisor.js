// The supervisor dashboard (/supervisor): the live floor (queue, reps, calls) and reports.
// Frustration on this page is always the CUSTOMER's expression, shown per live call; nothing
// here ranks, sorts or scores reps by their customers' emotions.
//
// This file starts the page; the live floor is supervisor/floor.js (its ticking clocks in
// supervisor/clocks.js), the reports supervisor/reports.js with supervisor/charts.js.
import { exposePage, setState } from "./dom.js";
import { loadStaffStrings } from "./i18n.js";
import { loadDeployment } from "./staff/deployment.js";
import { startSession } from "./staff/session.js";
import { isPolling, lastFloor, onVisibility, redrawFloor, startPolling, stopPolling } from "./supervisor/floor.js";
import { lastReport, loadReport, redrawReport, resetRange, wireReports } from "./supervisor/reports.js";

const ALLOWED_ROLES = ["supervisor", "admin"];
let started = false;

exposePage({ floor: lastFloor, report: lastReport, polling: isPolling });

async function init() {
  await loadStaffStrings();
  wireReports();
  document.addEventListener("visibilitychange", onVisibility);
  await startSession({ roles: ALLOWED_ROLES, leaveOnRoleRefusal: true, onSignedIn, onSignedOut: stopPolling });
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
  loadReport();
  if (!location.hash) document.getElementById("floor").focus({ preventScroll: true });
}

init();
