// What the customer is told about a supervisor (issue 14): who joined or left the call
// (call.party), that a supervisor may listen (call.monitored, only where the deployment
// discloses listening), and who handles the call after a take-over (call.handler). A whisper
// is never mentioned here: the customer's page receives nothing of it.
import { $ } from "../dom.js";
import { bindText, t } from "../i18n.js";

const LEFT_NOTICE_MS = 6000;

let leftTimer = null;

/** call.party: "<name> joined the call" stays while they are in it; "left" shows a few seconds. */
export function showParty(msg, media) {
  const node = $("party-notice");
  const name = msg.name || null;
  const label = () => name || t("party_someone");
  clearTimeout(leftTimer);
  media?.showThirdParty(Boolean(msg.present));
  if (msg.present) {
    bindText(node, () => t("party_joined", { name: label() }));
    node.dataset.present = "true";
    node.hidden = false;
    return;
  }
  bindText(node, () => t("party_left", { name: label() }));
  node.dataset.present = "false";
  node.hidden = false;
  leftTimer = setTimeout(() => hideParty(), LEFT_NOTICE_MS);
}

export function hideParty() {
  clearTimeout(leftTimer);
  const node = $("party-notice");
  bindText(node, null);
  delete node.dataset.present;
  node.hidden = true;
}

/** call.monitored: the deployment discloses listening; on while a supervisor listens. */
export function showMonitored(msg) {
  const node = $("monitored-notice");
  bindText(node, msg.on ? () => t("monitored") : null);
  node.hidden = !msg.on;
}

/** call.handler: after a take-over the supervisor handles the call (the title names them). */
export function showHandler(msg) {
  const name = msg.rep?.display_name;
  if (name) bindText($("call-state"), () => t("handler_changed", { name }));
}

/** The call is over: no notices left behind. */
export function resetAssist() {
  hideParty();
  showMonitored({ on: false });
}
