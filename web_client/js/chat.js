// A chat panel: a log with times, an input and a send button, shared by both pages.

export class ChatPanel {
  constructor(root, { onSend, youAre, t = (k) => k }) {
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
    who.textContent = msg.from === this.youAre ? this.t("you") : msg.name || msg.from;
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
