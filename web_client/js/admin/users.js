// Staff accounts: add (a generated password shown once), role, enable/disable, password reset, routing.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { codeLabel } from "../staff/format.js";
import { signedInUser } from "../staff/session.js";
import { announce, button, cell, checkboxes, checkedValues, showError, showSecret } from "./common.js";
import { currentReasons } from "./settings.js";

const ROLES = ["rep", "qa", "supervisor", "admin"];
let languages = [];

export function wireUsers() {
  const role = $("user-role");
  for (const code of ROLES) role.append(Object.assign(el("option", { text: codeLabel("common.roles", code) }), { value: code }));
  $("user-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    create();
  });
}

function routingChoices() {
  return {
    skills: currentReasons().map((r) => [r.code, r.label]),
    languages: languages.map((l) => [l.code, l.name]),
  };
}

export async function loadUsers() {
  if (!languages.length) {
    const config = await fetch("/api/v1/config", { credentials: "same-origin" }).then((r) => r.json()).catch(() => null);
    languages = config?.languages ?? [];
  }
  const choices = routingChoices();
  checkboxes($("user-skills"), "user-skill", choices.skills, checkedValues($("user-skills")));
  checkboxes($("user-languages"), "user-language", choices.languages, checkedValues($("user-languages")));
  const { items } = await api("GET", "/api/v1/users");
  $("users-rows").replaceChildren(...items.map(row));
}

async function create() {
  showError("user-error", null);
  const body = {
    username: $("user-username").value.trim(),
    display_name: $("user-display-name").value.trim(),
    role: $("user-role").value,
    skills: checkedValues($("user-skills")),
    languages: checkedValues($("user-languages")),
  };
  if ($("user-password").value) body.password = $("user-password").value;
  try {
    const made = await api("POST", "/api/v1/users", body);
    $("user-form").reset();
    $("user-password").value = "";
    if (made.password) showSecret("user-secret", made.password, t("admin.users.password_once", { name: made.user.username }));
    announce(t("admin.users.created", { name: made.user.username }));
    await loadUsers();
  } catch (err) {
    showError("user-error", err);
  }
}

function row(user) {
  const me = signedInUser();
  const tr = el("tr", { testid: `user-row-${user.username}` });
  if (!user.active) tr.className = "inactive";
  const routing = [...user.skills.map((s) => codeLabel("common.reasons", s)), ...user.languages].join(", ") || t("admin.users.any");
  const role = el("select", { testid: `user-role-${user.username}` });
  role.setAttribute("aria-label", t("admin.users.role_of", { name: user.username }));
  for (const code of ROLES) role.append(Object.assign(el("option", { text: codeLabel("common.roles", code) }), { value: code, selected: code === user.role }));
  role.disabled = me && me.id === user.id;
  role.addEventListener("change", () => change(`/api/v1/users/${user.id}/role`, "PUT", { role: role.value }, t("admin.users.role_set", { name: user.username })));
  const actions = el("td", { className: "row-actions" });
  actions.append(role);
  if (!(me && me.id === user.id)) {
    const toggle = user.active ? t("admin.users.disable") : t("admin.users.enable");
    actions.append(
      button(toggle, `user-toggle-${user.username}`, () =>
        change(`/api/v1/users/${user.id}/active`, "PUT", { active: !user.active }, t(user.active ? "admin.users.disabled" : "admin.users.enabled", { name: user.username })),
      ),
    );
  }
  actions.append(
    button(t("admin.users.reset"), `user-reset-${user.username}`, async () => {
      try {
        const reset = await api("POST", `/api/v1/users/${user.id}/password`);
        showSecret("user-secret", reset.password, t("admin.users.password_once", { name: user.username }));
        announce(t("admin.users.reset_done", { name: user.username }));
      } catch (err) {
        showError("user-error", err);
      }
    }),
    button(t("admin.users.edit_routing"), `user-routing-${user.username}`, () => editRouting(tr, user)),
  );
  tr.append(cell(user.username), cell(user.display_name), cell(codeLabel("common.roles", user.role)), cell(routing),
    cell(user.active ? t("admin.users.active") : t("admin.users.inactive")), actions);
  return tr;
}

async function change(url, method, body, done) {
  showError("user-error", null);
  try {
    await api(method, url, body);
    announce(done);
  } catch (err) {
    showError("user-error", err);
  }
  await loadUsers();
}

function editRouting(tr, user) {
  const form = el("form", { className: "admin-form", testid: `routing-form-${user.username}` });
  const choices = routingChoices();
  const skills = el("fieldset");
  skills.append(el("legend", { text: t("admin.users.skills") }));
  checkboxes(skills, `routing-skill-${user.username}`, choices.skills, user.skills);
  const langs = el("fieldset");
  langs.append(el("legend", { text: t("admin.users.languages") }));
  checkboxes(langs, `routing-language-${user.username}`, choices.languages, user.languages);
  const save = Object.assign(el("button", { text: t("admin.save"), testid: `routing-save-${user.username}` }), { type: "submit" });
  form.append(skills, langs, save);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    change(`/api/v1/users/${user.id}/routing`, "PUT", { skills: checkedValues(skills), languages: checkedValues(langs) }, t("admin.users.routing_set", { name: user.username }));
  });
  const extra = el("tr");
  const td = el("td");
  td.colSpan = 6;
  td.append(form);
  extra.append(td);
  tr.after(extra);
  skills.querySelector("input")?.focus();
}
