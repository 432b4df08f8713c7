"""Invite links: the request to make one, the request to redeem one, and the invite as it is answered."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from .common import Body, LanguageCode, ReasonCode, Reply, Time
from .sessions import Device, EmotionConsent, RecordingConsent

INVITE_TTL_DEFAULT_S = 24 * 3600
INVITE_MAX_TTL_S = 7 * 24 * 3600
MAX_TOKEN_CHARS = 512
MAX_JSON_BYTES = 8 * 1024
IDENTITY_FIELDS = ("id", "name", "email", "phone")
IDENTITY_FIELD_MAX = 200
INVITE_ID_PATTERN = "^inv_[0-9a-f]{16}$"

Name = Annotated[str, Meta(max_length=200)]
Priority = Annotated[
    Literal["normal", "high"] | Annotated[int, Meta(ge=0, le=100)],
    Meta(description="normal (0), high (10) or 0-100; higher is answered first."),
]
# Kept whole, as the calling system sent it (it may add fields of its own): a dict whose known fields are checked.
CustomerIdentity = Annotated[
    dict[str, Any],
    Meta(
        description=f"Who the customer is (at most {MAX_JSON_BYTES} bytes as JSON); "
        "id becomes customer_ref and name customer_name unless given.",
        extra_json_schema={
            "properties": {
                name: {"type": ["string", "null"], "maxLength": IDENTITY_FIELD_MAX} for name in IDENTITY_FIELDS
            },
            "additionalProperties": True,
        },
    ),
]
Context = Annotated[
    dict[str, Any],
    Meta(
        description=f"Anything the rep should see (at most {MAX_JSON_BYTES} bytes as JSON).",
        extra_json_schema={"additionalProperties": True},
    ),
]


def _check_size(name: str, value: dict[str, Any] | None) -> None:
    if value is not None and len(json.dumps(value)) > MAX_JSON_BYTES:
        raise ValueError(f"{name}: at most {MAX_JSON_BYTES} bytes")


class CreateInvite(Body, kw_only=True):
    """An invite for an identified customer; every field is optional."""

    customer: CustomerIdentity | None = None
    context: Context | None = None
    reason: ReasonCode | None = None
    language: LanguageCode | None = None
    priority: Priority = "normal"
    customer_name: Name | None = None
    customer_ref: Annotated[
        Annotated[str, Meta(max_length=128)] | None, Meta(description="The calling system's customer id.")
    ] = None
    ttl_s: Annotated[int, Meta(description="How long the link works, in seconds.", ge=60, le=INVITE_MAX_TTL_S)] = (
        INVITE_TTL_DEFAULT_S
    )

    example: ClassVar[dict[str, Any]] = {
        "customer": {"id": "crm-77", "name": "Ada Lovelace", "email": "ada@example.com"},
        "context": {"order": "A-1001"},
        "reason": "not_working",
        "language": "nl",
        "priority": "high",
        "ttl_s": 86400,
    }

    def __post_init__(self) -> None:
        for field in IDENTITY_FIELDS:
            value = (self.customer or {}).get(field)
            if value is not None and (not isinstance(value, str) or len(value) > IDENTITY_FIELD_MAX):
                raise ValueError(f"customer.{field}: a string of at most {IDENTITY_FIELD_MAX} characters")
        _check_size("customer", self.customer)
        _check_size("context", self.context)


class RedeemInvite(Body, kw_only=True):
    """What the customer's page adds when it starts an invite's call; every field is optional."""

    device: Device = None
    language: LanguageCode | None = None
    emotion_consent: EmotionConsent = None
    recording_consent: RecordingConsent = None
    example: ClassVar[dict[str, Any]] = {"device": "iPhone · Safari", "emotion_consent": True}


class InvitePath(msgspec.Struct, kw_only=True):
    invite_id: Annotated[
        str,
        Meta(
            description="Invite.id; an unknown one is 404.",
            pattern=INVITE_ID_PATTERN,
            examples=["inv_3f2a9c1b7d4e5f60"],
        ),
    ]


# The token's own checks answer a bad one (400 link_invalid, 410 expired), so its limit is only documented here.
Token = Annotated[
    str, Meta(description="The invite's signed token (Invite.code).", extra_json_schema={"maxLength": MAX_TOKEN_CHARS})
]


class RedeemPath(msgspec.Struct, kw_only=True):
    code: Token


class QrPath(msgspec.Struct, kw_only=True):
    token: Token


class Invite(Reply, kw_only=True):
    """A signed invite link for an identified customer."""

    id: Annotated[str, Meta(description="The invite's id, for revoking it (not a secret).", pattern=INVITE_ID_PATTERN)]
    code: Annotated[str, Meta(description="The signed token: what follows /join/, and what redeem and qr.png take.")]
    url: Annotated[str, Meta(description="The join link to send to the customer.", extra_json_schema={"format": "uri"})]
    expires_at: Time
    qr_svg: Annotated[str, Meta(description="The join link as a QR code (SVG markup).")]
    qr_png_url: Annotated[str, Meta(description="The same QR code as PNG.")]
