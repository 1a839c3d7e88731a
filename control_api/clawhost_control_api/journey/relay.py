"""/ws/onboarding: the browser's one connection, relayed to the onboarding service's internal WebSocket.

One internal connection per browser connection; when either side ends, the other is closed. This side alone decides
who the user is (the browser's JWT, verified here; the service only ever gets the account id), consumes the
service's `result` (the agent and its checkout), and follows provisioning from the Customer cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from clawhost_control_api.api.deps import sign_in_with
from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.security import InvalidTokenError
from clawhost_control_api.db import accounts, journeys
from clawhost_control_api.journey import frames
from clawhost_control_api.journey.agent_from_result import JourneyError, agent_and_checkout
from clawhost_control_api.journey.progress import Phase, phase_text, progress_of, to_announce

log = logging.getLogger(__name__)

# Close codes the service ends a connection with that the browser must see as they are (PROTOCOL.md).
_PASSED_THROUGH_CLOSES = frozenset({4403, 4429})
_UPSTREAM_MAX_FRAME = 1024 * 1024  # the service's frames: a resumed transcript is the largest


class Relay:
    def __init__(self, websocket: WebSocket, state: AppState, client_ip: str) -> None:
        self.ws = websocket
        self.state = state
        self.client_ip = client_ip
        self.settings = state.settings
        self.user: accounts.User | None = None
        self.session_id: str | None = None
        self.upstream: ClientConnection | None = None
        self.follower: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self.last_activity = self._clock()
        self._send_lock = asyncio.Lock()
        self._window_start = self._clock()
        self._window_count = 0
        self._browser_open = True

    # -- the browser side ---------------------------------------------------------------------------------------

    def touch(self) -> None:
        self.last_activity = self._clock()

    async def to_browser(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        async with self._send_lock:
            if not self._browser_open:
                return
            try:
                await self.ws.send_text(text)
            except Exception:  # a browser gone mid-send (any of the server's errors) ends the connection
                self._browser_open = False
                return
        self.touch()

    async def close_browser(self, code: int = 1000, reason: str = "") -> None:
        async with self._send_lock:
            if self._browser_open and self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason)
            self._browser_open = False

    def _rate_exceeded(self) -> bool:
        limit = self.settings.onboarding_frame_rate
        now = self._clock()
        if now - self._window_start >= limit.seconds:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count > limit.count

    async def next_browser_frame(self) -> frames.BrowserFrame | None:
        """The browser's next valid frame; the limits answered with error frames on the way; None once it is gone."""
        idle = self.settings.onboarding_idle_seconds
        while True:
            remaining = self.last_activity + idle - self._clock()
            if remaining <= 0:
                await self.to_browser(
                    frames.error(
                        "idle_timeout",
                        f"Closed after {idle // 60} minutes without activity. Reconnect to continue where you stopped.",
                        True,
                    )
                )
                await self.close_browser(1000, "idle")
                return None
            try:
                message = await asyncio.wait_for(self.ws.receive(), remaining)
            except TimeoutError:
                continue  # the other side may have been active meanwhile: measured again above
            if message["type"] == "websocket.disconnect":
                self._browser_open = False
                return None
            self.touch()
            text = message.get("text")
            if text is None:
                await self.to_browser(frames.error("bad_request", "Send JSON text frames only.", False))
                continue
            limit = self.settings.onboarding_max_frame_bytes
            if len(text.encode()) > limit:
                await self.to_browser(
                    frames.error("frame_too_large", f"A frame may hold at most {limit} bytes; shorten it.", False)
                )
                continue
            if self._rate_exceeded():
                window = self.settings.onboarding_frame_rate
                await self.to_browser(
                    frames.error(
                        "rate_limited",
                        f"Too many messages: at most {window.count} every {window.seconds} s. Wait a moment.",
                        True,
                    )
                )
                continue
            try:
                return frames.BROWSER_FRAME.validate_json(text)
            except ValidationError:
                # Never echo the frame: it may hold a bot token or a JWT.
                await self.to_browser(
                    frames.error(
                        "bad_request", "Not a frame of this protocol (hello, message, retry, authenticate).", False
                    )
                )

    async def verify(self, token: str | None) -> accounts.User | None:
        if not token:
            return None
        try:
            return (await sign_in_with(self.state, token)).user
        except InvalidTokenError:
            return None

    # -- the session ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            hello = await self._hello()
            if hello is None:
                return
            self.user = await self.verify(hello.access_token)
            self.session_id = hello.session_id
            self.upstream = await self._connect()
            if self.upstream is None:
                await self._without_service()
                return
            await self.upstream.send(
                json.dumps(
                    {
                        "type": "hello",
                        "session_id": hello.session_id,
                        "language": hello.language,
                        "user_id": str(self.user.id) if self.user else None,
                        "client_ip": self.client_ip,
                    }
                )
            )
            await self._relay_both_ways(self.upstream)
        finally:
            if self.follower is not None:
                self.follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.follower
            if self.upstream is not None:
                await self.upstream.close()
            await self.close_browser()

    async def _hello(self) -> frames.Hello | None:
        while True:
            frame = await self.next_browser_frame()
            if frame is None or isinstance(frame, frames.Hello):
                return frame
            await self.to_browser(frames.error("bad_request", "Send hello first.", False))

    async def _connect(self) -> ClientConnection | None:
        token = self.settings.onboarding_internal_token.get_secret_value()
        try:
            if self.settings.onboarding_token_file is not None:
                token = self.settings.onboarding_token_file.read_text().strip()
            return await connect(
                self.settings.onboarding_url,
                additional_headers={"Authorization": f"Bearer {token}"} if token else None,
                open_timeout=self.settings.onboarding_connect_timeout_seconds,
                max_size=_UPSTREAM_MAX_FRAME,
                close_timeout=2,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
            log.warning("onboarding service unreachable", extra={"error": type(error).__name__})
            return None

    async def _without_service(self) -> None:
        """The service is down: say so; a session whose agent exists still follows its provisioning."""
        await self.to_browser(
            frames.error("internal", "The assistant is not reachable right now. Try again in a minute.", True)
        )
        if not await self._maybe_follow():
            await self.close_browser(1011, "onboarding service unavailable")
            return
        while await self.next_browser_frame() is not None:
            await self.to_browser(
                frames.error("internal", "The assistant is not reachable right now. Try again in a minute.", True)
            )

    async def _relay_both_ways(self, upstream: ClientConnection) -> None:
        browser = asyncio.create_task(self._browser_to_service(upstream))
        service = asyncio.create_task(self._service_to_browser(upstream))
        done, pending = await asyncio.wait({browser, service}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        for task in done:
            task.result()

    async def _browser_to_service(self, upstream: ClientConnection) -> None:
        while (frame := await self.next_browser_frame()) is not None:
            if isinstance(frame, frames.Hello):
                await self.to_browser(frames.error("bad_request", "hello is sent once per connection.", False))
            elif isinstance(frame, frames.Authenticate):
                user = await self.verify(frame.access_token)
                if user is None:
                    await self.to_browser(
                        frames.error("invalid_token", "Your sign-in has expired or is invalid: sign in again.", False)
                    )
                    continue
                self.user = user
                await upstream.send(json.dumps({"type": "authenticated", "user_id": str(user.id)}))
                await self._maybe_follow()
            else:
                await upstream.send(frame.model_dump_json())

    async def _service_to_browser(self, upstream: ClientConnection) -> None:
        try:
            async for raw in upstream:
                self.touch()
                text = raw if isinstance(raw, str) else raw.decode()
                try:
                    data = json.loads(text)
                    kind = data.get("type") if isinstance(data, dict) else None
                except ValueError:
                    kind = None
                if kind == "result":
                    await self._on_result(upstream, text)
                elif kind in frames.TO_BROWSER:
                    await self.to_browser(text)
                    if kind == "session":
                        self.session_id = data.get("session_id") or self.session_id
                        await self._maybe_follow()
                else:
                    log.warning("onboarding service frame dropped", extra={"frame_type": str(kind)[:40]})
        except ConnectionClosed:
            pass
        code = upstream.close_code
        if code in _PASSED_THROUGH_CLOSES:
            await self.close_browser(code, upstream.close_reason or "")
        elif code not in (1000, 1001):
            await self.to_browser(
                frames.error("internal", "The assistant restarted. Reconnect to continue where you stopped.", True)
            )
            await self.close_browser(1011, "onboarding service closed")
        else:
            await self.close_browser(1000, "")

    # -- the result: agent, checkout -----------------------------------------------------------------------------

    async def _on_result(self, upstream: ClientConnection, text: str) -> None:
        async def refuse(message: str, retryable: bool) -> None:
            frame = {"type": "agent_creation_failed", "message": message, "retryable": retryable}
            await upstream.send(json.dumps(frame))

        try:
            frame = frames.ResultFrame.model_validate_json(text)
            agent = frame.agent()
        except ValidationError as error:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
            log.warning("onboarding result refused", extra={"fields": fields})  # where, never the values
            await refuse("The gathered settings were incomplete; let's check them once more.", False)
            return
        if self.user is None:
            await self.to_browser({"type": "sign_in_required", "reason": "Sign up or log in to create your agent."})
            return
        if frame.user_id is not None and frame.user_id != str(self.user.id):
            await refuse("This conversation belongs to another account.", False)
            return
        if self.state.kube is None:
            await refuse("Agents cannot be created right now (the cluster is not configured).", True)
            return
        self.session_id = frame.session_id
        try:
            made = await agent_and_checkout(
                self.state, self.state.kube, self.user.id, frame.session_id, agent, frame.result.bot_username
            )
        except JourneyError as error:
            if error.secret_stored and agent.bot_token is not None:
                await upstream.send(json.dumps({"type": "secret_written"}))
            await refuse(error.message, error.retryable)
            return
        if agent.bot_token is not None:
            await upstream.send(json.dumps({"type": "secret_written"}))
        await upstream.send(
            json.dumps({"type": "checkout_created", "customer_name": made.customer_name, "url": made.checkout_url})
        )
        await self._maybe_follow()

    # -- provisioning ------------------------------------------------------------------------------------------

    async def _maybe_follow(self) -> bool:
        """Follow the session's agent once this connection is its owner's; True when following."""
        if self.follower is not None:
            return True
        if self.user is None or self.session_id is None or self.state.cache is None:
            return False
        journey = await journeys.find(self.state.pool, self.session_id)
        if journey is None or journey.user_id != self.user.id:
            return False
        self.follower = asyncio.create_task(self._follow(journey.customer_name, journey.bot_username))
        return True

    async def _announce(self, phase: Phase, text: str, bot_username: str) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.close_code is None:
            # The service words it in the user's language, records the state and sends the browser's frame.
            frame = {"type": "provisioning", "phase": phase, "bot_username": bot_username, "text": text}
            with contextlib.suppress(ConnectionClosed):
                await upstream.send(json.dumps(frame))
                return
        await self.to_browser({"type": "provisioning", "phase": phase, "text": text, "bot_username": bot_username})

    async def _follow(self, name: str, bot_username: str) -> None:
        cache = self.state.cache
        assert cache is not None
        last: Phase | None = None
        first = True
        with cache.feed.listen(name) as notice:
            while True:
                now = progress_of(cache.get(name), bot_username)
                if now is not None:
                    for phase in to_announce(last, now, first):
                        text = now.text if phase == now.phase else phase_text(phase, bot_username)
                        await self._announce(phase, text, bot_username)
                        last = phase
                first = False
                if last == "live":
                    return
                await notice.wait(60)
