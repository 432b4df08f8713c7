// Small inline-SVG bar charts for the supervisor's reports. No libraries: each chart is
// drawn at its container's width (redrawn on resize), has a <title> and <desc> for
// assistive technology, a <title> tooltip on every bar, and CSS classes for colours
// (`series-<id>`), so the page's stylesheet decides the palette (CSP: no inline styles).
import { followWidth, legendList, plotBox, svg, svgText, svgTitle } from "../svg.js";

const HEIGHT = 250;
const PAD = { top: 22, right: 14, bottom: 46, left: 58 };
const MIN_WIDTH = 260;
const MAX_TICKS = 5;
const LABEL_CHAR_PX = 6.4; // rough width of one 11 px character, to thin and shorten axis labels
const STEPS = {
  number: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000],
  time: [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400],
  percent: [0.01, 0.02, 0.05, 0.1, 0.2, 0.25],
  rating: [1],
};
let instances = 0;

const isValue = (v) => typeof v === "number" && Number.isFinite(v);

/** A y axis from 0 with at most MAX_TICKS steps of a round size for this kind of value. */
export function niceAxis(max, kind = "number", fixedTop = null) {
  const steps = STEPS[kind] || STEPS.number;
  const floor = kind === "percent" ? 0.1 : kind === "time" ? 60 : 1;
  const target = fixedTop ?? Math.max(isValue(max) ? max : 0, floor);
  let step = steps.find((s) => target / s <= MAX_TICKS);
  if (step == null) {
    const magnitude = 10 ** Math.floor(Math.log10(target / MAX_TICKS));
    step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => target / s <= MAX_TICKS) ?? 10 * magnitude;
  }
  let top = fixedTop ?? Math.ceil(target / step - 1e-9) * step;
  if (kind === "percent") top = Math.min(1, top);
  const ticks = [];
  for (let v = 0; v <= top + step / 1000; v += step) ticks.push(Math.round(v / step) * step);
  return { top, step, ticks };
}

function shorten(text, maxChars) {
  const s = String(text);
  if (s.length <= maxChars) return s;
  return maxChars <= 1 ? "…" : `${s.slice(0, Math.max(1, maxChars - 1)).trimEnd()}…`;
}

/**
 * Draw a bar chart into `container` and keep it sized to the container.
 *
 * spec = {
 *   title, description,                  // the SVG's accessible <title> and <desc>
 *   xLabel, yLabel,                       // axis labels
 *   kind: "number" | "time" | "percent" | "rating",
 *   mode: "stacked" | "grouped",
 *   categories: [{key, label, longLabel}],
 *   series: [{id, label, values: [number | null, ...]}],  // one value per category
 *   format: (value) => string,           // axis ticks, value labels and tooltips
 *   yMax: number | null,                  // a fixed top (ratings: 5)
 *   valueLabels: boolean,                 // the value (or the stack's total) above each bar
 *   tooltip: (category, series, value) => string,
 * }
 */
export function renderBarChart(container, spec) {
  const state = container.chartState || { width: 0, observer: null, id: ++instances };
  state.spec = spec;
  container.chartState = state;
  draw(container);
  if (!state.observer) {
    state.observer = followWidth(container, () => state.width, () => draw(container));
  }
}

/** Stop following the container's size and empty it. */
export function clearChart(container) {
  container.chartState?.observer?.disconnect();
  container.chartState = null;
  container.replaceChildren();
}

