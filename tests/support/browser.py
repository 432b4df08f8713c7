"""Real Chromium for the browser tests: launching it with a fake camera and microphone, the pages, and
reading what a page's remote <video> shows and plays.

Who sees what: each side gets its own Chromium process (the fake-capture flags are process-wide) with
its own picture and tone (``Side``). ``remote_colour`` draws the page's ``remote-video`` to a canvas and
averages it; ``remote_tone`` runs the remote stream through a WebAudio analyser and finds the loudest
frequency. A server that looped a side back to itself, or swapped the streams, shows the wrong colour.
"""

from __future__ import annotations

import math
import wave
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from playwright.async_api import Browser, Page, Playwright, async_playwright, expect

from emotion import EmotionService
from tests.support.faces import Clip, make_clip, person, write_clip_y4m, write_y4m
from tests.support.server import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Side:
    """What one side's fake camera shows (a colour, RGB) and its fake microphone plays (a tone).

    ``band`` is the part of the picture (top and bottom, fractions of the height) in that colour:
    all of it for a solid colour, a strip along the top when a face must fill the rest.
    """

    name: str
    rgb: tuple[int, int, int]
    tone_hz: float
    band: tuple[float, float] = (0.0, 1.0)


# Far apart in hue and in pitch (an octave), so neither can pass for the other after VP8 and Opus.
CUSTOMER = Side("customer", (230, 120, 30), 440.0)
REP = Side("rep", (30, 110, 220), 880.0)

SAMPLE_RATE = 48000


def write_solid_y4m(path: Path, rgb: tuple[int, int, int], width: int = 320, height: int = 240, fps: int = 30) -> Path:
    """One second of a solid colour, for ``--use-file-for-fake-video-capture`` (Chromium loops it)."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = rgb[::-1]  # BGR
    write_y4m(path, (frame for _ in range(fps)), fps)
    return path


def write_banded_clip_y4m(path: Path, clip: Clip, side: Side) -> Path:
    """``clip`` (a face, for the emotion cues) with ``side``'s colour painted over its ``band``."""
    top, bottom = (round(f * clip.height) for f in side.band)

    def banded() -> Iterable[np.ndarray]:
        for _t, frame in clip.frames():
            frame[top:bottom] = side.rgb[::-1]
            yield frame

    write_y4m(path, banded(), clip.fps)
    return path


def write_tone_wav(path: Path, hz: float, seconds: float = 2.0) -> Path:
    """A 16-bit mono sine for ``--use-file-for-fake-audio-capture``: a whole number of cycles, so the loop is seamless.

    The tone pulses (on 0.4 s, off 0.1 s), so the page's noise suppression does not learn it as steady noise.
    """
    n = int(SAMPLE_RATE * seconds)
    t = np.arange(n) / SAMPLE_RATE
    cycles = round(hz * seconds)
    tone = np.sin(2 * math.pi * (cycles / seconds) * t)
    gate = ((t % 0.5) < 0.4).astype(np.float64)
    samples = (0.5 * 32767 * tone * gate).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


def fake_capture(directory: Path, side: Side, video: Path | None = None) -> tuple[Path, Path]:
    """The (y4m, wav) pair for ``side``: its colour (or ``video``, e.g. a face clip) and its tone."""
    y4m = video or write_solid_y4m(directory / f"{side.name}.y4m", side.rgb)
    wav = write_tone_wav(directory / f"{side.name}.wav", side.tone_hz)
    return y4m, wav


def chromium_args(video: Path, audio: Path | None = None) -> list[str]:
    args = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-gpu",
    ]
    if audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio}")
    return args


class Chromium(NamedTuple):
    """A launched headless Chromium and the Playwright driving it (unpacks as ``pw, browser``)."""

    pw: Playwright
    browser: Browser


async def launch(
    video: Path, audio: Path | None = None, *, executable: str | Path = CHROMIUM, extra_args: Sequence[str] = ()
) -> Chromium:
    """A headless Chromium whose camera plays ``video`` (y4m) and microphone ``audio`` (wav, else a beep).

    ``executable``: another way to start it, e.g. a test network host's wrapper (tests/support/netlab.py);
    ``extra_args``: more flags after the usual ones."""
    pw = await async_playwright().start()
    args = [*chromium_args(video, audio), *extra_args]
    browser = await pw.chromium.launch(executable_path=str(executable), headless=True, args=args)
    return Chromium(pw, browser)


@asynccontextmanager
async def chromium(
    video: Path, audio: Path | None = None, *, executable: str | Path = CHROMIUM, extra_args: Sequence[str] = ()
) -> AsyncIterator[Chromium]:
    """``launch``, closed on the way out whatever happened inside."""
    launched = await launch(video, audio, executable=executable, extra_args=extra_args)
    try:
        yield launched
    finally:
        await close(launched)


