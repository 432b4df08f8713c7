// Getting the rep's attention: a two-tone beep (WebAudio), a highlighted queue and a
// flashing tab title when a customer arrives or a call rings, and a desktop notification
// for a ringing call while the console's tab is in the background.
import { t } from "../i18n.js";

let audioCtx = null;

export function alertNewCustomer() {
  document.body.classList.add("ringing");
  setTimeout(() => document.body.classList.remove("ringing"), 3000);
  beep(880, 0.15);
  setTimeout(() => beep(660, 0.2), 200);
  const title = document.title;
  document.title = t("console.new_customer_title");
  setTimeout(() => (document.title = title), 4000);
}

export function beep(freq, seconds) {
  try {
    audioCtx ||= new AudioContext();
    const osc = audioCtx.createOscillator();
    const gain = audioCtx.createGain();
    osc.frequency.value = freq;
    gain.gain.value = 0.1;
    osc.connect(gain).connect(audioCtx.destination);
    osc.start();
    osc.stop(audioCtx.currentTime + seconds);
  } catch {
    /* no audio device: the visual alert remains */
  }
}

/** Asked when the rep first makes themselves available: a click of theirs, and the moment
 * from which calls ring. Never asked again once they answered either way. */
export function askToNotify() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  Notification.requestPermission().catch(() => {});
}

/** A call rings while the console is not in view: a desktop notification that brings it back. */
export function notifyRinging(text, tag) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return null;
  try {
    const note = new Notification(t("console.offer.notify_title"), { body: text, tag, requireInteraction: true });
    note.onclick = () => {
      window.focus();
      note.close();
    };
    return note;
  } catch {
    return null; // a browser that allows notifications only from a service worker: the beep and title remain
  }
}
