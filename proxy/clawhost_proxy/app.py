"""The proxy's HTTP surface: OpenAI-compatible routes, authentication, limits, forwarding and metering."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from redis.exceptions import RedisError

from clawhost_api.tiers import get_tier
from clawhost_proxy.directory import CustomerAuth, TokenDirectory
from clawhost_proxy.errors import openai_error
from clawhost_proxy.ledger import LedgerEntry, LedgerFlusher
from clawhost_proxy.limits import Reservation, TokenLimiter
from clawhost_proxy.settings import ProxySettings

logger = logging.getLogger("clawhost.proxy")

TOKENS = Counter("clawhost_proxy_tokens_total", "Tokens metered", ["customer", "tier", "model", "kind"])
DURATION = Histogram("clawhost_proxy_request_duration_seconds", "Request duration", ["route", "stream"])
BLOCKED = Counter("clawhost_proxy_blocked_total", "Requests refused by the proxy", ["reason"])
UPSTREAM_ERRORS = Counter("clawhost_proxy_upstream_errors_total", "Upstream failures", ["kind"])
RESERVATIONS = Counter(
    "clawhost_proxy_reservations_total",
    "Reservations by path: reserve_first, overlapped (with the upstream call), overlap_refused",
    ["path"],
)
# Label children resolved once: a labels() lookup per request is measurable on the hot path.
_RESERVE_FIRST = RESERVATIONS.labels("reserve_first")
_OVERLAPPED = RESERVATIONS.labels("overlapped")
_OVERLAP_REFUSED = RESERVATIONS.labels("overlap_refused")
_CHAT_DURATION = {True: DURATION.labels("chat", "true"), False: DURATION.labels("chat", "false")}
WARNING_HEADER = "X-Clawhost-Usage-Warning"
PER_MESSAGE_OVERHEAD = 16  # chat-template tokens per message, on top of the byte bound
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _usage_store_down() -> web.Response:
    """Fail closed: without the usage store no limit can be guaranteed, so nothing is (or goes on being) served."""
    BLOCKED.labels("usage_store_down").inc()
    return openai_error(
        503, "usage metering is unavailable; retry shortly", "clawhost_usage_unavailable", headers={"Retry-After": "5"}
    )


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
        self.session: aiohttp.ClientSession | None = None
        self._upstream_headers = {"Authorization": f"Bearer {settings.api_key()}", "Content-Type": "application/json"}
        self._chat_url = f"{settings.upstream_base_url}/chat/completions"
        # (prompt, completion) children of TOKENS per (customer, tier, model): no labels() lookup per request.
        self._token_meters: dict[tuple[str, str, str], tuple[Counter, Counter]] = {}

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
        self.session = aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),  # one session for all customers: never keep upstream cookies
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )
        if self.flusher is not None:
            self._flusher_task = asyncio.create_task(self.flusher.run(), name="ledger-flusher")

    async def _close(self, _: web.Application) -> None:
        if self._flusher_task is not None:
            self._flusher_task.cancel()
            await asyncio.gather(self._flusher_task, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        await self.limiter.close()

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

    async def models(self, request: web.Request) -> web.Response:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        assert self.session is not None
        try:
            async with self.session.get(
                f"{self.settings.upstream_base_url}/models", headers=self._upstream_headers
            ) as upstream:
                return web.Response(status=upstream.status, body=await upstream.read(), content_type="application/json")
        except (aiohttp.ClientConnectionError, TimeoutError):
            UPSTREAM_ERRORS.labels("connect").inc()
            return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else secrets.token_hex(16)
        response = await self._chat(request, request_id, started)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _chat(self, request: web.Request, request_id: str, started: float) -> web.StreamResponse:
        auth = self._authenticate(request)
        if isinstance(auth, web.Response):
            return auth
        if not self.rates.allow(auth.name):
            BLOCKED.labels("rate_limit").inc()
            return openai_error(429, "too many requests per second", "clawhost_rate_limit", "rate_limit_exceeded")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return openai_error(400, "request body is not valid JSON", "invalid_request_error", "invalid_json")
        problem = _validate(body)
        if problem:
            return openai_error(400, problem, "invalid_request_error", "invalid_body")
        limit = get_tier(auth.tier).monthly_tokens
        cap_key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        requested = int(body.get(cap_key) or self.settings.default_max_tokens)
        prompt_bound = len(raw) + PER_MESSAGE_OVERHEAD * len(body["messages"])
        wanted = prompt_bound + requested
        stream = bool(body.get("stream"))
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if stream:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        reservation: Reservation | None = None
        upstream: Awaitable[Any] | None = None
        speculation = self.limiter.speculate(auth, wanted, limit)
        if speculation is not None:
            # Plenty left: reserve (all or nothing) while the upstream call starts; nothing reaches the
            # client before the grant is in, and a refusal cancels the call (see limits.py).
            body[cap_key] = requested
            task = asyncio.create_task(self._call_upstream(orjson.dumps(body), stream))
            try:
                reservation = await speculation
            except RedisError:
                _abandon(task)
                return _usage_store_down()
            except BaseException:
                _abandon(task)
                raise
            if reservation is None:
                _abandon(task)
                _OVERLAP_REFUSED.inc()
            else:
                _OVERLAPPED.inc()
                upstream = task
        if reservation is None:
            try:
                reservation = await self.limiter.reserve(auth, wanted, prompt_bound + 1, limit)
            except RedisError:
                return _usage_store_down()
            if reservation is None:
                BLOCKED.labels("monthly_limit").inc()
                return openai_error(
                    429,
                    f"monthly limit reached ({limit:,} tokens for the {get_tier(auth.tier).display_name} plan); "
                    f"upgrade at {self.settings.upgrade_url}",
                    "clawhost_monthly_limit",
                    "monthly_limit_reached",
                )
            _RESERVE_FIRST.inc()
            body[cap_key] = min(requested, reservation.granted - prompt_bound)
            upstream = self._call_upstream(orjson.dumps(body), stream)
        assert upstream is not None
        call = _Call(
            auth, str(body["model"]), f"{auth.name}/{request_id}", request_id, started, time.time(), reservation
        )
        try:
            if stream:
                return await self._stream(request, call, body, wants_usage, upstream)
            return await self._complete(call, body, upstream)
        except RedisError:
            if call.responding:
                raise  # a stream already under way is cut short: the client never sees it finish
            return _usage_store_down()
        finally:
            self.limiter.release(reservation)
            _CHAT_DURATION[stream].observe(time.perf_counter() - started)

    async def _call_upstream(self, data: bytes, stream: bool) -> Any:
        """The upstream call: (status, body) when not streaming, else the response with its headers read."""
        assert self.session is not None
        upstream = await self.session.post(self._chat_url, data=data, headers=self._upstream_headers)
        if stream:
            return upstream
        async with upstream:
            return upstream.status, await upstream.read()

    def _warning(self, used: int, limit: int) -> dict[str, str]:
        if used >= 0.9 * limit:
            return {WARNING_HEADER: f"{min(100, used * 100 // limit)}% of this month's tokens used"}
        return {}

    async def _settle(
        self, call: _Call, status: int, prompt: int = 0, completion: int = 0, estimated: bool = False
    ) -> int:
        """Correct the usage counter and append the ledger row (one Redis call); meter the tokens."""
        entry = LedgerEntry(
            call.ledger_id,
            call.auth.name,
            call.auth.tier,
            call.model,
            prompt,
            completion,
            int((time.perf_counter() - call.started) * 1000),
            status,
            estimated,
            int(call.wall_started * 1000),
        )
        used = await self.limiter.settle(call.reservation, prompt + completion, entry)
        if prompt or completion:
            labels = (call.auth.name, call.auth.tier, call.model)
            meters = self._token_meters.get(labels)
            if meters is None:
                meters = self._token_meters[labels] = (
                    TOKENS.labels(*labels, "prompt"),
                    TOKENS.labels(*labels, "completion"),
                )
            meters[0].inc(prompt)
            meters[1].inc(completion)
        if self.settings.log_requests:
            # Ids, counts and timings only: never prompts, completions or tokens. Written once this
            # step of the event loop is over, so after the response's bytes are on their way.
            asyncio.get_running_loop().call_soon(
                logger.info,
                "request_id=%s customer=%s model=%s status=%d prompt_tokens=%d completion_tokens=%d latency_ms=%d",
                call.request_id,
                call.auth.name,
                call.model,
                status,
                prompt,
                completion,
                entry.latency_ms,
            )
        return used

    async def _complete(
        self, call: _Call, body: dict[str, Any], upstream: Awaitable[tuple[int, bytes]]
    ) -> web.Response:
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
        usage = (_usage_of(data) if isinstance(data, dict) else None) or {}
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        estimated = not usage
        if estimated:
            prompt, completion = _estimate_prompt(body), max(1, len(payload) // 4)
        # Settled (and ledgered) before the client gets a byte: a finished response always has its row.
        used = await self._settle(call, 200, prompt, completion, estimated)
        return web.Response(
            status=200,
            body=payload,
            content_type="application/json",
            headers=self._warning(used, call.reservation.limit),
        )

    async def _stream(
        self,
        request: web.Request,
        call: _Call,
        body: dict[str, Any],
        wants_usage: bool,
        opening: Awaitable[aiohttp.ClientResponse],
    ) -> web.StreamResponse:
        meter = _StreamMeter()
        response: web.StreamResponse | None = None
        settled = False
        reservation = call.reservation
        used_before = reservation.used_after - reservation.granted
        try:
            async with await opening as upstream:
                if upstream.status != 200:
                    payload = await upstream.read()
                    settled = True
                    await self._settle(call, upstream.status)
                    UPSTREAM_ERRORS.labels(str(upstream.status)).inc()
                    return web.Response(status=upstream.status, body=payload, content_type="application/json")
                response = web.StreamResponse(
                    status=200,
                    headers={
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                        REQUEST_ID_HEADER: call.request_id,
                        **self._warning(used_before, reservation.limit),
                    },
                )
                call.responding = True
                await response.prepare(request)
                relay = _SseRelay(meter, wants_usage)
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
                settled = True
                await self._bill_stream(call, body, meter, 200)
                await response.write_eof(b"data: [DONE]\n\n" if relay.done else b"")
        except TimeoutError:
            UPSTREAM_ERRORS.labels("timeout").inc()
            if not settled:
                settled = True
                await self._bill_stream(call, body, meter, 504)
            if response is None:
                return openai_error(504, "the model service timed out", "clawhost_upstream_timeout")
        except aiohttp.ClientPayloadError:
            UPSTREAM_ERRORS.labels("payload").inc()
            if not settled:
                settled = True
                await self._bill_stream(call, body, meter, 502)
        except aiohttp.ClientConnectionError as error:
            if isinstance(error, ConnectionResetError) and response is not None:
                # Our client hung up (aiohttp's reset error is both): bill what was streamed.
                if not settled:
                    settled = True
                    await asyncio.shield(self._bill_stream(call, body, meter, 499))
                raise
            UPSTREAM_ERRORS.labels("connect").inc()
            if not settled:
                settled = True
                await self._bill_stream(call, body, meter, 503)
            if response is None:
                return openai_error(503, "the model service is unavailable", "clawhost_upstream_unavailable")
        except (ConnectionResetError, asyncio.CancelledError):
            # The client hung up: leaving the `async with` closed the upstream call; bill what was streamed.
            if not settled:
                settled = True
                await asyncio.shield(self._bill_stream(call, body, meter, 499))
            raise
        assert response is not None
        return response

    async def _bill_stream(self, call: _Call, body: dict[str, Any], meter: _StreamMeter, status: int) -> None:
        usage = meter.usage
        if usage:
            prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            await self._settle(call, status, prompt, completion)
        elif meter.chunks:
            # No usage arrived: estimate (prompt at ~4 bytes a token, completion from what was streamed).
            completion = max(meter.chunks, meter.chars // 4)
            await self._settle(call, status, _estimate_prompt(body), completion, estimated=True)
        else:
            await self._settle(call, status)


@dataclass(slots=True)
class _Call:
    auth: CustomerAuth
    model: str
    ledger_id: str
    request_id: str
    started: float
    wall_started: float
    reservation: Reservation
    responding: bool = False  # response headers sent: errors can no longer change the status


class _StreamMeter:
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
        found = _usage_of(chunk)
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


class _SseRelay:
    """An upstream SSE byte stream, line by line: metered, the unasked-for usage chunk left out, up to `[DONE]`."""

    __slots__ = ("done", "meter", "partial", "wants_usage")

    def __init__(self, meter: _StreamMeter, wants_usage: bool) -> None:
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