@pytest.fixture
async def faces_y4m(tmp_path: Path) -> Path:
    """A real face for Chromium's fake camera."""
    path = tmp_path / "happy.y4m"
    write_clip_y4m(path, make_clip([(person("happy"), 2.0)], width=640, height=480, fps=30))
    return path


@pytest.fixture
async def browser(faces_y4m: Path) -> AsyncIterator[Chromium]:
    """The one Chromium fixture: its camera shows a real face, its microphone plays Chromium's own beep."""
    async with chromium(faces_y4m) as launched:
        yield launched


@asynccontextmanager
async def chromium_per_side(
    directory: Path, customer_capture: tuple[Path, Path] | None = None
) -> AsyncIterator[tuple[Chromium, Chromium]]:
    """(customer's, rep's) Chromium, one per side because fake capture is per process: each shows its side's
    colour and plays its tone (the customer ``customer_capture``'s y4m and wav instead, if given)."""
    customer = customer_capture or fake_capture(directory, CUSTOMER)
    async with chromium(*customer) as customer_side, chromium(*fake_capture(directory, REP)) as rep_side:
        yield customer_side, rep_side


def pixel_7(pw: Playwright) -> dict[str, Any]:
    """Playwright's Pixel 7 as context options (Chromium runs it, whatever browser the device names)."""
    device = dict(pw.devices["Pixel 7"])
    device.pop("default_browser_type", None)
    return device


async def phone_page(pw: Playwright, browser: Browser, url: str, *, init_script: str | None = None) -> Page:
    """The customer's phone at ``url``; ``init_script`` runs in the page before its own scripts (e.g. to wrap
    RTCPeerConnection)."""
    context = await browser.new_context(**pixel_7(pw), permissions=["camera", "microphone"])
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    await page.goto(url)
    return page


async def desktop_page(browser: Browser, url: str) -> Page:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, permissions=["camera", "microphone"])
    page = await context.new_page()
    await page.goto(url)
    return page


async def decoded_frames(page: Page) -> int:
    """Frames the page's remote <video> has decoded so far."""
    value = await page.eval_on_selector(
        '[data-testid="remote-video"]', "v => v.getVideoPlaybackQuality().totalVideoFrames"
    )
    return int(value)


FRAMES_AT_LEAST_JS = """n => document.querySelector('[data-testid="remote-video"]')
    .getVideoPlaybackQuality().totalVideoFrames >= n"""


async def wait_frames_grow(page: Page, at_least: int, timeout_ms: int = 15000) -> int:
    await page.wait_for_function(FRAMES_AT_LEAST_JS, arg=at_least, timeout=timeout_ms)
    return await decoded_frames(page)


async def rep_login(page: Page, username: str = "rep1", password: str = PASSWORD) -> None:
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("body")).to_have_attribute("data-state", "queue")
    await page.get_by_test_id("availability").click()
    await expect(page.get_by_test_id("availability")).to_have_attribute("data-status", "available")


async def console_and_phone(
    url: str, rep_side: Chromium, customer_side: Chromium | None = None, *, customer_url: str | None = None
) -> tuple[Page, Page]:
    """(rep, customer): the console, rep1 logged in and available, then the customer's phone page at /call
    (or ``customer_url``), in ``customer_side``'s Chromium if the customer has one of its own."""
    rep = await desktop_page(rep_side.browser, f"{url}/console")
    await rep_login(rep)
    customer = await phone_page(*(customer_side or rep_side), customer_url or f"{url}/call")
    return rep, customer


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def close(*launched: Chromium) -> None:
    for pw, browser in launched:
        await browser.close()
        await pw.stop()


# ---------------------------------------------------------------- what the page receives

REMOTE_COLOUR_JS = """([top, bottom, testid]) => {
  const video = document.querySelector(`[data-testid="${testid}"]`);
  if (!video || video.readyState < 2 || !video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = 32;
  canvas.height = 24;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const h = video.videoHeight;
  // The inner part of the band only: the encoder blurs its edges.
  const y0 = (top + 0.2 * (bottom - top)) * h, y1 = (bottom - 0.2 * (bottom - top)) * h;
  g.drawImage(video, 0, y0, video.videoWidth, y1 - y0, 0, 0, canvas.width, canvas.height);
  const px = g.getImageData(0, 0, canvas.width, canvas.height).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < px.length; i += 4) { sum[0] += px[i]; sum[1] += px[i + 1]; sum[2] += px[i + 2]; }
  const n = px.length / 4;
  return sum.map((s) => s / n);
}"""

