// Words and numbers on the staff pages: durations, clocks, percentages, and the server's
// codes as the catalogue names them.
import { formatDate, formatNumber, has, t } from "../i18n.js";

export const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
export const none = () => t("common.none");

/** "not_working" → "Not working"; nothing → the catalogue's dash. */
export function humanize(code) {
  if (!code) return none();
  const text = String(code).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The catalogue's word for a server code under `prefix`, else the code made readable. */
export const codeLabel = (prefix, code) => (code && has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : humanize(code));

const digits = (n, min = 1) => formatNumber(n, { minimumIntegerDigits: min, useGrouping: false });

/** 83 → "1:23", 3723 → "1:02:03", in the page's digits (Persian: "۱:۲۳"). */
export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = digits(s % 60, 2);
  return h ? `${digits(h)}:${digits(m, 2)}:${ss}` : `${digits(m)}:${ss}`;
}

/** A wait or call length in the catalogue's clock words: "42 s", "3 min 05 s". */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return t("common.duration.seconds", { s });
  return t("common.duration.minutes", { m: Math.floor(s / 60), ss: digits(s % 60, 2) });
}

/** 0.42 → "42%" (in the page's language: "42 %", "٪۴۲"). */
export const wholePercent = (v) => formatNumber(Math.round(v * 100) / 100, { style: "percent" });

/** A date and time in the page's language, or the dash. */
export function formatDateTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return none();
  return formatDate(d, { dateStyle: "medium", timeStyle: "short" });
}
