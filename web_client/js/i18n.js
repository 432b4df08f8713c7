// Every string a page shows comes from a catalogue in web_client/i18n/, through this module.
//
// - The customer page speaks several languages: setLanguages(config.languages), then
//   setLanguage(code) fetches <code>.json (flat keys) and switches at once, without a reload.
//   English is always loaded too and fills any key a catalogue lacks. Parameters are
//   localised: numbers through Intl.NumberFormat (Persian digits), strings wrapped in Unicode
//   isolates so a Latin name inside a Persian sentence keeps its order.
// - The staff pages read staff-<code>.json (nested keys, "qa.list.title"; English fills any key
//   a catalogue lacks): loadStaffStrings(code) before the first render. A staff member's language
//   is chosen in staff/language.js. Numbers in parameters follow the language (Persian digits);
//   strings are wrapped in Unicode isolates on right-to-left pages only.
//
// Values are strings with {placeholders}, or plural objects keyed by the Intl.PluralRules
// categories ({"one": "...", "other": "..."}), picked by the `count` (or `n`) parameter.
//
// In the HTML: data-i18n="key" sets an element's text; data-i18n-attr="attribute:key;…",
// data-i18n-placeholder, data-i18n-aria-label and data-i18n-title set attributes. A data-i18n
// element may keep children marked data-i18n-slot="name": its {name} placeholder is filled
// with that child (the element itself, with its test id and listeners), the rest of the
// string goes around it as text.

const FALLBACK = "en";
const staffStringsUrl = (code) => `/static/i18n/staff-${encodeURIComponent(code)}.json`;
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
let isolateStrings = true; // the customer page always; the staff pages on right-to-left pages only
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

/** The page's language ("en" until a catalogue is loaded). */
export function currentLanguage() {
  return lang;
}

export function direction(code = lang) {
  const entry = languages.find((l) => l.code === code) || DEFAULT_LANGUAGES.find((l) => l.code === code);
  return entry?.dir === "rtl" ? "rtl" : "ltr";
}

function useLocale(code, dir) {
  lang = code;
  // Numbers and times follow the browser's region when it speaks this language (en-GB: 24-hour clock).
  const regional = (navigator.languages || []).find((l) => l.toLowerCase().startsWith(`${code}-`));
  const locales = regional ? [regional, code] : [code];
  try {
    pluralRules = new Intl.PluralRules(code);
    numberFormat = new Intl.NumberFormat(locales);
    timeFormat = new Intl.DateTimeFormat(locales, { timeStyle: "short" });
  } catch {
    pluralRules = englishRules; // an odd locale in a catalogue: count the English way
  }
  document.documentElement.lang = code;
  document.documentElement.dir = dir;
}

/** Customer page: load a catalogue and switch the page to it at once (no reload). Falls back to English. */
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
  isolateStrings = true;
  useLocale(effective, direction(effective));
  translatePage();
  for (const fn of listeners) fn(effective);
  return effective;
}

async function fetchStaff(code) {
  try {
    const r = await fetch(staffStringsUrl(code), { credentials: "same-origin" });
    const strings = r.ok ? await r.json() : null;
    return strings && typeof strings === "object" && !Array.isArray(strings) ? strings : null;
  } catch {
    return null;
  }
}

/**
 * Staff pages: fetch staff-<code>.json (and English, which fills any key it lacks) and fill the page.
 * A code that is not offered, or a catalogue that fails to load, gives English; if even English
 * fails, the keys stay visible (better than a blank page). Answers the language in use.
 */
export async function loadStaffStrings(code = FALLBACK) {
  const wanted = matchLanguage(code) || FALLBACK;
  const [base, chosen] = await Promise.all([fetchStaff(FALLBACK), wanted === FALLBACK ? null : fetchStaff(wanted)]);
  english = base || {};
  catalogue = chosen || english;
  const effective = chosen ? wanted : FALLBACK;
  const dir = catalogue.dir === "rtl" ? "rtl" : "ltr";
  isolateStrings = dir === "rtl";
  useLocale(typeof catalogue.locale === "string" ? catalogue.locale : effective, dir);
  translatePage();
  for (const fn of listeners) fn(effective);
  return effective;
}

