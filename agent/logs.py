"""How ``isa-agent run`` logs: plain text or JSON lines, each API request's line with its id.

Rules:
1. One handler on the root logger, to stderr: ``text`` (``time level logger: message``) or
   ``json`` (one object per line: ``time``, ``level``, ``logger``, ``message``, ``request_id``
   while an API request is handled, ``exception`` when there is one; nothing else, so a log
   line carries no more than the message its caller wrote).
2. The request id lives in a context variable that the API's middleware sets per request
   (``agent.api``): a sane incoming ``X-Request-Id`` (1-64 of ``A-Z a-z 0-9 . _ : -``) is
   kept so a case system can follow its own id; anything else is replaced by a fresh one,
   never echoed (a header is client input).
3. Configured once, at the edge (``agent.commands.run``); library code only gets loggers.
4. The AMQP libraries do not narrate our reconnections: aiormq's connection records (an error
   per failed attempt, another per lost connection), its "consumer cancelled by the broker"
   notice and its "closing channel because RPC call cancelled" (our own timeout or shutdown
   cancelled a consumer's start) become DEBUG records, kept only where DEBUG is enabled
   (:func:`quiet_amqp_logs`, installed by ``agent.transport``). ``agent.broker_session`` logs
   one line per attempt instead. (Before: three lines a second from three loggers, 3,239
   lines in 27 minutes from one revoked agent.)
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = [
    "REQUEST_ID",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "quiet_amqp_logs",
    "request_id_for",
]

LogFormat = Literal["text", "json"]
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "isa_request_id", default=None
)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: rule 4: logger -> the message templates demoted (None: all of them, up to ERROR)
_AMQP_NOISE: dict[str, tuple[str, ...] | None] = {
    "aiormq.connection": None,
    "aiormq.channel": (
        "Consumer %r cancelled by the broker",
        "Closing channel %r because RPC call %s cancelled",
        "Closing channel %r locally because RPC call %s cancelled",
    ),
}


def request_id_for(incoming: str | None) -> str:
    """The id of a request: the client's own when sane (rule 2), else a new random one."""
    if incoming is not None and _SANE_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (rule 1)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Rule 1: replace the root logger's handlers with one in ``fmt`` at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


class _DemoteToDebug(logging.Filter):
    """Rule 4: a matching record below CRITICAL becomes DEBUG, kept only at DEBUG level."""

    def __init__(self, logger: logging.Logger, templates: tuple[str, ...] | None) -> None:
        super().__init__()
        self._logger, self._templates = logger, templates

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL or record.levelno <= logging.DEBUG:
            return True
        if self._templates is not None and not str(record.msg).startswith(self._templates):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self._logger.isEnabledFor(logging.DEBUG)


def quiet_amqp_logs() -> None:
    """Rule 4: demote the AMQP libraries' connection records to DEBUG (idempotent)."""
    for name, templates in _AMQP_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToDebug) for f in logger.filters):
            logger.addFilter(_DemoteToDebug(logger, templates))
