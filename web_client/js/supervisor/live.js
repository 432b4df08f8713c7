// The supervisor page's WebSocket (protocol v1): `hello` with the staff cookie makes it a
// supervisor socket; `welcome` and `floor.update` push the floor, and the assist messages
// (supervisor/assist.js) travel on it too. While it is down the floor falls back to polling.
import { SignalingClient } from "../signaling.js";
import { setLive, showFloor } from "./floor.js";

let signaling = null;

/** The page's socket (null before sign-in). */
export const socket = () => signaling;
export const isLive = () => Boolean(signaling?.connected);

/** Connect once per sign-in; `handlers` maps message types to the page's handlers. */
export function connectLive(handlers = {}) {
  if (signaling) return signaling;
  signaling = new SignalingClient(() => ({ type: "hello" }));
  const on = (type, handle) => signaling.addEventListener(type, (ev) => handle(ev.detail));
  on("welcome", (msg) => {
    setLive(true);
    showFloor(msg.floor);
  });
  on("floor.update", (msg) => showFloor(msg.floor));
  // Down (reconnecting, or a server without supervisor sockets, which closes with 4004): poll.
  on("disconnected", () => setLive(false));
  for (const [type, handle] of Object.entries(handlers)) on(type, handle);
  signaling.connect();
  return signaling;
}

export function disconnectLive() {
  signaling?.close();
  signaling = null;
  setLive(false);
}
