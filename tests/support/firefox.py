"""Real Firefox (Debian's ``firefox-esr``) for the tests, headless, driven over its built-in Marionette.

``firefox_in(host, folder)`` starts Firefox inside one of the test network's hosts (tests/support/netlab.py):
Firefox gathers ICE candidates only on an interface with a default route, which the test's own namespace (lo
only) lacks. Its profile has the fake camera and microphone prefs and nothing else changed from Firefox's
defaults that matters to WebRTC: host addresses stay hidden behind mDNS names, as for a customer.

Marionette listens on 127.0.0.1 inside the host, out of the test's reach: a relay in the host joins it to a Unix
socket (a path, which every namespace shares), and one in the test process to a loopback port of the test's
namespace for the blocking ``marionette_driver`` client. Its calls run on a thread of their own, so the event
loop (Playwright, the relay) keeps going meanwhile.

``FirefoxPage`` answers ``evaluate(function_text, arg)`` and ``wait_for_timeout(ms)`` as a Playwright ``Page``
does, so tests/support/browser.py's readers of the remote picture (``remote_colour``, ``wait_remote_colour``) work
on it through ``as_page``. Not its reader of the remote sound: headless Firefox without a sound device never runs
an AudioContext ("suspended", currentTime 0), so a Firefox page cannot tell the pitch it hears, only how loud it is
(``wait_remote_audio_level``, from getStats()). ``use_test_camera`` gives the page cameras of known colours and
Firefox's fake microphone at a known pitch (a ``Side``'s), as Chromium's y4m and wav files do; Firefox's own fake
camera shows a moving pattern of its own.

A missing ``firefox-esr`` skips the test, which under ``RAPPORT_STRICT_TESTS=1`` is a failure (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from marionette_driver.errors import StaleElementException
from marionette_driver.geckoinstance import DesktopInstance, GeckoInstance
from marionette_driver.marionette import Marionette
from playwright.async_api import Page

from .browser import Side
from .netlab import Host
from .processes import stop_process

FIREFOX = "/usr/bin/firefox-esr"
MARIONETTE_PORT = 2828  # inside the host, where nothing else listens
START_TIMEOUT_S = 30.0

# A camera and a microphone without a prompt; media plays without a click.
FAKE_MEDIA_PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
}

T = TypeVar("T")

# In the host: accept on a Unix socket, connect each to 127.0.0.1:<port> there, and copy both ways.
RELAY_PY = """
import socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen()
print("ready", flush=True)
def pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for end in (source, sink):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    client, _ = server.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", port))
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"""


def profile_prefs(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """marionette_driver's own prefs for a quiet test profile (no first-run pages, updates or telemetry), the fake
    media, and ``extra``."""
    prefs = {**GeckoInstance.required_prefs, **DesktopInstance.desktop_prefs, **FAKE_MEDIA_PREFS}
    prefs["marionette.port"] = MARIONETTE_PORT
    return {**prefs, **(extra or {})}


def write_profile(folder: Path, prefs: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()]
    (folder / "user.js").write_text("\n".join(lines) + "\n")
    return folder


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class _LoopbackRelay:
    """A loopback port of the test's namespace whose connections go to a Unix socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(self.path))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class Firefox:
    """One headless Firefox in a lab host and its Marionette session (one tab: ``page``)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, marionette: Marionette, thread: ThreadPoolExecutor):
        self.process = process
        self.log = log
        self.marionette = marionette
        self._thread = thread
        self.page = FirefoxPage(self)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the Marionette client's own thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))


SHOWN_JS = """(id) => {
  const element = document.querySelector(`[data-testid="${id}"]`);
  return !!element && element.getClientRects().length > 0;
}"""


@dataclass
class FirefoxPage:
    """The tab, with the part of Playwright's ``Page`` that the tests' readers use."""

    firefox: Firefox

    async def goto(self, url: str) -> None:
        await self.firefox.call(self.firefox.marionette.navigate, url)

    async def evaluate(self, function: str, arg: Any = None) -> Any:
        """Call the JavaScript ``function`` (source text) with ``arg`` in the page's own world, or evaluate it if
        it is an expression, and return the result (awaited if it is a promise), as Playwright's ``page.evaluate``
        does."""
        script = f'const value = ({function});\nreturn typeof value === "function" ? value(arguments[0]) : value;'
        # sandbox=None: the page's own globals (window.rapport, and what use_test_camera replaces), not an Xray.
        return await self.firefox.call(
            self.firefox.marionette.execute_script, script, script_args=[arg], sandbox=None, script_timeout=60_000
        )

    async def wait_for_timeout(self, ms: float) -> None:
        await asyncio.sleep(ms / 1000)

    async def wait_shown(self, test_id: str, timeout_s: float = 15.0) -> None:
        """Wait until the element with this ``data-testid`` is in the page and shown, as Playwright's actions do
        before they act (Marionette's do not: a field the page has yet to show is "no such element")."""
        if not await self.wait_for(SHOWN_JS, test_id, timeout_s=timeout_s):
            raise AssertionError(f"Firefox: [data-testid={test_id}] is not shown (state {await self.state()})")

    async def click(self, test_id: str) -> None:
        """A real click (Marionette's element click) on the element with this ``data-testid``, once it is shown."""
        await self.wait_shown(test_id)
        marionette = self.firefox.marionette

        def click() -> None:
            marionette.find_element("css selector", f'[data-testid="{test_id}"]').click()

        await self._fresh(click)

    async def fill(self, test_id: str, text: str) -> None:
        """Type ``text`` into the field with this ``data-testid`` (after clearing it), once it is shown."""
        await self.wait_shown(test_id)
        marionette = self.firefox.marionette

        def fill() -> None:
            field = marionette.find_element("css selector", f'[data-testid="{test_id}"]')
            field.clear()
            field.send_keys(text)

        await self._fresh(fill)

    async def _fresh(self, act: Callable[[], None], attempts: int = 5) -> None:
        """Run ``act`` (find an element and act on it); if the page re-rendered the element between the find and
        the act, find it again, as Playwright's locators do."""
        for attempt in range(attempts):
            try:
                await self.firefox.call(act)
                return
            except StaleElementException:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)

    async def wait_for(self, function: str, arg: Any = None, timeout_s: float = 15.0) -> Any:
        """Poll ``function(arg)`` until it returns something truthy; its last value (for the assertion) either way."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(function, arg)
            if value or time.monotonic() > deadline:
                return value
            await asyncio.sleep(0.1)

    async def state(self) -> str | None:
        value = await self.evaluate("() => document.body && document.body.dataset.state")
        return None if value is None else str(value)

    async def use_test_camera(self, cameras: Sequence[Side], microphone: Side) -> None:
        """From now on this page's ``getUserMedia`` and ``enumerateDevices`` see ``cameras`` (the first faces the
        user, the second the environment), each a picture of its colour, and a microphone playing
        ``microphone``'s tone (call after every navigation: it lives in the page)."""
        marionette = self.firefox.marionette
        await self.firefox.call(marionette.set_pref, "media.navigator.audio.fake_frequency", round(microphone.tone_hz))
        await self.evaluate(TEST_CAMERA_JS, {"cameras": [{"name": c.name, "rgb": list(c.rgb)} for c in cameras]})


