// API keys for other systems: create (the key shown once), list (prefix, scopes, last used), revoke.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { announce, button, cell, checkboxes, checkedValues, showError, showSecret, when } from "./common.js";

const SCOPES = ["invites:write", "sessions:read", "webhooks:manage"];

export function wireKeys() {
  checkboxes($("key-scopes"), "key-scope", SCOPES.map((s) => [s, s]));
  $("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("key-error", null);
    try {
      const key = await api("POST", "/api/v1/api-keys", { name: $("key-name").value.trim(), scopes: checkedValues($("key-scopes")) });
      $("key-form").reset();
      showSecret("key-secret", key.secret);
      announce(t("admin.keys.created", { name: key.name }));
      await loadKeys();
    } catch (err) {
      showError("key-error", err);
    }
  });
}

export async function loadKeys() {
  const { items } = await api("GET", "/api/v1/api-keys");
  $("keys-rows").replaceChildren(...items.map(row));
}

function row(key) {
  const tr = el("tr", { testid: `key-row-${key.id}` });
  tr.dataset.name = key.name;
  const actions = el("td", { className: "row-actions" });
  if (!key.revoked_at) {
    actions.append(
      button(t("admin.keys.revoke"), `key-revoke-${key.id}`, async () => {
        try {
          await api("DELETE", `/api/v1/api-keys/${key.id}`);
          announce(t("admin.keys.revoked", { name: key.name }));
        } catch (err) {
          showError("key-error", err);
        }
        await loadKeys();
      }, "danger"),
    );
  }
  tr.append(cell(key.name), cell(`${key.prefix}…`), cell(key.scopes.join(", ")), cell(key.last_used_at ? when(key.last_used_at) : t("admin.keys.never")),
    cell(key.revoked_at ? t("admin.keys.revoked_state") : t("admin.users.active")), actions);
  return tr;
}
