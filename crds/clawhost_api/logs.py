"""The one log format of every service: a JSON object per line on stderr, with the fields passed as `extra`."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra` and is written as a field.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# A field named like a credential is never written, whatever a caller passed: a safety net, not permission to try.
_CREDENTIAL_NAME = re.compile(
    r"(^|_)(token|secret|password|passwd|authorization|cookie|api_?key|private_key|dsn)$", re.IGNORECASE
)
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    """`time` (UTC, ISO 8601), `level`, `logger`, `message`, the record's extra fields, and `exception` when there
    is one. Callers pass names, ids, counts and statuses as fields; never a token, prompt or completion."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                payload[key] = REDACTED if _CREDENTIAL_NAME.search(key) else value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(payload, default=str).decode()
        except TypeError:  # what orjson refuses (an int beyond 64 bits, a non-str key) the stdlib writes
            return json.dumps(payload, default=str)


class AccessLogFields(logging.Filter):
    """uvicorn's access line (`client - "METHOD path HTTP/v" status`, as positional args) as fields.

    The query string is left out: it can carry a credential (a reset code, a signed link)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            record.client = client
            record.method = method
            record.path = str(path).split("?", 1)[0]
            record.http_version = http_version
            record.status = status
            record.msg, record.args = "request", ()
        return True


def configure_logging(level: int | str = logging.INFO, *, quiet: Iterable[str] = ()) -> None:
    """Send every logger's records to stderr as JSON lines (replacing any handler set before).

    `quiet` names loggers of libraries that only speak up for warnings. Records skip what the format never shows
    (caller frame, thread, process: the logging HOWTO's "Optimization"), which halves a record's cost."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_uvicorn_logging() -> None:
    """uvicorn's loggers through the same JSON lines (run uvicorn with `log_config=None` so it keeps them)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, AccessLogFields) for existing in access.filters):
        access.addFilter(AccessLogFields())
