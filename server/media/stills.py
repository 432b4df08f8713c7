"""What an uploaded photo or file is, by its bytes alone, and images made anew: no EXIF, no location, bounded size.

The type comes from the content's magic bytes, never from the name or the client's Content-Type: JPEG, PNG,
WebP and GIF (its first frame) are images; PDF is a document. Anything else (SVG, HTML, an executable with a
.jpg name) is refused. An image's dimensions are read from its header *before* it is decoded, so a small file
that claims a huge picture (a decompression bomb) is refused without allocating it. Images are then decoded
with OpenCV and encoded again (JPEG for photos, PNG for PNG and GIF): only pixels survive, so EXIF (GPS
position, camera serial numbers), comments and anything appended to the file are gone.

CPU-bound and blocking: call :func:`process` in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np

# The largest picture decoded at all, and the longest side an image is stored with (scaled down past it).
MAX_PIXELS = 50_000_000
MAX_SIDE = 4096
JPEG_QUALITY = 90

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")
PDF = "application/pdf"
REFUSED_TYPE = "Only photos (JPEG, PNG, WebP) and PDF files can be sent"


class Refused(Exception):
    """The upload is not one we keep: ``status`` 415 (type, or an image that does not decode) or 413 (size)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Stored:
    """What is kept of an upload: the bytes to store, their type, name and (for an image) size in pixels."""

    data: bytes
    media_type: str
    extension: str
    name: str
    width: int | None
    height: int | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, from their magic numbers; None for anything we do not take."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        # Start of frame (baseline, progressive, ...): not DHT (C4), JPG (C8) or DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


def _jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG's scan is followed by its end marker: a cut-off file decodes to grey, so it is refused.

    The walk skips whole segments (an EXIF thumbnail has markers of its own inside APP1); inside the entropy-coded
    scan a 0xFF byte is always stuffed or a restart marker, so the first FF D9 after the scan's start is its end.
    """
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", at + 2) > 0
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return False


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def dimensions(data: bytes, media_type: str) -> tuple[int, int] | None:
    """Width and height as the image's header states them, without decoding it; None if it cannot be read."""
    if media_type == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if media_type == "image/gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if media_type == "image/jpeg":
        return _jpeg_size(data)
    if media_type == "image/webp":
        return _webp_size(data)
    return None


_UNSAFE_NAME = re.compile(r"[^\w .()+,-]+")


def clean_name(name: str | None, extension: str, fallback: str) -> str:
    """A display name for the file: no path, no control or odd characters, at most 120 characters, and the
    extension of what it really is (``receipt.png`` that is a JPEG is stored as ``receipt.jpg``)."""
    text = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE_NAME.sub("_", "".join(ch for ch in text if ch.isprintable())).strip(" ._")
    stem = text.rsplit(".", 1)[0] if "." in text else text
    return f"{(stem or fallback)[:120]}.{extension}"


def _reencode(data: bytes, media_type: str) -> tuple[bytes, str, str, int, int]:
    size = dimensions(data, media_type)
    if size is None or size[0] <= 0 or size[1] <= 0:
        raise Refused(415, "unreadable_image", "This picture could not be read; it may be damaged")
    if size[0] * size[1] > MAX_PIXELS:
        raise Refused(413, "image_too_large", f"This picture is too large ({size[0]} × {size[1]} pixels)")
    if media_type == "image/jpeg" and not _jpeg_complete(data):
        raise Refused(415, "unreadable_image", "This picture could not be read; it may be damaged")
    keep_alpha = media_type == "image/png"
    flags = cv2.IMREAD_UNCHANGED if keep_alpha else cv2.IMREAD_COLOR  # COLOR applies EXIF orientation first
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise Refused(415, "unreadable_image", "This picture could not be read; it may be damaged")
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8) if image.dtype == np.uint16 else image.astype(np.uint8)
    height, width = image.shape[:2]
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    if media_type in ("image/png", "image/gif"):
        ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        out_type, extension = "image/png", "png"
    else:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        out_type, extension = "image/jpeg", "jpg"
    if not ok:
        raise Refused(415, "unreadable_image", "This picture could not be read; it may be damaged")
    return encoded.tobytes(), out_type, extension, width, height


def process(data: bytes, name: str | None, *, images_only: bool = False) -> Stored:
    """What to store of an upload, or :class:`Refused`. ``images_only``: a snapshot, which must be a picture."""
    if not data:
        raise Refused(415, "empty_file", "The file is empty")
    media_type = sniff(data)
    if media_type is None or (images_only and media_type == PDF):
        raise Refused(415, "unsupported_type", REFUSED_TYPE)
    if media_type == PDF:
        return Stored(data, PDF, "pdf", clean_name(name, "pdf", "document"), None, None)
    encoded, out_type, extension, width, height = _reencode(data, media_type)
    return Stored(encoded, out_type, extension, clean_name(name, extension, "photo"), width, height)
