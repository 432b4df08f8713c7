// The start screen: the reason (with its self-help articles), optional name and contact, the
// emotion-cue notice and the recording consent, then joining the queue with
// POST /api/v1/calls. On an invite link (/join/{token}) the customer is never asked who they
// are or why: POST /api/v1/invites/{token}/redeem carries the consents, the device and the
// language only if the customer picked one.
import { $ } from "../dom.js";
import { postJSON } from "../http.js";
import { bindText, currentLanguage, t } from "../i18n.js";
import { contactValues, showError, showFieldError, validContact, wireContactChecks } from "./contact.js";
import { renderHelp, wireHelp } from "./help.js";
import { languageChosen } from "./language.js";

let config = { reasons: [], emotion: { available: false }, recording: { policy: "never" } };
let joinToken = null;
let joined = () => {};
let starting = false;

/** Wire the start form; `onJoined(token)` runs once the server has queued the call. */
export function wireIntake(onJoined) {
  joined = onJoined;
  wireContactChecks(() => showError("form-error", null));
  $("start-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    startCall();
  });
  $("reason-select").addEventListener("change", () => renderHelp(chosenReason()));
  wireHelp({ onNeedPerson: startCall });
}

/** Fill the form from the deployment's configuration; `inviteToken` for an invite link, else null. */
export function setupIntake(pageConfig, inviteToken) {
  config = pageConfig;
  joinToken = inviteToken;
  fillReasons();
  setupNotices();
  if (joinToken) {
    // Identified customers are never asked who they are, nor why: the signed link carries
    // the invite's identity and reason, and the server takes them from there.
    $("about-you").hidden = true;
    $("identified-note").hidden = false;
    $("reason-select").closest("label").hidden = true;
  }
}

export function chosenReason() {
  const code = $("reason-select").value;
  return config.reasons.find((r) => r.code === code) || null;
}

function fillReasons() {
  const select = $("reason-select");
  select.replaceChildren();
  const none = new Option("", "");
  bindText(none, () => t("reason_placeholder"));
  select.add(none);
  for (const r of config.reasons) {
    const option = new Option(r.label || r.code, r.code);
    bindText(option, () => t(`reason.${r.code}`, {}, r.label || r.code));
    select.add(option);
  }
}

function setupNotices() {
  const consent = $("emotion-consent");
  if (config.emotion.available) {
    consent.checked = !!config.emotion.default_consent;
  } else {
    const p = $("emotion-notice").querySelector("p");
    delete p.dataset.i18n;
    bindText(p, () => t("emotion_unavailable"));
    consent.closest("label").hidden = true;
  }
  const policy = config.recording?.policy || "never";
  if (policy !== "never") {
    $("recording-notice").hidden = false;
    bindText($("recording-text"), () => t(policy === "ask" ? "recording_ask" : "recording_always"));
    $("recording-consent").closest("label").hidden = policy !== "ask";
  }
}

function validIntake() {
  if (joinToken) return true; // an invite asks for no contact details
  const ok = validContact();
  showError("form-error", ok ? null : "form_invalid");
  return ok;
}

function startCall() {
  showError("start-error", null);
  if (!validIntake()) return;
  join();
}

function showStartError(err) {
  const key =
    err.status === 404 || err.code === "link_invalid"
      ? "invite_invalid"
      : err.status === 410 || err.code === "link_expired"
        ? "link_expired"
        : err.status === 409
          ? "invite_in_use"
          : err.code === "too_many_waiting"
            ? "too_many_waiting"
            : err.status === 429
              ? "busy"
              : err.status === 503 || err.code === "all_lines_busy" || err.code === "queue_full"
                ? "all_lines_busy"
                : "error_generic";
  // A field the server refused (the contact details) is shown at the field itself.
  const message = String(err.message || "").toLowerCase();
  if (err.status === 400 && !joinToken && /email/.test(message)) showFieldError("customer-email", "email_invalid");
  else if (err.status === 400 && !joinToken && /phone/.test(message)) showFieldError("customer-phone", "phone_invalid");
  showError("start-error", key);
  $("start-error").scrollIntoView({ block: "nearest" });
}

function setStarting(busy) {
  starting = busy;
  for (const id of ["start-call", "help-need-person"]) {
    $(id).disabled = busy;
    $(id).setAttribute("aria-busy", String(busy));
  }
}

async function join() {
  if (starting) return;
  setStarting(true);
  const body = { device: describeDevice() };
  // An invite may carry the customer's language; only the customer's own choice overrides it.
  if (!joinToken || languageChosen()) body.language = currentLanguage();
  if (config.emotion.available) body.emotion_consent = $("emotion-consent").checked;
  if (config.recording?.policy === "ask") body.recording_consent = $("recording-consent").checked;
  try {
    let created;
    if (joinToken) {
      created = await postJSON(`/api/v1/invites/${encodeURIComponent(joinToken)}/redeem`, body);
    } else {
      body.reason = $("reason-select").value || null;
      body.name = $("customer-name").value.trim() || null;
      const { email, phone } = contactValues();
      if (email || phone) body.contact = { email: email || null, phone: phone || null };
      created = await postJSON("/api/v1/calls", body);
    }
    joined(created.token);
  } catch (err) {
    showStartError(err);
  } finally {
    setStarting(false);
  }
}

/** The browser and device, for the rep's card: "Pixel 7 · Chrome". */
function describeDevice() {
  const ua = navigator.userAgent;
  const model = /Pixel \d+[a-zA-Z ]*/.exec(ua)?.[0]?.trim() || (/iPhone/.test(ua) ? "iPhone" : /iPad/.test(ua) ? "iPad" : /Android/.test(ua) ? "Android" : /Mac/.test(ua) ? "Mac" : /Windows/.test(ua) ? "Windows" : "Computer");
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  return `${model} · ${browser}`;
}
