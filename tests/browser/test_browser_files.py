"""Chromium: photos and PDFs in the chat both ways, a refused type shown on the page, and the rep's snapshot of
the customer's camera (its colour and resolution), with the customer told; after a reload on either side
nothing is lost; QA shows the call's files and snapshots on the player's clock."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from tests.api.test_files import PDF, jpeg_with_gps
from tests.support.axe import check_accessibility
from tests.support.browser import CUSTOMER, chromium_per_side, colour_distance, console_and_phone, desktop_page
from tests.support.server import PASSWORD, Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# README pictures land beside the other artifacts; docs/screenshots/ keeps the committed copies (copied by hand).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "readme"


async def fetched(page: Page, selector: str, attribute: str) -> bytes:
    """The bytes the page's element points at, fetched with the page's own cookies."""
    url = await page.locator(selector).first.evaluate(f"e => e.{attribute}")  # the absolute URL
    assert url
    response = await page.request.get(url)
    assert response.ok
    return await response.body()


async def test_photos_files_and_a_snapshot_in_a_call(served: Rapport, tmp_path: Path) -> None:
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        rep, customer = await console_and_phone(served.url, rep_side, customer_side)
        await customer.get_by_test_id("customer-name").fill("Ada")
        await customer.get_by_test_id("start-call").click()
        await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")

        # The customer sends a photo of a receipt (with GPS in its EXIF): the rep sees it, without the EXIF.
        await expect(customer.get_by_test_id("file-progress")).to_be_attached()
        await customer.get_by_test_id("file-input").set_input_files(
            {"name": "receipt.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}
        )
        image = rep.get_by_test_id("chat-image")
        await expect(image).to_have_count(1)
        await expect(customer.get_by_test_id("chat-image")).to_have_count(1)
        served_bytes = await fetched(rep, '[data-testid="chat-image"]', "src")
        assert Image.open(io.BytesIO(served_bytes)).size == (640, 480)
        assert not Image.open(io.BytesIO(served_bytes)).getexif() and b"SecretCam" not in served_bytes
        await expect(rep.get_by_test_id("chat-file-link").first).to_contain_text("receipt.jpg")

        # The rep sends instructions as a PDF: the customer gets a download link with its name and size.
        await rep.get_by_test_id("file-input").set_input_files(
            {"name": "instructions.pdf", "mimeType": "application/pdf", "buffer": PDF}
        )
        link = customer.locator('[data-testid="chat-file"] [data-testid="chat-file-link"]').last
        await expect(link).to_contain_text("instructions.pdf")
        await expect(link).to_have_attribute("download", "instructions.pdf")
        # Fetched with the call token and shown from a blob: the token never goes into a URL.
        await expect(link).to_have_attribute("href", re.compile(r"^blob:"))

        # A forbidden type (an SVG named .jpg) is refused with a clear message on the page; nothing new shows.
        await customer.get_by_test_id("file-input").set_input_files(
            {"name": "cat.jpg", "mimeType": "image/jpeg", "buffer": b'<svg xmlns="http://www.w3.org/2000/svg"/>'}
        )
        await expect(customer.get_by_test_id("error-toast")).to_have_text(
            "Only photos (JPEG, PNG, WebP) and PDF files can be sent"
        )
        await expect(rep.get_by_test_id("chat-image")).to_have_count(1)

        # The snapshot: the rep asks, the customer's page sends a still of its camera, the customer is told.
        await rep.get_by_test_id("snapshot-take").click()
        await expect(customer.get_by_test_id("error-toast")).to_have_text("The agent took a photo")
        item = rep.get_by_test_id("snapshot-item")
        await expect(item).to_have_count(1)
        still = Image.open(io.BytesIO(await fetched(rep, '[data-testid="snapshot-item"] img', "src"))).convert("RGB")
        camera = await customer.eval_on_selector('[data-testid="local-video"]', "v => [v.videoWidth, v.videoHeight]")
        assert list(still.size) == camera, (still.size, camera)
        mean = still.resize((1, 1)).getpixel((0, 0))
        assert colour_distance(mean, CUSTOMER.rgb) < 40, mean  # type: ignore[arg-type]
        await expect(customer.get_by_test_id("chat-snapshot")).to_have_count(1)

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await rep.set_viewport_size({"width": 1280, "height": 1000})
        await item.scroll_into_view_if_needed()
        await rep.screenshot(path=str(SCREENSHOTS / "files-and-snapshot.png"))


# The mean colour of a loaded <img> (drawn at its natural size), and its natural size: the picture the page shows.
IMAGE_COLOUR_JS = """img => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    if (!c.width) return null;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let r = 0, gr = 0, b = 0;
    for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; }
    const n = d.length / 4;
    return {size: [img.naturalWidth, img.naturalHeight], rgb: [r / n, gr / n, b / n]};
}"""
PHOTO_RGB = (20, 180, 40)  # jpeg_with_gps's colour: far from the customer's camera


async def test_nothing_is_lost_on_reload_and_qa_shows_the_files(served: Rapport, tmp_path: Path) -> None:
    await served.add_user("qa1", "qa")
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        rep, customer = await console_and_phone(served.url, rep_side, customer_side)
        await customer.get_by_test_id("start-call").click()
        await rep.get_by_test_id("accept").click()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        session_id = (await rep.get_by_test_id("session-id").text_content() or "").strip()
        assert session_id

        # A chat line, the customer's photo, the rep's PDF and a snapshot.
        await customer.get_by_test_id("chat-input").fill("Here is the receipt")
        await customer.get_by_test_id("chat-send").click()
        await expect(rep.get_by_test_id("chat-line")).to_have_count(1)
        await customer.get_by_test_id("file-input").set_input_files(
            {"name": "receipt.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps()}
        )
        await expect(rep.get_by_test_id("chat-image")).to_have_count(1)
        await rep.get_by_test_id("file-input").set_input_files(
            {"name": "instructions.pdf", "mimeType": "application/pdf", "buffer": PDF}
        )
        await expect(customer.get_by_test_id("chat-file")).to_have_count(2)
        await rep.get_by_test_id("snapshot-take").click()
        await expect(rep.get_by_test_id("snapshot-item")).to_have_count(1)
        await expect(customer.get_by_test_id("chat-snapshot")).to_have_count(1)

        # The rep's console reloads mid-call: the chat line, the photo, the PDF and the snapshot are all back,
        # in the order they came, and the photo loads.
        await rep.reload()
        await expect(rep.locator("body")).to_have_attribute("data-state", "in-call")
        log = rep.locator('[data-testid="chat-log"] > li')
        await expect(log).to_have_count(3)
        assert await log.evaluate_all("items => items.map((i) => i.dataset.testid)") == [
            "chat-line",
            "chat-file",
            "chat-file",
        ]
        await expect(log.last.get_by_test_id("chat-file-link")).to_contain_text("instructions.pdf")
        await expect(rep.get_by_test_id("snapshot-item")).to_have_count(1)
        await rep.wait_for_function(
            "() => document.querySelector('[data-testid=\"chat-image\"]')?.naturalWidth === 640"
        )

        # The customer's page reloads too: the same, fetched with the call token, and no second "took a photo".
        await customer.reload()
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
        await expect(customer.get_by_test_id("chat-line")).to_have_count(1)
        await expect(customer.get_by_test_id("chat-file")).to_have_count(2)
        await expect(customer.get_by_test_id("chat-snapshot")).to_have_count(1)
        await expect(customer.get_by_test_id("chat-file-link").nth(1)).to_have_attribute("href", re.compile(r"^blob:"))
        await expect(customer.get_by_test_id("error-toast")).to_be_hidden()

        await rep.get_by_test_id("end-call").click()
        await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()

        # QA opens the call: the photo and the snapshot as pictures, the PDF as a link, who sent each and when.
        qa = await desktop_page(rep_side.browser, f"{served.url}/qa#/sessions/{session_id}")
        await qa.get_by_test_id("login-username").fill("qa1")
        await qa.get_by_test_id("login-password").fill(PASSWORD)
        await qa.get_by_test_id("login-submit").click()
        items = qa.get_by_test_id("qa-file-item")
        await expect(items).to_have_count(3)
        await expect(qa.get_by_test_id("qa-files-empty")).to_be_hidden()
        photo, pdf, snapshot = items.nth(0), items.nth(1), items.nth(2)
        await expect(photo).to_have_attribute("data-from", "customer")
        await expect(photo.get_by_test_id("qa-file-sender")).to_have_text("sent by the customer")
        await expect(pdf.get_by_test_id("qa-file-sender")).to_have_text("sent by the rep")
        await expect(snapshot).to_have_attribute("data-kind", "snapshot")
        await expect(snapshot.get_by_test_id("qa-file-sender")).to_have_text("snapshot of the customer's camera")

        link = pdf.get_by_test_id("qa-file-link")
        await expect(link).to_contain_text("instructions.pdf")
        await expect(link).to_have_attribute("href", re.compile(rf"^/api/v1/sessions/{session_id}/files/f_"))
        await expect(link).to_have_attribute("download", "instructions.pdf")
        answer = await qa.request.get(f"{served.url}{await link.get_attribute('href')}")
        assert answer.ok and await answer.body() == PDF
        await expect(pdf.get_by_test_id("qa-file-image")).to_have_count(0)

        for item in (photo, snapshot):
            await expect(item.get_by_test_id("qa-file-image")).to_have_js_property("complete", True)
        shown = await photo.get_by_test_id("qa-file-image").evaluate(IMAGE_COLOUR_JS)
        assert shown and shown["size"] == [640, 480]
        assert colour_distance(tuple(shown["rgb"]), PHOTO_RGB) < 40, shown  # type: ignore[arg-type]
        still = await snapshot.get_by_test_id("qa-file-image").evaluate(IMAGE_COLOUR_JS)
        assert still and still["size"][0] > 0, still
        assert colour_distance(tuple(still["rgb"]), CUSTOMER.rgb) < 40, still  # type: ignore[arg-type]

        # The snapshot is marked on the timeline at its time, and clicking its time moves the playhead there.
        mark = qa.get_by_test_id("qa-snapshot-mark")
        await expect(mark).to_have_count(1)
        at = await snapshot.get_attribute("data-t")
        assert at and float(at) > 0 and await mark.get_attribute("data-t") == at
        await snapshot.get_by_test_id("qa-file-time").click()
        await expect(qa.get_by_test_id("qa-timeline-cursor")).to_have_attribute("data-t", f"{float(at):.2f}")

        await check_accessibility(qa, "qa-files")
