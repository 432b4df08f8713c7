"""Requests whose path is sent exactly as written."""

from __future__ import annotations

import yarl


def raw_url(base: str, path: str) -> yarl.URL:
    """``base + path`` as it stands: yarl would otherwise resolve ``../`` and decode ``%2e`` before sending,
    so a traversal test would hit the router's 404 instead of the guard it means to test."""
    return yarl.URL(base + path, encoded=True)
