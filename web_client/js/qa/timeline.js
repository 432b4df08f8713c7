// EmotionTimeline: an SVG chart of the customer's frustration over a recorded call,
// kept in step with a <video>. The scores describe the customer's expression, never
// the rep's performance, and every label here says so. Its words are timeline.* in
// staff-en.json: the page loads the catalogue (loadStaffStrings) before it builds a chart.
// A supervisor's steps in the call (listened, whispered, joined, left, took over) and the
// rep's asks for help are markers on the same clock, and listed with the text whispers below.
import { el } from "../dom.js";
import { t } from "../i18n.js";
import { isNumber as isScore, formatClock, wholePercent as percent } from "../staff/format.js";
import { followWidth, legendList, svg, svgText, svgTitle } from "../svg.js";

const HEIGHT = 210;
const PAD = { top: 30, right: 16, bottom: 28, left: 46 }; // the top band holds the flag markers
const THRESHOLD = 0.5;
const TICK_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
const KEY_STEP_S = 5;
const PAGE_STEP_S = 30;
let instances = 0; // gives each chart its own hatch pattern id

// What each assist mark says happened (the bundle's assist[].kind); help_* are the rep's, the rest a supervisor's.
const ASSIST_KINDS = ["listen", "whisper", "barge", "left", "take_over", "help_asked", "help_closed"];
const isHelp = (kind) => kind.startsWith("help_");

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const html = (tag, className, text) => el(tag, { className, text });

/** Runs of consecutive seconds for which `test(entry)` holds: [[first, last], ...]. */
function runs(entries, test) {
  const out = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (!test(e)) continue;
    if (last && last.at(-1).second === e.second - 1) last.push(e);
    else out.push([e]);
  }
  return out;
}

export class EmotionTimeline {
  /**
   * @param {HTMLElement} container filled with the title, chart, read-out and legend
   * @param {{onSeek?: (t: number) => void}} options onSeek runs when the reviewer picks a time
   */
  constructor(container, { onSeek } = {}) {
    this.container = container;
    this.onSeek = onSeek || ((t) => this.video && (this.video.currentTime = t));
    this.entries = [];
    this.bySecond = new Map();
    this.flags = [];
    this.marks = [];
    this.snapshots = [];
    this.assist = [];
    this.whispers = [];
    this.dataDuration = 1;
    this.mediaDuration = null;
    this.time = 0;
    this.width = 0;
    this.video = null;
    this.frame = 0;
    this.patternId = `qa-hatch-${++instances}`;
    this.videoListeners = [];
    this.build();
    this.resizeObserver = followWidth(this.chartBox, () => this.width, () => this.render());
  }

  /** The x axis: the video's length once known, else the data's. */
  get duration() {
    return this.mediaDuration || this.dataDuration;
  }

  /**
   * timeline: [{second, mean_frustration, max_frustration, face_present}], flags: [{start_s, end_s, peak}], marks: chat times,
   * snapshots: the times of the rep's snapshots of the customer's camera,
   * assist: [{t, kind, by}] a supervisor's steps and the rep's asks for help, whispers: [{t, by, text}] text whispers.
   */
  setData({ timeline = [], flags = [], marks = [], snapshots = [], assist = [], whispers = [] }) {
    this.entries = [...timeline].filter((e) => Number.isInteger(e.second) && e.second >= 0).sort((a, b) => a.second - b.second);
    this.bySecond = new Map(this.entries.map((e) => [e.second, e]));
    this.flags = flags.filter((f) => isScore(f.start_s));
    this.marks = marks.filter((t) => isScore(t) && t >= 0);
    this.snapshots = snapshots.filter((t) => isScore(t) && t >= 0);
    this.assist = assist.filter((a) => isScore(a.t) && ASSIST_KINDS.includes(a.kind)).map((a) => ({ ...a, t: Math.max(0, a.t) }));
    this.whispers = whispers.filter((w) => isScore(w.t) && typeof w.text === "string").map((w) => ({ ...w, t: Math.max(0, w.t) }));
    const lastSecond = this.entries.length ? this.entries.at(-1).second + 1 : 0;
    const lastFlag = Math.max(0, ...this.flags.map((f) => f.end_s ?? f.start_s));
    this.dataDuration = Math.max(1, lastSecond, lastFlag, ...this.marks, ...this.snapshots, ...this.assist.map((a) => a.t));
    this.empty.hidden = this.entries.length > 0;
    this.summary.textContent = this.entries.length ? this.summarise() : "";
    this.renderAssistLog();
    this.render();
  }

