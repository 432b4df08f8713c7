"""Photos, files and snapshots in a call, over HTTP both ways: the customer with their call token, the rep with
their login; each file served only to the parties of its session and to staff who may read that session.

Uploads are the raw bytes as the body (any Content-Type: it is ignored), the name and kind in the query
string. What the bytes are is sniffed (``server.media.stills``); images are decoded and encoded again in a
thread, so EXIF and GPS never reach the disk. A file is served with its sniffed type, ``nosniff``, a sandbox
CSP and ``private, no-store``; a PDF always as an attachment.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...calls.attachments import FILE, SNAPSHOT, FileRefused
from ...calls.desk import CALL_DESK
from ...calls.views import customer_file_url, staff_file_url
from ...config import SETTINGS
from ...media import stills
from ...storage import records, schema
from ...storage.files import private_dir, write_private
from ...storage.store import STORE
from ..api import CUSTOMER, Routes, caller, staff
from ..models.common import SessionPath
from ..models.files import CustomerFilePath, RepUploadQuery, SessionFilePath, SharedFile, UploadQuery
from ..security import ApiError
from .sessions import SESSIONS_READ, file_json, own_sessions_only

routes = Routes(tag="Files")
customers = routes.under("Customers")

TOKEN_HEADER = "X-Call-Token"
TOKEN_DOC = {TOKEN_HEADER: "The call's token (from POST /api/v1/calls or an invite)."}
# Images decoded at once; the others wait (each can take a few hundred MB for a large photo).
DECODE_SLOTS = web.AppKey("file_decode_slots", asyncio.Semaphore)
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def new_file_id() -> str:
    # 128 random bits: a file's URL cannot be guessed from another's.
    return "f_" + secrets.token_urlsafe(16)


async def _customer_session(request: web.Request) -> records.SessionRecord:
    """The session the X-Call-Token header names; 401 without a valid one."""
    token = request.headers.get(TOKEN_HEADER, "")
    record = await request.app[STORE].session_for_token(token) if 0 < len(token) <= 128 else None
    if record is None or record.token_expires_at < time.time():
        raise ApiError(401, "not_authenticated", f"send the call's token in the {TOKEN_HEADER} header")
    return record


def _refused(exc: FileRefused | stills.Refused) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


async def _read_upload(request: web.Request, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (413 past it), within ``body_timeout_s`` for every chunk."""
    too_large = ApiError(413, "too_large", f"Files can be at most {limit / 1_000_000:g} MB")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = bytearray()
    timeout = request.app[SETTINGS].body_timeout_s
    try:
        while True:
            async with asyncio.timeout(timeout):
                chunk = await request.content.read(min(256 * 1024, limit + 1 - len(raw)))
            if not chunk:
                break
            raw += chunk
            if len(raw) > limit:
                raise too_large
    except TimeoutError:
        raise ApiError(400, "bad_request", f"the upload stalled for {timeout:g} s") from None
    except (ConnectionResetError, HttpProcessingError, web.RequestPayloadError):
        raise ApiError(400, "bad_request", "the upload could not be read to its end") from None
    return bytes(raw)


async def _receive(
    request: web.Request, session_id: str, *, sender: str, user_id: int | None, kind: str, name: str
) -> records.SessionFile:
    """Reserve a place in the live call, read, check and re-encode the bytes, store them, and tell both sides."""
    desk = request.app[CALL_DESK]
    settings = request.app[SETTINGS]
    try:
        await desk.reserve_file(session_id, sender, user_id, kind)
    except FileRefused as exc:
        raise _refused(exc) from None
    shared = False
    try:
        data = await _read_upload(request, int(settings.max_file_mb * 1_000_000))
        try:
            async with request.app[DECODE_SLOTS]:
                kept = await asyncio.to_thread(stills.process, data, name, images_only=kind == SNAPSHOT)
        except stills.Refused as exc:
            raise _refused(exc) from None
        file = await _store(request, session_id, kept, sender=sender, user_id=user_id, kind=kind)
        shared = await desk.file_shared(session_id, file.id)
        if not shared:
            await _delete(request, file)
            raise ApiError(409, "call_not_live", "files can be sent only during the call")
        return file
    finally:
        if not shared:
            await desk.release_file(session_id)


async def _store(
    request: web.Request, session_id: str, kept: stills.Stored, *, sender: str, user_id: int | None, kind: str
) -> records.SessionFile:
    root = request.app[SETTINGS].recordings_path.resolve()
    file_id = new_file_id()
    relative = Path(session_id) / "files" / f"{file_id}.{kept.extension}"
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ApiError(404, "not_found", "no such call")

    def write() -> None:
        private_dir(path.parent)
        write_private(path, kept.data)

    await asyncio.to_thread(write)
    file = records.SessionFile(
        id=file_id,
        session_id=session_id,
        sender=sender,
        sender_user_id=user_id,
        kind=kind,
        name=kept.name,
        media_type=kept.media_type,
        size=len(kept.data),
        width=kept.width,
        height=kept.height,
        path=str(relative),
        sha256=kept.sha256,
        created_at=schema.now(),
    )
    try:
        await request.app[STORE].add_file(file)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    return file


