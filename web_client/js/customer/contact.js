// The customer's contact details, checked in the page: inline errors under the field,
// aria-invalid, the first bad field gets focus. Persian and Arabic digits go out as ASCII.
import { $ } from "../dom.js";
import { bindText, t } from "../i18n.js";

const EMAIL_RE = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const PHONE_CHARS_RE = /^\+?[0-9\s().\-/]+$/;

function toAsciiDigits(s) {
  return s
    .replace(/[\u06f0-\u06f9]/g, (d) => String(d.charCodeAt(0) - 0x06f0))
    .replace(/[\u0660-\u0669]/g, (d) => String(d.charCodeAt(0) - 0x0660));
}

/** A phone number as typed, with ASCII digits and single spaces. */
export const normalPhone = (raw) => toAsciiDigits(raw.trim()).replace(/\s+/g, " ");

/** The catalogue key saying what is wrong with an email address, or null (empty is fine). */
export const emailProblem = (email) => (email && !EMAIL_RE.test(email) ? "email_invalid" : null);

/** The catalogue key saying what is wrong with a phone number, or null (empty is fine). */
export function phoneProblem(phone) {
  const digits = phone.replace(/\D/g, "").length;
  return phone && (!PHONE_CHARS_RE.test(phone) || digits < 6 || digits > 15) ? "phone_invalid" : null;
}

/** Show a catalogue message in an error line, kept in the page's language; null hides it. */
export function showError(testid, key) {
  const node = $(testid);
  bindText(node, key ? () => t(key) : null);
  node.hidden = !key;
}

/** Show or clear the inline error under a field; true when the field is fine. */
export function showFieldError(testid, key) {
  const input = $(testid);
  if (key) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  showError(`${testid}-error`, key);
  return !key;
}

export function contactValues() {
  return { email: $("customer-email").value.trim(), phone: normalPhone($("customer-phone").value) };
}

const checkEmail = () => showFieldError("customer-email", emailProblem(contactValues().email));
const checkPhone = () => showFieldError("customer-phone", phoneProblem(contactValues().phone));
const FIELDS = [
  ["customer-email", checkEmail],
  ["customer-phone", checkPhone],
];

/** Check a field on leaving it; clear its error as soon as it is fixed, and then call `onFixed`. */
export function wireContactChecks(onFixed) {
  for (const [testid, check] of FIELDS) {
    const input = $(testid);
    input.addEventListener("blur", check);
    input.addEventListener("input", () => input.hasAttribute("aria-invalid") && check() && onFixed());
  }
}

/** Check every field (all are marked); the first bad one gets focus. */
export function validContact() {
  const ok = FIELDS.map(([, check]) => check());
  if (ok.every(Boolean)) return true;
  const first = FIELDS.map(([testid]) => testid).find((testid) => $(testid).hasAttribute("aria-invalid"));
  if (first) $(first).focus();
  return false;
}