  /** Follow a <video>: the cursor tracks playback and picking a time seeks it. */
  attachVideo(video) {
    this.detachVideo();
    this.video = video;
    const on = (type, fn) => {
      video.addEventListener(type, fn);
      this.videoListeners.push([type, fn]);
    };
    const follow = () => this.setTime(video.currentTime);
    const learnDuration = () => this.setMediaDuration(video.duration);
    on("timeupdate", follow);
    on("seeked", follow);
    on("play", () => this.followFrames());
    on("pause", () => this.stopFrames());
    on("ended", () => this.stopFrames());
    on("loadedmetadata", learnDuration);
    on("durationchange", learnDuration);
    if (video.readyState > 0) learnDuration();
  }

  detachVideo() {
    this.stopFrames();
    for (const [type, fn] of this.videoListeners) this.video?.removeEventListener(type, fn);
    this.videoListeners = [];
    this.video = null;
  }

  destroy() {
    this.detachVideo();
    this.resizeObserver?.disconnect();
    this.container.replaceChildren();
  }

  setMediaDuration(seconds) {
    // MediaRecorder files can report Infinity until fully read; keep the data's length then.
    const known = Number.isFinite(seconds) && seconds > 0 ? seconds : null;
    if (known === this.mediaDuration) return;
    this.mediaDuration = known;
    this.render();
  }

  /** Move the playhead cursor (seconds). */
  setTime(t) {
    this.time = Math.max(0, Number(t) || 0);
    if (!this.cursor) return;
    const x = this.x(Math.min(this.time, this.duration));
    this.cursor.setAttribute("x1", x);
    this.cursor.setAttribute("x2", x);
    this.cursor.dataset.t = this.time.toFixed(2);
    this.cursorHead.setAttribute("cx", x);
    const second = Math.floor(this.time);
    if (this.seekArea && this.seekArea.getAttribute("aria-valuenow") !== String(second)) {
      this.seekArea.setAttribute("aria-valuenow", second);
      this.seekArea.setAttribute("aria-valuetext", this.describe(this.time));
    }
  }

  seek(t) {
    const target = Math.min(Math.max(0, t), this.duration);
    this.setTime(target);
    this.onSeek(target);
  }

  // --- layout ---

  build() {
    this.container.replaceChildren();
    this.container.classList.add("emotion-timeline");
    const head = html("div", "timeline-head");
    this.title = html("h2", "timeline-title", t("timeline.title"));
    this.title.id = `${this.patternId}-title`;
    const caption = html("p", "timeline-caption muted small", t("timeline.caption"));
    // What the chart shows, in words, for a screen reader (the chart is described by it).
    this.summary = html("p", "visually-hidden");
    this.summary.id = `${this.patternId}-summary`;
    this.summary.dataset.testid = "qa-timeline-summary";
    head.append(this.title, caption, this.summary);
    this.empty = html("p", "timeline-empty muted small", t("timeline.empty"));
    this.empty.hidden = true;
    this.chartBox = html("div", "timeline-chart");
    this.readout = html("p", "timeline-readout small muted", t("timeline.readout"));
    this.readout.setAttribute("aria-hidden", "true"); // the seek slider's value text says the same to screen readers
    this.assistBox = html("section", "assist-log");
    this.assistBox.hidden = true;
    const assistTitle = html("h3", "assist-log-title small", t("timeline.assist.title"));
    this.assistList = el("ol", { className: "assist-log-list small", testid: "qa-assist-list" });
    this.assistBox.append(assistTitle, this.assistList);
    this.container.append(head, this.empty, this.chartBox, this.readout, this.legend(), this.assistBox);
  }

