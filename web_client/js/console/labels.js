// The console names reasons as the deployment labels them (from /api/v1/config), and other
// server codes by the catalogue, falling back to the code with spaces.
import { t } from "../i18n.js";
import { deploymentReasons } from "../staff/deployment.js";

export const reasonLabel = (code) => (code ? deploymentReasons.get(code) || code.replaceAll("_", " ") : "");

/** A server code for a catalogued word, or the code with spaces if the catalogue has none. */
export const codeLabel = (prefix, code) => t(`${prefix}.${code}`, {}, String(code ?? "").replaceAll("_", " "));
