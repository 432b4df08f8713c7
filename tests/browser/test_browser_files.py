"""Chromium: photos and PDFs in the chat both ways, a refused type shown on the page, and the rep's snapshot of
the customer's camera (its colour and resolution), with the customer told."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from tests.api.test_files import PDF, jpeg_with_gps
from tests.support.browser import CUSTOMER, chromium_per_side, colour_distance, console_and_phone
from tests.support.server import Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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

        SCREENSHOTS.mkdir(exist_ok=True)
        await rep.set_viewport_size({"width": 1280, "height": 1000})
        await item.scroll_into_view_if_needed()
        await rep.screenshot(path=str(SCREENSHOTS / "files-and-snapshot.png"))
