"""Photos, files and snapshots of a call: upload options and what the API says about a stored file."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from .common import SESSION_ID_EXAMPLE, Query, Reply, Time

FILE_ID_EXAMPLE = "f_3q2-7wXk1Zp0aBcDeFgHiJ"
FileId = Annotated[
    str,
    Meta(
        max_length=40,
        pattern=r"^f_[A-Za-z0-9_-]+$",
        description="The file's random id; an unknown one, or one of another session, is 404.",
        examples=[FILE_ID_EXAMPLE],
    ),
]
Sender = Literal["customer", "rep"]
Kind = Annotated[
    Literal["file", "snapshot"],
    Meta(description="`file`: sent in the chat; `snapshot`: a still of the customer's camera the rep asked for."),
]


class UploadQuery(Query, kw_only=True):
    name: Annotated[
        str, Meta(max_length=200, description="The file's name as the sender knows it (shown; the type is sniffed).")
    ] = ""
    kind: Kind = "file"


class RepUploadQuery(Query, kw_only=True):
    name: Annotated[
        str, Meta(max_length=200, description="The file's name as the sender knows it (shown; the type is sniffed).")
    ] = ""


class CustomerFilePath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such file"
    file_id: FileId


class SessionFilePath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such file"
    session_id: Annotated[str, Meta(max_length=64, description="The session's id.", examples=[SESSION_ID_EXAMPLE])]
    file_id: FileId


class SharedFile(Reply, kw_only=True):
    """A stored photo, file or snapshot, as the one who sent it (or a reader of the session) sees it."""

    file_id: Annotated[str, Meta(description="The file's random id.")]
    from_: Sender = msgspec.field(name="from")
    kind: Kind
    name: Annotated[str, Meta(description="With the extension of what the file really is.")]
    media_type: Annotated[
        Literal["image/jpeg", "image/png", "application/pdf"],
        Meta(description="Sniffed from the content; images are re-encoded as JPEG or PNG."),
    ]
    size: Annotated[int, Meta(description="Bytes, as stored.")]
    width: int | None
    height: int | None
    url: Annotated[str, Meta(description="Where to GET it: the customer's (call token) or staff's (login) URL.")]
    at: Time
