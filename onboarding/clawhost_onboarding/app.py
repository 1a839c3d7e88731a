"""The service's HTTP face: the internal WebSocket (/v1/onboarding), /healthz and /readyz."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from clawhost_onboarding.agent import chat_model
from clawhost_onboarding.conversation import CloseConnectionError, Conversation, Services
from clawhost_onboarding.settings import OnboardingSettings
from clawhost_onboarding.store import SessionStore
from clawhost_onboarding.telegram import BotApi

logger = logging.getLogger("clawhost.onboarding")
PATH = "/v1/onboarding"


def create_app(settings: OnboardingSettings) -> Starlette:
    credential = settings.internal_credential().encode()
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    services = Services(
        settings=settings,
        store=SessionStore(redis, settings.redis_key_prefix, settings.session_ttl_seconds),
        telegram=BotApi(settings.telegram_api_base_url, settings.telegram_timeout_seconds),
        model=chat_model(settings),
    )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await services.telegram.close()
            await redis.aclose()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(_: Request) -> Response:
        try:
            await redis.ping()
        except Exception as error:  # any failure to reach Redis means not ready
            return JSONResponse({"ready": False, "failing": ["redis"], "error": type(error).__name__}, 503)
        return JSONResponse({"ready": True, "failing": []})

    async def onboarding(websocket: WebSocket) -> None:
        presented = websocket.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(presented, credential):
            logger.warning("internal connection refused", extra={"reason": "bad credential"})
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await websocket.send_denial_response(JSONResponse({"detail": "unauthorized"}, 401))
            else:
                await websocket.close(code=1008)
            return
        await websocket.accept()

        async def send(frame: dict[str, Any]) -> None:
            # A browser that left mid-reply does not stop the turn: it completes and is saved for the resume.
            if websocket.application_state == WebSocketState.CONNECTED:
                with suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await websocket.send_text(orjson.dumps(frame).decode())

        conversation = Conversation(services, send)
        try:
            while True:
                raw = await websocket.receive_text()
                try:
                    await conversation.handle(raw)
                except CloseConnectionError as close:
                    await websocket.close(code=close.code)
                    return
                except Exception:
                    logger.exception("frame failed")
                    await send(
                        {
                            "type": "error",
                            "code": "internal",
                            "message": "Something went wrong on our side; your conversation is saved. Try again.",
                            "retryable": True,
                        }
                    )
        except WebSocketDisconnect:
            return

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), WebSocketRoute(PATH, onboarding)],
        lifespan=lifespan,
    )
