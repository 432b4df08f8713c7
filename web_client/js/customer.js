// The customer's phone page: start (intake, with self-help articles for the chosen
// reason) → waiting → in call → ended (with the post-call rating).
import { CallMedia, tryPlay } from "./call.js";
import { ChatPanel } from "./chat.js";
import {
  bindAttr,
  bindText,
  currentLanguage,
  formatTime,
  getLanguages,
  matchLanguage,
  onLanguageChange,
  setLanguage,
  setLanguages,
  t,
} from "./i18n.js";
import { SignalingClient } from "./signaling.js";
import { $, describeDevice, postJSON, setState, toast } from "./ui.js";

const TOKEN_KEY = "rapport.token";
const LANG_KEY = "rapport.lang";
const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const PHONE_CHARS_RE = /^\+?[0-9\s().\-/]+$/;

let config = {
  ice_servers: [],
  reasons: [],
  emotion: { available: false, default_consent: false },
  recording: { policy: "never" },
  languages: null,
  language: null,
};
let signaling = null;
let media = null;
let chat = null;
let waitTicker = null;
let callToken = null; // kept after the call ends, for the rating
let answered = false;
let starting = false;
let languageChosen = false; // the customer picked a language here (or earlier on this device)

const joinToken = location.pathname.startsWith("/join/") ? decodeURIComponent(location.pathname.slice(6)) : null;

window.rapport = {
  get pc() {
    return media?.pc ?? null;
  },
  get state() {
    return document.body.dataset.state;
  },
};

// ---------------------------------------------------------------- start-up

async function init() {
  wireStart();
  wireHelp();
  wireControls();
  wireRating();
  wireCallback();
  const fetched = await fetchConfig();
  if (fetched) config = { ...config, ...fetched };
  config.reasons = Array.isArray(config.reasons) ? config.reasons : [];
  config.emotion = config.emotion || { available: false, default_consent: false };
  setLanguages(config.languages);
  fillLanguagePicker();
  await setLanguage(initialLanguage());
  $("language-select").value = currentLanguage();
  onLanguageChange((code) => {
    $("language-select").value = code;
    reformatChatTimes();
    refreshHelp(code);
  });
  // The server localises the help articles; ask again when our language is not its pick.
  if (currentLanguage() !== config.language) refreshHelp(currentLanguage());

  fillReasons();
  setupNotices();
  if (joinToken) {
    // Identified customers are never asked who they are, nor why: the signed link carries
    // the invite's identity and reason, and the server takes them from there.
    $("about-you").hidden = true;
    $("identified-note").hidden = false;
    $("reason-select").closest("label").hidden = true;
  }
  bindText($("call-again"), () => t("call_again"));
  bindText($("mute"), () => t(media && !media.audioEnabled ? "unmute" : "mute"));
  bindText($("camera-toggle"), () => t(media && !media.videoEnabled ? "camera_on" : "camera_off"));
  bindText($("end-call"), () => t(answered ? "end" : "leave_queue"));

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) connect(token);
  else setState("start");
}