function draw(container) {
  const { spec, id } = container.chartState;
  const width = Math.max(MIN_WIDTH, Math.floor(container.clientWidth) || 560);
  container.chartState.width = width;
  const format = spec.format || ((v) => String(v));
  const categories = spec.categories || [];
  const series = spec.series || [];
  const stacked = spec.mode === "stacked";
  const plot = plotBox(width, HEIGHT, PAD);

  const totals = categories.map((_, i) => series.reduce((sum, s) => sum + (isValue(s.values[i]) ? s.values[i] : 0), 0));
  const max = stacked ? Math.max(0, ...totals) : Math.max(0, ...series.flatMap((s) => s.values.filter(isValue)));
  const axis = niceAxis(max, spec.kind, spec.yMax ?? null);
  const y = (v) => plot.y + plot.h - (Math.min(v, axis.top) / axis.top) * plot.h;

  const titleId = `chart-${id}-title`;
  const descId = `chart-${id}-desc`;
  const root = svg("svg", {
    class: "chart-svg",
    width,
    height: HEIGHT,
    viewBox: `0 0 ${width} ${HEIGHT}`,
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
  });
  svgTitle(root, spec.title, { id: titleId });
  svg("desc", { id: descId }, root).textContent = spec.description || "";

  // grid and y axis
  svg("rect", { class: "plot-bg", x: plot.x, y: plot.y, width: plot.w, height: plot.h }, root);
  const grid = svg("g", { class: "y-axis", "aria-hidden": "true" }, root);
  for (const v of axis.ticks) {
    const ty = y(v);
    svg("line", { class: v === 0 ? "baseline" : "grid-line", x1: plot.x, x2: plot.x + plot.w, y1: ty, y2: ty }, grid);
    svgText(format(v), { class: "tick-label", x: plot.x - 6, y: ty, "text-anchor": "end", "dominant-baseline": "middle" }, grid);
  }
  if (spec.yLabel) {
    const cx = 14;
    const cy = plot.y + plot.h / 2;
    svgText(spec.yLabel, { class: "axis-label", x: cx, y: cy, "text-anchor": "middle", transform: `rotate(-90 ${cx} ${cy})` }, root);
  }
  if (spec.xLabel) {
    svgText(spec.xLabel, { class: "axis-label", x: plot.x + plot.w / 2, y: HEIGHT - 6, "text-anchor": "middle" }, root);
  }

  // bars
  const n = Math.max(1, categories.length);
  const slot = plot.w / n;
  const groupW = Math.max(2, Math.min(slot * 0.72, 90));
  const barsPerSlot = stacked ? 1 : Math.max(1, series.length);
  const barW = Math.max(1, groupW / barsPerSlot);
  const bars = svg("g", { class: "bars" }, root);
  const showValues = spec.valueLabels && (stacked || series.length === 1) && slot >= 26;
  categories.forEach((cat, i) => {
    const group = svg("g", { class: "bar-group", "data-key": cat.key }, bars);
    const x0 = plot.x + slot * i + (slot - groupW) / 2;
    let base = 0;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (!isValue(v) || v <= 0) return;
      const top = stacked ? base + v : v;
      const bottom = stacked ? base : 0;
      const bx = stacked ? x0 : x0 + j * barW;
      const rect = svg(
        "rect",
        {
          class: `bar series-${s.id}`,
          x: bx.toFixed(2),
          y: y(top).toFixed(2),
          width: Math.max(1, (stacked ? groupW : barW) - (barsPerSlot > 1 ? 1 : 0)).toFixed(2),
          height: Math.max(1, y(bottom) - y(top)).toFixed(2),
          "data-series": s.id,
          "data-value": v,
        },
        group,
      );
      const tip = spec.tooltip ? spec.tooltip(cat, s, v) : `${cat.longLabel || cat.label}: ${s.label} ${format(v)}`;
      svgTitle(rect, tip);
      if (stacked) base += v;
    });
    if (showValues) {
      const value = stacked ? totals[i] : series[0]?.values[i];
      if (isValue(value) && (value > 0 || !stacked)) {
        svgText(format(value), { class: "value-label", x: x0 + groupW / 2, y: y(value) - 5, "text-anchor": "middle" }, group);
      }
    }
  });

  // x labels: thinned and shortened so they never overlap
  const xAxis = svg("g", { class: "x-axis", "aria-hidden": "true" }, root);
  const longest = Math.max(1, ...categories.map((c) => String(c.label).length));
  const every = Math.max(1, Math.ceil((Math.min(longest, 14) * LABEL_CHAR_PX + 8) / slot));
  const maxChars = Math.max(3, Math.floor((slot * every - 6) / LABEL_CHAR_PX));
  categories.forEach((cat, i) => {
    if (i % every !== 0) return;
    const cx = plot.x + slot * i + slot / 2;
    svg("line", { class: "tick", x1: cx, x2: cx, y1: plot.y + plot.h, y2: plot.y + plot.h + 4 }, xAxis);
    const label = svgText(shorten(cat.label, maxChars), { class: "tick-label", x: cx, y: plot.y + plot.h + 17, "text-anchor": "middle" }, xAxis);
    if (label.textContent !== String(cat.label)) svgTitle(label, String(cat.longLabel || cat.label));
  });

  container.replaceChildren(root);
}

/** An HTML legend for the chart's series: swatches carry the same `series-<id>` class as the bars. */
export const chartLegend = (series) => legendList("chart-legend", series.map((s) => ({ swatch: `series-${s.id}`, label: s.label })));
