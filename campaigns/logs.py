"""Log lines an operator can ship, and failures that never leak PHI.

Every entry point (CLI, web, worker, beat) calls ``configure`` once with
MERIDIAN_LOG_FORMAT (``text`` or ``json``) and MERIDIAN_LOG_LEVEL; nothing else
touches logging's configuration. What the formatters write is scrubbed:

- an exception's text is never written, only its type, in a traceback of frames
  (file, line, function): a database error's text carries the statement's values,
  PostgreSQL's DETAIL the row's, and either may be a patient's name or phone;
- an exception passed as a log argument is written as its type;
- unsubscribe tokens, API tokens and query-string tokens are cut out of request
  lines (access logs), so a log reader cannot unsubscribe a patient or act as staff.

``report_unexpected`` is what each edge's catch-all calls: it logs the scrubbed
traceback under a fresh error id and returns a message without parameters to show.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import secrets
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("meridian_request_id", default=None)

_TOKENS = (
    (re.compile(r"\x1b\[[0-9;]*m"), ""),  # colour codes (Werkzeug's request lines)
    (re.compile(r"(/unsubscribe/)[^/\s?\"']+"), r"\1[token]"),
    (re.compile(r"([?&](?:token|access_token|api_key|signature)=)[^&\s\"']+", re.I), r"\1[token]"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+", re.I), r"\1[token]"),
)
# Loggers that are noise at INFO: a line a second for the pump, whole URLs at DEBUG.
_QUIET = {
    "celery.app.trace": "WARNING",
    "celery.worker.strategy": "WARNING",
    "celery.beat": "WARNING",
    "urllib3": "INFO",
}


def new_error_id() -> str:
    """A short id to quote to support: it finds the traceback in the log."""
    return "E-" + secrets.token_hex(4)


def unexpected_message(error_id: str) -> str:
    """What staff see for an unexpected failure: no parameters, no exception text."""
    return (
        f"unexpected error {error_id}: nothing about it is shown here; the server log "
        f"has the details under {error_id}"
    )


def report_unexpected(log: logging.Logger, exc: BaseException, where: str) -> str:
    """Log ``exc`` (scrubbed) under a new error id and return the id."""
    error_id = new_error_id()
    log.error(
        "%s: unexpected %s in %s",
        error_id,
        type(exc).__name__,
        where,
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"error_id": error_id},
    )
    return error_id


def redact(text: str) -> str:
    """``text`` with tokens (unsubscribe links, bearer and query tokens) cut out."""
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    return text


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes: frames and exception types, no text."""
    lines: list[str] = []
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    for position, item in enumerate(reversed(chain)):
        if position:
            lines.append("During handling of the above, or caused by it:")
        lines.append("Traceback (most recent call last):")
        for frame in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        kind = type(item)
        lines.append(f"{kind.__module__}.{kind.__qualname__} (its text is not logged)")
    return "\n".join(lines)


class _Scrub(logging.Filter):
    """Exceptions passed as arguments become their type; a request id is attached."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            args = {k: _safe_arg(v) for k, v in record.args.items()}
            if isinstance(exc := args.get("exc"), str):  # Celery's task failure line
                args["exc"], args["traceback"] = exc.split("(", 1)[0], ""
            record.args = args
        elif isinstance(record.args, tuple):
            record.args = tuple(_safe_arg(a) for a in record.args)
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def _safe_arg(value: object) -> object:
    if isinstance(value, BaseException):
        return type(value).__name__
    return value


class TextFormatter(logging.Formatter):
    """One plain line (no colour codes), the scrubbed traceback below it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return redact(super().format(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return scrubbed_traceback(ei[1]) if ei and ei[1] is not None else ""

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return stack_info


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request and error ids."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in ("request_id", "error_id"):
            if (value := getattr(record, key, None)) is not None:
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["traceback"] = scrubbed_traceback(record.exc_info[1])
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(
    fmt: LogFormat = "text",
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    quiet: dict[str, str] | None = None,
) -> None:
    """Send every log record through one scrubbing handler, in ``fmt``, at ``level``."""
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_Scrub())
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {name: {"level": lvl} for name, lvl in (quiet or _QUIET).items()},
        }
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Werkzeug's development server adds its own coloured handler unless one exists.
    logging.getLogger("werkzeug").handlers.clear()
