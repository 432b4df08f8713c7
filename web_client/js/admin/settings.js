// The centre's settings: dispositions and reasons (one per line, "code | label [| category]"), help articles
// (JSON per reason), the recording and emotion policies. A change applies to the next call.
import { $, el } from "../dom.js";
import { t } from "../i18n.js";
import { api } from "../staff/api.js";
import { announce, showError } from "./common.js";

let doc = null;
export const currentReasons = () => doc?.reasons ?? [];

const lines = (items, keys) => items.map((item) => keys.map((k) => item[k]).join(" | ")).join("\n");

function parseLines(text, keys) {
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const parts = line.split("|").map((p) => p.trim());
    return Object.fromEntries(keys.map((k, i) => [k, parts[i] ?? ""]));
  });
}

function fill(settings) {
  doc = settings;
  $("settings-dispositions").value = lines(settings.dispositions, ["code", "label", "category"]);
  $("settings-reasons").value = lines(settings.reasons, ["code", "label"]);
  $("settings-help").value = JSON.stringify(settings.help_articles, null, 2);
  $("settings-recording").value = settings.recording.policy;
  $("settings-emotion-cues").checked = settings.emotion.cues;
  $("settings-emotion-cues").disabled = !settings.emotion_available && !settings.emotion.cues;
  $("settings-emotion-consent").checked = settings.emotion.default_consent;
  $("settings-emotion-raise").value = settings.emotion.raise_threshold;
  $("settings-emotion-clear").value = settings.emotion.clear_threshold;
  $("settings-emotion-hold").value = settings.emotion.hold_s;
  $("settings-warnings").replaceChildren(...(settings.warnings ?? []).map((w) => el("li", { text: w })));
}

export async function loadSettings() {
  fill(await api("GET", "/api/v1/settings"));
}

async function save(path, body, method = "PUT") {
  showError("settings-error", null);
  try {
    fill(await api(method, `/api/v1/settings/${path}`, body));
    announce(t("admin.settings.saved"));
  } catch (err) {
    showError("settings-error", err);
  }
}

function onSubmit(testid, build) {
  $(testid).addEventListener("submit", (ev) => {
    ev.preventDefault();
    let body;
    try {
      body = build();
    } catch (err) {
      showError("settings-error", new Error(t("admin.settings.not_json", { error: err.message })));
      return;
    }
    save(...body);
  });
}

export function wireSettings() {
  onSubmit("settings-dispositions-form", () => ["dispositions", { items: parseLines($("settings-dispositions").value, ["code", "label", "category"]) }]);
  onSubmit("settings-reasons-form", () => ["reasons", { items: parseLines($("settings-reasons").value, ["code", "label"]) }]);
  onSubmit("settings-help-form", () => ["help-articles", { articles: JSON.parse($("settings-help").value || "{}") }]);
  onSubmit("settings-recording-form", () => ["recording", { policy: $("settings-recording").value }]);
  onSubmit("settings-emotion-form", () => [
    "emotion",
    {
      cues: $("settings-emotion-cues").checked,
      default_consent: $("settings-emotion-consent").checked,
      raise_threshold: Number($("settings-emotion-raise").value),
      clear_threshold: Number($("settings-emotion-clear").value),
      hold_s: Number($("settings-emotion-hold").value),
    },
  ]);
  for (const [testid, section] of [["settings-dispositions-reset", "dispositions"], ["settings-reasons-reset", "reasons"], ["settings-help-reset", "help_articles"]]) {
    $(testid).addEventListener("click", () => save(section, undefined, "DELETE"));
  }
}