# The loudest bin of the remote stream's spectrum, and the level at each frequency asked about.
REMOTE_TONE_JS = """async ([probeHz, testid]) => {
  const video = document.querySelector(`[data-testid="${testid}"]`);
  const stream = video && video.srcObject;
  if (!stream || stream.getAudioTracks().length === 0) return null;
  const ctx = new AudioContext();
  await ctx.resume();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  analyser.smoothingTimeConstant = 0;
  ctx.createMediaStreamSource(new MediaStream(stream.getAudioTracks())).connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const sum = new Float64Array(analyser.frequencyBinCount);
  // Average the power over a second of snapshots: the tone pulses, and one snapshot may fall in a gap.
  for (let k = 0; k < 20; k++) {
    await new Promise((r) => setTimeout(r, 50));
    analyser.getFloatFrequencyData(bins);
    for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
  }
  const binHz = ctx.sampleRate / analyser.fftSize;
  let best = 1;
  for (let i = 1; i < sum.length; i++) if (sum[i] > sum[best]) best = i;
  const db = (i) => 10 * Math.log10(sum[i] / 20 + 1e-20);
  const around = (hz) => { const i = Math.round(hz / binHz); return Math.max(db(i - 1), db(i), db(i + 1)); };
  await ctx.close();
  return { peak_hz: best * binHz, peak_db: db(best), bin_hz: binHz, probes: probeHz.map(around) };
}"""


def colour_distance(a: Iterable[float], b: Iterable[float]) -> float:
    return math.dist(tuple(a), tuple(b))


async def remote_colour(page: Page, band: tuple[float, float] = (0.0, 1.0), video: str = "remote-video") -> RGB | None:
    """The mean RGB of ``band`` of the frame the page's remote <video> (or the one with test id ``video``) shows now
    (None before the first frame)."""
    value: Any = await page.evaluate(REMOTE_COLOUR_JS, [*band, video])
    return None if value is None else (float(value[0]), float(value[1]), float(value[2]))


async def wait_remote_colour(
    page: Page, expected: Side, timeout_s: float = 15.0, video: str = "remote-video"
) -> RGB | None:
    """Poll until the remote picture (in ``video``) is ``expected``'s colour; returns the last colour seen (for the
    assertion)."""
    deadline = (await page.evaluate("performance.now()")) + timeout_s * 1000
    colour: RGB | None = None
    while True:
        colour = await remote_colour(page, expected.band, video)
        if colour is not None and colour_distance(colour, expected.rgb) < 40:
            return colour
        if await page.evaluate("performance.now()") > deadline:
            return colour
        await page.wait_for_timeout(200)


async def remote_tone(page: Page, probes: Iterable[float], video: str = "remote-video") -> dict[str, Any] | None:
    """The loudest frequency the page's remote stream (in ``video``) plays, and its level (dB) at each of ``probes``
    (Hz)."""
    value: Any = await page.evaluate(REMOTE_TONE_JS, [list(probes), video])
    return value


async def wait_remote_tone(
    page: Page, expected: Side, other: Side, timeout_s: float = 15.0, video: str = "remote-video"
) -> dict[str, Any] | None:
    """Listen until ``expected``'s tone is the loudest (in ``video``'s stream); returns the last measurement (for the
    assertion)."""
    deadline = (await page.evaluate("performance.now()")) + timeout_s * 1000
    heard: dict[str, Any] | None = None
    while True:
        heard = await remote_tone(page, [expected.tone_hz, other.tone_hz], video)
        if heard is not None and abs(heard["peak_hz"] - expected.tone_hz) <= 2 * heard["bin_hz"]:
            return heard
        if await page.evaluate("performance.now()") > deadline:
            return heard
        await page.wait_for_timeout(200)


async def assert_sees_and_hears(page: Page, viewer: Side, sender: Side) -> None:
    """``viewer``'s page shows ``sender``'s colour and plays ``sender``'s tone, and not its own."""
    colour = await wait_remote_colour(page, sender)
    assert colour is not None, f"the {viewer.name}'s page shows no remote picture"
    assert colour_distance(colour, sender.rgb) < 40, (
        f"the {viewer.name} should see the {sender.name}'s colour {sender.rgb}, saw {colour}"
    )
    assert colour_distance(colour, viewer.rgb) > 150, f"the {viewer.name} sees its own colour {viewer.rgb}: {colour}"

    heard = await wait_remote_tone(page, sender, viewer)
    assert heard is not None, f"the {viewer.name}'s page has no remote audio track"
    assert abs(heard["peak_hz"] - sender.tone_hz) <= 2 * heard["bin_hz"], (
        f"the {viewer.name} should hear the {sender.name}'s {sender.tone_hz} Hz, heard {heard}"
    )
    sender_db, own_db = heard["probes"]
    assert sender_db - own_db > 20, f"the {viewer.name} hears its own {viewer.tone_hz} Hz too: {heard}"


@asynccontextmanager
async def angry_customer_with_real_fer(tmp_path: Path) -> AsyncIterator[tuple[Path, EmotionService]]:
    """(a y4m camera of an angry face, a started fer service ready to score it), the service closed after."""
    y4m = tmp_path / "angry.y4m"
    write_clip_y4m(y4m, make_clip([(person("angry"), 2.0)], width=640, height=480, fps=30))
    service = EmotionService()
    await service.start()
    try:
        assert await service.wait_ready(timeout=150) == "ok", service.status_message
        yield y4m, service
    finally:
        await service.aclose()