async function fetchConfig(lang = null) {
  try {
    // An invite's link names the language the calling system gave it.
    const query = new URLSearchParams();
    if (lang) query.set("lang", lang);
    if (joinToken) query.set("invite", joinToken);
    const url = `/api/v1/config${query.size ? `?${query}` : ""}`;
    const r = await fetch(url, { credentials: "same-origin" });
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

/** Fetch the reasons' help articles in `lang` and show them if that is still the page's language. */
async function refreshHelp(lang) {
  const fresh = await fetchConfig(lang);
  if (!fresh || !Array.isArray(fresh.reasons) || lang !== currentLanguage()) return;
  const byCode = new Map(fresh.reasons.map((r) => [r.code, r]));
  for (const r of config.reasons) r.help = byCode.get(r.code)?.help ?? r.help;
  renderHelp();
}

function savedLanguage() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

function initialLanguage() {
  // A choice the customer made on this device wins over the server's pick from Accept-Language.
  const saved = matchLanguage(savedLanguage());
  languageChosen = !!saved;
  return saved || matchLanguage(config.language) || "en";
}

function fillLanguagePicker() {
  const select = $("language-select");
  select.replaceChildren();
  for (const l of getLanguages()) {
    const option = new Option(l.name || l.code, l.code);
    option.lang = l.code;
    option.dir = l.dir === "rtl" ? "rtl" : "ltr";
    select.add(option);
  }
  bindAttr(select, "aria-label", () => t("language_label"));
  select.addEventListener("change", async () => {
    const code = select.value;
    languageChosen = true;
    try {
      localStorage.setItem(LANG_KEY, code);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    await setLanguage(code);
  });
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

// ---------------------------------------------------------------- intake

function toAsciiDigits(s) {
  return s
    .replace(/[\u06f0-\u06f9]/g, (d) => String(d.charCodeAt(0) - 0x06f0))
    .replace(/[\u0660-\u0669]/g, (d) => String(d.charCodeAt(0) - 0x0660));
}

function contactValues() {
  return {
    email: $("customer-email").value.trim(),
    phone: toAsciiDigits($("customer-phone").value.trim()).replace(/\s+/g, " "),
  };
}

function checkEmail() {
  const { email } = contactValues();
  return showFieldError("customer-email", email && !EMAIL_RE.test(email) ? "email_invalid" : null);
}

function checkPhone() {
  const { phone } = contactValues();
  const digits = phone.replace(/\D/g, "").length;
  const bad = phone && (!PHONE_CHARS_RE.test(phone) || digits < 6 || digits > 15);
  return showFieldError("customer-phone", bad ? "phone_invalid" : null);
}

/** Show or clear the inline error under a field; true when the field is fine. */
function showFieldError(testid, key) {
  const input = $(testid);
  const error = $(`${testid}-error`);
  if (key) {
    input.setAttribute("aria-invalid", "true");
    bindText(error, () => t(key));
    error.hidden = false;
    return false;
  }
  input.removeAttribute("aria-invalid");
  bindText(error, null);
  error.hidden = true;
  return true;
}

function wireStart() {
  for (const [testid, check] of [
    ["customer-email", checkEmail],
    ["customer-phone", checkPhone],
  ]) {
    const input = $(testid);
    input.addEventListener("blur", check);
    // Clear the error as soon as the customer starts fixing it; re-check on leaving the field.
    input.addEventListener("input", () => input.hasAttribute("aria-invalid") && check() && hideFormError());
  }
  $("start-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    onStart();
  });
  $("reason-select").addEventListener("change", renderHelp);
  $("call-again").addEventListener("click", () => location.assign("/call"));
}

function hideFormError() {
  const el = $("form-error");
  bindText(el, null);
  el.hidden = true;
}

function validIntake() {
  if (joinToken) return true;
  const ok = [checkEmail(), checkPhone()];
  if (ok.every(Boolean)) {
    hideFormError();
    return true;
  }
  const el = $("form-error");
  bindText(el, () => t("form_invalid"));
  el.hidden = false;
  const first = ["customer-email", "customer-phone"].find((id) => $(id).hasAttribute("aria-invalid"));
  if (first) $(first).focus();
  return false;
}

function chosenReason() {
  const code = $("reason-select").value;
  return config.reasons.find((r) => r.code === code) || null;
}

function onStart() {
  hideStartError();
  if (!validIntake()) return;
  startCall();
}

// ---------------------------------------------------------------- self-help

function safeLink(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const u = new URL(url, location.href);
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch {
    return null;
  }
}

/** The chosen reason's articles, shown above the call button (hidden when there are none). */
function renderHelp() {
  const reason = chosenReason();
  const articles = Array.isArray(reason?.help) ? reason.help.filter((a) => a && (a.title || a.body)) : [];
  const panel = $("help");
  const list = $("help-articles");
  list.replaceChildren();
  panel.hidden = !articles.length;
  for (const a of articles) {
    const item = document.createElement("li");
    item.className = "help-article";
    item.dataset.testid = "help-article";
    // An article the deployment did not translate keeps its own direction (English in a Persian page).
    item.dir = "auto";
    const title = document.createElement("h3");
    title.textContent = a.title || "";
    item.append(title);
    if (a.body) {
      const body = document.createElement("p");
      body.textContent = a.body;
      item.append(body);
    }
    const href = safeLink(a.url);
    if (href) {
      const link = document.createElement("a");
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.className = "read-more";
      link.dir = document.documentElement.dir;
      const label = document.createElement("span");
      label.dataset.i18n = "help_read_more";
      label.textContent = t("help_read_more");
      link.append(label, arrowIcon());
      item.append(link);
    }
    list.append(item);
  }
}

function arrowIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "link-icon flip-rtl");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M5 12h14M13 6l6 6-6 6");
  svg.append(path);
  return svg;
}

function wireHelp() {
  $("help-need-person").addEventListener("click", () => onStart());
  $("help-solved").addEventListener("click", () => {
    bindText($("ended-text"), () => t("solved_text"));
    bindText($("ended-at"), null);
    bindText($("call-again"), () => t("start_over"));
    $("rating").hidden = true;
    $("rating-thanks").hidden = true;
    setState("ended");
    window.scrollTo(0, 0);
    document.getElementById("ended-title").focus({ preventScroll: true });
  });
}

// ---------------------------------------------------------------- calling

function hideStartError() {
  const el = $("start-error");
  bindText(el, null);
  el.hidden = true;
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
  const el = $("start-error");
  bindText(el, () => t(key));
  el.hidden = false;
  el.scrollIntoView({ block: "nearest" });
}

function setStarting(busy) {
  starting = busy;
  for (const id of ["start-call", "help-need-person"]) {
    $(id).disabled = busy;
    $(id).setAttribute("aria-busy", String(busy));
  }
}

async function startCall() {
  if (starting) return;
  setStarting(true);
  const body = { device: describeDevice() };
  // An invite may carry the customer's language; only the customer's own choice overrides it.
  if (!joinToken || languageChosen) body.language = currentLanguage();
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
    sessionStorage.setItem(TOKEN_KEY, created.token);
    connect(created.token);
  } catch (err) {
    showStartError(err);
  } finally {
    setStarting(false);
  }
}

