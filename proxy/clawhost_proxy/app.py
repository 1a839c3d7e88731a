"""The tenant port: OpenAI-compatible routes, authentication and per-second limits (probes and metrics: admin.py)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from clawhost_api.tiers import get_tier
from clawhost_proxy.chat import REQUEST_ID_HEADER, ChatHandler, Upstream
from clawhost_proxy.directory import CustomerAuth, TokenDirectory
from clawhost_proxy.errors import openai_error
from clawhost_proxy.ledger import LedgerFlusher
from clawhost_proxy.limits import RateLimiter, TokenLimiter
from clawhost_proxy.metrics import BLOCKED, UPSTREAM_ERRORS
from clawhost_proxy.settings import ProxySettings

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every framework-level 4xx (wrong method, unknown path, oversized body) in OpenAI's error format."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return openai_error(413, "request body too large", "invalid_request_error", "body_too_large")
    except web.HTTPException as error:
        if error.status >= 400:
            return openai_error(error.status, error.reason, "invalid_request_error")
        raise


def _offered(payload: bytes, allowed: tuple[str, ...]) -> bytes:
    """The upstream's model list cut to the models the customer's tier offers (the others would be refused)."""
    try:
        listing = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload
    if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
        return payload
    listing["data"] = [m for m in listing["data"] if isinstance(m, dict) and m.get("id") in allowed]
    return orjson.dumps(listing)


class Proxy:
    def __init__(
        self,
        settings: ProxySettings,
        directory: TokenDirectory,
        limiter: TokenLimiter,
        flusher: LedgerFlusher | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.limiter = limiter
        self.flusher = flusher
        self._flusher_task: asyncio.Task[None] | None = None
        self.rates = RateLimiter(settings.requests_per_second)
        self.upstream = Upstream(settings)
        self.chat = ChatHandler(settings, limiter, self.upstream)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[json_errors])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        self.upstream.open()
        if self.flusher is not None:
            self._flusher_task = asyncio.create_task(self.flusher.run(), name="ledger-flusher")

    async def _close(self, _: web.Application) -> None:
        if self._flusher_task is not None:
            self._flusher_task.cancel()
            await asyncio.gather(self._flusher_task, return_exceptions=True)
        await self.upstream.close()
        await self.limiter.close()

    def _authenticate(self, request: web.Request) -> CustomerAuth | web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            BLOCKED.labels("missing_token").inc()
            return openai_error(401, "missing bearer token", "invalid_request_error", "invalid_api_key")
        customer = self.directory.authenticate(header[7:].strip())
        if customer is None:
            BLOCKED.labels("unknown_token").inc()
            return openai_error(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        if not self.directory.serves(customer):
            BLOCKED.labels("suspended").inc()
            return openai_error(
                403, "this agent is suspended; see your dashboard", "clawhost_suspended", "agent_suspended"
            )
        return customer

    async def models(self, request: web.Request) -> web.Response:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        try:
            async with self.upstream.session.get(self.upstream.models_url, headers=self.upstream.headers) as upstream:
                status, payload = upstream.status, await upstream.read()
        except (aiohttp.ClientConnectionError, TimeoutError):
            UPSTREAM_ERRORS.labels("connect").inc()
            return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        return web.Response(
            status=status, body=_offered(payload, get_tier(auth.tier).models), content_type="application/json"
        )

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        ledger_id = secrets.token_hex(16)  # the ledger row's key: ours, whatever the client sends
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else ledger_id
        response = await self._chat(request, ledger_id, request_id, started)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _chat(self, request: web.Request, ledger_id: str, request_id: str, started: float) -> web.StreamResponse:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        if not self.rates.allow(auth.name):
            BLOCKED.labels("rate_limit").inc()
            return openai_error(429, "too many requests per second", "clawhost_rate_limit", "rate_limit_exceeded")
        return await self.chat.handle(request, auth, ledger_id, request_id, started)
