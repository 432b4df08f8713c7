// JSON over HTTP with the page's cookie. A refusal throws an Error carrying the HTTP status
// and the server's error code (err.status, err.code) and the server's message.

export async function request(method, url, { body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  const r = await fetch(url, init);
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(data.error?.message || r.statusText), { status: r.status, code: data.error?.code });
  return data;
}

export const postJSON = (url, body, headers = {}) => request("POST", url, { body, headers });
