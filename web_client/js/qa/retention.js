// Retention controls on a call: legal hold (supervisors, admins) and erasure (admins, after
// a confirming dialog; never while on hold).
import { $, show, toast } from "../dom.js";
import { has, t } from "../i18n.js";
import { api } from "../staff/api.js";
import { canErase, canHold, go, qa } from "./state.js";

const sessionPath = (id, rest = "") => `/api/v1/sessions/${encodeURIComponent(id)}${rest}`;

export function wireRetention() {
  $("qa-legal-hold").addEventListener("change", toggleLegalHold);
  $("qa-erase").addEventListener("click", () => {
    const dialog = $("qa-erase-dialog");
    dialog.returnValue = ""; // Esc keeps the previous value; never let an old "erase" through
    dialog.showModal();
  });
  $("qa-erase-dialog").addEventListener("close", () => $("qa-erase-dialog").returnValue === "erase" && eraseSession());
}

export function renderRecordControls(session) {
  if (!canHold() || session.state === "erased") return;
  show("qa-record-controls");
  $("qa-legal-hold").checked = Boolean(session.legal_hold);
  $("qa-erase-box").hidden = !canErase();
  updateEraseState();
}

/** Close the confirming dialog when the call's view goes away. */
export function closeEraseDialog() {
  if ($("qa-erase-dialog").open) $("qa-erase-dialog").close("cancel");
}

function updateEraseState() {
  const held = $("qa-legal-hold").checked;
  $("qa-erase").disabled = held;
  $("qa-erase-hint").textContent = t(held ? "qa.retention.erase_blocked" : "qa.retention.erase_hint");
}

async function toggleLegalHold() {
  const box = $("qa-legal-hold");
  const hold = box.checked;
  const note = $("qa-legal-hold-note").value.trim();
  box.disabled = true;
  try {
    await api("PUT", sessionPath(qa.view.id, "/legal-hold"), note ? { hold, note } : { hold });
    qa.view.bundle.session.legal_hold = hold;
  } catch (err) {
    box.checked = !hold;
    if (err.status !== 401) toast(err.message);
  } finally {
    box.disabled = false;
    updateEraseState();
  }
}

async function eraseSession() {
  if (!qa.view) return;
  const { id } = qa.view;
  $("qa-erase").disabled = true;
  try {
    const answer = await api("DELETE", sessionPath(id), {});
    qa.lastOpenedId = null;
    go(qa.listHash);
    show("qa-list-notice", erasedSummary(answer.erased));
  } catch (err) {
    if (err.status !== 401) toast(err.message);
    updateEraseState();
  }
}

function erasedSummary(counts) {
  const parts = Object.entries(counts || {}).map(([what, count]) =>
    has(`qa.retention.counts.${what}`) ? t(`qa.retention.counts.${what}`, { count }) : t("qa.retention.count_other", { count, what: what.replaceAll("_", " ") }),
  );
  return parts.length ? t("qa.retention.erased_counts", { parts: parts.join(t("qa.retention.list_separator")) }) : t("qa.retention.erased");
}