def as_page(page: FirefoxPage) -> Page:
    """``page`` for tests/support/browser.py's readers, which call only ``evaluate`` and ``wait_for_timeout``."""
    return cast(Page, page)


# Replaces the page's camera and microphone (see FirefoxPage.use_test_camera). A canvas painted in the camera's
# colour 30 times a second, and a WebAudio oscillator: both real MediaStreamTracks that Firefox encodes like a
# camera's. The page picks a camera by deviceId or facingMode (exact or not), as on a phone.
TEST_CAMERA_JS = """({ cameras }) => {
  const devices = cameras.map((camera, i) => ({
    deviceId: `rapport-test-camera-${i}`,
    groupId: "rapport-test",
    kind: "videoinput",
    label: `${camera.name} camera`,
    facingMode: i === 0 ? "user" : "environment",
    rgb: camera.rgb,
  }));
  const microphone = { deviceId: "rapport-test-microphone", groupId: "rapport-test", kind: "audioinput",
                       label: "test tone" };
  const info = (d) => ({ deviceId: d.deviceId, groupId: d.groupId, kind: d.kind, label: d.label,
                         toJSON() { return this; } });

  const wanted = (constraint, value) => {
    if (constraint === undefined) return true;
    if (typeof constraint === "string" || Array.isArray(constraint)) return [].concat(constraint).includes(value);
    if (constraint.exact !== undefined) return [].concat(constraint.exact).includes(value);
    return true;
  };
  const preferred = (constraint, value) => {
    if (constraint === undefined || constraint === null) return false;
    const ideal = typeof constraint === "object" && !Array.isArray(constraint) ? constraint.ideal : constraint;
    return ideal !== undefined && [].concat(ideal).includes(value);
  };
  const pickCamera = (video) => {
    const c = typeof video === "object" ? video : {};
    const allowed = devices.filter((d) => wanted(c.deviceId, d.deviceId) && wanted(c.facingMode, d.facingMode));
    if (allowed.length === 0) {
      throw new DOMException("no camera matches the constraints", "OverconstrainedError");
    }
    return allowed.find((d) => preferred(c.deviceId, d.deviceId) || preferred(c.facingMode, d.facingMode))
      || allowed[0];
  };

  const cameraTrack = (device) => {
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const g = canvas.getContext("2d");
    const paint = () => {
      g.fillStyle = `rgb(${device.rgb.join(",")})`;
      g.fillRect(0, 0, canvas.width, canvas.height);
    };
    paint();
    const track = canvas.captureStream(30).getVideoTracks()[0];
    const timer = setInterval(paint, 33);
    const stop = track.stop.bind(track);
    track.stop = () => { clearInterval(timer); stop(); };
    const settings = track.getSettings.bind(track);
    track.getSettings = () => ({ ...settings(), deviceId: device.deviceId, groupId: device.groupId,
                                 facingMode: device.facingMode });
    return track;
  };

  const media = navigator.mediaDevices;
  const realGetUserMedia = media.getUserMedia.bind(media);
  // Firefox's own fake microphone, a sine at media.navigator.audio.fake_frequency: a WebAudio oscillator would
  // stay silent, as headless Firefox without a sound device never runs an AudioContext. Unprocessed, so noise
  // suppression does not fade the steady tone.
  const microphoneTrack = async () => {
    const plain = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
    return (await realGetUserMedia({ audio: plain })).getAudioTracks()[0];
  };

  media.getUserMedia = async (constraints = {}) => {
    const tracks = [];
    if (constraints.video) tracks.push(cameraTrack(pickCamera(constraints.video)));
    if (constraints.audio) tracks.push(await microphoneTrack());
    if (tracks.length === 0) throw new TypeError("getUserMedia needs audio or video");
    return new MediaStream(tracks);
  };
  media.enumerateDevices = async () => [...devices.map(info), info(microphone)];
  return true;
}"""

