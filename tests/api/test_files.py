"""Photos, files and snapshots in a call over HTTP: sniffed, re-encoded without EXIF, only to the call's parties.

Hostile cases: forbidden types whatever their name or Content-Type, garbage, empty and truncated files, a
decompression bomb, too large, another session's customer, no token, a rep of another call, an upload after
the call ended, concurrent uploads (and another call carries on), erasure and retention.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from server.config import SETTINGS, Settings
from server.recording.retention import DAY_S, apply_retention, erase_session
from server.storage import schema
from tests.support.clients import SignalingClient
from tests.support.server import TWO_REPS_AND_QA, Rapport, running

GPS_LATITUDE = (52.0, 22.0, 7.5)


def jpeg_with_gps(colour: tuple[int, int, int] = (20, 180, 40), size: tuple[int, int] = (640, 480)) -> bytes:
    """A real JPEG whose EXIF holds a GPS position and a camera make."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: GPS_LATITUDE, 3: "E", 4: (4.0, 53.0, 2.0)}
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif.tobytes(), quality=95)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the test's own JPEG must carry GPS"
    return data


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims ``width`` × ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n%%EOF\n"


class Call:
    """A live call: the rep's socket and HTTP session, the customer's socket and token."""

    def __init__(self, rep: SignalingClient, customer: SignalingClient, call: dict[str, Any], csrf: str) -> None:
        self.rep, self.customer, self.call, self.csrf = rep, customer, call, csrf

    @property
    def session_id(self) -> str:
        return str(self.call["session_id"])

    @property
    def token(self) -> str:
        return str(self.call["token"])


async def live_call(rapport: Rapport, rep_name: str = "rep1") -> Call:
    rep = await rapport.rep(rep_name)
    customer, call = await rapport.customer()
    await rep.request({"type": "call.accept", "session_id": call["session_id"]})
    await customer.wait_for("call.accepted")
    async with rep.http.get(f"{rapport.url}/api/v1/me") as r:
        csrf = (await r.json())["csrf_token"]
    return Call(rep, customer, call, csrf)


async def customer_upload(
    rapport: Rapport, token: str | None, data: bytes, *, name: str = "photo.jpg", kind: str = "file", **headers: str
) -> tuple[int, dict[str, Any]]:
    sent = {"Content-Type": "image/jpeg", **headers}
    if token is not None:
        sent["X-Call-Token"] = token
    async with rapport.http.post(
        f"{rapport.url}/api/v1/calls/files", params={"name": name, "kind": kind}, data=data, headers=sent
    ) as r:
        return r.status, await r.json()


async def rep_upload(rapport: Rapport, call: Call, data: bytes, *, name: str, http: Any = None) -> tuple[int, Any]:
    async with (http or call.rep.http).post(
        f"{rapport.url}/api/v1/sessions/{call.session_id}/files",
        params={"name": name},
        data=data,
        headers={"X-CSRF-Token": call.csrf, "Content-Type": "application/pdf"},
    ) as r:
        return r.status, await r.json()


async def customer_get(rapport: Rapport, url: str, token: str | None) -> tuple[int, bytes, Any]:
    headers = {"X-Call-Token": token} if token is not None else {}
    async with rapport.http.get(f"{rapport.url}{url}", headers=headers) as r:
        return r.status, await r.read(), r.headers


def stored_files(settings: Settings, session_id: str) -> list[Path]:
    folder = settings.recordings_path / session_id / "files"
    return sorted(folder.iterdir()) if folder.is_dir() else []


