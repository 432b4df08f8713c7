// What the QA page's views share: the open call, where "back" goes, and navigation.
import { signedInUser } from "../staff/session.js";

export const REVIEW_ROLES = ["qa", "supervisor", "admin"];
const HOLD_ROLES = ["supervisor", "admin"];

export const qa = {
  listHash: "#/", // the last list view, so "back" keeps its filters
  lastOpenedId: null, // refocused when coming back to the list
  navToken: 0, // bumped on every route; answers for an older view are dropped
  view: null, // the open session: {id, bundle, timeline, pollTimer}
};

/** The deployment's dispositions, code → label (from /api/v1/dispositions). */
export const dispositionLabels = new Map();

export const sessionUrl = (id, rest = "") => `/api/v1/qa/sessions/${encodeURIComponent(id)}${rest}`;
export const canHold = () => HOLD_ROLES.includes(signedInUser()?.role);
export const canErase = () => signedInUser()?.role === "admin";

/** Show `hash` (#/ the list, #/sessions/{id} one call); the hash already shown is routed again. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
