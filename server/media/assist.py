"""Whom a supervisor's voice and picture reach, in each way of assisting a call.

- ``listen``: nobody; the supervisor receives both sides.
- ``whisper``: the rep hears the supervisor; the customer never does.
- ``barge``: a three-way call; both sides hear and see the supervisor.

The media path (``server.media.call``) asks :func:`supervisor_reaches` for every packet of the
supervisor's feeds, so this table is the one place the rule lives.
"""

from __future__ import annotations

from typing import Literal, get_args

SUPERVISOR = "supervisor"
AssistMode = Literal["listen", "whisper", "barge"]
ASSIST_MODES: tuple[str, ...] = get_args(AssistMode)


def supervisor_reaches(role: str, kind: str, mode: str | None) -> bool:
    """Whether ``role`` ("customer" or "rep") receives the supervisor's ``kind`` ("audio"/"video") in ``mode``."""
    if mode == "barge":
        return role in ("customer", "rep")
    if mode == "whisper":
        return role == "rep" and kind == "audio"
    return False
