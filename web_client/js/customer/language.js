// The language picker: native names from config.languages; a switch applies at once and is
// remembered on this device (localStorage rapport.lang), winning over the server's pick.
import { $ } from "../dom.js";
import { bindAttr, getLanguages, matchLanguage, setLanguage, t } from "../i18n.js";

const LANG_KEY = "rapport.lang";
let chosen = false; // the customer picked a language here (or earlier on this device)

/** Whether the language is the customer's own choice (an invite's language stands otherwise). */
export const languageChosen = () => chosen;

function savedLanguage() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

/** The language to start in: the saved choice, else the server's pick from Accept-Language, else English. */
export function initialLanguage(serverPick) {
  const saved = matchLanguage(savedLanguage());
  chosen = !!saved;
  return saved || matchLanguage(serverPick) || "en";
}

export function fillLanguagePicker() {
  const select = $("language-select");
  select.replaceChildren();
  for (const l of getLanguages()) {
    const option = new Option(l.name || l.code, l.code);
    option.lang = l.code;
    option.dir = l.dir === "rtl" ? "rtl" : "ltr";
    select.add(option);
  }
  bindAttr(select, "aria-label", () => t("language_label"));
  select.addEventListener("change", async () => {
    const code = select.value;
    chosen = true;
    try {
      localStorage.setItem(LANG_KEY, code);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    await setLanguage(code);
  });
}
