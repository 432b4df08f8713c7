"""The admin page's API: staff accounts, API keys and the centre's settings (dispositions, reasons, help articles,
the recording and emotion policies): what is asked and what is answered."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from ...config import LANGUAGES
from ..apikeys import SCOPES
from .common import Body, LanguageCode, ReasonCode, Reply, RowId, Time
from .sessions import Role
from .supervisor import StaffUser

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,31}$"
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
PASSWORD_MIN = 8
PASSWORD_MAX = 200
MAX_REASONS = 30
MAX_DISPOSITIONS = 50
MAX_ARTICLES = 10
LANGUAGE_CODES = tuple(code for code, _name, _dir in LANGUAGES)

Username = Annotated[
    str,
    Meta(
        pattern=USERNAME_PATTERN,
        description="2 to 32 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.",
        examples=["rep7"],
    ),
]
DisplayName = Annotated[str, Meta(min_length=1, max_length=128)]
Password = Annotated[str, Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
Scope = Annotated[str, Meta(extra_json_schema={"enum": list(SCOPES)})]
Code = Annotated[str, Meta(pattern=CODE_PATTERN, description="Lower-case letters, digits and '_', up to 40.")]
Label = Annotated[str, Meta(min_length=1, max_length=80)]


def _no_blank(name: str, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{name}: must not be blank")


# staff accounts


class NewUser(Body, kw_only=True):
    """A staff account to add; without a password one is generated and answered once."""

    username: Username
    display_name: DisplayName
    role: Role
    password: Password | None = None
    skills: list[ReasonCode] = msgspec.field(default_factory=list)
    languages: list[LanguageCode] = msgspec.field(default_factory=list)
    example: ClassVar[dict[str, Any]] = {
        "username": "rep7",
        "display_name": "Rep Seven",
        "role": "rep",
        "skills": ["order"],
        "languages": ["nl"],
    }

    def __post_init__(self) -> None:
        _no_blank("display_name", self.display_name)


class UserCreated(Reply, kw_only=True):
    """The new account; ``password`` is the generated one (shown once), null when the admin gave one."""

    user: StaffUser
    password: str | None


class SetRole(Body, kw_only=True):
    """A staff account's role. Its logins end: an open page must not keep the old role's powers."""

    role: Role
    example: ClassVar[dict[str, Any]] = {"role": "supervisor"}


class SetActive(Body, kw_only=True):
    """Enable or disable an account; disabling ends every login it holds."""

    active: bool
    example: ClassVar[dict[str, Any]] = {"active": False}


class UserChanged(Reply, kw_only=True):
    """The account after the change, and how many of its logins ended."""

    user: StaffUser
    logins_ended: Annotated[int, Meta(ge=0)]


class PasswordReset(Reply, kw_only=True):
    """A new generated password (shown once); every login made with the old one ended."""

    user: StaffUser
    password: str
    logins_ended: Annotated[int, Meta(ge=0)]


# API keys


class NewApiKey(Body, kw_only=True):
    """A key for another system: a name and one or more scopes."""

    name: Annotated[str, Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=len(SCOPES))]
    example: ClassVar[dict[str, Any]] = {"name": "CRM", "scopes": ["invites:write", "sessions:read"]}

    def __post_init__(self) -> None:
        _no_blank("name", self.name)
        unknown = [s for s in self.scopes if s not in SCOPES]
        if unknown:
            raise ValueError(f"scopes: unknown scope {unknown[0]!r}; use {', '.join(SCOPES)}")
        if len(set(self.scopes)) != len(self.scopes):
            raise ValueError("scopes: each scope once")


class ApiKey(Reply, kw_only=True):
    """An API key as listed: its first characters, never the key."""

    id: int
    name: str
    prefix: Annotated[str, Meta(description="The key's first 10 characters (rk_…), to recognise it.")]
    scopes: list[Scope]
    created_at: Time
    revoked_at: Time | None
    last_used_at: Annotated[Time | None, Meta(description="Updated at most once a minute.")]


class ApiKeyCreated(ApiKey, kw_only=True):
    """A new key, with the key itself (shown once, here)."""

    secret: Annotated[str, Meta(description="Send it as Authorization: Bearer <secret>.")]


class ApiKeyList(Reply, kw_only=True):
    """Every key, revoked ones too (newest last)."""

    items: list[ApiKey]


class ApiKeyPath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such API key"
    key_id: Annotated[RowId, Meta(description="An API key's id; an unknown one is 404.", examples=[1])]


# centre settings

LocalText = Annotated[
    str | dict[str, str],
    Meta(description="Text, or an object of texts per language code (en is the fallback)."),
]


class DispositionItem(Body, kw_only=True):
    code: Code
    label: Label
    category: Annotated[str, Meta(min_length=1, max_length=40)]


class ReasonItem(Body, kw_only=True):
    code: Code
    label: Label


class HelpArticle(Body, kw_only=True):
    title: LocalText
    body: LocalText
    url: Annotated[str, Meta(max_length=500, pattern=r"^https?://\S+$")] | None = None

    def __post_init__(self) -> None:
        for name, value, cap in (("title", self.title, 120), ("body", self.body, 2000)):
            texts = value.items() if isinstance(value, dict) else [("", value)]
            if isinstance(value, dict) and not value:
                raise ValueError(f"{name}: at least one language")
            for lang, text in texts:
                where = f"{name}.{lang}" if lang else name
                if lang and lang not in LANGUAGE_CODES:
                    raise ValueError(f"{name}: {lang!r} is not a language code ({', '.join(LANGUAGE_CODES)})")
                if not text.strip():
                    raise ValueError(f"{where}: must not be blank")
                if len(text) > cap:
                    raise ValueError(f"{where}: at most {cap} characters")


def _unique(name: str, codes: list[str]) -> None:
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise ValueError(f"{name}: code {code!r} twice")
        seen.add(code)


class Dispositions(Body, kw_only=True):
    """The wrap-up outcomes reps choose from (a call wrapped up before keeps its code)."""

    items: Annotated[list[DispositionItem], Meta(min_length=1, max_length=MAX_DISPOSITIONS)]
    example: ClassVar[dict[str, Any]] = {
        "items": [{"code": "resolved", "label": "Resolved", "category": "Resolved"}],
    }

    def __post_init__(self) -> None:
        _unique("items", [d.code for d in self.items])


class Reasons(Body, kw_only=True):
    """The reasons a customer picks from; rep skills and help articles refer to their codes."""

    items: Annotated[list[ReasonItem], Meta(min_length=1, max_length=MAX_REASONS)]
    example: ClassVar[dict[str, Any]] = {"items": [{"code": "order", "label": "An order"}]}

    def __post_init__(self) -> None:
        _unique("items", [r.code for r in self.items])


class HelpArticles(Body, kw_only=True):
    """Self-help shown before queueing, per reason code (at most 10 a reason)."""

    articles: dict[Code, Annotated[list[HelpArticle], Meta(max_length=MAX_ARTICLES)]]
    example: ClassVar[dict[str, Any]] = {
        "articles": {"order": [{"title": {"en": "Where is my order?"}, "body": "See the e-mail.", "url": None}]}
    }


class RecordingPolicy(Body, kw_only=True):
    """always (with notice), ask (the customer chooses) or never."""

    policy: Literal["always", "ask", "never"]
    example: ClassVar[dict[str, Any]] = {"policy": "ask"}


class EmotionPolicy(Body, kw_only=True):
    """Emotion cues (the customer's video only, with consent): on or off, the consent toggle's default, and the
    frustration flag's thresholds (raised above ``raise_threshold``, cleared below ``clear_threshold``, held
    ``hold_s``). Turning cues on needs the server's emotion model (``emotion_cues`` in its configuration)."""

    cues: bool
    default_consent: bool
    raise_threshold: Annotated[float, Meta(ge=0.2, le=0.95)]
    clear_threshold: Annotated[float, Meta(ge=0.05, le=0.9)]
    hold_s: Annotated[float, Meta(ge=0, le=30)]
    example: ClassVar[dict[str, Any]] = {
        "cues": True,
        "default_consent": True,
        "raise_threshold": 0.5,
        "clear_threshold": 0.3,
        "hold_s": 1.0,
    }

    def __post_init__(self) -> None:
        if self.clear_threshold >= self.raise_threshold:
            raise ValueError("clear_threshold: must be below raise_threshold")


