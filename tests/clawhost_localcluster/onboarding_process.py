"""The onboarding service as a process (what its Deployment runs), and a client of its internal WebSocket for tests."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from clawhost_localcluster.fake_kimi import UPSTREAM_KEY
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until

PATH = "/v1/onboarding"


@dataclass
class OnboardingProcess:
    """`python -m clawhost_onboarding` with its settings in the environment; `start()` again after `kill()` is the
    same service restarted (same port, Redis and credential)."""

    redis_url: str
    llm_base_url: str  # an OpenAI-compatible base URL, e.g. the FakeKimi's http://127.0.0.1:<port>/v1
    telegram_api_root: str  # where https://api.telegram.org would be
    workdir: Path
    extra: dict[str, str] = field(default_factory=dict)  # more CLAWHOST_ONBOARDING_* settings
    llm_api_key: str = UPSTREAM_KEY
    port: int = field(default_factory=free_port)
    internal_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: ManagedProcess | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{PATH}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"onboarding-{self.port}.log"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLAWHOST_ONBOARDING_HOST": "127.0.0.1",
            "CLAWHOST_ONBOARDING_PORT": str(self.port),
            "CLAWHOST_ONBOARDING_INTERNAL_TOKEN": self.internal_token,
            "CLAWHOST_ONBOARDING_REDIS_URL": self.redis_url,
            "CLAWHOST_ONBOARDING_LLM_BASE_URL": self.llm_base_url,
            "CLAWHOST_ONBOARDING_LLM_API_KEY": self.llm_api_key,
            "CLAWHOST_ONBOARDING_LLM_MODEL": "kimi-k2.5",
            "CLAWHOST_ONBOARDING_TELEGRAM_API_BASE_URL": self.telegram_api_root,
            **self.extra,
        }

    def start(self, timeout: float = 60) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "onboarding", [sys.executable, "-m", "clawhost_onboarding"], self.log_path, env=self.environment()
        )
        self.process.start()

        def ready() -> bool:
            return httpx.get(f"{self.http_url}/readyz", timeout=2).status_code == 200

        wait_until("the onboarding service's /readyz", ready, timeout, self.process)

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a node loss would: no shutdown code runs."""
        assert self.process is not None
        assert self.process.popen is not None
        self.process.popen.kill()
        self.process.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @asynccontextmanager
    async def connect(self, token: str | None = None) -> AsyncIterator[OnboardingClient]:
        """An internal connection as the control API opens it (its credential unless `token` says otherwise)."""
        headers = {"Authorization": f"Bearer {self.internal_token if token is None else token}"}
        async with connect(self.ws_url, additional_headers=headers, open_timeout=10) as websocket:
            yield OnboardingClient(websocket)


class OnboardingClient:
    """Frames in and out of one internal connection; every frame received is kept in `received`."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.received: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(frame))

    async def receive(self, within: float = 30) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.websocket.recv(), within)
        frame: dict[str, Any] = json.loads(raw)
        self.received.append(frame)
        return frame

    async def until(self, *types: str, within: float = 30) -> list[dict[str, Any]]:
        """Frames up to and including the first whose type is one of `types`."""
        frames = []
        while True:
            frame = await self.receive(within)
            frames.append(frame)
            if frame["type"] in types:
                return frames

    async def hello(
        self,
        session_id: str | None = None,
        client_ip: str = "203.0.113.7",
        user_id: str | None = None,
        language: str = "en",
    ) -> dict[str, Any]:
        """The hello the control API sends; returns the answer (`session`, or the error or sign_in_required)."""
        await self.send(
            {
                "type": "hello",
                "session_id": session_id,
                "language": language,
                "client_ip": client_ip,
                "user_id": user_id,
            }
        )
        frames = await self.until("session", "error", "sign_in_required")
        if frames[-1]["type"] == "error" and frames[-1]["code"] == "session_expired":
            frames = await self.until("session", "error")
        return frames[-1]

    async def say(self, text: str, within: float = 30) -> list[dict[str, Any]]:
        """A user message; the frames up to the reply (or an error), and a result/sign-in that follows the reply."""
        await self.send({"type": "message", "text": text})
        return await self.until("reply", "error", within=within)
