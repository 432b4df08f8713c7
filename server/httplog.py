"""A malformed request is the client's mistake, not the server's: log it as one line, not as an error.

aiohttp answers a request its parser rejects (a bad request line, header, chunk size or URL) with 400, and
also logs it on ``aiohttp.server`` at ERROR with a full traceback. Any visitor could then fill the log with
tracebacks and bury real errors. Found by ``make fuzz`` (tests/fuzz).
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ClientErrorsAsInfo(logging.Filter):
    """Turns aiohttp's "Error handling request" for a 4xx parse error into one INFO line without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= (exc.code or 400) < 500:
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        # The parser's message quotes the client's bytes: one line, escaped, bounded.
        reason = ascii(" ".join(str(exc.message).split()))[:200]
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "bad request from %s (%s): %s", (remote, exc.code, reason)
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_client_errors() -> None:
    """Install the filter once per process (every app shares aiohttp's logger)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorsAsInfo) for f in logger.filters):
        logger.addFilter(ClientErrorsAsInfo())
