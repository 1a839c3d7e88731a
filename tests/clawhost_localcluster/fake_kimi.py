"""A local OpenAI-compatible upstream speaking like Moonshot's Kimi API (usage in choices[0] and top-level).

Behaviour by model name: "fail-429" answers 429 in Moonshot's error format, "hang" never answers,
"long" streams 200 chunks slowly; anything else answers "Hello from fake Kimi".
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


def _usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    prompt = len(json.dumps(body.get("messages"))) // 4 + 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class FakeKimi:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.closed_streams = 0

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_KEY}":
            return web.json_response(
                {"error": {"message": "bad key", "type": "invalid_authentication_error"}}, status=401
            )
        body = await request.json()
        self.requests.append(body)
        model = body.get("model")
        if model == "fail-429":
            return web.json_response(
                {"error": {"message": "rate limit reached", "type": "rate_limit_reached_error"}}, status=429
            )
        if model == "hang":
            await asyncio.sleep(3600)
        words = [f" w{i}" for i in range(200)] if model == "long" else WORDS
        cap = body.get("max_completion_tokens") or body.get("max_tokens") or 8192
        words = words[: max(1, int(cap))]
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": _usage(body, len(words)),
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for index, word in enumerate(words):
                chunk: dict[str, Any] = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                }
                if index == len(words) - 1:
                    chunk["choices"][0]["finish_reason"] = "stop"
                    chunk["choices"][0]["usage"] = _usage(body, len(words))  # Moonshot's place
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if model == "long":
                    await asyncio.sleep(0.02)
            if (body.get("stream_options") or {}).get("include_usage"):
                final = {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [],
                    "usage": _usage(body, len(words)),
                }
                await response.write(f"data: {json.dumps(final)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.closed_streams += 1
            raise
        return response

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "kimi-k2.5", "object": "model"}]})

    def start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_get("/v1/models", self._models)
            self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # "hang" requests never finish by themselves
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
