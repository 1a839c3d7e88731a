"""ASGI middleware: refuse a request body beyond the route's limit with 413, before the app has all of it.

A declared Content-Length over the limit is refused at the app's first read, before a byte of the
body is read (or at its answer, for a route that never reads one). A chunked (or understated) body is
counted as it streams in; the moment it passes the limit the app's read fails, whatever it answered
is dropped, and the client gets the 413 instead. So no route, the Stripe webhook
included (its signature is checked over the whole body), ever holds more than the limit plus one chunk.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clawhost_control_api.core.errors import BodyTooLargeError


class BodyLimit:
    def __init__(self, app: ASGIApp, default: int, per_path: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(str(scope.get("path", "")), self.default)
        declared = _content_length(scope)
        too_long = declared is not None and declared > limit
        received = 0
        tripped = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, tripped
            if too_long:  # refused before a byte of the body is read
                tripped = True
                raise BodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    tripped = True
                    raise BodyTooLargeError(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, tripped
            if message["type"] == "http.response.start" and too_long:
                tripped = True  # a route that never read its body is still refused
            if tripped:
                return  # whatever the app made of the failed read, the answer is the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # The app runs (and routes) first, so the request is counted under its route; the body's first
        # read is where an over-long one stops.
        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLargeError:
            if not tripped:
                raise
        if tripped and not started:
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    error = BodyTooLargeError(limit)
    body = json.dumps({"detail": error.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": error.status_code, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})
