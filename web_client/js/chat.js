// A chat panel: a log with times, an input and a send button, shared by both pages.
// Its words come from the page's `t(key, vars, fallback)`: "you" for one's own lines, and
// "from_customer" / "from_rep" for a sender without a name (the staff console maps these
// to chat.* in staff-en.json; without a string the sender's role code shows, as before).

export class ChatPanel {
  constructor(root, { onSend, youAre, t = (k, vars, fallback) => fallback ?? k }) {
    this.log = root.querySelector('[data-testid="chat-log"]');
    this.input = root.querySelector('[data-testid="chat-input"]');
    this.button = root.querySelector('[data-testid="chat-send"]');
    this.youAre = youAre;
    this.t = t;
    this.seen = new Set();
    const submit = (ev) => {
      ev.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      onSend(text).then(
        () => (this.input.value = ""),
        () => {},
      );
    };
    root.querySelector("form").addEventListener("submit", submit);
  }

  add(msg) {
    if (msg.id != null && this.seen.has(msg.id)) return;
    if (msg.id != null) this.seen.add(msg.id);
    const line = document.createElement("li");
    line.dataset.testid = "chat-line";
    line.className = `chat-line from-${msg.from}${msg.from === this.youAre ? " mine" : ""}`;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = msg.from === this.youAre ? this.t("you") : msg.name || this.t(`from_${msg.from}`, {}, msg.from);
    const time = document.createElement("time");
    time.dateTime = msg.at;
    time.textContent = new Date(msg.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("p");
    text.textContent = msg.text; // never innerHTML: chat is untrusted
    line.append(who, time, text);
    this.log.append(line);
    this.log.scrollTop = this.log.scrollHeight;
  }

  replay(messages) {
    messages.forEach((m) => this.add(m));
  }
}
