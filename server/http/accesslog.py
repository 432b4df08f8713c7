"""A malformed request is the client's mistake, not the server's: log it as one line, not as an error.

aiohttp answers a request its parser rejects (a bad request line, header, chunk size, URL or body encoding)
with 400, and also logs it on ``aiohttp.server`` at ERROR with a full traceback; so too a client that goes
away while aiohttp is still answering. Any visitor could then fill the log with tracebacks and bury real
errors. Found by ``make fuzz`` (tests/fuzz).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ClientErrorsAsInfo(logging.Filter):
    """Turns aiohttp's "Error handling request" into one INFO line without traceback when the client caused it:
    a 4xx parse error, or a client that went away while aiohttp was still answering (say, its "100 Continue")."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        parse_error = _client_parse_error(exc)
        if parse_error is not None:
            # The parser's message quotes the client's bytes: one line, escaped, bounded.
            reason = ascii(" ".join(str(parse_error.message).split()))[:200]
            record.msg, record.args = "bad request from %s (%s): %s", (remote, parse_error.code, reason)
        elif isinstance(exc, ConnectionResetError) and record.getMessage().startswith("Error handling request"):
            record.msg, record.args = "client %s went away during the request: %s", (remote, ascii(str(exc))[:200])
        else:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def _client_parse_error(exc: BaseException | None) -> HttpProcessingError | None:
    """The 4xx parse error behind ``exc``: itself, or the cause of the RequestPayloadError that aiohttp raises
    when it drains a body the handler left unread (say, "Content-Encoding: gzip" on bytes that are not)."""
    for _depth in range(3):
        if isinstance(exc, HttpProcessingError):
            return exc if 400 <= (exc.code or 400) < 500 else None
        if not isinstance(exc, web.RequestPayloadError):
            return None
        exc = exc.__cause__ or exc.__context__
    return None


def quiet_client_errors() -> None:
    """Install the filter once per process (every app shares aiohttp's logger)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ClientErrorsAsInfo) for f in logger.filters):
        logger.addFilter(ClientErrorsAsInfo())
