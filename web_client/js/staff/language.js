// The staff pages' language (console, QA, supervisor, admin).
//
// - Which one: the staff member's own choice, stored on the server (GET /api/v1/me answers
//   `language`); else a choice made on this device before signing in (localStorage
//   rapport.staffLang); else the browser's languages (navigator.languages) matched with
//   i18n.matchLanguage; else English. A code without a catalogue falls back to English.
// - The picker (data-testid staff-language) in the page's top bar: signed in, the choice is stored
//   with PUT /api/v1/me/language; then the page reloads, because much of it is drawn from the
//   catalogue by code as it renders (a reload redraws everything in the new language at once).
import { request } from "../http.js";
import { getLanguages, loadStaffStrings, matchLanguage, t } from "../i18n.js";
import { toast } from "../dom.js";
import { csrfToken, signedInUser } from "./session.js";

const LOCAL_KEY = "rapport.staffLang";
let me = null;
let attempted = "en"; // the language asked of loadStaffStrings (what a login's choice is compared with)

/** GET /api/v1/me once per page: {ok, status, body} (body: the login, or null), or null when unreachable. */
export function whoAmI() {
  me ??= fetch("/api/v1/me", { credentials: "same-origin" }).then(
    async (r) => ({ ok: r.ok, status: r.status, body: r.ok ? await r.json().catch(() => null) : null }),
    () => null,
  );
  return me;
}

function localChoice() {
  try {
    return localStorage.getItem(LOCAL_KEY);
  } catch {
    return null;
  }
}

function rememberLocally(code) {
  try {
    localStorage.setItem(LOCAL_KEY, code);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
}

/** The first of the browser's languages that is offered, or null. */
export function browserLanguage() {
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const code of wanted) {
    const match = matchLanguage(code);
    if (match) return match;
  }
  return null;
}

/** Load the page's strings in the staff member's language and put the picker in the top bar. */
export async function startStaffLanguage() {
  const answer = await whoAmI();
  attempted = matchLanguage(answer?.body?.language) || matchLanguage(localChoice()) || browserLanguage() || "en";
  const lang = await loadStaffStrings(attempted);
  addPicker(lang);
  return lang;
}

/** After a sign-in: the staff member chose another language than the page shows, so show theirs. */
export function followLoginLanguage(answer) {
  const chosen = matchLanguage(answer?.language);
  if (chosen && chosen !== attempted) location.reload();
}

function addPicker(lang) {
  const bar = document.querySelector("header.topbar");
  if (!bar || bar.querySelector("[data-testid=staff-language]")) return;
  const select = document.createElement("select");
  select.dataset.testid = "staff-language";
  select.className = "staff-language";
  select.setAttribute("aria-label", t("common.language_label"));
  for (const l of getLanguages()) {
    const option = new Option(l.name || l.code, l.code);
    option.lang = l.code;
    option.dir = l.dir === "rtl" ? "rtl" : "ltr";
    select.add(option);
  }
  select.value = lang;
  select.addEventListener("change", () => choose(select.value, select, lang));
  const who = bar.querySelector(".who");
  bar.insertBefore(select, who);
}

async function choose(code, select, previous) {
  rememberLocally(code);
  if (signedInUser()) {
    try {
      await request("PUT", "/api/v1/me/language", { body: { language: code }, headers: { "X-CSRF-Token": csrfToken() } });
    } catch (err) {
      select.value = previous;
      toast(err.message || t("common.request_failed", { status: err.status }));
      return;
    }
  }
  location.reload();
}