function connect(token) {
  callToken = token;
  answered = false;
  setState("waiting");
  bindText($("end-call"), () => t(answered ? "end" : "leave_queue"));
  bindText($("queue-position"), () => t("connecting"));
  media = new CallMedia(null, { remoteVideo: $("remote-video"), localVideo: $("local-video") });
  media
    .openCamera()
    .then(mirrorSelfView)
    .catch((err) => toast(err.code === "insecure" ? t("insecure") : t("no_camera")));
  media.addEventListener("warning", () => toast(t("no_camera")));
  signaling = new SignalingClient(() => ({ type: "hello", token }));
  media.signaling = signaling;
  chat = new ChatPanel($("chat"), {
    youAre: "customer",
    t,
    onSend: (text) => signaling.request({ type: "chat.send", text }).catch((e) => (toast(chatError(e)), Promise.reject(e))),
  });
  const add = chat.add.bind(chat);
  // A customer's chat lines are numbered within the call (`seq`); the panel knows lines by `id`.
  chat.add = (msg) => {
    add({ ...msg, id: msg.seq ?? msg.id });
    reformatChatTimes();
  };
  signaling.addEventListener("welcome", (ev) => onWelcome(ev.detail));
  signaling.addEventListener("queue.position", (ev) => showPosition(ev.detail));
  signaling.addEventListener("call.accepted", (ev) => onAccepted(ev.detail));
  signaling.addEventListener("chat.message", (ev) => chat.add(ev.detail));
  signaling.addEventListener("peer.state", (ev) => showPeerState(ev.detail));
  signaling.addEventListener("peer.media", (ev) => showPeerMedia(ev.detail));
  signaling.addEventListener("call.ended", (ev) => onEnded(ev.detail));
  signaling.addEventListener("call.transferred", () => onTransferred());
  signaling.addEventListener("recording.state", (ev) => showRecording(ev.detail));
  signaling.addEventListener("error", (ev) => onError(ev.detail));
  signaling.addEventListener("disconnected", (ev) => {
    if (ev.detail.code !== 4003 && document.body.dataset.state !== "ended") setBanner("reconnecting", "reconnecting");
  });
  signaling.connect();
}

/** Chat times in the page's language (Persian digits for fa), and each line in its own direction. */
function reformatChatTimes() {
  for (const line of document.querySelectorAll('[data-testid="chat-line"]')) {
    const time = line.querySelector("time");
    if (time?.dateTime) time.textContent = formatTime(time.dateTime);
    line.querySelector("p")?.setAttribute("dir", "auto");
  }
}

function mirrorSelfView() {
  // A selfie camera is shown as a mirror, as people expect; the back camera is not.
  $("local-video").classList.toggle("mirrored", media?.facing === "user");
}

