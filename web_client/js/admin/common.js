// What the admin page's sections share: announcing a result to screen readers, showing an error,
// a secret shown once, checkbox groups and small table helpers.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";

/** Say a result in the page's live region (and keep it for tests to read). */
export function announce(text) {
  const node = $("admin-announce");
  node.textContent = "";
  // A fresh text node after a tick, so the same message is read again.
  setTimeout(() => (node.textContent = text), 30);
}

export function showError(testid, err) {
  const node = $(testid);
  node.textContent = err ? err.message || String(err) : "";
  node.hidden = !err;
  if (err) announce(node.textContent);
}

/** Show a secret once in the box ``testid`` (its value in ``testid``-value) until dismissed. */
export function showSecret(testid, value, text) {
  const box = $(testid);
  $(`${testid}-value`).textContent = value;
  if (text != null) $(`${testid}-text`).textContent = text;
  box.hidden = false;
  $(`${testid}-dismiss`).onclick = () => {
    $(`${testid}-value`).textContent = "";
    box.hidden = true;
  };
  $(`${testid}-dismiss`).focus();
}

/** Fill a fieldset with one labelled checkbox per [value, label]; ``name`` prefixes the test ids. */
export function checkboxes(fieldset, name, items, checked = []) {
  fieldset.querySelectorAll("label").forEach((n) => n.remove());
  for (const [value, label] of items) {
    const box = Object.assign(el("input", { testid: `${name}-${value}` }), { type: "checkbox", value, checked: checked.includes(value) });
    const wrap = el("label");
    wrap.append(box, " ", label);
    fieldset.append(wrap);
  }
}

export const checkedValues = (fieldset) => [...fieldset.querySelectorAll("input:checked")].map((n) => n.value);

export function cell(text) {
  return el("td", { text: text ?? "" });
}

export function button(text, testid, onClick, className) {
  const b = el("button", { text, testid, className });
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : t("common.none"));
