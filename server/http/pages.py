"""The HTML pages: each ``web_client/<name>.html`` keeps its body and names its head with one marker line; the heads
live once in ``web_client/partials/<head>-head.html``. Every page is read and assembled once, at startup, and served
from memory.

The marker stands on a line of its own, where the head goes::

    <!-- head: staff title=qa.page_title stylesheet=qa.css script=qa.js -->

It names the partial (``staff``) and fills its slots: ``{{title}}`` must be given; a line with ``{{stylesheet?}}`` is
left out when the marker does not give it (a page without a stylesheet of its own). A page without exactly one
marker, an unknown head, a missing slot or a value no slot takes stops the server at start, naming the file.

What is left as ``{{name}}`` after that (the link error page's title and message) is filled, escaped, per request.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

WEB_CLIENT = Path(__file__).resolve().parents[2] / "web_client"
PARTIALS = "partials"
HEAD_SUFFIX = "-head.html"

MARKER = re.compile(r"^[ \t]*<!-- head: (?P<head>[\w-]+)(?P<values>(?: [\w-]+=(?:\"[^\"]*\"|[^\s\"]+))*) -->[ \t]*$")
MARKER_START = re.compile(r"<!--\s*head:")
MARKER_VALUE = re.compile(r"([\w-]+)=(?:\"([^\"]*)\"|(\S+))")
SLOT = re.compile(r"\{\{([\w-]+)(\??)\}\}")


class PageError(ValueError):
    """A page or head partial that cannot be assembled; the message names the file."""


@dataclass(frozen=True)
class Page:
    """One assembled page; ``fields`` are the ``{{placeholders}}`` each request fills."""

    name: str
    text: str
    fields: frozenset[str]

    def render(self, **values: str) -> str:
        """The page with ``values`` escaped into its fields; every field, and nothing else, must be given."""
        if set(values) != self.fields:
            raise PageError(f"{self.name}: fields {sorted(self.fields)} wanted, {sorted(values)} given")
        # One pass: a value that looks like a placeholder stays text.
        return SLOT.sub(lambda match: html.escape(values[match[1]]), self.text)


def fill_head(partial: str, values: dict[str, str], source: str) -> str:
    """The head partial with its slots filled from the marker's ``values``."""
    lines = []
    used: set[str] = set()
    for line in partial.splitlines(keepends=True):
        slots = SLOT.findall(line)
        if any(optional and name not in values for name, optional in slots):
            continue  # an optional line the page does without
        missing = [name for name, _optional in slots if name not in values]
        if missing:
            raise PageError(f"{source}: the head needs {missing[0]}=")
        used.update(name for name, _optional in slots)
        lines.append(SLOT.sub(lambda match: values[match[1]], line))
    unused = sorted(set(values) - used)
    if unused:
        raise PageError(f"{source}: the head has no slot for {', '.join(unused)}")
    return "".join(lines)


def assemble(name: str, text: str, heads: dict[str, str]) -> Page:
    """The page ``text`` with its marker line replaced by the head it names (``heads``: name → partial text)."""
    source = f"{name}.html"
    lines = text.splitlines(keepends=True)
    markers = [i for i, line in enumerate(lines) if MARKER_START.search(line)]
    if len(markers) != 1:
        raise PageError(f"{source}: {len(markers)} head markers, wanted exactly one")
    at = markers[0]
    marker = MARKER.match(lines[at].rstrip("\r\n"))
    if marker is None:
        raise PageError(f"{source}: line {at + 1} is not a head marker: {lines[at].strip()}")
    head = marker["head"]
    if head not in heads:
        raise PageError(f"{source}: no head named {head!r} (known: {', '.join(sorted(heads))})")
    values = {key: quoted or bare for key, quoted, bare in MARKER_VALUE.findall(marker["values"])}
    lines[at] = fill_head(heads[head], values, source)
    page = "".join(lines)
    return Page(name=name, text=page, fields=frozenset(found for found, _optional in SLOT.findall(page)))


def read_pages(root: Path = WEB_CLIENT) -> dict[str, Page]:
    """Every page under ``root``, assembled; blocking (file reads)."""
    partials = root / PARTIALS
    heads = {
        path.name.removesuffix(HEAD_SUFFIX): path.read_text(encoding="utf-8")
        for path in sorted(partials.glob(f"*{HEAD_SUFFIX}"))
    }
    return {
        path.stem: assemble(path.stem, path.read_text(encoding="utf-8"), heads) for path in sorted(root.glob("*.html"))
    }


PAGES = web.AppKey("pages", dict[str, Page])


async def pages_ctx(app: web.Application) -> AsyncIterator[None]:
    """Read at startup: a page that cannot be assembled stops the server there, not at its first visit."""
    app[PAGES] = await asyncio.to_thread(read_pages)
    yield


def page_response(request: web.Request, name: str, *, status: int = 200, **fields: str) -> web.Response:
    """The page ``name`` (its file's stem) with ``fields`` filled; the security middleware adds the CSP and the rest."""
    page = request.app[PAGES][name]
    return web.Response(text=page.render(**fields), status=status, content_type="text/html")