async def test_a_customer_photo_reaches_the_rep_without_exif_or_location(rapport: Rapport) -> None:
    call = await live_call(rapport)
    original = jpeg_with_gps()
    status, body = await customer_upload(rapport, call.token, original, name="../../receipt.png")
    assert status == 201, body
    # The type is the content's: a JPEG named .png is a .jpg, and no path survives in the name.
    assert body["media_type"] == "image/jpeg" and body["name"] == "receipt.jpg" and body["kind"] == "file"
    assert (body["width"], body["height"]) == (640, 480)
    to_rep = await call.rep.wait_for("file.shared")
    to_customer = await call.customer.wait_for("file.shared")
    assert to_rep["file"]["file_id"] == to_customer["file"]["file_id"] == body["file_id"]
    assert to_rep["file"]["url"] == f"/api/v1/sessions/{call.session_id}/files/{body['file_id']}"
    assert to_customer["file"]["url"] == f"/api/v1/calls/files/{body['file_id']}"
    assert to_customer["file"]["from"] == "customer"
    # The id is random, not a counter.
    assert body["file_id"].startswith("f_") and len(body["file_id"]) >= 20

    async with call.rep.http.get(f"{rapport.url}{to_rep['file']['url']}") as r:
        assert r.status == 200
        served = await r.read()
        assert r.headers["Content-Type"] == "image/jpeg"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] == "private, no-store"
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert r.headers["Content-Disposition"].startswith("inline")
    on_disk = stored_files(rapport.app[SETTINGS], call.session_id)
    assert len(on_disk) == 1 and on_disk[0].read_bytes() == served
    assert on_disk[0].stat().st_mode & 0o077 == 0  # private to the server's user
    picture = Image.open(io.BytesIO(served))
    assert picture.size == (640, 480)
    assert not picture.getexif() and b"SecretCam" not in served and b"GPS" not in served
    assert b"Exif" not in served
    r_, g_, b_ = picture.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert abs(r_ - 20) < 8 and abs(g_ - 180) < 8 and abs(b_ - 40) < 8

    status, customer_copy, headers = await customer_get(rapport, to_customer["file"]["url"], call.token)
    assert status == 200 and customer_copy == served and headers["Content-Type"] == "image/jpeg"

    # The session's readers see it in the stored history; the download is in the audit log.
    async with call.rep.http.get(f"{rapport.url}/api/v1/sessions/{call.session_id}") as r:
        detail = await r.json()
    assert [f["file_id"] for f in detail["files"]] == [body["file_id"]]
    assert "path" not in detail["files"][0]
    audit = await rapport.store.list_audit()
    assert any(e.action == "file.download" and e.target == body["file_id"] for e in audit)


async def test_the_reps_pdf_reaches_the_customer_as_a_download(rapport: Rapport) -> None:
    call = await live_call(rapport)
    status, body = await rep_upload(rapport, call, PDF, name="instructions.pdf")
    assert status == 201, body
    assert body["media_type"] == "application/pdf" and body["from"] == "rep" and body["width"] is None
    shared = await call.customer.wait_for("file.shared")
    assert shared["file"]["name"] == "instructions.pdf" and shared["file"]["size"] == len(PDF)
    status, data, headers = await customer_get(rapport, shared["file"]["url"], call.token)
    assert status == 200 and data == PDF
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in headers["Content-Security-Policy"]
    audit = await rapport.store.list_audit()
    assert any(e.action == "file.upload" and e.target == body["file_id"] for e in audit)


FORBIDDEN = {
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "cat.svg", "image/svg+xml"),
    "html": (b"<!doctype html><script>alert(document.cookie)</script>", "receipt.jpg", "image/jpeg"),
    "exe renamed jpg": (b"MZ\x90\x00\x03\x00\x00\x00" + b"\0" * 200, "photo.jpg", "image/jpeg"),
    "garbage": (bytes(range(256)) * 8, "photo.png", "image/png"),
    "zip": (b"PK\x03\x04" + b"\0" * 100, "photo.webp", "image/webp"),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
