// Photos, files and snapshots in the chat, on both pages: upload with progress, show a chat item, take a still.
// Uploads go over HTTP (XMLHttpRequest, for its upload progress events), never over the WebSocket.

/** POST ``blob`` to ``url``; ``progress`` (a <progress>) follows the upload. Resolves with the stored file's JSON;
 * rejects with an Error carrying the HTTP status and the server's error code. */
export function upload(url, blob, { headers = {}, progress = null } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (progress) {
      progress.hidden = false;
      progress.value = 0;
      xhr.upload.addEventListener("progress", (ev) => ev.lengthComputable && (progress.value = ev.loaded / ev.total));
    }
    const done = () => progress && (progress.hidden = true);
    xhr.addEventListener("load", () => {
      done();
      let data = {};
      try {
        data = JSON.parse(xhr.responseText || "{}");
      } catch {
        /* not JSON: the status says enough */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(Object.assign(new Error(data.error?.message || xhr.statusText), { status: xhr.status, code: data.error?.code }));
    });
    xhr.addEventListener("error", () => (done(), reject(Object.assign(new Error("network"), { status: 0 }))));
    xhr.send(blob);
  });
}

/** "1.2 MB", "310 kB". */
export function formatSize(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

/** A chat item for a file: an image thumbnail, or a link with the PDF's name and size. ``fetchHeaders``: the
 * customer's page fetches with its call token and shows a blob URL (an <img> cannot send a header). */
export function fileItem(file, { fetchHeaders = null, youAre, label = (f) => f.name } = {}) {
  const li = document.createElement("li");
  li.dataset.testid = file.kind === "snapshot" ? "chat-snapshot" : "chat-file";
  li.dataset.fileId = file.file_id;
  li.className = `chat-line chat-file from-${file.from}${file.from === youAre ? " mine" : ""}`;
  const image = file.media_type.startsWith("image/");
  const link = document.createElement("a");
  link.dataset.testid = "chat-file-link";
  link.textContent = `${label(file)} (${formatSize(file.size)})`;
  link.download = file.name;
  link.rel = "noopener";
  let img = null;
  if (image) {
    img = document.createElement("img");
    img.dataset.testid = "chat-image";
    img.alt = file.name;
    img.className = "chat-thumb";
    if (file.width && file.height) {
      img.width = Math.min(240, file.width);
      img.height = Math.round((img.width * file.height) / file.width);
    }
  }
  const show = (url) => {
    link.href = url;
    if (img) img.src = url;
  };
  if (fetchHeaders) {
    fetch(file.url, { headers: fetchHeaders, credentials: "omit" })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(String(r.status)))))
      .then((blob) => show(URL.createObjectURL(blob)))
      .catch(() => li.classList.add("unavailable"));
  } else {
    show(file.url);
  }
  if (img) li.append(img);
  li.append(link);
  return li;
}

/** A reloaded page's history: chat lines and files (each with ``at``) shown in the order they were sent. */
export function replayInOrder(chat = [], files = [], { line, file }) {
  const items = [...chat.map((m) => [m.at, () => line(m)]), ...files.map((f) => [f.at, () => file(f)])];
  items.sort((a, b) => Date.parse(a[0]) - Date.parse(b[0])); // stable: a line and a file of one instant keep order
  for (const [, show] of items) show();
}

/** A full-resolution still of the camera track: ImageCapture.takePhoto() at the camera's own resolution where
 * the browser has it, else grabFrame(), else the <video> drawn at its videoWidth × videoHeight. A Blob. */
export async function takeStill(track, video) {
  if (track && "ImageCapture" in window) {
    const capture = new window.ImageCapture(track);
    try {
      return await capture.takePhoto();
    } catch {
      try {
        const bitmap = await capture.grabFrame();
        return await toBlob(bitmap, bitmap.width, bitmap.height);
      } catch {
        /* fall through to the <video> */
      }
    }
  }
  if (!video || !video.videoWidth) throw new Error("no camera picture");
  return toBlob(video, video.videoWidth, video.videoHeight);
}

function toBlob(source, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(source, 0, 0, width, height);
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no picture"))), "image/jpeg", 0.92));
}
