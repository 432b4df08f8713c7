// Webhook endpoints: create (the signing secret shown once), delete, a test delivery through the real
// dispatcher (its result shown), and each endpoint's delivery log.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { announce, button, cell, checkboxes, checkedValues, showError, showSecret, when } from "./common.js";

const EVENTS = ["session.created", "session.answered", "session.ended", "recording.ready", "emotion.flag", "callback.requested", "callback.started"];

export function wireWebhooks() {
  checkboxes($("webhook-events"), "webhook-event", EVENTS.map((e) => [e, e]));
  $("webhook-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("webhook-error", null);
    const body = { url: $("webhook-url").value.trim(), events: checkedValues($("webhook-events")) };
    if ($("webhook-description").value.trim()) body.description = $("webhook-description").value.trim();
    try {
      const hook = await api("POST", "/api/v1/webhooks", body);
      $("webhook-form").reset();
      showSecret("webhook-secret", hook.secret);
      announce(t("admin.webhooks.created"));
      await loadWebhooks();
    } catch (err) {
      showError("webhook-error", err);
    }
  });
}

export async function loadWebhooks() {
  const { items } = await api("GET", "/api/v1/webhooks");
  $("webhooks-rows").replaceChildren(...items.map(row));
}

function outcome(d) {
  if (d.state === "delivered") return t("admin.webhooks.delivered", { status: d.last_status ?? "" });
  return t("admin.webhooks.failed", { error: d.last_error || d.last_status || d.state });
}

function row(hook) {
  const tr = el("tr", { testid: `webhook-row-${hook.id}` });
  const result = el("td", { testid: `webhook-result-${hook.id}` });
  result.setAttribute("role", "status");
  const actions = el("td", { className: "row-actions" });
  actions.append(
    button(t("admin.webhooks.test"), `webhook-test-${hook.id}`, async (ev) => {
      ev.target.disabled = true;
      result.textContent = t("admin.webhooks.testing");
      try {
        const sent = await api("POST", `/api/v1/webhooks/${hook.id}/test`);
        result.textContent = outcome(sent);
        result.dataset.state = sent.state;
        announce(result.textContent);
        await showDeliveries(hook);
      } catch (err) {
        showError("webhook-error", err);
      } finally {
        ev.target.disabled = false;
      }
    }),
    button(t("admin.webhooks.log"), `webhook-log-${hook.id}`, () => showDeliveries(hook)),
    button(t("admin.webhooks.delete"), `webhook-delete-${hook.id}`, async () => {
      try {
        await api("DELETE", `/api/v1/webhooks/${hook.id}`);
        announce(t("admin.webhooks.deleted"));
      } catch (err) {
        showError("webhook-error", err);
      }
      $("deliveries").hidden = true;
      await loadWebhooks();
    }, "danger"),
  );
  tr.append(cell(hook.url), cell(hook.events.join(", ")), result, actions);
  return tr;
}

async function showDeliveries(hook) {
  const { items } = await api("GET", `/api/v1/webhooks/${hook.id}/deliveries?limit=20`);
  $("deliveries-title").textContent = t("admin.webhooks.log_of", { url: hook.url });
  $("deliveries-rows").replaceChildren(
    ...items.map((d) => {
      const tr = el("tr", { testid: `delivery-row-${d.id}` });
      const attempts = cell(String(d.attempts));
      attempts.className = "num";
      tr.append(cell(d.event), cell(d.state), attempts, cell(d.state === "pending" && !d.attempts ? "" : outcome(d)), cell(when(d.created_at)));
      return tr;
    }),
  );
  $("deliveries").hidden = false;
}