function chatError(err) {
  if (err.code === "rate_limited") return t("chat_slow_down");
  if (err.code === "chat_full") return t("chat_full");
  return err.message;
}

function onError(err) {
  if (err.code === "token_invalid") {
    sessionStorage.removeItem(TOKEN_KEY);
    signaling.close();
    media?.stop();
    clearInterval(waitTicker);
    setState("start");
    return;
  }
  if (!err.reply_to) toast(err.message);
}

function onWelcome(msg) {
  setBanner("reconnecting", null);
  media.iceServers = msg.ice_servers || [];
  chat.replay(msg.chat || []);
  $("emotion-consent-live").checked = !!msg.session?.emotion_consent;
  $("emotion-consent-live").closest("label").hidden = !config.emotion.available;
  if (msg.session?.state === "active" && msg.call) onAccepted(msg.call);
}

function waitText(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s === 0) return t("wait_soon");
  if (s < 60) return t("wait_seconds", { n: s });
  return t("wait_minutes", { n: Math.max(1, Math.round(s / 60)) });
}

function showPosition(msg) {
  const position = Number(msg.position) || 1;
  bindText($("queue-position"), () => (position <= 1 ? t("queue_next") : t("queue_position", { n: position })));
  clearInterval(waitTicker);
  const estimate = $("estimated-wait");
  if (typeof msg.estimated_wait_s !== "number") {
    bindText(estimate, null);
    return;
  }
  let remaining = msg.estimated_wait_s;
  bindText(estimate, () => t("estimated", { wait: waitText(remaining) }));
  waitTicker = setInterval(() => {
    remaining = Math.max(0, remaining - 1);
    estimate.textContent = t("estimated", { wait: waitText(remaining) });
  }, 1000);
}

function showRecording(state) {
  $("recording-indicator").hidden = !state?.recording;
}

async function onAccepted(msg) {
  clearInterval(waitTicker);
  answered = true;
  showRecording(msg.recording);
  setState("in-call");
  bindText($("end-call"), () => t("end"));
  const name = msg.rep?.display_name;
  bindText($("call-state"), () => (name ? t("in_call_with", { name }) : t("in_call_agent")));
  try {
    await media.openCamera().catch(() => null);
    mirrorSelfView();
    await media.start();
  } catch (err) {
    toast(err.message || t("error_generic"));
  }
  if (!(await tryPlay($("remote-video")))) $("tap-to-play").hidden = false;
}

/** The rep handed the call on: wait again (media and chat stay) until the next one answers. */
function onTransferred() {
  setState("waiting");
  bindText($("queue-position"), () => t("transferring"));
}

function showPeerState(msg) {
  setBanner("reconnecting", msg.state === "reconnecting" ? "rep_reconnecting" : null);
}

function showPeerMedia(msg) {
  const keys = [];
  if (msg.audio === false) keys.push("rep_muted");
  if (msg.video === false) keys.push("rep_camera_off");
  setBanner("peer-media", keys.length ? keys : null);
}

/** A banner showing one or more catalogue keys (joined), or hidden for null. */
function setBanner(testid, keys) {
  const el = $(testid);
  if (!keys) {
    bindText(el, null);
    el.hidden = true;
    return;
  }
  const list = Array.isArray(keys) ? keys : [keys];
  bindText(el, () => list.map((k) => t(k)).join(" · "));
  el.hidden = false;
}

function onEnded({ state, reason, callback } = {}) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(waitTicker);
  media?.stop();
  signaling?.close();
  setBanner("reconnecting", null);
  setBanner("peer-media", null);
  const endedAt = new Date();
  // Nobody could take the call in time: say so, and offer a callback beside "call again".
  const timedOut = reason === "max_wait";
  bindText($("ended-text"), () =>
    t(timedOut ? "max_wait_text" : state === "abandoned" ? "abandoned_text" : "ended_text"),
  );
  bindText($("ended-at"), () => t("ended_at", { time: formatTime(endedAt) }));
  // Only a call someone answered can be rated; leaving the queue cannot.
  $("rating").hidden = !(answered && state !== "abandoned" && callToken);
  $("rating-thanks").hidden = true;
  $("callback").hidden = !(timedOut && callback && callToken);
  $("callback-thanks").hidden = true;
  setState("ended");
  window.scrollTo(0, 0);
  document.getElementById("ended-title").focus({ preventScroll: true });
}

