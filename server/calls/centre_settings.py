"""The centre's current settings: the configured defaults with an admin's overrides from /admin on top.

Five sections may be changed while the server runs: ``dispositions``, ``reasons``, ``help_articles``, the
``recording`` policy and the ``emotion`` policy. Everything that reads them (the customer page's configuration,
intake, wrap-up, routing, a new call's consent and recording, a call's emotion cues) reads :attr:`current`, so
a change applies to the next call without a restart. A save here reloads at once; the other front doors of a
cluster poll the table's versions every ``poll_s`` and reload when one changed.

The values are checked by the HTTP models before they get here (server/http/models/admin.py); a section's
stored value is its JSON form, which :func:`apply` turns into the Settings fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

from aiohttp import web

from ..config import Settings
from ..storage.store import Store

log = logging.getLogger(__name__)

SECTIONS = ("dispositions", "reasons", "help_articles", "recording", "emotion")
POLL_S = 3.0

# The emotion policy's fields: section key -> Settings field.
EMOTION_FIELDS = {
    "cues": "emotion_cues_allowed",
    "default_consent": "emotion_default_consent",
    "raise_threshold": "emotion_raise_threshold",
    "clear_threshold": "emotion_clear_threshold",
    "hold_s": "emotion_hold_s",
}


def section_of(settings: Settings, section: str) -> Any:
    """A section's value (its JSON form) as ``settings`` has it."""
    if section == "dispositions":
        return [{"code": c, "label": label, "category": cat} for c, label, cat in settings.dispositions]
    if section == "reasons":
        return [{"code": c, "label": label} for c, label in settings.reasons]
    if section == "help_articles":
        return {
            reason: [{"title": a.get("title"), "body": a.get("body"), "url": a.get("url")} for a in articles]
            for reason, articles in settings.help_articles.items()
        }
    if section == "recording":
        return {"policy": settings.recording_policy}
    if section == "emotion":
        return {key: getattr(settings, name) for key, name in EMOTION_FIELDS.items()}
    raise KeyError(section)


def apply(settings: Settings, section: str, value: Any) -> Settings:
    """``settings`` with one section's value (its JSON form) in place of its own."""
    if section == "dispositions":
        return dataclasses.replace(settings, dispositions=tuple((d["code"], d["label"], d["category"]) for d in value))
    if section == "reasons":
        return dataclasses.replace(settings, reasons=tuple((r["code"], r["label"]) for r in value))
    if section == "help_articles":
        articles = {reason: tuple(dict(a) for a in items) for reason, items in value.items()}
        return dataclasses.replace(settings, help_articles=articles)
    if section == "recording":
        return dataclasses.replace(settings, recording_policy=value["policy"])
    if section == "emotion":
        return dataclasses.replace(
            settings, **{name: value[key] for key, name in EMOTION_FIELDS.items() if key in value}
        )
    raise KeyError(section)


class CentreSettings:
    """The configured ``base`` with the stored overrides applied; ``current`` is what every reader uses."""

    def __init__(self, base: Settings, store: Store | None = None, *, poll_s: float | None = None) -> None:
        self.base = base
        self.current = base
        self.overridden: frozenset[str] = frozenset()
        self._store = store
        self._poll_s = poll_s
        self._versions: dict[str, int] = {}
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        if self._poll_s:
            self._poller = asyncio.create_task(self._poll(self._poll_s), name="centre-settings-poll")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def section(self, name: str) -> Any:
        return section_of(self.current, name)

    async def reload(self) -> None:
        """Read every override again and rebuild ``current`` (one bad stored section is skipped, and logged)."""
        if self._store is None:
            return
        stored = await self._store.centre_overrides()
        current = self.base
        for name, (_version, value) in sorted(stored.items()):
            if name not in SECTIONS:
                continue
            try:
                current = apply(current, name, value)
            except (KeyError, TypeError, ValueError, AttributeError):
                log.exception("centre setting %s as stored does not apply: the configured default is used", name)
        self.current = current
        self.overridden = frozenset(n for n in stored if n in SECTIONS)
        self._versions = {name: version for name, (version, _value) in stored.items()}

    async def save(self, name: str, value: Any, user_id: int | None) -> None:
        """Store a section's new value and apply it here at once (other front doors: at their next poll)."""
        if name not in SECTIONS or self._store is None:
            raise KeyError(name)
        apply(self.current, name, value)  # a value that cannot apply is refused before it is stored
        await self._store.save_centre_section(name, value, user_id)
        await self.reload()

    async def reset(self, name: str) -> bool:
        """Back to the configured default; whether there was an override."""
        if name not in SECTIONS or self._store is None:
            raise KeyError(name)
        removed = await self._store.reset_centre_section(name)
        await self.reload()
        return removed

    async def _poll(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                if self._store is not None and await self._store.centre_versions() != self._versions:
                    await self.reload()
                    log.info("centre settings changed elsewhere: reloaded")
            except Exception:
                log.exception("could not poll the centre settings; trying again")


CENTRE = web.AppKey("centre_settings", CentreSettings)
