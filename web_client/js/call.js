// CallMedia: the browser's end of one WebRTC call with the server. The page always
// offers; the server answers without trickle, so we wait for ICE gathering first.

import { $ } from "./dom.js";

const GATHER_TIMEOUT_MS = 2000;
// The server takes no trickled candidates, so the offer waits for gathering. With a TURN server, gathering lasts
// until every allocation (TCP and TLS too) answers or fails: offer shortly after the first relay candidate
// instead. Whichever path works first (UDP, or TCP/TLS behind a firewall that blocks UDP) yields it first.
const AFTER_FIRST_RELAY_MS = 250;
const RESTART_AFTER_MS = 3000;

function waitForGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    let relayTimer = null;
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      pc.removeEventListener("icecandidate", onCandidate);
      clearTimeout(relayTimer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const onCandidate = (ev) => {
      if (relayTimer === null && ev.candidate && / typ relay /.test(ev.candidate.candidate)) {
        relayTimer = setTimeout(done, AFTER_FIRST_RELAY_MS);
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    pc.addEventListener("icecandidate", onCandidate);
    setTimeout(done, GATHER_TIMEOUT_MS);
  });
}

export class CallMedia extends EventTarget {
  constructor(signaling, { iceServers = [], remoteVideo, localVideo, facing = "user" } = {}) {
    super();
    this.signaling = signaling;
    this.iceServers = iceServers;
    this.remoteVideo = remoteVideo;
    this.localVideo = localVideo;
    this.facing = facing;
    this.stream = null;
    this.pc = null;
    this.audioEnabled = true;
    this.videoEnabled = true;
    this.restartTimer = null;
    this.negotiating = false;
    this.restartPending = false;
  }

  /** Ask for camera and microphone; falls back to audio only, then to nothing. */
  async openCamera() {
    if (this.stream) return this.stream;
    if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("no media"), { code: "insecure" });
    const video = { facingMode: this.facing, width: { ideal: 640 }, height: { ideal: 480 } };
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    } catch (err) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      this.dispatchEvent(new CustomEvent("warning", { detail: "camera" }));
    }
    if (this.localVideo) this.localVideo.srcObject = this.stream;
    return this.stream;
  }

  /** Create a fresh peer connection and negotiate it (also used to recover). */
  async start() {
    if (this.negotiating) return;
    this.negotiating = true;
    try {
      if (this.pc) this.pc.close();
      const pc = new RTCPeerConnection({ iceServers: this.iceServers });
      this.pc = pc;
      const stream = this.stream || new MediaStream();
      for (const kind of ["audio", "video"]) {
        const track = stream.getTracks().find((t) => t.kind === kind);
        if (track) pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
        else pc.addTransceiver(kind, { direction: "recvonly" });
      }
      const remote = new MediaStream();
      pc.addEventListener("track", (ev) => {
        remote.addTrack(ev.track);
        if (this.remoteVideo && this.remoteVideo.srcObject !== remote) {
          this.remoteVideo.srcObject = remote;
          this.dispatchEvent(new CustomEvent("remote", { detail: remote }));
        }
      });
      pc.addEventListener("connectionstatechange", () => this.#onState(pc));
      await pc.setLocalDescription(await pc.createOffer());
      await waitForGathering(pc);
      const reply = await this.signaling.request({ type: "offer", sdp: pc.localDescription.sdp });
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    } finally {
      this.negotiating = false;
      // The server asked for a new offer (media.restart) while this one was under way: that one is stale.
      if (this.restartPending) {
        this.restartPending = false;
        this.restart();
      }
    }
  }

  #onState(pc) {
    if (pc !== this.pc) return;
    this.dispatchEvent(new CustomEvent("state", { detail: pc.connectionState }));
    clearTimeout(this.restartTimer);
    if (["failed", "disconnected"].includes(pc.connectionState)) {
      this.restartTimer = setTimeout(() => this.restart(), pc.connectionState === "failed" ? 0 : RESTART_AFTER_MS);
    }
  }

  /** Negotiate anew: after a failed connection, or when the server moved the call's media (media.restart). */
  async restart() {
    if (!this.signaling.connected) return; // the socket's reconnect will call restart()
    if (this.negotiating) {
      this.restartPending = true;
      return;
    }
    try {
      await this.start();
    } catch (err) {
      this.dispatchEvent(new CustomEvent("error", { detail: err }));
    }
  }

  setAudio(enabled) {
    this.audioEnabled = enabled;
    this.stream?.getAudioTracks().forEach((t) => (t.enabled = enabled));
    this.#announce();
  }

  setVideo(enabled) {
    this.videoEnabled = enabled;
    this.stream?.getVideoTracks().forEach((t) => (t.enabled = enabled));
    this.#announce();
  }

  #announce() {
    this.signaling.send({ type: "media.state", audio: this.audioEnabled, video: this.videoEnabled, facing: this.facing });
  }

  /** Switch front/back camera without renegotiating: replaceTrack keeps the call up. */
  async flipCamera() {
    const next = this.facing === "user" ? "environment" : "user";
    let newTrack;
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { exact: next } } });
      newTrack = s.getVideoTracks()[0];
    } catch {
      // Desktop browsers and fake cameras have no facing modes: take the next camera instead.
      const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
      const current = this.stream?.getVideoTracks()[0]?.getSettings().deviceId;
      const other = cams.find((c) => c.deviceId !== current) || cams[0];
      if (!other) return;
      const s = await navigator.mediaDevices.getUserMedia({ video: { deviceId: { exact: other.deviceId } } });
      newTrack = s.getVideoTracks()[0];
    }
    const old = this.stream?.getVideoTracks()[0];
    const sender = this.pc?.getSenders().find((snd) => snd.track && snd.track.kind === "video");
    if (sender) await sender.replaceTrack(newTrack);
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    newTrack.enabled = this.videoEnabled;
    this.stream.addTrack(newTrack);
    if (this.localVideo) this.localVideo.srcObject = this.stream;
    this.facing = next;
    this.#announce();
  }

  stop() {
    clearTimeout(this.restartTimer);
    if (this.pc) this.pc.close();
    this.pc = null;
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }
}

/** Start playback; some browsers refuse until a tap, so report whether it worked. */
export async function tryPlay(video) {
  try {
    await video.play();
    return true;
  } catch {
    return false;
  }
}

/**
 * Wire a call page's mute and camera-toggle buttons to `currentMedia()`: pressed means muted
 * or camera off, and the label (`label("unmute")`, `label("camera_on")`…) says what the next
 * press does.
 */
export function wireMediaToggles(currentMedia, label) {
  const toggle = (testid, isOn, set, [whileOn, whileOff]) => {
    $(testid).addEventListener("click", (ev) => {
      const media = currentMedia();
      if (!media) return;
      const turningOff = isOn(media);
      set(media, !turningOff);
      ev.currentTarget.setAttribute("aria-pressed", String(turningOff));
      ev.currentTarget.textContent = label(turningOff ? whileOff : whileOn);
    });
  };
  toggle("mute", (media) => media.audioEnabled, (media, on) => media.setAudio(on), ["mute", "unmute"]);
  toggle("camera-toggle", (media) => media.videoEnabled, (media, on) => media.setVideo(on), ["camera_off", "camera_on"]);
}
