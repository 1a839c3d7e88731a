"""Relaying an upstream SSE stream line by line, and metering what it carried (usage, or text to estimate from)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from clawhost_proxy.usage import usage_of


class StreamMeter:
    """What a stream has carried so far: the upstream's usage when it came, else chunk and character counts."""

    __slots__ = ("chars", "chunks", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.chunks = 0
        self.chars = 0

    def feed(self, data: bytes) -> bool:
        """Account one SSE data payload; False for a usage-only chunk (no choices)."""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        found = usage_of(chunk)
        if found:
            self.usage = found
        choices = chunk.get("choices") or []
        for choice in choices:
            delta = (choice or {}).get("delta") or {} if isinstance(choice, dict) else {}
            text = len(delta.get("content") or "") + len(delta.get("reasoning_content") or "")
            if text:
                self.chunks += 1
                self.chars += text
        return bool(choices) or not found


class SseRelay:
    """An upstream SSE byte stream, line by line: metered, the unasked-for usage chunk left out, up to `[DONE]`."""

    __slots__ = ("done", "meter", "partial", "wants_usage")

    def __init__(self, meter: StreamMeter, wants_usage: bool) -> None:
        self.meter = meter
        self.wants_usage = wants_usage
        self.partial = b""  # a line still waiting for its newline
        self.done = False  # `data: [DONE]` came (it is not passed on: the proxy writes it after billing)

    def feed(self, data: bytes) -> bytes:
        """What to pass on of everything that arrived so far (complete lines only)."""
        if self.done:
            return b""
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        return b"".join(self._lines(lines))

    def finish(self) -> bytes:
        """At the end of the upstream stream: a last line that had no newline."""
        if self.done or not self.partial:
            return b""
        out = b"".join(self._lines([self.partial]))
        self.partial = b""
        return out[:-1]  # as it came, without the newline it never had

    def _lines(self, lines: list[bytes]) -> Iterator[bytes]:
        for line in lines:
            if line.startswith(b"data:"):
                data = line[5:].strip()
                if data == b"[DONE]":
                    self.done = True
                    return
                if not self.meter.feed(data) and not self.wants_usage:
                    continue  # the usage-only chunk the client did not ask for
            yield line + b"\n"