  legend() {
    const kinds = ["mean", "peak", "flag", "noface", "threshold", "chat", "snapshot", "assist", "help"];
    const list = legendList("timeline-legend small", kinds.map((kind) => ({ swatch: `swatch-${kind}`, label: t(`timeline.legend.${kind}`) })));
    list.setAttribute("aria-label", t("timeline.legend.label"));
    return list;
  }

  get plotWidth() {
    return this.width - PAD.left - PAD.right;
  }

  get plotHeight() {
    return HEIGHT - PAD.top - PAD.bottom;
  }

  x(t) {
    return PAD.left + (t / this.duration) * this.plotWidth;
  }

  y(v) {
    return PAD.top + (1 - clamp01(v)) * this.plotHeight;
  }

  /** Seconds under a pointer event, from the rendered size back to the viewBox. */
  timeAt(ev) {
    const box = this.svg.getBoundingClientRect();
    const vx = ((ev.clientX - box.left) * this.width) / (box.width || 1);
    return Math.min(this.duration, Math.max(0, ((vx - PAD.left) / this.plotWidth) * this.duration));
  }

  /** The chart in one sentence: how long, the highest frustration and when, how many flags. */
  summarise() {
    const scored = this.entries.filter((e) => isScore(e.max_frustration ?? e.mean_frustration));
    const top = scored.reduce((best, e) => ((e.max_frustration ?? e.mean_frustration) > (best.max_frustration ?? best.mean_frustration) ? e : best), scored[0]);
    const peak = top ? percent(top.max_frustration ?? top.mean_frustration) : t("common.none");
    const time = top ? formatClock(top.second) : t("common.none");
    return t("timeline.summary", { total: formatClock(this.dataDuration), peak, time, flags: this.flags.length });
  }

  describe(seconds) {
    const e = this.bySecond.get(Math.floor(seconds));
    const at = t("timeline.at", { time: formatClock(seconds), total: formatClock(this.duration) });
    if (!e) return t("timeline.no_cues", { at });
    if (e.face_present === false) return t("timeline.no_face", { at });
    if (!isScore(e.mean_frustration)) return t("timeline.no_cues", { at });
    const mean = percent(e.mean_frustration);
    return isScore(e.max_frustration) ? t("timeline.score_peak", { at, mean, peak: percent(e.max_frustration) }) : t("timeline.score", { at, mean });
  }

  // --- drawing: the whole chart is redrawn on new data or size; the cursor only moves ---

  render() {
    this.width = Math.round(this.chartBox.clientWidth) || 800;
    const root = svg("svg", { viewBox: `0 0 ${this.width} ${HEIGHT}`, class: "timeline-svg", role: "group" });
    root.setAttribute("aria-labelledby", this.title.id);
    if (this.summary.textContent) root.setAttribute("aria-describedby", this.summary.id);
    this.svg = root;
    this.drawDefs(root);
    svg("rect", { x: PAD.left, y: PAD.top, width: this.plotWidth, height: this.plotHeight, class: "plot-bg" }, root);
    this.drawNoFace(root);
    this.drawFlagSpans(root);
    this.drawGrid(root);
    this.drawSeries(root);
    this.drawThreshold(root);
    this.drawChatMarks(root);
    this.drawSnapshotMarks(root);
    this.drawSeekArea(root);
    this.drawHover(root);
    this.drawCursor(root);
    this.drawFlagMarkers(root);
    this.drawAssistMarkers(root);
    root.addEventListener("click", (ev) => this.seek(this.timeAt(ev)));
    root.addEventListener("pointermove", (ev) => this.showHover(this.timeAt(ev)));
    root.addEventListener("pointerleave", () => this.hideHover());
    this.chartBox.replaceChildren(root);
    this.setTime(this.time);
  }

