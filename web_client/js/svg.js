// Drawing inline SVG for the staff pages' charts (the supervisor's bar charts, the QA
// timeline). No library; colours come from CSS classes (the CSP allows no inline styles).
import { el } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/** A new SVG element with these attributes, appended to `parent` when given. */
export function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (parent) parent.append(node);
  return node;
}

/** A <text> element holding `text`. */
export function svgText(text, attrs, parent) {
  const node = svg("text", attrs, parent);
  node.textContent = text;
  return node;
}

/** A <title> inside `parent`: its tooltip, and its name for assistive technology. */
export function svgTitle(parent, text, attrs = {}) {
  const title = svg("title", attrs, parent);
  title.textContent = text;
  return title;
}

/** The plot area inside a drawing of `width` × `height` with `pad` around it. */
export function plotBox(width, height, pad) {
  const box = { x: pad.left, y: pad.top, w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
  return { ...box, right: box.x + box.w, bottom: box.y + box.h };
}

/**
 * Redraw a chart when its container's width changes: `redraw()` runs when the width differs
 * from `drawnWidth()` by a pixel or more. Returns the observer (disconnect() to stop), or null
 * in a browser without ResizeObserver.
 */
export function followWidth(container, drawnWidth, redraw) {
  if (typeof ResizeObserver !== "function") return null;
  const observer = new ResizeObserver(() => {
    const width = Math.round(container.clientWidth);
    if (width > 0 && Math.abs(width - drawnWidth()) >= 1) redraw();
  });
  observer.observe(container);
  return observer;
}

/** An HTML legend: one item per entry, a swatch with the entry's class (as its marks have) and its label. */
export function legendList(className, entries) {
  const list = el("ul", { className });
  for (const { swatch, label } of entries) {
    const mark = el("span", { className: `swatch ${swatch}` });
    mark.setAttribute("aria-hidden", "true");
    const item = el("li");
    item.append(mark, el("span", { text: label }));
    list.append(item);
  }
  return list;
}