class DispositionOut(Reply, kw_only=True):
    code: str
    label: str
    category: str


class ReasonOut(Reply, kw_only=True):
    code: str
    label: str


class HelpArticleOut(Reply, kw_only=True):
    title: str | dict[str, str]
    body: str | dict[str, str]
    url: str | None


class RecordingOut(Reply, kw_only=True):
    policy: Literal["always", "ask", "never"]


class EmotionOut(Reply, kw_only=True):
    cues: bool
    default_consent: bool
    raise_threshold: float
    clear_threshold: float
    hold_s: float


Section = Literal["dispositions", "reasons", "help_articles", "recording", "emotion"]


class CentreSettings(Reply, kw_only=True):
    """The centre's settings in effect: the configuration's defaults with the admins' changes on top."""

    dispositions: list[DispositionOut]
    reasons: list[ReasonOut]
    help_articles: dict[str, list[HelpArticleOut]]
    recording: RecordingOut
    emotion: EmotionOut
    overridden: Annotated[list[Section], Meta(description="The sections an admin changed (the rest: configured).")]
    emotion_available: Annotated[
        bool, Meta(description="Whether this server runs the emotion model at all (cues on needs it).")
    ]
    warnings: Annotated[list[str], Meta(description="What the last change left to look at (e.g. orphaned help).")]


class SectionPath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such settings section"
    section: Annotated[Section, Meta(description="The section to put back to the configured default.")]
