// What the deployment configured, from /api/v1/config (fetched once per page): its reasons
// and languages with their own labels, the fallback for codes the staff catalogue lacks.
import { has, t } from "../i18n.js";
import { api } from "./api.js";
import { humanize, none } from "./format.js";

/** code → the deployment's label, in the deployment's order. */
export const deploymentReasons = new Map();
export const deploymentLanguages = new Map();
let loading = null;

/** Fetch the configuration once; resolves with it, or with null when it cannot be had (ask again later). */
export function loadDeployment() {
  loading ??= api("GET", "/api/v1/config").then(
    (config) => {
      for (const r of config.reasons || []) if (r?.code) deploymentReasons.set(r.code, r.label);
      for (const l of config.languages || []) if (l?.code) deploymentLanguages.set(l.code, l.name || l.code);
      return config;
    },
    () => {
      loading = null;
      return null;
    },
  );
  return loading;
}

/** A reason's short staff name (common.reasons.*), else the deployment's label, else the code made readable. */
export function reasonLabel(code) {
  if (!code) return none();
  return has(`common.reasons.${code}`) ? t(`common.reasons.${code}`) : deploymentReasons.get(code) || humanize(code);
}
