// The customer card: language, contact, the calling system's reference and context, and
// the customer's earlier calls. Staff-only data; context values go in as text.
import { $, el } from "../dom.js";
import { formatDate, has, t } from "../i18n.js";
import { none } from "../staff/format.js";
import { reasonLabel } from "./labels.js";

export const languageName = (code) => (code && has(`common.languages.${code}`) ? t(`common.languages.${code}`) : null);

export function showCard(customer) {
  $("customer-language").textContent = languageName(customer.language) || customer.language || none();
  const contact = customer.contact || {};
  $("customer-contact").textContent = [contact.email, contact.phone].filter(Boolean).join(t("common.separator")) || none();
  $("customer-identified").hidden = !customer.identified;
  $("customer-ref").textContent = customer.ref || "";
  const context = $("customer-context");
  context.replaceChildren();
  for (const [key, value] of Object.entries(customer.context || {})) {
    const dd = el("dd", { text: typeof value === "object" ? JSON.stringify(value) : String(value) });
    context.append(el("dt", { text: key.replaceAll("_", " ") }), dd);
  }
  context.hidden = context.childElementCount === 0;
  const history = customer.history || [];
  $("customer-history").replaceChildren(...history.map(historyItem));
  $("customer-history-count").textContent = String(history.length);
  $("customer-history-box").hidden = history.length === 0;
}

function historyItem(h) {
  const li = el("li", { testid: "customer-history-item" });
  const head = t("console.customer.history_item", {
    date: formatDate(h.date),
    reason: reasonLabel(h.reason) || none(),
    outcome: (h.outcome || "").replaceAll("_", " "),
  });
  li.append(el("strong", { text: head }));
  if (h.notes) li.append(el("p", { className: "small", text: h.notes }));
  return li;
}
