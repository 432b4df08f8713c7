// The rep's side of supervisor assist (issue 14): "Ask for help", who is listening, whispering
// or in the call, text whispers in the chat panel, and a supervisor taking the call over.
// The supervisor's voice (whisper, barge-in) and picture (barge-in) arrive on the call's
// slot 1 (js/call.js), shown in third-party-video.
import { $, el } from "../dom.js";
import { formatTime, t } from "../i18n.js";

const INDICATOR_KEYS = { listen: "listening", whisper: "whispering", barge: "joined" };

/**
 * Wire the help button; `send(message)` returns the request's promise, `media()` the call's CallMedia.
 * Returns the handlers the console registers for the server's messages.
 */
export function wireAssist({ send, media, toast }) {
  let helpOn = false;
  const button = $("help-ask");
  button.addEventListener("click", () => {
    const next = !helpOn;
    showHelp(next); // at once; help.state confirms or corrects it
    send({ type: "help.ask", on: next }).catch((err) => {
      showHelp(!next);
      toast(err.message);
    });
  });

  function showHelp(on) {
    helpOn = on;
    button.setAttribute("aria-pressed", String(on));
    button.textContent = t(on ? "console.assist.asking" : "console.assist.ask");
  }

  /** help.state: after help.ask, and off when a supervisor answers it. */
  function onHelpState(msg) {
    const answered = helpOn && !msg.on;
    showHelp(Boolean(msg.on));
    if (answered) toast(t("console.assist.answered"));
  }

  /** assist.state (rep audience): "Anna is listening / whispering / joined the call", or nothing. */
  function onAssistState(msg) {
    const node = $("assist-indicator");
    const key = INDICATOR_KEYS[msg.mode];
    if (!key) {
      node.hidden = true;
      node.textContent = "";
      delete node.dataset.mode;
      media()?.showThirdParty(false);
      return;
    }
    const name = msg.supervisor?.display_name || t("console.assist.someone");
    node.textContent = t(`console.assist.${key}`, { name });
    node.dataset.mode = msg.mode;
    node.hidden = false;
    // Whisper is the supervisor's voice only; a barge-in brings the picture too.
    media()?.showThirdParty(msg.mode === "barge");
  }

  /** whisper.message: a line in the chat panel that the customer never sees, marked as such. */
  function onWhisper(msg) {
    const log = $("chat-log");
    const line = el("li", { className: "chat-line whisper", testid: "whisper-line" });
    const who = el("span", { className: "who", text: t("console.assist.whisper_from", { name: msg.name || t("console.assist.someone") }) });
    const time = el("time");
    time.dateTime = msg.at || new Date().toISOString();
    time.textContent = formatTime(time.dateTime);
    const text = el("p", { text: msg.text }); // text only: a whisper is user input
    line.append(who, time, text);
    log.append(line);
    log.scrollTop = log.scrollHeight;
  }

  /** The call is over or passed on: nobody assists any more, no help pending. */
  function reset() {
    showHelp(false);
    onAssistState({ mode: null });
  }

  return { onHelpState, onAssistState, onWhisper, reset };
}