async def test_a_forbidden_type_is_refused_whatever_its_name_and_nothing_is_stored(rapport: Rapport, case: str) -> None:
    call = await live_call(rapport)
    data, name, content_type = FORBIDDEN[case]
    status, body = await customer_upload(rapport, call.token, data, name=name, **{"Content-Type": content_type})
    assert status == 415
    assert body["error"]["code"] == "unsupported_type"
    assert body["error"]["message"] == "Only photos (JPEG, PNG, WebP) and PDF files can be sent"
    assert await rapport.store.count_files(call.session_id) == 0
    assert stored_files(rapport.app[SETTINGS], call.session_id) == []
    assert not any(m.get("type") == "file.shared" for m in call.rep.inbox)


async def test_broken_images_are_refused_clearly(rapport: Rapport) -> None:
    call = await live_call(rapport)
    good = jpeg_with_gps()
    cases = {
        "empty": (b"", 415, "empty_file"),
        "truncated jpeg": (good[: len(good) // 2], 415, "unreadable_image"),
        "jpeg header only": (good[:20], 415, "unreadable_image"),
        "bomb": (png_header_only(60_000, 60_000), 413, "image_too_large"),
        "png lying about its size": (png_header_only(64, 64), 415, "unreadable_image"),
    }
    for case, (data, status_expected, code) in cases.items():
        status, body = await customer_upload(rapport, call.token, data)
        assert (status, body["error"]["code"]) == (status_expected, code), case
    assert await rapport.store.count_files(call.session_id) == 0
    assert stored_files(rapport.app[SETTINGS], call.session_id) == []


async def test_a_pdf_named_png_is_kept_as_a_pdf_and_never_shown_as_a_picture(rapport: Rapport) -> None:
    call = await live_call(rapport)
    status, body = await customer_upload(rapport, call.token, PDF, name="photo.png", **{"Content-Type": "image/png"})
    assert status == 201 and body["media_type"] == "application/pdf" and body["name"] == "photo.pdf"
    _status, _data, headers = await customer_get(rapport, body["url"], call.token)
    assert headers["Content-Type"] == "application/pdf" and headers["Content-Disposition"].startswith("attachment")


async def test_size_and_count_limits(settings: Settings) -> None:
    async with running(replace(settings, max_file_mb=0.05, max_files_per_session=2), TWO_REPS_AND_QA) as rapport:
        call = await live_call(rapport)
        big = jpeg_with_gps(size=(2000, 2000)) + b"\0" * 60_000
        status, body = await customer_upload(rapport, call.token, big)
        assert status == 413 and body["error"]["code"] == "too_large" and "MB" in body["error"]["message"]
        small = jpeg_with_gps(size=(64, 64))
        for _ in range(2):
            status, body = await customer_upload(rapport, call.token, small)
            assert status == 201, body
        status, body = await customer_upload(rapport, call.token, small)
        assert status == 409 and body["error"]["code"] == "files_full"
        assert await rapport.store.count_files(call.session_id) == 2


async def test_only_the_calls_own_parties_reach_its_files(rapport: Rapport) -> None:
    call = await live_call(rapport)
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps())
    assert status == 201
    url = body["url"]
    # Another session's customer: 404, as for no file at all; no token or a wrong one: 401.
    _other, other_call = await rapport.customer()
    assert (await customer_get(rapport, url, other_call["token"]))[0] == 404
    assert (await customer_get(rapport, url, None))[0] == 401
    assert (await customer_get(rapport, url, "not-a-token"))[0] == 401
    assert (await customer_get(rapport, "/api/v1/calls/files/f_nope", call.token))[0] == 404
    assert (await customer_get(rapport, "/api/v1/calls/files/..%2F..%2Fetc", call.token))[0] == 404
    # Uploads: no token 401; a waiting customer's call is not live (409).
    assert (await customer_upload(rapport, None, jpeg_with_gps()))[0] == 401
    status, refused = await customer_upload(rapport, other_call["token"], jpeg_with_gps())
    assert status == 409 and refused["error"]["code"] == "call_not_live"
    # rep2 is not this call's rep: cannot upload into it, cannot read its files.
    rep2_http, rep2_csrf = await rapport.staff_session("rep2")
    async with rep2_http.post(
        f"{rapport.url}/api/v1/sessions/{call.session_id}/files",
        params={"name": "x.pdf"},
        data=PDF,
        headers={"X-CSRF-Token": rep2_csrf},
    ) as r:
        assert r.status == 404
    staff_url = f"/api/v1/sessions/{call.session_id}/files/{body['file_id']}"
    async with rep2_http.get(f"{rapport.url}{staff_url}") as r:
        assert r.status == 404
    # The file under another session's path: 404 even for QA, who reads every session.
    qa_http, _ = await rapport.staff_session("qa1")
    async with qa_http.get(f"{rapport.url}/api/v1/sessions/{other_call['session_id']}/files/{body['file_id']}") as r:
        assert r.status == 404
    async with qa_http.get(f"{rapport.url}{staff_url}") as r:
        assert r.status == 200
    # The rep's upload without the CSRF header is refused.
    async with call.rep.http.post(
        f"{rapport.url}/api/v1/sessions/{call.session_id}/files", params={"name": "x.pdf"}, data=PDF
    ) as r:
        assert r.status == 403
    assert await rapport.store.count_files(call.session_id) == 1


async def test_no_upload_after_the_call_ended(rapport: Rapport) -> None:
    call = await live_call(rapport)
    await call.rep.request({"type": "call.end"})
    await call.customer.wait_for("call.ended")
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps())
    assert status == 409 and body["error"]["code"] == "call_not_live"
    status, body = await rep_upload(rapport, call, PDF, name="late.pdf")
    assert status in (404, 409)
    assert await rapport.store.count_files(call.session_id) == 0


