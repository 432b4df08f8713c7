// CallMedia: the browser's end of one WebRTC call with the server. The page always
// offers; the server answers without trickle, so we wait for ICE gathering first.
//
// Every offer has the same four m-lines, in this order (docs/protocol.md, issue 14): audio#0 and
// video#0 carry our own mic and camera and bring the main other party (slot 0); audio#1 and
// video#1 only receive the "third party" (slot 1: a supervisor who joined, or the rep for a
// supervisor). A supervisor listening, whispering or joining never needs a new offer.

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

const SLOTS = 2; // slot 0: the main other party; slot 1: the third party

export class CallMedia extends EventTarget {
  /**
   * remoteVideo plays slot 0, thirdPartyVideo (optional) slot 1; sessionId goes with each offer
   * (a supervisor offers for the call it assists).
   */
  constructor(signaling, { iceServers = [], remoteVideo, localVideo, thirdPartyVideo = null, sessionId = null, facing = "user" } = {}) {
    super();
    this.signaling = signaling;
    this.iceServers = iceServers;
    this.remoteVideo = remoteVideo;
    this.localVideo = localVideo;
    this.thirdPartyVideo = thirdPartyVideo;
    this.thirdPartyWanted = false; // the page says when slot 1 should show (barge-in, the rep's view…)
    this.thirdParty = null; // slot 1's stream on the current connection
    this.sessionId = sessionId;
    this.slots = []; // per slot {audio, video}: this connection's transceivers
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
      this.slots = this.#addTransceivers(pc);
      const remote = new MediaStream();
      const third = new MediaStream();
      this.thirdParty = third;
      pc.addEventListener("track", (ev) => {
        if (this.#slotOf(pc, ev.transceiver) === 1) this.#addThirdParty(third, ev.track);
        else this.#addRemote(remote, ev.track);
      });
      pc.addEventListener("connectionstatechange", () => this.#onState(pc));
      await pc.setLocalDescription(await pc.createOffer());
      await waitForGathering(pc);
      const offer = { type: "offer", sdp: pc.localDescription.sdp };
      if (this.sessionId) offer.session_id = this.sessionId;
      const reply = await this.signaling.request(offer);
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

  /** audio#0, video#0 (our own, sendrecv), then audio#1, video#1 (recvonly): the order is the contract. */
  #addTransceivers(pc) {
    const stream = this.stream || new MediaStream();
    const own = (kind) => {
      const track = stream.getTracks().find((t) => t.kind === kind);
      // Without a camera (or mic) the m-line still comes first, receiving only.
      if (track) return pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] });
      return pc.addTransceiver(kind, { direction: "recvonly" });
    };
    const slots = [{ audio: own("audio"), video: own("video") }];
    for (let i = 1; i < SLOTS; i++) {
      slots.push({ audio: pc.addTransceiver("audio", { direction: "recvonly" }), video: pc.addTransceiver("video", { direction: "recvonly" }) });
    }
    return slots;
  }

  /** Which slot a transceiver is: by identity, else by its place among the connection's transceivers. */
  #slotOf(pc, transceiver) {
    const index = this.slots.findIndex((slot) => slot.audio === transceiver || slot.video === transceiver);
    if (index >= 0) return index;
    return Math.floor(Math.max(0, pc.getTransceivers().indexOf(transceiver)) / 2);
  }

  #addRemote(remote, track) {
    remote.addTrack(track);
    if (this.remoteVideo && this.remoteVideo.srcObject !== remote) {
      this.remoteVideo.srcObject = remote;
      this.dispatchEvent(new CustomEvent("remote", { detail: remote }));
    }
  }

  #addThirdParty(third, track) {
    third.addTrack(track);
    // The server sends slot 1 only while there is someone to send: a track muted (no packets yet) shows nothing.
    track.addEventListener("mute", () => this.#syncThirdParty());
    track.addEventListener("unmute", () => this.#syncThirdParty());
    track.addEventListener("ended", () => this.#syncThirdParty());
    const element = this.thirdPartyVideo;
    if (element && element.srcObject !== third) {
      element.srcObject = third;
      // Its audio plays even while the picture is hidden (a whisper is audio only).
      tryPlay(element);
    }
    this.dispatchEvent(new CustomEvent("third-party", { detail: third }));
    this.#syncThirdParty();
  }

  /** The page's say on slot 1 (e.g. a supervisor joined); the tile also needs a picture arriving. */
  showThirdParty(wanted) {
    this.thirdPartyWanted = wanted;
    this.#syncThirdParty();
  }

  /** Whether slot 1 has a live, unmuted video track now. */
  get thirdPartyVideoLive() {
    const track = this.thirdParty?.getVideoTracks()[0];
    return Boolean(track && track.readyState === "live" && !track.muted);
  }

  #syncThirdParty() {
    const element = this.thirdPartyVideo;
    if (!element) return;
    const shown = this.thirdPartyWanted && this.thirdPartyVideoLive;
    if (element.hidden === shown) {
      element.hidden = !shown;
      if (shown) tryPlay(element);
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
    // Our camera goes out on slot 0's video m-line only (slot 1 receives).
    const own = this.slots[0]?.video?.sender;
    const sender = own?.track ? own : this.pc?.getSenders().find((snd) => snd.track && snd.track.kind === "video");
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
    this.slots = [];
    this.thirdParty = null;
    this.thirdPartyWanted = false;
    if (this.thirdPartyVideo) {
      this.thirdPartyVideo.hidden = true;
      this.thirdPartyVideo.srcObject = null;
    }
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
