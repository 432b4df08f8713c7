// Getting the rep's attention: a two-tone beep (WebAudio), a highlighted queue and a
// flashing tab title when a customer arrives or a call rings.
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
