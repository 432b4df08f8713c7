// Business hours per queue, in the centre's time zone, with holidays: the document of
// GET/PUT /api/v1/business-hours, edited as JSON.
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { announce, showError } from "./common.js";

export async function loadHours() {
  try {
    const hours = await api("GET", "/api/v1/business-hours");
    $("hours-document").value = JSON.stringify(hours, null, 2);
  } catch (err) {
    showError("hours-error", err);
  }
}

export function wireHours() {
  $("hours-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("hours-error", null);
    let body;
    try {
      body = JSON.parse($("hours-document").value);
    } catch (err) {
      showError("hours-error", new Error(t("admin.settings.not_json", { error: err.message })));
      return;
    }
    try {
      const saved = await api("PUT", "/api/v1/business-hours", body);
      $("hours-document").value = JSON.stringify(saved, null, 2);
      announce(t("admin.hours.saved"));
    } catch (err) {
      showError("hours-error", err);
    }
  });
}
