// Every string the customer sees, by key. English for now; other catalogues slot in here.

const CATALOGUES = {
  en: {
    title: "Talk to us face to face",
    intro: "A real person will answer on video. No app, no account.",
    name_label: "Your name (optional)",
    reason_label: "What is it about?",
    start_call: "Video call",
    emotion_notice_title: "Emotion cues",
    emotion_notice:
      "During the call, software reads your facial expression and shows the agent an automated cue (for example, that you look frustrated), so they can help you better. Only scores are kept, never pictures. You can turn this off now or during the call.",
    emotion_toggle: "Show emotion cues to the agent",
    emotion_unavailable: "Emotion cues are not used on this service.",
    waiting_title: "You are in the queue",
    position: (n) => (n === 1 ? "You are next" : `You are number ${n} in the queue`),
    estimated: (w) => `Estimated wait: ${w}`,
    leave_queue: "Leave the queue",
    connecting: "Connecting you…",
    in_call_with: (name) => `Talking with ${name}`,
    mute: "Mute",
    unmute: "Unmute",
    camera_off: "Camera off",
    camera_on: "Camera on",
    flip: "Switch camera",
    end: "End call",
    chat: "Chat",
    chat_placeholder: "Type a message",
    send: "Send",
    you: "You",
    reconnecting: "Reconnecting…",
    rep_reconnecting: "The agent's connection dropped. Reconnecting…",
    rep_muted: "The agent is muted",
    rep_camera_off: "The agent's camera is off",
    ended_title: "Thank you",
    ended_text: "The call has ended.",
    abandoned_text: "You left the queue.",
    call_again: "Call again",
    tap_to_play: "Tap to start video and sound",
    no_camera: "We could not use your camera. You can still talk and chat.",
    insecure: "This page needs a secure (https) connection to use the camera.",
    invite_invalid: "This link is no longer valid. Please ask for a new one.",
    error_generic: "Something went wrong. Please try again.",
    busy: "Please wait a moment before trying again.",
    recording_title: "Recording",
    recording_always: "This call is recorded for quality and training. Recordings are kept securely and deleted after a set time.",
    recording_ask: "May we record this call for quality and training? Recordings are kept securely and deleted after a set time.",
    recording_toggle: "Yes, you may record this call",
    recording_on: "Recording",
    cues_on: "Emotion cues on",
    cues_off: "Emotion cues off",
  },
};

const lang = "en";
const catalogue = CATALOGUES[lang];

export function t(key, ...args) {
  const entry = catalogue[key] ?? CATALOGUES.en[key] ?? key;
  return typeof entry === "function" ? entry(...args) : entry;
}

/** Fill every element carrying data-i18n="key" (text) or data-i18n-placeholder. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  root.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
  root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => (el.placeholder = t(el.dataset.i18nPlaceholder)));
}