function wireControls() {
  $("mute").addEventListener("click", (ev) => {
    if (!media) return;
    const muted = media.audioEnabled;
    media.setAudio(!muted);
    ev.currentTarget.setAttribute("aria-pressed", String(muted));
    ev.currentTarget.textContent = muted ? t("unmute") : t("mute");
  });
  $("camera-toggle").addEventListener("click", (ev) => {
    if (!media) return;
    const off = media.videoEnabled;
    media.setVideo(!off);
    ev.currentTarget.setAttribute("aria-pressed", String(off));
    ev.currentTarget.textContent = off ? t("camera_on") : t("camera_off");
  });
  $("flip-camera").addEventListener("click", () =>
    media
      ?.flipCamera()
      .then(mirrorSelfView)
      .catch((e) => toast(e.message)),
  );
  $("end-call").addEventListener("click", () => signaling?.send({ type: "call.end" }));
  $("tap-to-play").addEventListener("click", async (ev) => {
    const button = ev.currentTarget;
    button.hidden = await tryPlay($("remote-video"));
  });
  $("emotion-consent-live").addEventListener("change", (ev) => {
    signaling?.request({ type: "consent.emotion", enabled: ev.currentTarget.checked }).catch((e) => toast(e.message));
  });
}

// ---------------------------------------------------------------- callback

function callbackError(key) {
  const el = $("callback-error");
  bindText(el, key ? () => t(key) : null);
  el.hidden = !key;
}

function wireCallback() {
  const form = $("callback");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const phone = toAsciiDigits($("callback-phone").value.trim()).replace(/\s+/g, " ");
    const email = $("callback-email").value.trim();
    const digits = phone.replace(/\D/g, "").length;
    if (!phone && !email) return callbackError("callback_needs_contact");
    if (email && !EMAIL_RE.test(email)) return callbackError("email_invalid");
    if (phone && (!PHONE_CHARS_RE.test(phone) || digits < 6 || digits > 15)) return callbackError("phone_invalid");
    const button = $("callback-submit");
    button.disabled = true;
    callbackError(null);
    try {
      const contact = {};
      if (phone) contact.phone = phone;
      if (email) contact.email = email;
      await postJSON("/api/v1/calls/callback", { token: callToken, contact });
      form.hidden = true;
      const thanks = $("callback-thanks");
      thanks.hidden = false;
      thanks.focus({ preventScroll: true });
    } catch (err) {
      callbackError(err.status === 409 || err.status === 404 ? "callback_closed" : "callback_error");
      button.disabled = err.status === 409 || err.status === 404;
    }
  });
}

// ---------------------------------------------------------------- rating

function chosenStars() {
  const checked = $("rating").querySelector('input[name="rating"]:checked');
  return checked ? Number(checked.value) : 0;
}

function paintStars() {
  const value = chosenStars();
  for (const star of $("rating").querySelectorAll('[data-testid="rating-star"]')) {
    star.closest(".star").classList.toggle("on", Number(star.value) <= value);
  }
  bindText($("rating-word"), value ? () => t(`rating_${value}`) : null);
}

function ratingError(key) {
  const el = $("rating-error");
  bindText(el, key ? () => t(key) : null);
  el.hidden = !key;
}

function wireRating() {
  const form = $("rating");
  for (const star of form.querySelectorAll('[data-testid="rating-star"]')) {
    const n = Number(star.value);
    bindAttr(star, "aria-label", () => `${t("rating_star", { n })} – ${t(`rating_${n}`)}`);
    star.addEventListener("change", () => {
      paintStars();
      ratingError(null);
    });
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const rating = chosenStars();
    if (!rating) {
      ratingError("rating_choose");
      form.querySelector('[data-testid="rating-star"]').focus();
      return;
    }
    const button = $("rating-submit");
    button.disabled = true;
    ratingError(null);
    try {
      await postJSON("/api/v1/calls/rating", { token: callToken, rating, comment: $("rating-comment").value.trim() });
      form.hidden = true;
      const thanks = $("rating-thanks");
      thanks.hidden = false;
      thanks.focus({ preventScroll: true });
    } catch (err) {
      if (err.status === 404 || err.status === 409) {
        ratingError("rating_closed");
      } else {
        ratingError("rating_error");
        button.disabled = false;
      }
    }
  });
}

init();
