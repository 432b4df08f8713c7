// The staff pages' strings: one catalogue, /static/i18n/staff-en.json, read once before the
// first render. In the HTML, data-i18n="key" sets an element's text and
// data-i18n-attr="attribute:key;…" sets attributes. A data-i18n element may keep children
// marked data-i18n-slot="name": its {name} placeholder is filled with that child (the element
// itself, with its test id and listeners), the rest of the string goes around it as text.

const STRINGS_URL = "/static/i18n/staff-en.json";

let strings = {};
let locale = "en";
let plural = new Intl.PluralRules("en");

function lookup(key) {
  return String(key)
    .split(".")
    .reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), strings);
}

/** The catalogue's locale ("en" until loaded). */
export function currentLocale() {
  return locale;
}

/** Whether the catalogue has a string (or plural set) for `key`. */
export function has(key) {
  const value = lookup(key);
  return typeof value === "string" || Boolean(value && typeof value === "object" && "other" in value);
}

/**
 * The catalogue's string for `key` with {name} placeholders filled from `vars`;
 * {one, other} objects pick by vars.count. A missing key gives `fallback`, else the key itself.
 */
export function t(key, vars = {}, fallback = undefined) {
  let value = lookup(key);
  if (value && typeof value === "object" && "other" in value) value = value[plural.select(Number(vars.count) || 0)] ?? value.other;
  if (typeof value !== "string") return fallback ?? key;
  return value.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Fetch the catalogue and set the document's language and direction. Failing, the keys stay visible. */
export async function loadStrings(url = STRINGS_URL) {
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.ok) strings = await r.json();
  } catch {
    /* keys stay visible: better than a blank page */
  }
  locale = strings.locale || "en";
  try {
    plural = new Intl.PluralRules(locale);
  } catch {
    plural = new Intl.PluralRules("en");
  }
  document.documentElement.lang = locale;
  document.documentElement.dir = strings.dir || "ltr";
  return strings;
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

/** Fill every data-i18n / data-i18n-attr element in `root` (and `root` itself) from the catalogue. */
export function applyStrings(root = document) {
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
}

/** A wait or call length: "42 s", "3 min 05 s" (the staff pages' clock words). */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return t("common.duration.seconds", { s });
  return t("common.duration.minutes", { m: Math.floor(s / 60), ss: String(s % 60).padStart(2, "0") });
}