async def test_concurrent_uploads_all_arrive_and_another_call_carries_on(rapport: Rapport) -> None:
    call = await live_call(rapport)
    other = await live_call(rapport, "rep2")
    photos = [jpeg_with_gps(colour=(10 * i, 100, 200)) for i in range(6)]
    results = await asyncio.gather(
        *(customer_upload(rapport, call.token, p, name=f"p{i}.jpg") for i, p in enumerate(photos)),
        other.rep.request({"type": "chat.send", "text": "still here"}),
    )
    statuses = [r[0] for r in results[:-1]]
    assert statuses == [201] * 6
    assert len({r[1]["file_id"] for r in results[:-1]}) == 6
    await other.customer.wait_for(lambda m: m.get("type") == "chat.message" and m["text"] == "still here")
    assert await rapport.store.count_files(call.session_id) == 6
    assert await rapport.store.count_files(other.session_id) == 0
    ids = {r[1]["file_id"] for r in results[:-1]}
    for file_id in ids:
        await call.rep.wait_for(lambda m, f=file_id: m.get("type") == "file.shared" and m["file"]["file_id"] == f)
    seen = {m["file"]["file_id"] for m in call.rep.inbox if m.get("type") == "file.shared"}
    assert len(seen) == 6


async def test_erasure_and_retention_remove_files(rapport: Rapport) -> None:
    settings = rapport.app[SETTINGS]
    erased, kept = await live_call(rapport), await live_call(rapport, "rep2")
    for call in (erased, kept):
        assert (await customer_upload(rapport, call.token, jpeg_with_gps()))[0] == 201
        await call.rep.request({"type": "call.end"})
    file_of_erased = (await rapport.store.list_files(erased.session_id))[0]
    report = await erase_session(rapport.store, settings.recordings_path, erased.session_id, user_id=None)
    assert report.counts["session_files"] == 1
    assert await rapport.store.list_files(erased.session_id) == []
    assert await rapport.store.get_file(file_of_erased.id) is None
    assert stored_files(settings, erased.session_id) == []
    # Retention: not yet due; then, 91 days on, gone (bytes and row).
    assert len(stored_files(settings, kept.session_id)) == 1
    await apply_retention(rapport.store, settings.recordings_path, retention_days=90)
    assert len(stored_files(settings, kept.session_id)) == 1
    await apply_retention(rapport.store, settings.recordings_path, retention_days=90, now=schema.now() + 91 * DAY_S)
    assert stored_files(settings, kept.session_id) == []
    assert await rapport.store.count_files(kept.session_id) == 0
    audit = await rapport.store.list_audit()
    assert any(e.action == "retention.delete_file" for e in audit)


