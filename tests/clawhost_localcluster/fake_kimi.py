"""A local OpenAI-compatible upstream speaking like Moonshot's Kimi API (usage in choices[0] and top-level).

It answers "Hello from fake Kimi", one token per word, and honours the request like a real upstream
can: `max_tokens` over `max_completion_tokens` when both are sent, and `n` choices (each billed).
A test asks for other behaviour in the first message's content, `fake:` then words:

- `long`: 200 words, streamed slowly; `words=N`: N words, fast; `fail-429`: Moonshot's 429; `hang`: never answers;
- `overshoot=N`: N words more than the cap it was sent (an upstream that ignores the cap);
- `stall-after=N`: stream N words, then send nothing more until the client goes away;
- `hold=K`: answer only once the test calls `release(K)` (calls pile up without costing it anything);
- `cached=N` / `cached-openai=N`: report N of the prompt tokens as cached, in Moonshot's place
  (`usage.cached_tokens`) or OpenAI's (`usage.prompt_tokens_details.cached_tokens`).

Every usage it reports is kept in `reported` (with the first message's content, to find a test's own).

Scripted conversations (the onboarding agent's tests): `script(trigger, Step(...), Step(...))` answers a request whose
last user message contains `trigger` with the k-th step, k being the number of assistant messages after that user
message in the request (0: the first call of the turn, 1: the call after the first tool results, ...). A step says
text and/or tool calls; streamed, tool calls arrive as `tool_calls` deltas (the id and name first, the arguments in
pieces) and end with `finish_reason: "tool_calls"`, with usage as with any answer. The answer depends only on the
request, so a retried or resumed turn gets the same answer. `hold=K` in a step waits for `release(K)` first;
`outage = 503` (or any status) answers every chat call with that error until set back to None.

A `responder` (a function of the request body returning a Step, or None to pass) answers the requests no script
matched, before the canned answer: `make up` gives it `onboarding_stand_in.answer`, a deterministic model for the
onboarding agent.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UPSTREAM_KEY = "sk-upstream-test-key"
WORDS = ["Hello", " from", " fake", " Kimi"]


def _directives(body: dict[str, Any]) -> dict[str, int]:
    """`fake:long overshoot=5` in the first message → {"long": 1, "overshoot": 5}."""
    messages = body.get("messages") or [{}]
    content = messages[0].get("content") if isinstance(messages[0], dict) else None
    if not isinstance(content, str) or not content.startswith("fake:"):
        return {}
    found: dict[str, int] = {}
    for word in content.removeprefix("fake:").split():
        name, _, value = word.partition("=")
        found[name] = int(value) if value else 1
    return found


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One scripted model answer: text, tool calls, or both (text first, as models do)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    hold: int | None = None


@dataclass
class _Script:
    trigger: str
    steps: tuple[Step, ...]
    calls: int = field(default=0)


def _step_for(scripts: list[_Script], messages: Any) -> Step | None:
    if not scripts or not isinstance(messages, list):
        return None
    messages = [m for m in messages if isinstance(m, dict)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return None
    content = messages[last_user].get("content")
    text = content if isinstance(content, str) else json.dumps(content)
    position = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "assistant")
    for script in reversed(scripts):  # the newest script wins
        if script.trigger in text and position < len(script.steps):
            script.calls += 1
            return script.steps[position]
    return None


def first_content(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content")) if isinstance(messages[0], dict) else ""


Responder = Callable[[dict[str, Any]], Step | None]


class FakeKimi:
    def __init__(self, responder: Responder | None = None) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.reported: list[tuple[str, dict[str, Any]]] = []  # (first message content, usage reported)
        self.port = 0
        self.host = "127.0.0.1"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.closed_streams = 0
        self._gates: dict[int, asyncio.Event] = {}  # hold=K waits for release(K); only touched on the server's loop
        self.scripts: list[_Script] = []
        self.outage: int | None = None  # every chat call answers this HTTP status while set

    def script(self, trigger: str, *steps: Step) -> None:
        """Answer requests whose last user message contains `trigger` with `steps` (see the module's docstring)."""
        self.scripts.append(_Script(trigger, steps))

    def _gate(self, key: int) -> asyncio.Event:
        return self._gates.setdefault(key, asyncio.Event())

    def release(self, key: int) -> None:
        """Let the calls held with `hold=key` (and any later ones) be answered."""
        self._loop.call_soon_threadsafe(lambda: self._gate(key).set())

    def usage_reported(self, content: str) -> list[dict[str, Any]]:
        """The usage objects reported for requests whose first message was `content`."""
        return [usage for first, usage in list(self.reported) if first == content]

    def _usage(self, body: dict[str, Any], completion: int, how: dict[str, int]) -> dict[str, Any]:
        prompt = len(json.dumps(body.get("messages"))) // 4 + 1
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if "cached" in how:
            usage["cached_tokens"] = min(prompt, how["cached"])
        if "cached-openai" in how:
            usage["prompt_tokens_details"] = {"cached_tokens": min(prompt, how["cached-openai"])}
        self.reported.append((first_content(body), usage))
        return usage

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}":
            return web.json_response(
                {"error": {"message": "bad key", "type": "invalid_authentication_error"}}, status=401
            )
        body = await request.json()
        self.requests.append(body)
        if self.outage is not None:
            return web.json_response(
                {"error": {"message": "the engine is overloaded", "type": "engine_overloaded_error"}},
                status=self.outage,
            )
        step = _step_for(self.scripts, body.get("messages") or [])
        if step is None and self.responder is not None:
            step = self.responder(body)
        if step is not None:
            return await self._scripted(request, body, step)
        how = _directives(body)
        model = body.get("model")
        if "hold" in how:
            await self._gate(how["hold"]).wait()
        if "fail-429" in how:
            return web.json_response(
                {"error": {"message": "rate limit reached", "type": "rate_limit_reached_error"}}, status=429
            )
        if "hang" in how:
            await asyncio.sleep(3600)
        cap = int(body.get("max_tokens") or body.get("max_completion_tokens") or 8192)
        if "overshoot" in how:
            words = [f" w{i}" for i in range(cap + how["overshoot"])]
        else:
            length = 200 if "long" in how else how.get("words", 0)
            words = ([f" w{i}" for i in range(length)] if length else WORDS)[: max(1, cap)]
        choices = int(body.get("n") or 1)
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": index,
                            "message": {"role": "assistant", "content": "".join(words)},
                            "finish_reason": "stop",
                        }
                        for index in range(choices)
                    ],
                    "usage": self._usage(body, len(words) * choices, how),
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            # One word a chunk; `words=N` answers a hundred a chunk (cheap enough for 200 such streams at once).
            size = 100 if "words" in how else 1
            pieces = ["".join(words[start : start + size]) for start in range(0, len(words), size)]
            for position, word in enumerate(pieces):
                if "stall-after" in how and position == how["stall-after"]:
                    await asyncio.sleep(3600)  # cancelled when the caller closes the call
                chunk: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {"index": index, "delta": {"content": word}, "finish_reason": None} for index in range(choices)
                    ],
                }
                if position == len(pieces) - 1:
                    usage = self._usage(body, len(words) * choices, how)
                    chunk["choices"][0]["finish_reason"] = "stop"
                    chunk["choices"][0]["usage"] = usage  # Moonshot's place
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if "long" in how or "stall-after" in how:
                    await asyncio.sleep(0.02)
            if (body.get("stream_options") or {}).get("include_usage"):
                final = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                await response.write(f"data: {json.dumps(final)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.closed_streams += 1
            raise
        return response

    async def _scripted(self, request: web.Request, body: dict[str, Any], step: Step) -> web.StreamResponse:
        if step.hold is not None:
            await self._gate(step.hold).wait()
        model = body.get("model")
        calls: list[dict[str, Any]] = [
            {
                "id": f"call_{index}_{abs(hash((call.name, json.dumps(call.arguments)))) % 10**8}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for index, call in enumerate(step.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        words = step.text.split(" ")
        completion = len(words) + sum(len(c["function"]["arguments"]) // 4 + 1 for c in calls)
        usage = self._usage(body, completion, {})
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
            if calls:
                message["tool_calls"] = calls
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": word if i == 0 else f" {word}"} for i, word in enumerate(words) if step.text]
        for index, call in enumerate(calls):
            head = {"index": index, "id": call["id"], "type": "function"}
            deltas.append({"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]})
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 7):
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": arguments[start : start + 7]}}]}
                )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            if finish_reason is not None:
                choice["usage"] = usage  # Moonshot's place
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        for delta in deltas:
            await response.write(chunk(delta))
        await response.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            final: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(f"data: {json.dumps(final)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _models(self, _: web.Request) -> web.Response:
        models = ("kimi-k2.5", "kimi-k2-thinking", "moonshot-v1-8k")
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"} for model in models]})

    def start(self, host: str = "127.0.0.1") -> None:
        """Serve on `host` (loopback by default; the node's address for a token proxy running in a pod)."""
        ready = threading.Event()
        self.host = host

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            # "hang" requests never finish by themselves; a handler waiting on a call its caller closed is cancelled.
            self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
            await self._runner.setup()
            site = web.TCPSite(self._runner, host, 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop)
        ready.wait(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
