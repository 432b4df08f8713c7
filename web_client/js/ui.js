// Small DOM helpers shared by the pages.

export const $ = (testid, root = document) => root.querySelector(`[data-testid="${testid}"]`);

let toastTimer = null;
export function toast(text) {
  const el = $("error-toast");
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 5000);
}

export function setState(state) {
  document.body.dataset.state = state;
}

export function formatWait(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(s % 60).padStart(2, "0")} s`;
}

export function describeDevice() {
  const ua = navigator.userAgent;
  const model = /Pixel \d+[a-zA-Z ]*/.exec(ua)?.[0]?.trim() || (/iPhone/.test(ua) ? "iPhone" : /iPad/.test(ua) ? "iPad" : /Android/.test(ua) ? "Android" : /Mac/.test(ua) ? "Mac" : /Windows/.test(ua) ? "Windows" : "Computer");
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  return `${model} · ${browser}`;
}

export async function postJSON(url, body, headers = {}) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.error?.message || r.statusText), { status: r.status, code: data.error?.code });
  return data;
}
