// Small DOM helpers shared by every page. Text from users or the server only ever goes in
// as text (textContent), never as markup.

/** The element with this data-testid (the pages find their parts by test id). */
export const $ = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

/** A new element with an optional class, text and test id. */
export function el(tag, { className, text, testid } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  if (testid) node.dataset.testid = testid;
  return node;
}

/** Unhide the element with this test id, with new text if given. */
export function show(testid, text) {
  const node = $(testid);
  if (text != null) node.textContent = text;
  node.hidden = false;
  return node;
}

export const hide = (testid) => ($(testid).hidden = true);

/** Set text only when it changes, so a redraw does not disturb selection or screen readers. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The page's state, in <body data-state>: the stylesheet shows the matching screen. */
export function setState(state) {
  document.body.dataset.state = state;
}

let toastTimer = null;
/** A transient message in the page's error-toast, for five seconds. */
export function toast(text) {
  const node = $("error-toast");
  if (!node) return;
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (node.hidden = true), 5000);
}

/** window.rapport: the page's state and whatever else tests and tools read (see docs/ui.md). */
export function exposePage(getters = {}) {
  const all = { state: () => document.body.dataset.state, ...getters };
  window.rapport = Object.defineProperties({}, Object.fromEntries(Object.entries(all).map(([name, get]) => [name, { get, enumerable: true }])));
}
