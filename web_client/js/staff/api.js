// The staff pages' API calls: JSON with the staff cookie; every write carries the CSRF token.
// A 401 means the login expired: the page asks to sign in again.
import { request } from "../http.js";
import { t } from "../i18n.js";
import { csrfToken, loginExpired, roleRefused } from "./session.js";

export async function api(method, url, body) {
  try {
    return await request(method, url, { body, headers: method === "GET" ? {} : { "X-CSRF-Token": csrfToken() } });
  } catch (err) {
    if (err.status === 401) loginExpired();
    else if (err.status === 403 && err.code === "forbidden") roleRefused();
    if (err.status && !err.message) err.message = t("common.request_failed", { status: err.status });
    throw err;
  }
}