/** Call `fn(lang)` after every language switch. */
export function onLanguageChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** A flat key ("reason.order") or a path through nested objects ("qa.list.title"). */
function entryIn(strings, key) {
  if (Object.hasOwn(strings, key)) return strings[key];
  let node = strings;
  for (const part of String(key).split(".")) {
    if (!node || typeof node !== "object" || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

const isPlural = (entry) => Boolean(entry) && typeof entry === "object" && "other" in entry;
const isEntry = (entry) => typeof entry === "string" || isPlural(entry);

/** Whether the catalogue (or English) has a string or plural set for `key`. */
export function has(key) {
  return isEntry(entryIn(catalogue, key)) || isEntry(entryIn(english, key));
}

export function formatNumber(n, options = undefined) {
  return options ? new Intl.NumberFormat(numberFormat.resolvedOptions().locale, options).format(n) : numberFormat.format(n);
}

/** A date (and time) in the page's language: options as Intl.DateTimeFormat's. */
export function formatDate(date, options = { dateStyle: "medium" }) {
  const d = date instanceof Date ? date : new Date(date);
  return Number.isNaN(d.getTime()) ? "" : new Intl.DateTimeFormat(timeFormat.resolvedOptions().locale, options).format(d);
}

export function formatTime(date) {
  const d = date instanceof Date ? date : new Date(date);
  return Number.isNaN(d.getTime()) ? "" : timeFormat.format(d);
}

function pick(entry, params, rules) {
  if (!isPlural(entry)) return entry;
  const n = Number(params.count ?? params.n) || 0;
  return entry[rules.select(n)] ?? entry.other;
}

function formatParam(value) {
  if (typeof value === "number") return numberFormat.format(value);
  return isolateStrings ? `${FSI}${String(value ?? "")}${PDI}` : String(value ?? "");
}

/**
 * The string for `key` in the current language with {name} placeholders filled from `params`,
 * English if the catalogue lacks it, else `fallback` (or the key itself).
 */
export function t(key, params = {}, fallback = undefined) {
  let entry = entryIn(catalogue, key);
  let rules = pluralRules;
  if (!isEntry(entry)) {
    entry = entryIn(english, key);
    rules = englishRules;
  }
  const text = isEntry(entry) ? pick(entry, params || {}, rules) : undefined;
  if (typeof text !== "string") return fallback ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (params && name in params ? formatParam(params[name]) : whole));
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

/** Put `text` into `node`, replacing each {slot} with the matching data-i18n-slot child. */
function fillWithSlots(node, text) {
  const slots = new Map([...node.querySelectorAll(":scope > [data-i18n-slot]")].map((child) => [child.dataset.i18nSlot, child]));
  if (!slots.size) {
    node.textContent = text;
    return;
  }
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/\{(\w+)\}/g)) {
    const child = slots.get(match[1]);
    if (!child) continue;
    parts.push(text.slice(last, match.index), child);
    slots.delete(match[1]);
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  node.replaceChildren(...parts.filter((part) => part !== ""), ...slots.values()); // an unused slot is kept, at the end
}

// [attribute, the data attribute naming its key, that data attribute in dataset]
const ATTRIBUTE_MARKS = [
  ["placeholder", "data-i18n-placeholder", "i18nPlaceholder"],
  ["aria-label", "data-i18n-aria-label", "i18nAriaLabel"],
  ["title", "data-i18n-title", "i18nTitle"],
];

/** Fill every marked element in `root` (and `root` itself) from the catalogue, and re-run the bindings. */
export function translatePage(root = document) {
  const within = (selector) => {
    const found = [...root.querySelectorAll(selector)];
    if (root.matches?.(selector)) found.unshift(root);
    return found;
  };
  for (const node of within("[data-i18n]")) fillWithSlots(node, t(node.dataset.i18n));
  for (const node of within("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) node.setAttribute(attr, t(key));
    }
  }
  for (const [attr, mark, field] of ATTRIBUTE_MARKS) {
    for (const node of within(`[${mark}]`)) node.setAttribute(attr, t(node.dataset[field]));
  }
  if (root === document && has("page_title")) document.title = t("page_title");
  for (const [target, render] of bound) {
    if (target instanceof Element) target.textContent = render();
    else target.el.setAttribute(target.attr, render());
  }
}
