// Times that keep counting between polls: the server's seconds plus the time since its
// answer, repainted every second while the page is visible.
import { setText } from "../dom.js";
import { formatClock, isNumber } from "../staff/format.js";

const TICK_MS = 1000;
let answeredAt = 0; // performance.now() when the last floor answer arrived
let tickTimer = null;

/** A fresh answer from the server: its seconds count from now. */
export function markAnswered() {
  answeredAt = performance.now();
}

const elapsedS = () => (answeredAt ? Math.max(0, (performance.now() - answeredAt) / 1000) : 0);

/** Make `node` a ticking clock from `seconds`; it turns `warn`, then `alert` (data-level) past those seconds. */
export function ticking(node, seconds, { warn = null, alert = null } = {}) {
  node.dataset.baseS = String(isNumber(seconds) ? seconds : 0);
  if (warn != null) node.dataset.warnS = String(warn);
  else delete node.dataset.warnS;
  if (alert != null) node.dataset.alertS = String(alert);
  else delete node.dataset.alertS;
  paintTick(node, elapsedS());
}

/** A clock no longer: it keeps its last text until set again. */
export function stopTicking(node) {
  delete node.dataset.baseS;
  delete node.dataset.level;
}

function paintTick(node, elapsed) {
  const s = Number(node.dataset.baseS) + elapsed;
  setText(node, formatClock(s));
  const level = node.dataset.alertS && s >= Number(node.dataset.alertS) ? "alert" : node.dataset.warnS && s >= Number(node.dataset.warnS) ? "warn" : "";
  if ((node.dataset.level || "") !== level) {
    if (level) node.dataset.level = level;
    else delete node.dataset.level;
  }
}

function tick() {
  const elapsed = elapsedS();
  for (const node of document.querySelectorAll(".dashboard [data-base-s]")) paintTick(node, elapsed);
}

export function startTicker() {
  if (!tickTimer && !document.hidden) tickTimer = setInterval(tick, TICK_MS);
}

export function stopTicker() {
  clearInterval(tickTimer);
  tickTimer = null;
}
