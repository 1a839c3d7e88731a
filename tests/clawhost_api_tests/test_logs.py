"""The one log setup: JSON lines carrying the fields passed as `extra`, credentials never written."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from clawhost_api.logs import REDACTED, AccessLogFields, JsonFormatter


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("clawhost.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_extra_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("ledger: %s unavailable", "redis", extra={"error": "ConnectionError", "customer": "alice", "n": 3})
    (line,) = _lines(stream)
    assert line["message"] == "ledger: redis unavailable"
    assert line["level"] == "WARNING"
    assert line["logger"] == "clawhost.test-logs"
    assert line["time"].endswith("+00:00")
    assert (line["error"], line["customer"], line["n"]) == ("ConnectionError", "alice", 3)
    assert not {"lineno", "thread", "process", "args", "msg"} & line.keys()


def test_a_field_named_like_a_credential_is_redacted(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info(
        "x",
        extra={"token": "t-1", "proxy_token": "t-2", "api_key": "k", "database_dsn": "postgresql://u:p@h/db"},
    )
    logger.info("y", extra={"prompt_tokens": 12, "token_hash": "sha256:ab"})
    first, second = _lines(stream)
    assert {first[key] for key in ("token", "proxy_token", "api_key", "database_dsn")} == {REDACTED}
    assert "t-1" not in stream.getvalue()
    assert "u:p" not in stream.getvalue()
    assert (second["prompt_tokens"], second["token_hash"]) == (12, "sha256:ab")


def test_exceptions_and_values_json_cannot_hold_still_give_one_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"path": object(), "huge": 2**70})
    (line,) = _lines(stream)
    assert "ValueError: boom" in line["exception"]
    assert line["huge"] == 2**70


def test_uvicorn_access_lines_become_fields_without_the_query_string(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    logger.addFilter(AccessLogFields())
    try:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/auth/reset?code=s3cret", "1.1", 200)
    finally:
        logger.filters.clear()
    (line,) = _lines(stream)
    assert line["message"] == "request"
    assert (line["method"], line["path"], line["status"], line["client"]) == (
        "GET",
        "/auth/reset",
        200,
        "127.0.0.1:5000",
    )
    assert "s3cret" not in stream.getvalue()


def test_configure_logging_turns_every_logger_into_json_lines_on_stderr() -> None:
    program = (
        "import logging\n"
        "logging.basicConfig(format='plain %(message)s')\n"
        "from clawhost_api.logs import configure_logging\n"
        "configure_logging(quiet=['noisy'])\n"
        "logging.getLogger('some.library').info('started', extra={'port': 80})\n"
        "logging.getLogger('noisy').info('not shown')\n"
        "logging.getLogger('noisy').warning('shown')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [("some.library", "started"), ("noisy", "shown")]
    assert lines[0]["port"] == 80