async def test_legal_hold_keeps_files_past_retention(rapport: Rapport) -> None:
    settings = rapport.app[SETTINGS]
    call = await live_call(rapport)
    assert (await customer_upload(rapport, call.token, jpeg_with_gps()))[0] == 201
    await call.rep.request({"type": "call.end"})
    await rapport.store.set_legal_hold(call.session_id, hold=True, note="case 7")
    await apply_retention(rapport.store, settings.recordings_path, retention_days=90, now=schema.now() + 91 * DAY_S)
    assert len(stored_files(settings, call.session_id)) == 1


async def test_a_snapshot_is_asked_for_uploaded_and_shown(rapport: Rapport) -> None:
    call = await live_call(rapport)
    # Without a request, a snapshot upload is refused.
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps(), kind="snapshot")
    assert status == 409 and body["error"]["code"] == "no_snapshot_requested"
    await call.rep.request({"type": "snapshot.take"})
    request = await call.customer.wait_for("snapshot.request")
    assert set(request) == {"type", "session_id"}
    # A second ask while one is on its way is refused; a PDF is not a snapshot.
    with pytest.raises(Exception, match="snapshot_pending"):
        await call.rep.request({"type": "snapshot.take"})
    status, body = await customer_upload(rapport, call.token, PDF, kind="snapshot")
    assert status == 415
    # The customer cannot ask for snapshots.
    with pytest.raises(Exception, match="forbidden"):
        await call.customer.request({"type": "snapshot.take"})
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps(size=(1280, 720)), kind="snapshot")
    assert status == 201 and body["kind"] == "snapshot" and (body["width"], body["height"]) == (1280, 720)
    shared = await call.rep.wait_for(lambda m: m.get("type") == "file.shared" and m["file"]["kind"] == "snapshot")
    assert shared["file"]["file_id"] == body["file_id"]
    await call.customer.wait_for(lambda m: m.get("type") == "file.shared" and m["file"]["kind"] == "snapshot")
    # Answered: another snapshot upload without a new request is refused again.
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps(), kind="snapshot")
    assert status == 409


async def test_a_customer_page_that_never_answers_tells_the_rep(settings: Settings) -> None:
    async with running(replace(settings, snapshot_timeout_s=0.3, snapshots_per_minute=2), TWO_REPS_AND_QA) as rapport:
        call = await live_call(rapport)
        await call.rep.request({"type": "snapshot.take"})
        failed = await call.rep.wait_for("snapshot.failed")
        assert failed["reason"] == "timeout" and failed["message"] == "the customer's camera did not send a photo"
        # Too late now.
        assert (await customer_upload(rapport, call.token, jpeg_with_gps(), kind="snapshot"))[0] == 409
        # Rate limit: two a minute (the second is the burst's last).
        await call.rep.request({"type": "snapshot.take"})
        await call.rep.wait_for(lambda m: m.get("type") == "snapshot.failed", after=len(call.rep.inbox))
        with pytest.raises(Exception, match="rate_limited"):
            await call.rep.request({"type": "snapshot.take"})


async def test_a_customer_upload_does_not_carry_staff_data(rapport: Rapport) -> None:
    call = await live_call(rapport)
    await rep_upload(rapport, call, PDF, name="guide.pdf")
    shared = await call.customer.wait_for("file.shared")
    assert set(shared) == {"type", "session_id", "file"}
    assert set(shared["file"]) == {
        "file_id",
        "from",
        "kind",
        "name",
        "media_type",
        "size",
        "width",
        "height",
        "url",
        "at",
    }


