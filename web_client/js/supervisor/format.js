// Numbers, times, dates and codes as the supervisor dashboard shows them, in the
// catalogue's locale. Dates are UTC days ("2024-05-01"), as the reports API counts them.
import { $ } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";
import { deploymentLanguages, reasonLabel as staffReasonLabel } from "../staff/deployment.js";
import { codeLabel, formatClock, isNumber, none } from "../staff/format.js";

export const integer = (v) => (isNumber(v) ? new Intl.NumberFormat(currentLanguage()).format(Math.round(v)) : none());
export const clock = (s) => (isNumber(s) ? formatClock(s) : none());

export function percent(v) {
  if (!isNumber(v)) return none();
  const digits = v > 0 && v < 0.1 ? 1 : 0;
  return new Intl.NumberFormat(currentLanguage(), { style: "percent", maximumFractionDigits: digits }).format(v);
}

export function rating(v) {
  return isNumber(v) ? new Intl.NumberFormat(currentLanguage(), { maximumFractionDigits: 1 }).format(v) : none();
}

export const reasonLabel = (code) => (code ? staffReasonLabel(code) : t("common.unknown"));
export const statusLabel = (status) => codeLabel("common.status", status);

export function languageLabel(code) {
  if (!code) return none();
  try {
    const name = new Intl.DisplayNames([currentLanguage()], { type: "language" }).of(code);
    if (name && name !== code) return name;
  } catch {
    /* an odd code: fall through */
  }
  return deploymentLanguages.get(code) || String(code).toUpperCase();
}

export function priorityLabel(p) {
  const n = Number(p) || 0;
  if (n === 0) return t("common.priority.normal");
  if (n === 10) return t("common.priority.high");
  return t("common.priority.level", { n });
}

const utcDate = (iso) => new Date(`${iso}T00:00:00Z`);
const isoDay = (date) => date.toISOString().slice(0, 10);
export const todayUTC = () => isoDay(new Date());

export function addDays(iso, days) {
  const d = utcDate(iso);
  d.setUTCDate(d.getUTCDate() + days);
  return isoDay(d);
}

export function dayLabel(iso, long = false) {
  const d = utcDate(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const options = long ? { weekday: "short", day: "numeric", month: "short", year: "numeric" } : { day: "numeric", month: "short" };
  return new Intl.DateTimeFormat(currentLanguage(), { ...options, timeZone: "UTC" }).format(d);
}

/** The number inside the summary tile with this test id. */
export const tileValue = (testid) => $(testid).querySelector(".tile-value");
