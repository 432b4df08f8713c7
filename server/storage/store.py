"""The one object the server reads and writes its data through, made of one repository per aggregate."""

from __future__ import annotations

from aiohttp import web

from .callbacks import CallbackRepository
from .centre import CentreSettingsRepository
from .chat import ChatRepository
from .erasure import ErasureRepository
from .events import EventRepository
from .invites import InviteRepository
from .recordings import RecordingRepository
from .session_files import SessionFileRepository
from .sessions import SessionRepository
from .timeline import TimelineRepository
from .users import UserRepository


class Store(
    UserRepository,
    SessionRepository,
    EventRepository,
    ChatRepository,
    TimelineRepository,
    RecordingRepository,
    InviteRepository,
    CallbackRepository,
    SessionFileRepository,
    ErasureRepository,
    CentreSettingsRepository,
):
    """Every repository's queries on one engine: ``Store(engine).get_session(...)``, ``.list_recordings(...)``.

    Composed by inheritance rather than delegation: each repository is a :class:`~.base.Repository` on the same
    ``engine`` with its own method names, so the methods are the Store's own, the rest of the server keeps one
    flat object to call, and no forwarding method repeats a signature. A repository works on its own too
    (``RecordingRepository(engine)``), which is how one is tested or used alone.
    """


STORE = web.AppKey("store", Store)
