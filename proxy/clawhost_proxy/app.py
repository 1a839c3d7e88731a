"""The proxy's HTTP surface: OpenAI-compatible routes, authentication, limits, forwarding and metering."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.exceptions import RedisError

from clawhost_api.tiers import get_tier
from clawhost_proxy.directory import CustomerAuth, TokenDirectory
from clawhost_proxy.errors import openai_error
from clawhost_proxy.limits import Reservation, TokenLimiter
from clawhost_proxy.settings import ProxySettings

logger = logging.getLogger("clawhost.proxy")

TOKENS = Counter("clawhost_proxy_tokens_total", "Tokens metered", ["customer", "tier", "model", "kind"])
DURATION = Histogram("clawhost_proxy_request_duration_seconds", "Request duration", ["route", "stream"])
BLOCKED = Counter("clawhost_proxy_blocked_total", "Requests refused by the proxy", ["reason"])
UPSTREAM_ERRORS = Counter("clawhost_proxy_upstream_errors_total", "Upstream failures", ["kind"])
WARNING_HEADER = "X-Clawhost-Usage-Warning"
PER_MESSAGE_OVERHEAD = 16  # chat-template tokens per message, on top of the byte bound


@dataclass
class RateLimiter:
    """Per-customer token bucket (per proxy replica)."""

    rate: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, customer: str) -> bool:
        now = time.monotonic()
        tokens, last = self.buckets.get(customer, (self.rate, now))
        tokens = min(self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.buckets[customer] = (tokens, now)
            return False
        self.buckets[customer] = (tokens - 1, now)
        return True


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


def _usage_of(chunk: dict[str, Any]) -> dict[str, Any] | None:
    usage = chunk.get("usage")
    if not usage:
        choices = chunk.get("choices") or []
        usage = choices[0].get("usage") if choices and isinstance(choices[0], dict) else None
    return usage if isinstance(usage, dict) else None


class Proxy:
    def __init__(self, settings: ProxySettings, directory: TokenDirectory, limiter: TokenLimiter) -> None:
        self.settings = settings
        self.directory = directory
        self.limiter = limiter
        self.rates = RateLimiter(settings.requests_per_second)
        self.session: aiohttp.ClientSession | None = None
        self._api_key = settings.api_key()

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[json_errors])
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.settings.upstream_connect_timeout_seconds,
            sock_read=self.settings.upstream_timeout_seconds,
        )
        self.session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0))

    async def _close(self, _: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, _: web.Request) -> web.Response:
        ready = self.directory.synced.is_set()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

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

    def _upstream_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}

    async def models(self, request: web.Request) -> web.Response:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        assert self.session is not None
        try:
            async with self.session.get(
                f"{self.settings.upstream_base_url}/models", headers=self._upstream_headers()
            ) as upstream:
                return web.Response(status=upstream.status, body=await upstream.read(), content_type="application/json")
        except (aiohttp.ClientConnectionError, TimeoutError):
            UPSTREAM_ERRORS.labels("connect").inc()
            return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        if not self.rates.allow(auth.name):
            BLOCKED.labels("rate_limit").inc()
            return openai_error(429, "too many requests per second", "clawhost_rate_limit", "rate_limit_exceeded")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return openai_error(400, "request body is not valid JSON", "invalid_request_error", "invalid_json")
        problem = _validate(body)
        if problem:
            return openai_error(400, problem, "invalid_request_error", "invalid_body")
        limit = get_tier(auth.tier).monthly_tokens
        cap_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        requested = int(body.get(cap_key) or self.settings.default_max_tokens)
        prompt_bound = len(raw) + PER_MESSAGE_OVERHEAD * len(body["messages"])
        try:
            reservation = await self.limiter.reserve(auth, prompt_bound + requested, prompt_bound + 1, limit)
        except RedisError:
            # Fail closed: without the usage store no limit can be guaranteed, so nothing is forwarded.
            BLOCKED.labels("usage_store_down").inc()
            return openai_error(
                503,
                "usage metering is unavailable; retry shortly",
                "clawhost_usage_unavailable",
                headers={"Retry-After": "5"},
            )
        if reservation is None:
            BLOCKED.labels("monthly_limit").inc()
            return openai_error(
                429,
                f"monthly limit reached ({limit:,} tokens for the {get_tier(auth.tier).display_name} plan); "
                f"upgrade at {self.settings.upgrade_url}",
                "clawhost_monthly_limit",
                "monthly_limit_reached",
            )
        body[cap_key] = min(requested, reservation.granted - prompt_bound)
        stream = bool(body.get("stream"))
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        try:
            if stream:
                return await self._stream(request, auth, body, reservation, wants_usage)
            return await self._complete(auth, body, reservation)
        finally:
            DURATION.labels("chat", str(stream).lower()).observe(time.perf_counter() - started)

    def _warning(self, used: int, limit: int) -> dict[str, str]:
        if used >= 0.9 * limit:
            return {WARNING_HEADER: f"{min(100, used * 100 // limit)}% of this month's tokens used"}
        return {}

    def _meter(self, auth: CustomerAuth, model: str, prompt: int, completion: int) -> None:
        TOKENS.labels(auth.name, auth.tier, model, "prompt").inc(prompt)
        TOKENS.labels(auth.name, auth.tier, model, "completion").inc(completion)

    async def _complete(self, auth: CustomerAuth, body: dict[str, Any], reservation: Reservation) -> web.Response:
        assert self.session is not None
        try:
            async with self.session.post(
                f"{self.settings.upstream_base_url}/chat/completions", json=body, headers=self._upstream_headers()
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
        except TimeoutError:
            await self.limiter.settle(reservation, 0)
            UPSTREAM_ERRORS.labels("timeout").inc()
            return openai_error(504, "the model service timed out", "clawhost_upstream_timeout")
        except aiohttp.ClientError:
            await self.limiter.settle(reservation, 0)
            UPSTREAM_ERRORS.labels("connect").inc()
            return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        if status != 200:
            await self.limiter.settle(reservation, 0)
            UPSTREAM_ERRORS.labels(str(status)).inc()
            # Passed on as is: an upstream 429 keeps the upstream's own error type, unlike ours.
            return web.Response(status=status, body=payload, content_type="application/json")
        data = json.loads(payload)
        usage = _usage_of(data) or {}
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        used = await self.limiter.settle(reservation, prompt + completion)
        self._meter(auth, str(body.get("model")), prompt, completion)
        return web.Response(
            status=200, body=payload, content_type="application/json", headers=self._warning(used, reservation.limit)
        )

    async def _stream(
        self,
        request: web.Request,
        auth: CustomerAuth,
        body: dict[str, Any],
        reservation: Reservation,
        wants_usage: bool,
    ) -> web.StreamResponse:
        assert self.session is not None
        usage: dict[str, Any] | None = None
        streamed_chars = 0
        response: web.StreamResponse | None = None
        used_before = reservation.used_after - reservation.granted
        try:
            async with self.session.post(
                f"{self.settings.upstream_base_url}/chat/completions", json=body, headers=self._upstream_headers()
            ) as upstream:
                if upstream.status != 200:
                    payload = await upstream.read()
                    await self.limiter.settle(reservation, 0)
                    UPSTREAM_ERRORS.labels(str(upstream.status)).inc()
                    return web.Response(status=upstream.status, body=payload, content_type="application/json")
                response = web.StreamResponse(
                    status=200,
                    headers={
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                        **self._warning(used_before, reservation.limit),
                    },
                )
                await response.prepare(request)
                async for line in upstream.content:
                    text = line.decode().strip()
                    if text.startswith("data:") and text != "data: [DONE]":
                        try:
                            chunk = json.loads(text[5:])
                        except ValueError:
                            chunk = {}
                        found = _usage_of(chunk)
                        if found:
                            usage = found
                        for choice in chunk.get("choices") or []:
                            delta = (choice or {}).get("delta") or {}
                            streamed_chars += len(delta.get("content") or "") + len(
                                delta.get("reasoning_content") or ""
                            )
                        if found and not chunk.get("choices") and not wants_usage:
                            continue  # the usage-only chunk the client did not ask for
                    await response.write(line)
                await response.write_eof()
        except TimeoutError:
            UPSTREAM_ERRORS.labels("timeout").inc()
            if response is None:
                await self.limiter.settle(reservation, 0)
                return openai_error(504, "the model service timed out", "clawhost_upstream_timeout")
        except aiohttp.ClientConnectionError:
            UPSTREAM_ERRORS.labels("connect").inc()
            if response is None:
                await self.limiter.settle(reservation, 0)
                return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        except (ConnectionResetError, asyncio.CancelledError):
            # The client hung up: leaving the `async with` closed the upstream call; bill what was streamed.
            await asyncio.shield(self._bill_stream(auth, body, reservation, usage, streamed_chars))
            raise
        await self._bill_stream(auth, body, reservation, usage, streamed_chars)
        assert response is not None
        return response

    async def _bill_stream(
        self,
        auth: CustomerAuth,
        body: dict[str, Any],
        reservation: Reservation,
        usage: dict[str, Any] | None,
        streamed_chars: int,
    ) -> None:
        if usage:
            prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        else:
            # No usage arrived: estimate (prompt at ~4 bytes a token, completion from streamed text).
            prompt = len(json.dumps(body["messages"])) // 4
            completion = max(1, streamed_chars // 4) if streamed_chars else 0
        await self.limiter.settle(reservation, prompt + completion)
        self._meter(auth, str(body.get("model")), prompt, completion)


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' is required and must be a string"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "'messages' must be a non-empty array of message objects"
    for key in ("max_tokens", "max_completion_tokens"):
        if key in body and body[key] is not None and (not isinstance(body[key], int) or body[key] < 1):
            return f"'{key}' must be a positive integer"
    return None
