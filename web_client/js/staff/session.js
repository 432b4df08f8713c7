// Sign-in for the staff pages (console, QA, supervisor): the login form, who is signed in,
// the CSRF token that every write carries, signing out, and what a page shows when the login
// expires or the role does not fit it.
import { $, el, hide, setState, show, toast } from "../dom.js";
import { postJSON } from "../http.js";
import { t } from "../i18n.js";
import { codeLabel } from "./format.js";
import { followLoginLanguage, whoAmI } from "./language.js";

let user = null; // {id, username, display_name, role}
let csrf = null;
let page = { roles: null, showRole: true, leaveOnRoleRefusal: false, onSignedIn: () => {}, onSignedOut: () => {} };

export const signedInUser = () => user;
export const csrfToken = () => csrf;

/**
 * Wire the sign-in form and the log-out button, then ask the server who is signed in.
 *
 * - roles: who may use the page (null: any staff login); anyone else sees the "forbidden" state.
 * - showRole: the top bar says "Name · Role" rather than the name alone.
 * - leaveOnRoleRefusal: an API call refused for the role ("forbidden") also shows "forbidden".
 * - onSignedIn(user): the page starts (again after a new sign-in).
 * - onSignedOut(): stop what runs (polls, players) before the sign-in form or "forbidden" shows.
 */
export async function startSession(options) {
  page = { ...page, ...options };
  const screen = document.querySelector(".screen.login");
  screen.replaceChildren(loginForm(screen.dataset.loginTitle));
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn();
  });
  $("logout").addEventListener("click", signOut);
  const r = await whoAmI(); // the same answer the page's language came from
  if (r?.ok && r.body) begin(r.body);
  else {
    if (r?.status !== 401) toast(t("common.login.unreachable"));
    loginExpired();
  }
}

/** The sign-in form (the same on every staff page), under the page's own heading. */
function loginForm(titleKey) {
  const form = el("form", { className: "card login-form", testid: "login-form" });
  const title = el("h1", { text: t(titleKey) });
  title.id = "login-title";
  const field = (labelKey, input) => {
    const label = el("label");
    label.append(el("span", { text: t(labelKey) }), " ", input);
    return label;
  };
  const username = Object.assign(el("input", { testid: "login-username" }), { autocomplete: "username", required: true, maxLength: 64 });
  const password = Object.assign(el("input", { testid: "login-password" }), { type: "password", autocomplete: "current-password", required: true });
  const submit = Object.assign(el("button", { className: "primary", text: t("common.login.submit"), testid: "login-submit" }), { type: "submit" });
  const error = el("p", { className: "error", testid: "login-error" });
  error.setAttribute("role", "alert");
  error.hidden = true;
  form.append(title, field("common.login.username", username), field("common.login.password", password), submit, error);
  return form;
}

function signIn() {
  const body = { username: $("login-username").value, password: $("login-password").value };
  postJSON("/api/v1/auth/login", body).then((answer) => {
    followLoginLanguage(answer); // reloads when this staff member chose another language
    begin(answer);
  }, (err) => {
    const message = err.status === 429 ? t("common.login.rate_limited") : err.status === 401 ? t("common.login.wrong") : err.message;
    show("login-error", message);
  });
}

async function signOut() {
  page.onSignedOut();
  try {
    await postJSON("/api/v1/auth/logout", {}, { "X-CSRF-Token": csrf });
  } finally {
    location.reload();
  }
}

function begin(answer) {
  user = answer.user;
  csrf = answer.csrf_token;
  $("login-password").value = "";
  hide("login-error");
  $("user-name").textContent = page.showRole ? nameAndRole(user) : user.display_name;
  const adminLink = $("nav-admin"); // the other staff pages link to /admin for admins
  if (adminLink) adminLink.hidden = user.role !== "admin";
  if (page.roles && !page.roles.includes(user.role)) {
    page.onSignedOut();
    setState("forbidden");
    return;
  }
  page.onSignedIn(user);
}

function nameAndRole(who) {
  const role = codeLabel("common.roles", who.role);
  return who.display_name && who.display_name !== role ? t("common.user_role", { name: who.display_name, role }) : role;
}

/** No login, or it expired (an API call answered 401): stop, and ask to sign in again. */
export function loginExpired() {
  page.onSignedOut();
  user = null;
  setState("login");
  $("login-username").focus();
}

/** An API call was refused for this login's role. */
export function roleRefused() {
  if (!page.leaveOnRoleRefusal) return;
  page.onSignedOut();
  setState("forbidden");
}