async def test_an_upload_broken_off_leaves_nothing_behind(rapport: Rapport) -> None:
    # A client that breaks off mid-upload leaves nothing behind and the call takes the next file.
    call = await live_call(rapport)
    reader, writer = await asyncio.open_connection(rapport.server.host, rapport.server.port)
    writer.write(
        (
            "POST /api/v1/calls/files?name=a.jpg HTTP/1.1\r\n"
            f"Host: {rapport.server.host}\r\nX-Call-Token: {call.token}\r\nContent-Length: 100000\r\n\r\n"
        ).encode()
        + jpeg_with_gps()[:1000]
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    status, body = await customer_upload(rapport, call.token, jpeg_with_gps())
    assert status == 201, body
    assert await rapport.store.count_files(call.session_id) == 1
    assert len(stored_files(rapport.app[SETTINGS], call.session_id)) == 1


async def test_a_reload_brings_back_every_file_of_the_call(rapport: Rapport) -> None:
    """A page that reloads or reconnects mid-call gets the files in its welcome, in order, as its audience sees
    them; a file that failed is not there, and another call's files never are."""
    call = await live_call(rapport)
    other = await live_call(rapport, "rep2")
    status, photo = await customer_upload(rapport, call.token, jpeg_with_gps())
    assert status == 201, photo
    status, guide = await rep_upload(rapport, call, PDF, name="guide.pdf")
    assert status == 201, guide
    await call.rep.request({"type": "snapshot.take"})
    await call.customer.wait_for("snapshot.request")
    status, snap = await customer_upload(rapport, call.token, jpeg_with_gps(size=(800, 600)), kind="snapshot")
    assert status == 201, snap
    status, _ = await customer_upload(rapport, call.token, b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    assert status == 415
    status, elsewhere = await customer_upload(rapport, other.token, jpeg_with_gps())
    assert status == 201, elsewhere
    ids = [photo["file_id"], guide["file_id"], snap["file_id"]]
    await call.rep.wait_for(lambda m: m.get("type") == "file.shared" and m["file"]["file_id"] == snap["file_id"])

    # The rep's console reloads: the call in its welcome carries the files with the staff URLs.
    await call.rep.close()
    rep = await rapport.rep("rep1", available=False)
    welcome = next(m for m in rep.inbox if m["type"] == "welcome")
    files = welcome["call"]["files"]
    assert [f["file_id"] for f in files] == ids
    assert [(f["from"], f["kind"]) for f in files] == [("customer", "file"), ("rep", "file"), ("customer", "snapshot")]
    assert files[2]["url"] == f"/api/v1/sessions/{call.session_id}/files/{snap['file_id']}"
    async with rep.http.get(f"{rapport.url}{files[0]['url']}") as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"

    # The customer's page reloads: their own copies (their URL, opened with the token), nothing of staff.
    customer = await welcome_again(rapport, call.token)
    files = customer["files"]
    assert [f["file_id"] for f in files] == ids
    assert all(set(f) == {*CUSTOMER_FILE_KEYS} for f in files)
    assert all(f["url"] == f"/api/v1/calls/files/{f['file_id']}" for f in files)
    status, data, _ = await customer_get(rapport, files[1]["url"], call.token)
    assert status == 200 and data == PDF
    # The other call's customer gets only their own file back.
    assert [f["file_id"] for f in (await welcome_again(rapport, other.token))["files"]] == [elsewhere["file_id"]]


CUSTOMER_FILE_KEYS = ("file_id", "from", "kind", "name", "media_type", "size", "width", "height", "url", "at")


async def welcome_again(rapport: Rapport, token: str) -> dict[str, Any]:
    client = SignalingClient(rapport.http, rapport.url)
    await client.connect()
    rapport._clients.append(client)
    await client.send({"type": "hello", "token": token})
    welcome: dict[str, Any] = await client.wait_for("welcome")
    return welcome
