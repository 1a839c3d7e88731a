"""`POST /v1/chat/completions` for an authenticated customer: reserve → forward → settle.

1. Reserve an upper bound of what the request can cost (`limits.py`), overlapped with the upstream
   call when plenty is left.
2. Forward it with the platform's key: a complete answer, or a stream relayed as it comes.
3. Settle exactly once, whatever happened (finished, upstream error, client hang-up): the counter is
   corrected to what was used and the ledger row appended, before the client sees the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from redis.exceptions import RedisError

from clawhost_api.tiers import Tier, get_tier
from clawhost_api.usage import charged_tokens
from clawhost_proxy.body import BodyProblem, ChatRequest, parse_chat_request
from clawhost_proxy.directory import CustomerAuth
from clawhost_proxy.errors import openai_error
from clawhost_proxy.ledger import LedgerEntry
from clawhost_proxy.limits import Reservation, TokenLimiter
from clawhost_proxy.metrics import (
    BLOCKED,
    CHAT_DURATION,
    OVERLAP_REFUSED,
    OVERLAPPED,
    RESERVE_FIRST,
    UPSTREAM_ERRORS,
    TokenMeters,
)
from clawhost_proxy.settings import ProxySettings
from clawhost_proxy.sse import SseRelay, StreamMeter
from clawhost_proxy.usage import NOTHING, TokenUsage, reported, usage_of

logger = logging.getLogger("clawhost.proxy")

WARNING_HEADER = "X-Clawhost-Usage-Warning"
REQUEST_ID_HEADER = "X-Request-Id"
PER_MESSAGE_OVERHEAD = 16  # chat-template tokens per message, on top of the byte bound


@dataclass(slots=True)
class Call:
    """One chat request in flight, from its reservation to its settlement."""

    auth: CustomerAuth
    tier: Tier
    model: str
    ledger_id: str
    request_id: str
    started: float
    wall_started: float
    reservation: Reservation
    responding: bool = False  # response headers sent: errors can no longer change the status
    settled: bool = False  # the counter corrected and the ledger row appended (exactly once)


class Upstream:
    """The upstream model service: one aiohttp session for all customers, the platform's key."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.headers = {"Authorization": f"Bearer {settings.api_key()}", "Content-Type": "application/json"}
        self.chat_url = f"{settings.upstream_base_url}/chat/completions"
        self.models_url = f"{settings.upstream_base_url}/models"
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Upstream.open() first"
        return self._session

    def open(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.settings.upstream_connect_timeout_seconds,
            sock_read=self.settings.upstream_timeout_seconds,
        )
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),  # one session for all customers: never keep upstream cookies
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def chat(self, data: bytes, stream: bool) -> Any:
        """The upstream call: (status, body) when not streaming, else the response with its headers read."""
        upstream = await self.session.post(self.chat_url, data=data, headers=self.headers)
        if stream:
            return upstream
        async with upstream:
            return upstream.status, await upstream.read()


def usage_store_down() -> web.Response:
    """Fail closed: without the usage store no limit can be guaranteed, so nothing is (or goes on being) served."""
    BLOCKED.labels("usage_store_down").inc()
    return openai_error(
        503, "usage metering is unavailable; retry shortly", "clawhost_usage_unavailable", headers={"Retry-After": "5"}
    )


