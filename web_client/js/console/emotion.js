// The emotion panel: cues describe the CUSTOMER's expression, never the rep. A meter, the
// expression, a sparkline of the last 60 s and a flag (with an optional sound) when the
// customer's frustration stays high.
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { none, wholePercent } from "../staff/format.js";
import { beep } from "./alert.js";

const spark = []; // [media_time, smoothed] for the last 60 s
let flagWasActive = false;

export function resetEmotion() {
  spark.length = 0;
  $("emotion-flag").hidden = true;
  $("emotion-off").hidden = true;
  $("emotion-label").textContent = none();
  $("emotion-face").textContent = "";
  setMeter(0);
  drawSpark();
}

function setMeter(value) {
  const pct = Math.round(value * 100);
  const meter = $("emotion-meter");
  meter.setAttribute("aria-valuenow", String(pct));
  meter.setAttribute("aria-valuetext", wholePercent(value)); // read with its name ("Frustration") and the expression
  meter.querySelector(".fill").style.setProperty("inline-size", `${pct}%`);
  meter.dataset.level = value >= 0.5 ? "high" : value >= 0.3 ? "mid" : "low";
}

export function showEmotion(u) {
  $("emotion-off").hidden = true;
  document.querySelector(".emotion").classList.remove("off");
  setMeter(u.smoothed);
  $("emotion-label").textContent = u.face_present ? (u.dominant ? t(`console.emotion.expressions.${u.dominant}`, {}, u.dominant) : none()) : t("console.emotion.no_face");
  $("emotion-face").textContent = u.face_present ? "" : t("console.emotion.face_hidden");
  $("emotion-label").dataset.face = String(u.face_present);
  spark.push([u.media_time, u.smoothed]);
  while (spark.length && spark[0][0] < u.media_time - 60) spark.shift();
  drawSpark();
  const flag = $("emotion-flag");
  if (u.flag_active) {
    flag.textContent = t("console.emotion.flag", { seconds: Math.max(1, Math.round(u.flag_seconds)) });
    flag.hidden = false;
    if (!flagWasActive && $("emotion-sound").checked) beep(440, 0.3);
  } else {
    flag.hidden = true;
  }
  flagWasActive = u.flag_active;
}

export function showEmotionStatus(s) {
  if (s.status === "off" || s.status === "unavailable") {
    const off = $("emotion-off");
    off.textContent = s.status === "off" ? t("console.emotion.off") : s.message;
    off.dataset.status = s.status;
    off.hidden = false;
    $("emotion-flag").hidden = true;
    document.querySelector(".emotion").classList.add("off");
    setMeter(0);
  } else if (s.status === "degraded" || s.status === "starting") {
    $("emotion-service").textContent = s.message;
  } else {
    $("emotion-service").textContent = "";
  }
}

function drawSpark() {
  const canvas = $("emotion-sparkline");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (spark.length < 2) return;
  const end = spark[spark.length - 1][0];
  ctx.strokeStyle = "#c0392b";
  ctx.lineWidth = 2;
  ctx.beginPath();
  spark.forEach(([at, v], i) => {
    const x = canvas.width * (1 - (end - at) / 60);
    const y = canvas.height * (1 - v);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
