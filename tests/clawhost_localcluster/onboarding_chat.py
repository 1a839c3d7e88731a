"""A browser's side of /ws/onboarding for tests: JSON frames over a real WebSocket, read with timeouts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

Frame = dict[str, Any]


@dataclass
class ChatClient:
    """One browser connection; `seen` keeps every frame received, in order."""

    connection: ClientConnection
    seen: list[Frame] = field(default_factory=list)

    @classmethod
    def open(cls, api_url: str, origin: str | None = None, max_size: int = 1024 * 1024) -> ChatClient:
        """Connect as a page of `origin` (default: the API's own origin, as the site is served)."""
        ws_url = api_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
        page_origin = origin if origin is not None else api_url.rstrip("/")
        # legacy=True: a connection object that outlives this call (the test closes it); not a context manager.
        return cls(
            connect(
                f"{ws_url}/ws/onboarding",
                origin=Origin(page_origin),
                max_size=max_size,
                open_timeout=10,
                legacy=True,
            )
        )

    def send(self, frame: Frame | str | bytes) -> None:
        self.connection.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    def hello(self, session_id: str | None = None, access_token: str | None = None, language: str = "en") -> None:
        self.send({"type": "hello", "session_id": session_id, "language": language, "access_token": access_token})

    def next(self, timeout: float = 30) -> Frame:
        """The next frame; AssertionError naming what was seen when none comes in time or the connection closed."""
        try:
            raw = self.connection.recv(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"no frame within {timeout} s; seen so far: {self._types()}") from None
        except ConnectionClosed as closed:
            raise AssertionError(f"connection closed ({closed.rcvd}); seen so far: {self._types()}") from None
        frame: Frame = json.loads(raw)
        self.seen.append(frame)
        return frame

    def until(self, predicate: Callable[[Frame], bool], timeout: float = 60, what: str = "a frame") -> Frame:
        """Read frames until one matches (those before it stay in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout} s; seen: {self._types()}")
            frame = self.next(timeout=left)
            if predicate(frame):
                return frame

    def until_type(self, kind: str, timeout: float = 60) -> Frame:
        return self.until(lambda f: f.get("type") == kind, timeout, f"{kind!r} frame")

    def close_code(self, timeout: float = 30) -> int | None:
        """Wait for the server to close; its close code (frames arriving meanwhile go to `seen`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = self.connection.recv(timeout=deadline - time.monotonic())
            except ConnectionClosed:
                break
            except TimeoutError:
                raise AssertionError(f"still open after {timeout} s; seen: {self._types()}") from None
            self.seen.append(json.loads(raw))
        return self.connection.close_code

    def close(self) -> None:
        self.connection.close()

    def _types(self) -> list[str]:
        return [f"{f.get('type')}:{f.get('code') or f.get('phase') or ''}" for f in self.seen]
