// SignalingClient: one WebSocket to /ws/v1 (protocol v1, docs/protocol.md), with
// request ids, automatic reconnect with backoff, and a hello on every (re)connect.

const BACKOFF_MS = [300, 1000, 2000, 4000, 8000];
// A phone that changes network keeps a socket that neither delivers nor closes (its address is gone): a ping
// unanswered this long gives it up and connects anew, so the call's hello, fresh ICE servers and offer follow.
const KEEPALIVE_MS = 5000;
const KEEPALIVE_TIMEOUT_MS = 4000;

export class SignalingClient extends EventTarget {
  /** @param {() => object} helloFactory builds the hello message for each connect */
  constructor(helloFactory) {
    super();
    this.helloFactory = helloFactory;
    this.ws = null;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.closedByUs = false;
    this.connected = false;
    this.keepAlive = null;
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/v1`;
  }

  connect() {
    this.closedByUs = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      ws.send(JSON.stringify(this.helloFactory()));
    });
    ws.addEventListener("message", (ev) => ws === this.ws && this.#onMessage(ev));
    ws.addEventListener("close", (ev) => ws === this.ws && this.#onClose(ev));
  }

  #watch(ws) {
    clearInterval(this.keepAlive);
    this.keepAlive = setInterval(async () => {
      try {
        await this.request({ type: "ping" }, KEEPALIVE_TIMEOUT_MS);
      } catch (err) {
        if (ws === this.ws && err.code === "timeout") this.#abandon(ws);
      }
    }, KEEPALIVE_MS);
  }

  #abandon(ws) {
    this.ws = null;
    try {
      ws.close();
    } catch {
      // already closing
    }
    this.#onClose({ code: 1006 });
  }

  #onMessage(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.type === "welcome") {
      this.connected = true;
      this.#watch(this.ws);
      this.dispatchEvent(new CustomEvent("connected"));
    }
    if (msg.reply_to && this.pending.has(msg.reply_to)) {
      const { resolve, reject } = this.pending.get(msg.reply_to);
      this.pending.delete(msg.reply_to);
      if (msg.type === "error") reject(Object.assign(new Error(msg.message), { code: msg.code }));
      else resolve(msg);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
    this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
  }

  #onClose(ev) {
    clearInterval(this.keepAlive);
    const wasConnected = this.connected;
    this.connected = false;
    for (const { reject } of this.pending.values()) reject(new Error("connection closed"));
    this.pending.clear();
    this.dispatchEvent(new CustomEvent("disconnected", { detail: { code: ev.code, wasConnected } }));
    // 4001 logged out, 4002 replaced by another tab, 4003 session over, 4004 not a rep: do not come back.
    if (this.closedByUs || [4001, 4002, 4003, 4004].includes(ev.code)) return;
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    setTimeout(() => this.connect(), delay);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /** Send with an id; resolves with the reply, rejects with the error (err.code). */
  request(message, timeoutMs = 15000) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...message, id })) {
        reject(Object.assign(new Error("not connected"), { code: "offline" }));
        return;
      }
      this.pending.set(id, { resolve, reject });
      setTimeout(() => {
        if (this.pending.delete(id)) reject(Object.assign(new Error("no reply"), { code: "timeout" }));
      }, timeoutMs);
    });
  }

  close() {
    this.closedByUs = true;
    clearInterval(this.keepAlive);
    if (this.ws) this.ws.close(1000);
  }
}
