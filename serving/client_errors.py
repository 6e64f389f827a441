"""Log refused requests as one line, not as a server error with a traceback.

BentoML logs every exception an API raises at ERROR level with its traceback, a 404 for an
unknown symbol as much as a real failure, so a client sending bad requests fills the log with
tracebacks that hide the real ones. :class:`ClientErrorLogFilter` turns those records into one
INFO line naming the request and the reason; 5xx errors keep their traceback.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"
"""The logger BentoML's ``log_exception`` writes to."""


def client_error_status(error: BaseException | None) -> int | None:
    """The 4xx status BentoML answers ``error`` with, or ``None`` for a server error."""
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, BentoMLException):
        status = int(error.error_code)
        return status if 400 <= status < 500 else None
    return None


class ClientErrorLogFilter(logging.Filter):
    """Rewrite the records of refused requests (4xx) as one INFO line without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = client_error_status(error)
        if status is None:
            return True
        reason = " ".join(str(error).split())
        record.msg = f"{record.getMessage()}: {status} {reason}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.levelno = logging.INFO
        record.levelname = logging.getLevelName(logging.INFO)
        return True


def install_client_error_filter() -> None:
    """Add :class:`ClientErrorLogFilter` to BentoML's HTTP logger (once per process)."""
    logger = logging.getLogger(BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, ClientErrorLogFilter) for f in logger.filters):
        logger.addFilter(ClientErrorLogFilter())