class ChatHandler:
    def __init__(self, settings: ProxySettings, limiter: TokenLimiter, upstream: Upstream) -> None:
        self.settings = settings
        self.limiter = limiter
        self.upstream = upstream
        self._meters = TokenMeters()

    async def handle(
        self, request: web.Request, auth: CustomerAuth, ledger_id: str, request_id: str, started: float
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return openai_error(400, "request body is not valid JSON", "invalid_request_error", "invalid_json")
        tier = get_tier(auth.tier)
        parsed = parse_chat_request(body, tier, self.settings.default_max_tokens)
        if isinstance(parsed, BodyProblem):
            BLOCKED.labels("bad_request").inc()
            return openai_error(400, parsed.message, "invalid_request_error", parsed.code)
        reserved = await self._reserve(auth, tier, parsed, len(raw))
        if isinstance(reserved, web.Response):
            return reserved
        reservation, upstream = reserved
        call = Call(auth, tier, parsed.model, ledger_id, request_id, started, time.time(), reservation)
        try:
            if parsed.stream:
                return await self._forward_stream(request, call, parsed, upstream)
            return await self._forward(call, parsed, upstream)
        except RedisError:
            if call.responding:
                raise  # a stream already under way is cut short: the client never sees it finish
            return usage_store_down()
        finally:
            self.limiter.release(reservation)
            CHAT_DURATION[parsed.stream].observe(time.perf_counter() - started)

    # -- reserve ---------------------------------------------------------------------------------

    async def _reserve(
        self, auth: CustomerAuth, tier: Tier, chat: ChatRequest, size: int
    ) -> tuple[Reservation, Awaitable[Any]] | web.Response:
        """The reservation and the upstream call it allows (already started when overlapped), or the refusal."""
        limit = tier.monthly_tokens
        body, cap_key, requested = chat.body, self.settings.upstream_cap_key, chat.requested
        prompt_bound = size + PER_MESSAGE_OVERHEAD * len(body["messages"])
        wanted = prompt_bound + requested
        speculation = self.limiter.speculate(auth, wanted, limit)
        if speculation is not None:
            # Plenty left: reserve (all or nothing) while the upstream call starts; nothing reaches the
            # client before the grant is in, and a refusal cancels the call (see limits.py).
            body[cap_key] = requested
            task = asyncio.create_task(self.upstream.chat(orjson.dumps(body), chat.stream))
            try:
                reservation = await speculation
            except RedisError:
                _abandon(task)
                return usage_store_down()
            except BaseException:
                _abandon(task)
                raise
            if reservation is not None:
                OVERLAPPED.inc()
                return reservation, task
            _abandon(task)
            OVERLAP_REFUSED.inc()
        try:
            reservation = await self.limiter.reserve(auth, wanted, prompt_bound + 1, limit)
        except RedisError:
            return usage_store_down()
        if reservation is None:
            BLOCKED.labels("monthly_limit").inc()
            return openai_error(
                429,
                f"monthly limit reached ({limit:,} tokens for the {tier.display_name} plan); "
                f"upgrade at {self.settings.upgrade_url}",
                "clawhost_monthly_limit",
                "monthly_limit_reached",
            )
        RESERVE_FIRST.inc()
        body[cap_key] = min(requested, reservation.granted - prompt_bound)
        return reservation, self.upstream.chat(orjson.dumps(body), chat.stream)

    # -- forward ---------------------------------------------------------------------------------

    async def _forward(self, call: Call, chat: ChatRequest, upstream: Awaitable[tuple[int, bytes]]) -> web.Response:
        try:
            status, payload = await upstream
        except TimeoutError:
            await self._settle(call, 504)
            UPSTREAM_ERRORS.labels("timeout").inc()
            return openai_error(504, "the model service timed out", "clawhost_upstream_timeout")
        except aiohttp.ClientError:
            await self._settle(call, 503)
            UPSTREAM_ERRORS.labels("connect").inc()
            return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        if status != 200:
            await self._settle(call, status)
            UPSTREAM_ERRORS.labels(str(status)).inc()
            # Passed on as is: an upstream 429 keeps the upstream's own error type, unlike ours.
            return web.Response(status=status, body=payload, content_type="application/json")
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        found = usage_of(data) if isinstance(data, dict) else None
        if found:
            usage = reported(found)
        else:
            usage = TokenUsage(_estimate_prompt(chat.body), max(1, len(payload) // 4), estimated=True)
        # Settled (and ledgered) before the client gets a byte: a finished response always has its row.
        used = await self._settle(call, 200, usage)
        return web.Response(
            status=200, body=payload, content_type="application/json", headers=_warning(used, call.reservation.limit)
        )

    async def _forward_stream(
        self,
        request: web.Request,
        call: Call,
        chat: ChatRequest,
        opening: Awaitable[aiohttp.ClientResponse],
    ) -> web.StreamResponse:
        meter = StreamMeter()
        response: web.StreamResponse | None = None
        reservation = call.reservation
        used_before = reservation.used_after - reservation.granted
        try:
            async with await opening as upstream:
                if upstream.status != 200:
                    payload = await upstream.read()
                    await self._settle(call, upstream.status)
                    UPSTREAM_ERRORS.labels(str(upstream.status)).inc()
                    return web.Response(status=upstream.status, body=payload, content_type="application/json")
                response = web.StreamResponse(
                    status=200,
                    headers={
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                        REQUEST_ID_HEADER: call.request_id,
                        **_warning(used_before, reservation.limit),
                    },
                )
                call.responding = True
                await response.prepare(request)
                relay = SseRelay(meter, chat.wants_usage)
                # Whatever has arrived is passed on at once, in one write (not one per SSE line).
                async for data in upstream.content.iter_any():
                    out = relay.feed(data)
                    if out:
                        await response.write(out)
                    if relay.done:
                        break
                out = relay.finish()
                if out:
                    await response.write(out)
                # Bill (and ledger) before the client sees the end of its stream.
                await self._settle_stream(call, chat, meter, 200)
                await response.write_eof(b"data: [DONE]\n\n" if relay.done else b"")
        except TimeoutError:
            UPSTREAM_ERRORS.labels("timeout").inc()
            await self._settle_stream(call, chat, meter, 504)
            if response is None:
                return openai_error(504, "the model service timed out", "clawhost_upstream_timeout")
        except aiohttp.ClientPayloadError:
            UPSTREAM_ERRORS.labels("payload").inc()
            await self._settle_stream(call, chat, meter, 502)
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, ConnectionResetError) and response is not None:
                # Our client hung up (aiohttp's reset error is both): bill what was streamed.
                await asyncio.shield(self._settle_stream(call, chat, meter, 499))
                raise
            UPSTREAM_ERRORS.labels("connect").inc()
            await self._settle_stream(call, chat, meter, 503)
            if response is None:
                return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        except (ConnectionResetError, asyncio.CancelledError):
            # The client hung up: leaving the `async with` closed the upstream call; bill what was streamed.
            await asyncio.shield(self._settle_stream(call, chat, meter, 499))
            raise
        assert response is not None
        return response

    # -- settle ----------------------------------------------------------------------------------

    async def _settle_stream(self, call: Call, chat: ChatRequest, meter: StreamMeter, status: int) -> None:
        if meter.usage:
            await self._settle(call, status, reported(meter.usage))
        elif meter.chunks:
            # No usage arrived: estimate (prompt at ~4 bytes a token, completion from what was streamed).
            completion = max(meter.chunks, meter.chars // 4)
            await self._settle(call, status, TokenUsage(_estimate_prompt(chat.body), completion, estimated=True))
        else:
            await self._settle(call, status)

    async def _settle(self, call: Call, status: int, usage: TokenUsage = NOTHING) -> int:
        """Charge the usage and append the ledger row (one Redis call), once per call; meter the tokens.

        Returns the usage after settling (the reservation's view when the call was already settled).
        """
        if call.settled:
            return call.reservation.used_after
        call.settled = True
        charged = charged_tokens(usage.prompt, usage.completion, usage.cached_prompt, call.tier.cached_prompt_weight)
        entry = LedgerEntry(
            call.ledger_id,
            call.request_id,
            call.auth.name,
            call.auth.tier,
            call.model,
            usage.prompt,
            usage.completion,
            int((time.perf_counter() - call.started) * 1000),
            status,
            usage.estimated,
            int(call.wall_started * 1000),
            usage.cached_prompt,
            charged,
        )
        used = await self.limiter.settle(call.reservation, charged, entry)
        if charged:
            self._meters.count(call.auth.name, call.auth.tier, call.model, usage)
        if self.settings.log_requests:
            # Ids, counts and timings only: never prompts, completions or tokens. Written once this
            # step of the event loop is over, so after the response's bytes are on their way.
            asyncio.get_running_loop().call_soon(
                partial(
                    logger.info,
                    "request",
                    extra={
                        "request_id": call.request_id,
                        "customer": call.auth.name,
                        "model": call.model,
                        "status": status,
                        "prompt_tokens": usage.prompt,
                        "completion_tokens": usage.completion,
                        "cached_prompt_tokens": usage.cached_prompt,
                        "charged_tokens": charged,
                        "estimated": usage.estimated,
                        "latency_ms": entry.latency_ms,
                    },
                )
            )
        return used


def _warning(used: int, limit: int) -> dict[str, str]:
    if used >= 0.9 * limit:
        return {WARNING_HEADER: f"{min(100, used * 100 // limit)}% of this month's tokens used"}
    return {}


def _abandon(task: asyncio.Task[Any]) -> None:
    """Stop an upstream call whose answer will not be used: cancel it, or close what it already opened."""
    task.cancel()
    task.add_done_callback(_discard)


def _discard(task: asyncio.Task[Any]) -> None:
    if task.cancelled() or task.exception() is not None:  # exception() marks it retrieved: no "never retrieved" log
        return
    result = task.result()
    if isinstance(result, aiohttp.ClientResponse):
        result.close()


def _estimate_prompt(body: dict[str, Any]) -> int:
    return len(orjson.dumps(body["messages"])) // 4
