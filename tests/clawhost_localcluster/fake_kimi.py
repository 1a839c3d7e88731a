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
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
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


def first_content(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content")) if isinstance(messages[0], dict) else ""


class FakeKimi:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reported: list[tuple[str, dict[str, Any]]] = []  # (first message content, usage reported)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.closed_streams = 0
        self._gates: dict[int, asyncio.Event] = {}  # hold=K waits for release(K); only touched on the server's loop

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

    async def _models(self, _: web.Request) -> web.Response:
        models = ("kimi-k2.5", "kimi-k2-thinking", "moonshot-v1-8k")
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"} for model in models]})

    def start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            # "hang" requests never finish by themselves; a handler waiting on a call its caller closed is cancelled.
            self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
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