async def _delete(request: web.Request, file: records.SessionFile) -> None:
    root = request.app[SETTINGS].recordings_path.resolve()
    path = (root / file.path).resolve()
    if path.is_relative_to(root):
        await asyncio.to_thread(path.unlink, True)
    await request.app[STORE].delete_file(file.id)


def shared_file(file: records.SessionFile, url: str) -> SharedFile:
    return SharedFile.of(file_json(file, url))


def _serve(request: web.Request, file: records.SessionFile) -> web.StreamResponse:
    root = request.app[SETTINGS].recordings_path.resolve()
    path = (root / file.path).resolve()
    # Belt and braces: even a tampered row cannot point outside the recordings folder.
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    # Images are our own re-encoding and may show in an <img>; a PDF is always downloaded, never rendered here.
    disposition = "attachment" if file.media_type == stills.PDF else "inline"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": file.media_type,
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(file.name, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": FILE_CSP,
            "Cross-Origin-Resource-Policy": "same-origin",
        },
    )


# the customer's side


@customers.post(
    "/api/v1/calls/files",
    op="sendCustomerFile",
    auth=CUSTOMER,
    status=201,
    errors=(401, 404, 409, 413, 415),
    headers=TOKEN_DOC,
)
async def send_customer_file(request: web.Request, *, query: UploadQuery) -> SharedFile:
    """Send a photo or a PDF in the call (the customer)

    The body is the file's bytes. Only during the live call. JPEG, PNG, WebP, GIF (its first frame) and PDF,
    by their content: anything else is 415 (unsupported_type), an image that does not decode 415
    (unreadable_image), over max_file_mb 413. Images are re-encoded (no EXIF, no location). Kind snapshot
    answers the rep's snapshot.request (409 no_snapshot_requested without one). Both sides get file.shared.
    """
    record = await _customer_session(request)
    file = await _receive(request, record.id, sender="customer", user_id=None, kind=query.kind, name=query.name)
    return shared_file(file, customer_file_url(file))


@customers.get(
    "/api/v1/calls/files/{file_id}",
    op="getCustomerFile",
    auth=CUSTOMER,
    response=None,
    media=("image/jpeg", "image/png", "application/pdf"),
    answer="The file (a PDF as an attachment).",
    errors=(401, 404),
    headers=TOKEN_DOC,
)
async def get_customer_file(request: web.Request, *, path_params: CustomerFilePath) -> web.StreamResponse:
    """Fetch a file of your own call (the customer)

    A file of another session is 404, the same as no file at all.
    """
    record = await _customer_session(request)
    file = await request.app[STORE].get_file(path_params.file_id)
    if file is None or file.session_id != record.id:
        raise ApiError(404, "not_found", "no such file")
    return _serve(request, file)


# the rep's side and the session's readers


@routes.post(
    "/api/v1/sessions/{session_id}/files",
    op="sendRepFile",
    auth=staff("rep"),
    status=201,
    errors=(404, 409, 413, 415),
)
async def send_rep_file(request: web.Request, *, path_params: SessionPath, query: RepUploadQuery) -> SharedFile:
    """Send a photo or a PDF in the call (the rep)

    The body is the file's bytes; only the rep of the live call (any other session is 404). The same checks as
    the customer's upload. Audited.
    """
    user = caller(request).user
    user_id = user.id if user is not None else None
    file = await _receive(request, path_params.session_id, sender="rep", user_id=user_id, kind=FILE, name=query.name)
    await request.app[STORE].audit(user_id, "file.upload", file.id, {"session_id": file.session_id})
    return shared_file(file, staff_file_url(file))


@routes.get(
    "/api/v1/sessions/{session_id}/files/{file_id}",
    op="getSessionFile",
    auth=SESSIONS_READ,
    response=None,
    media=("image/jpeg", "image/png", "application/pdf"),
    answer="The file (a PDF as an attachment).",
)
async def get_session_file(request: web.Request, *, path_params: SessionFilePath) -> web.StreamResponse:
    """Fetch a photo, file or snapshot of a session

    Whoever may read the session (a rep: only their own sessions). Every access is audited.
    """
    store = request.app[STORE]
    principal = caller(request)
    only_rep = own_sessions_only(principal)
    file = await store.get_file(path_params.file_id)
    record = await store.get_session(path_params.session_id) if file is not None else None
    if (
        file is None
        or record is None
        or file.session_id != record.id
        or (only_rep is not None and record.rep_id != only_rep)
    ):
        raise ApiError(404, "not_found", "no such file")
    user_id = principal.user.id if principal.user is not None else None
    await store.audit(user_id, "file.download", file.id, {"session_id": file.session_id})
    return _serve(request, file)


def setup_routes(app: web.Application) -> None:
    app[DECODE_SLOTS] = asyncio.Semaphore(2)
    routes.setup(app)
