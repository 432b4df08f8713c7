// The admin page (/admin): staff accounts, API keys, webhooks, the centre's settings and business hours,
// each a module under admin/ that goes through the REST API (admins only; every change is audited there).
import { exposePage, setState } from "./dom.js";
import { loadKeys, wireKeys } from "./admin/keys.js";
import { loadHours, wireHours } from "./admin/hours.js";
import { loadSettings, wireSettings } from "./admin/settings.js";
import { loadUsers, wireUsers } from "./admin/users.js";
import { loadWebhooks, wireWebhooks } from "./admin/webhooks.js";
import { loadDeployment } from "./staff/deployment.js";
import { startStaffLanguage } from "./staff/language.js";
import { startSession } from "./staff/session.js";

exposePage();

async function init() {
  await startStaffLanguage();
  wireUsers();
  wireKeys();
  wireWebhooks();
  wireSettings();
  wireHours();
  await startSession({ roles: ["admin"], leaveOnRoleRefusal: true, onSignedIn, onSignedOut: () => {} });
}

async function onSignedIn() {
  setState("dashboard");
  await loadDeployment();
  // Settings first: the user form's skills are the current reasons.
  await loadSettings();
  await Promise.all([loadUsers(), loadKeys(), loadWebhooks(), loadHours()]);
  document.body.dataset.ready = "true";
}

init();
