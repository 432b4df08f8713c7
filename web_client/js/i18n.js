// Every string the customer sees comes from a catalogue: web_client/i18n/<code>.json,
// fetched on demand. English is always loaded too and fills any key a catalogue lacks.
//
// Catalogue values are strings with {placeholders}, or plural objects keyed by the
// Intl.PluralRules categories of the language ({"one": "...", "other": "..."}); the
// plural form is picked by the `n` parameter. Numbers are formatted with
// Intl.NumberFormat (Persian gets Persian digits), and string parameters are wrapped
// in Unicode isolates so a Latin name inside a Persian sentence keeps its order.

const FALLBACK = "en";
const FSI = "\u2068";
const PDI = "\u2069";

/** Used when /api/v1/config does not list languages. */
export const DEFAULT_LANGUAGES = [
  { code: "en", name: "English", dir: "ltr" },
  { code: "nl", name: "Nederlands", dir: "ltr" },
  { code: "cs", name: "Čeština", dir: "ltr" },
  { code: "fa", name: "فارسی", dir: "rtl" },
  { code: "nb", name: "Norsk bokmål", dir: "ltr" },
];

let languages = DEFAULT_LANGUAGES;
let lang = FALLBACK;
let catalogue = {};
let english = {};
let pluralRules = new Intl.PluralRules(FALLBACK);
const englishRules = new Intl.PluralRules(FALLBACK);
let numberFormat = new Intl.NumberFormat(FALLBACK);
let timeFormat = new Intl.DateTimeFormat(FALLBACK, { timeStyle: "short" });
let switchSeq = 0;
const loading = new Map();
const bound = new Map(); // element -> () => string, re-run on every language change
const listeners = new Set();

function load(code) {
  if (!loading.has(code)) {
    const p = fetch(`/static/i18n/${encodeURIComponent(code)}.json`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`catalogue ${code}: ${r.status}`))))
      .catch((err) => {
        loading.delete(code); // let a later switch try again
        throw err;
      });
    loading.set(code, p);
  }
  return loading.get(code);
}

/** The languages offered, normally `config.languages` from the server. */
export function setLanguages(list) {
  const valid = (list || []).filter((l) => l && typeof l.code === "string" && /^[a-z]{2,3}(-[A-Za-z0-9]+)*$/.test(l.code));
  languages = valid.length ? valid : DEFAULT_LANGUAGES;
  return languages;
}

export function getLanguages() {
  return languages;
}

/** The offered language that best matches `code` ("nb-NO" → "nb", "no" → "nb"), or null. */
export function matchLanguage(code) {
  if (!code || typeof code !== "string") return null;
  const lower = code.toLowerCase();
  const codes = languages.map((l) => l.code);
  if (codes.includes(lower)) return lower;
  const base = lower.split(/[-_]/)[0];
  if (codes.includes(base)) return base;
  if ((base === "no" || base === "nn") && codes.includes("nb")) return "nb";
  return null;
}

export function currentLanguage() {
  return lang;
}

export function direction(code = lang) {
  const entry = languages.find((l) => l.code === code) || DEFAULT_LANGUAGES.find((l) => l.code === code);
  return entry?.dir === "rtl" ? "rtl" : "ltr";
}

/** Load a catalogue and switch the page to it at once (no reload). Falls back to English. */
export async function setLanguage(code) {
  const seq = ++switchSeq;
  const wanted = matchLanguage(code) || FALLBACK;
  const [base, chosen] = await Promise.all([
    load(FALLBACK).catch(() => ({})),
    wanted === FALLBACK ? null : load(wanted).catch(() => null),
  ]);
  if (seq !== switchSeq) return lang; // a newer switch won the race
  english = base || {};
  const effective = chosen ? wanted : FALLBACK;
  catalogue = chosen || english;
  lang = effective;
  // Numbers and times follow the browser's region when it speaks this language (en-GB: 24-hour clock).
  const regional = (navigator.languages || []).find((l) => l.toLowerCase().startsWith(`${effective}-`));
  const locales = regional ? [regional, effective] : [effective];
  pluralRules = new Intl.PluralRules(effective);
  numberFormat = new Intl.NumberFormat(locales);
  timeFormat = new Intl.DateTimeFormat(locales, { timeStyle: "short" });
  const root = document.documentElement;
  root.lang = effective;
  root.dir = direction(effective);
  translatePage();
  for (const fn of listeners) fn(effective);
  return effective;
}

/** Call `fn(lang)` after every language switch. */
export function onLanguageChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function has(key) {
  return Object.hasOwn(catalogue, key) || Object.hasOwn(english, key);
}

export function formatNumber(n) {
  return numberFormat.format(n);
}

export function formatTime(date) {
  const d = date instanceof Date ? date : new Date(date);
  return Number.isNaN(d.getTime()) ? "" : timeFormat.format(d);
}

function pick(entry, params, rules) {
  if (entry === null || typeof entry !== "object") return entry;
  const n = typeof params.n === "number" ? params.n : 0;
  return entry[rules.select(n)] ?? entry.other ?? Object.values(entry)[0];
}

/**
 * The string for `key` in the current language, English if the catalogue lacks it,
 * else `fallback` (or the key itself).
 */
export function t(key, params = {}, fallback = undefined) {
  let entry = Object.hasOwn(catalogue, key) ? catalogue[key] : undefined;
  let rules = pluralRules;
  if (entry === undefined && Object.hasOwn(english, key)) {
    entry = english[key];
    rules = englishRules;
  }
  if (entry === undefined) return fallback ?? key;
  const text = pick(entry, params || {}, rules);
  if (typeof text !== "string") return fallback ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!params || !(name in params)) return whole;
    const value = params[name];
    if (typeof value === "number") return numberFormat.format(value);
    return `${FSI}${String(value ?? "")}${PDI}`;
  });
}

/**
 * Keep `el.textContent` in the current language: `render` runs now and after every
 * switch. A null render clears the binding (and the text).
 */
export function bindText(el, render) {
  if (!el) return;
  if (!render) {
    bound.delete(el);
    el.textContent = "";
    return;
  }
  bound.set(el, render);
  el.textContent = render();
}

/** Same as bindText for an attribute (aria-label, placeholder, title). */
export function bindAttr(el, attr, render) {
  if (!el) return;
  const key = { el, attr };
  for (const k of bound.keys()) if (k.el === el && k.attr === attr) bound.delete(k);
  bound.set(key, render);
  el.setAttribute(attr, render());
}

/** Fill every element carrying data-i18n (text), data-i18n-placeholder, data-i18n-aria-label or data-i18n-title. */
export function translatePage(root = document) {
  root.querySelectorAll("[data-i18n]").forEach((el) => (el.textContent = t(el.dataset.i18n)));
  root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => (el.placeholder = t(el.dataset.i18nPlaceholder)));
  root.querySelectorAll("[data-i18n-aria-label]").forEach((el) => el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel)));
  root.querySelectorAll("[data-i18n-title]").forEach((el) => (el.title = t(el.dataset.i18nTitle)));
  if (root === document && has("page_title")) document.title = t("page_title");
  for (const [target, render] of bound) {
    if (target instanceof Element) target.textContent = render();
    else target.el.setAttribute(target.attr, render());
  }
}