# Frames the page's remote <video> has painted: headless Firefox counts none in getVideoPlaybackQuality() for a
# MediaStream, but mozPaintedFrames counts (about 20 a second for a 30 fps stream).
PAINTED_FRAMES_JS = """() => {
  const video = document.querySelector('[data-testid="remote-video"]');
  return video ? video.mozPaintedFrames : 0;
}"""


# The loudness (0..1) of what the page receives as audio, by getStats(): headless Firefox without a sound device
# never runs an AudioContext ("suspended", currentTime 0), so the page cannot analyse the pitch it hears.
REMOTE_AUDIO_LEVEL_JS = """async () => {
  const pc = window.rapport && window.rapport.pc;
  if (!pc) return null;
  let level = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") level = Math.max(level || 0, s.audioLevel || 0);
  });
  return level;
}"""


async def wait_remote_audio_level(page: FirefoxPage, at_least: float, timeout_s: float = 15.0) -> float | None:
    """Wait until the page receives audio at least this loud; the last level seen (for the assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        level = await page.evaluate(REMOTE_AUDIO_LEVEL_JS)
        if (level is not None and level >= at_least) or time.monotonic() > deadline:
            return None if level is None else float(level)
        await asyncio.sleep(0.2)


async def painted_frames(page: FirefoxPage) -> int:
    return int(await page.evaluate(PAINTED_FRAMES_JS) or 0)


async def wait_painted_frames(page: FirefoxPage, at_least: int, timeout_s: float = 15.0) -> int:
    """Wait until the remote <video> has painted ``at_least`` frames; the count reached (for the assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        painted = await painted_frames(page)
        if painted >= at_least or time.monotonic() > deadline:
            return painted
        await asyncio.sleep(0.2)


def _launch(
    host: Host, folder: Path, prefs: dict[str, Any] | None, moz_log: str | None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Firefox and the Marionette relay started in ``host`` (the lab stops both at the latest): Firefox's process
    and the relay's Unix socket."""
    if not os.path.exists(FIREFOX):
        pytest.skip(f"{FIREFOX} is not installed (make test installs Debian's firefox-esr)")
    folder.mkdir(parents=True, exist_ok=True)
    profile = write_profile(folder / "profile", profile_prefs(prefs))
    # Short, whatever the test's folder is: a Unix socket's path has room for 107 bytes.
    socket_path = Path(tempfile.gettempdir()) / f"rapport-marionette-{host.pid}.sock"
    socket_path.unlink(missing_ok=True)
    env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}
    if moz_log:
        env |= {"MOZ_LOG": moz_log, "MOZ_LOG_FILE": str(folder / "moz.log")}
    with (folder / "firefox.log").open("wb") as out:
        firefox = host.popen(
            # System access: Marionette may set prefs while Firefox runs (the fake microphone's pitch).
            [FIREFOX, "--headless", "--marionette", "-remote-allow-system-access", "--no-remote"]
            + ["--profile", str(profile), "about:blank"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    relay = host.popen([sys.executable, "-c", RELAY_PY, str(socket_path), str(MARIONETTE_PORT)], stdout=subprocess.PIPE)
    assert relay.stdout is not None
    if relay.stdout.readline() != b"ready\n":
        raise RuntimeError("the Marionette relay in the host did not start")
    return firefox, socket_path


@asynccontextmanager
async def firefox_in(
    host: Host, folder: Path, *, prefs: dict[str, Any] | None = None, moz_log: str | None = None
) -> AsyncIterator[Firefox]:
    """A headless Firefox ESR in ``host`` (one per host: Marionette's port is fixed) with the fake-media profile
    (plus ``prefs``), its Marionette session accepting the test's self-signed certificates; ``moz_log`` (e.g.
    "signaling:5,nicer:5") writes Firefox's own log to ``folder``/moz.log. Stopped on the way out, whatever
    happened inside."""
    process, socket_path = await asyncio.to_thread(_launch, host, folder, prefs, moz_log)
    log = folder / "firefox.log"
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marionette")
    relay = _LoopbackRelay(socket_path)
    marionette: Marionette | None = None
    try:
        await relay.start()

        def connect() -> Marionette:
            client = Marionette(host="127.0.0.1", port=relay.port, startup_timeout=int(START_TIMEOUT_S))
            client.start_session({"acceptInsecureCerts": True})
            return client

        try:
            marionette = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except Exception as exc:
            tail = await asyncio.to_thread(log.read_text, errors="replace")
            raise RuntimeError(f"Firefox did not start (exit code {process.poll()}):\n{tail[-3000:]}") from exc
        yield Firefox(process, log, marionette, thread)
    finally:
        if marionette is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(thread, marionette.delete_session)
        await asyncio.to_thread(stop_process, process, 15)
        await relay.stop()
        thread.shutdown(wait=False)
        socket_path.unlink(missing_ok=True)