  drawDefs(root) {
    const defs = svg("defs", {}, root);
    const pattern = svg("pattern", { id: this.patternId, width: 8, height: 8, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
    svg("rect", { width: 8, height: 8, class: "hatch-bg" }, pattern);
    svg("line", { x1: 0, y1: 0, x2: 0, y2: 8, class: "hatch-line" }, pattern);
  }

  drawGrid(root) {
    const grid = svg("g", { class: "grid", "aria-hidden": "true" }, root);
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      svg("line", { x1: PAD.left, x2: PAD.left + this.plotWidth, y1: this.y(v), y2: this.y(v), class: "grid-line" }, grid);
      if (v === 0.25 || v === 0.75) continue;
      svgText(percent(v), { x: PAD.left - 6, y: this.y(v) + 4, class: "axis-label", "text-anchor": "end" }, grid);
    }
    const step = this.tickStep();
    const baseline = PAD.top + this.plotHeight;
    for (let t = 0; t <= this.duration + 0.001; t += step) {
      svg("line", { x1: this.x(t), x2: this.x(t), y1: baseline, y2: baseline + 4, class: "tick" }, grid);
      const anchor = t === 0 ? "start" : t + step > this.duration ? "end" : "middle";
      svgText(formatClock(t), { x: this.x(t), y: baseline + 18, class: "axis-label", "text-anchor": anchor }, grid);
    }
  }

  /** The smallest step that keeps time labels about 70 px apart. */
  tickStep() {
    const maxTicks = Math.max(2, Math.floor(this.plotWidth / 70));
    return TICK_STEPS.find((s) => this.duration / s <= maxTicks) || Math.ceil(this.duration / maxTicks / 3600) * 3600;
  }

  drawNoFace(root) {
    const g = svg("g", { class: "no-face", "aria-hidden": "true" }, root);
    for (const run of runs(this.entries, (e) => e.face_present === false)) {
      const x0 = this.x(run[0].second);
      const x1 = this.x(Math.min(this.duration, run.at(-1).second + 1));
      svg("rect", { x: x0, y: PAD.top, width: Math.max(1, x1 - x0), height: this.plotHeight, fill: `url(#${this.patternId})`, class: "no-face-band" }, g);
    }
  }

  drawFlagSpans(root) {
    const g = svg("g", { class: "flag-spans", "aria-hidden": "true" }, root);
    for (const f of this.flags) {
      const x0 = this.x(f.start_s);
      const x1 = this.x(Math.min(this.duration, Math.max(f.end_s ?? f.start_s, f.start_s + 1)));
      svg("rect", { x: x0, y: PAD.top, width: Math.max(2, x1 - x0), height: this.plotHeight, class: "flag-span" }, g);
    }
  }

  /** Peak per second as a light area, the mean as a line; both break where no face was seen. */
  drawSeries(root) {
    const g = svg("g", { class: "series", "aria-hidden": "true" }, root);
    const scored = (e) => e.face_present !== false && isScore(e.mean_frustration);
    for (const run of runs(this.entries, scored)) {
      const peak = (e) => (isScore(e.max_frustration) ? e.max_frustration : e.mean_frustration);
      svg("path", { d: this.areaPath(run, peak), class: "peak-area" }, g);
      svg("path", { d: this.linePath(run, (e) => e.mean_frustration), class: "mean-line" }, g);
    }
  }

  /** Points sit mid-second; the run is held flat to its edges so single seconds still show. */
  points(run, value) {
    const pts = run.map((e) => [this.x(e.second + 0.5), this.y(value(e))]);
    pts.unshift([this.x(run[0].second), pts[0][1]]);
    pts.push([this.x(Math.min(this.duration, run.at(-1).second + 1)), pts.at(-1)[1]]);
    return pts;
  }

  linePath(run, value) {
    return this.points(run, value).map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  }

  areaPath(run, value) {
    const pts = this.points(run, value);
    const base = this.y(0).toFixed(1);
    return `M${pts[0][0].toFixed(1)},${base}${pts.map(([x, y]) => `L${x.toFixed(1)},${y.toFixed(1)}`).join("")}L${pts.at(-1)[0].toFixed(1)},${base}Z`;
  }

  drawThreshold(root) {
    const y = this.y(THRESHOLD);
    svg("line", { x1: PAD.left, x2: PAD.left + this.plotWidth, y1: y, y2: y, class: "threshold", "aria-hidden": "true" }, root);
  }

  drawChatMarks(root) {
    const g = svg("g", { class: "chat-marks", "aria-hidden": "true" }, root);
    const baseline = PAD.top + this.plotHeight;
    for (const t of this.marks) {
      if (t > this.duration) continue;
      svg("line", { x1: this.x(t), x2: this.x(t), y1: baseline - 7, y2: baseline, class: "chat-mark" }, g);
    }
  }

  /** A small square on the baseline where the rep took a snapshot (the files panel lists them, with their time). */
  drawSnapshotMarks(root) {
    const g = svg("g", { class: "snapshot-marks", "aria-hidden": "true" }, root);
    const baseline = PAD.top + this.plotHeight;
    for (const t of this.snapshots) {
      if (t > this.duration) continue;
      const mark = svg("rect", { x: this.x(t) - 4, y: baseline - 12, width: 8, height: 8, class: "snapshot-mark" }, g);
      mark.dataset.testid = "qa-snapshot-mark";
      mark.dataset.t = String(t);
    }
  }

  /** A transparent slider over the plot: arrow keys seek, like the video's own bar. */
  drawSeekArea(root) {
    const area = svg("rect", { x: PAD.left, y: PAD.top, width: this.plotWidth, height: this.plotHeight, class: "seek-area", tabindex: 0, role: "slider" }, root);
    area.setAttribute("aria-label", t("timeline.seek"));
    area.setAttribute("aria-valuemin", 0);
    area.setAttribute("aria-valuemax", Math.floor(this.duration));
    area.dataset.testid = "qa-timeline-seek";
    area.addEventListener("keydown", (ev) => this.onSeekKey(ev));
    this.seekArea = area;
  }

  onSeekKey(ev) {
    const moves = {
      ArrowLeft: -KEY_STEP_S,
      ArrowDown: -KEY_STEP_S,
      ArrowRight: KEY_STEP_S,
      ArrowUp: KEY_STEP_S,
      PageDown: -PAGE_STEP_S,
      PageUp: PAGE_STEP_S,
    };
    let target = null;
    if (ev.key in moves) target = this.time + moves[ev.key];
    else if (ev.key === "Home") target = 0;
    else if (ev.key === "End") target = this.duration;
    if (target == null) return;
    ev.preventDefault();
    this.seek(target);
  }

  drawHover(root) {
    this.hoverLine = svg("line", { y1: PAD.top, y2: PAD.top + this.plotHeight, class: "hover-line", "aria-hidden": "true" }, root);
    this.hoverLine.style.visibility = "hidden";
  }

  showHover(t) {
    const x = this.x(t);
    this.hoverLine.setAttribute("x1", x);
    this.hoverLine.setAttribute("x2", x);
    this.hoverLine.style.visibility = "visible";
    this.readout.textContent = this.describe(t);
  }

  hideHover() {
    this.hoverLine.style.visibility = "hidden";
  }

  drawCursor(root) {
    const g = svg("g", { class: "cursor", "aria-hidden": "true" }, root);
    this.cursor = svg("line", { y1: PAD.top - 4, y2: PAD.top + this.plotHeight, class: "cursor-line" }, g);
    this.cursor.dataset.testid = "qa-timeline-cursor";
    this.cursorHead = svg("circle", { cy: PAD.top + this.plotHeight, r: 4, class: "cursor-head" }, g);
  }

  drawFlagMarkers(root) {
    for (const f of this.flags) root.append(this.flagMarker(f));
  }

  flagMarker(f) {
    const time = formatClock(f.start_s);
    const label = isScore(f.peak) ? t("timeline.flag_peak", { time, peak: percent(f.peak) }) : t("timeline.flag", { time });
    const g = svg("g", { class: "flag-marker", role: "button", tabindex: 0, transform: `translate(${this.x(f.start_s).toFixed(1)} ${PAD.top - 14})` });
    g.dataset.testid = "qa-flag-marker";
    g.dataset.t = String(f.start_s);
    g.setAttribute("aria-label", label);
    svgTitle(g, label);
    svg("circle", { r: 13, class: "flag-hit" }, g); // a larger target than the glyph
    svg("line", { x1: 0, y1: -7, x2: 0, y2: 14, class: "flag-pole" }, g);
    svg("path", { d: "M0,-7 L10,-3.5 L0,0 Z", class: "flag-glyph" }, g);
    const go = (ev) => {
      ev.preventDefault();
      ev.stopPropagation(); // the chart's own click would seek to the pointer instead
      this.seek(f.start_s);
    };
    g.addEventListener("click", go);
    g.addEventListener("keydown", (ev) => (ev.key === "Enter" || ev.key === " ") && go(ev));
    return g;
  }

  /** What an assist mark says, for its marker's label and its line in the list. */
  assistText(a) {
    const name = a.by || t("timeline.assist.someone");
    return t(`timeline.assist.${a.kind}`, { name, time: formatClock(a.t) });
  }

  drawAssistMarkers(root) {
    for (const a of this.assist) {
      if (a.t > this.duration) continue;
      root.append(this.assistMarker(a));
    }
  }

  /** A pole through the plot with a round head just inside its top: a supervisor's step or an ask for help. */
  assistMarker(a) {
    const label = this.assistText(a);
    const kindClass = isHelp(a.kind) ? "assist-help" : `assist-${a.kind.replace("_", "-")}`;
    const g = svg("g", { class: `assist-marker ${kindClass}`, role: "button", tabindex: 0, transform: `translate(${this.x(a.t).toFixed(1)} ${PAD.top})` });
    g.dataset.testid = "qa-assist-marker";
    g.dataset.kind = a.kind;
    g.dataset.t = String(a.t);
    g.setAttribute("aria-label", label);
    svgTitle(g, label);
    svg("line", { x1: 0, y1: 0, x2: 0, y2: this.plotHeight, class: "assist-pole" }, g);
    svg("circle", { cy: 9, r: 11, class: "assist-hit" }, g);
    svg("circle", { cy: 9, r: 5, class: "assist-head" }, g);
    const go = (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      this.seek(a.t);
    };
    g.addEventListener("click", go);
    g.addEventListener("keydown", (ev) => (ev.key === "Enter" || ev.key === " ") && go(ev));
    return g;
  }

  /** The assist marks and text whispers in time order, each a button that plays from there. */
  renderAssistLog() {
    const lines = [
      ...this.assist.map((a) => ({ t: a.t, text: this.assistText(a), testid: "qa-assist-item", kind: a.kind })),
      ...this.whispers.map((w) => ({
        t: w.t,
        text: t("timeline.assist.whisper_text", { name: w.by || t("timeline.assist.someone"), text: w.text }),
        testid: "qa-whisper-line",
        kind: "whisper_text",
      })),
    ].sort((a, b) => a.t - b.t);
    this.assistList.replaceChildren(
      ...lines.map((line) => {
        const item = el("li", { className: `assist-item assist-item-${line.kind.replace("_", "-")}`, testid: line.testid });
        item.dataset.kind = line.kind;
        item.dataset.t = String(line.t);
        const at = el("button", { className: "assist-at", text: formatClock(line.t) });
        at.type = "button";
        at.setAttribute("aria-label", t("timeline.assist.play_from", { time: formatClock(line.t) }));
        at.addEventListener("click", () => this.seek(line.t));
        item.append(at, el("span", { className: "assist-what", text: line.text }));
        return item;
      }),
    );
    this.assistBox.hidden = lines.length === 0;
  }

  // --- smooth cursor while playing (timeupdate alone fires only ~4 times a second) ---

  followFrames() {
    this.stopFrames();
    const step = () => {
      if (!this.video || this.video.paused) return;
      this.setTime(this.video.currentTime);
      this.frame = requestAnimationFrame(step);
    };
    this.frame = requestAnimationFrame(step);
  }

  stopFrames() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }
}
