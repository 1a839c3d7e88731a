"""Onboarding fixtures: the OpenAI-compatible and Bot API stand-ins, and the service as a real process against Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi


@pytest.fixture(scope="module")
def kimi() -> Iterator[FakeKimi]:
    server = FakeKimi()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramBotApi]:
    server = TelegramBotApi()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def onboarding(
    kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer, session_dir: Path
) -> Iterator[OnboardingProcess]:
    service = OnboardingProcess(
        redis_url=redis_server.url,
        llm_base_url=f"http://127.0.0.1:{kimi.port}/v1",
        telegram_api_root=telegram.api_root,
        workdir=session_dir / "onboarding",
        extra={
            "CLAWHOST_ONBOARDING_LLM_TIMEOUT_SECONDS": "5",
            "CLAWHOST_ONBOARDING_LLM_MAX_RETRIES": "0",
            # Each test starts its sessions from its own address, so the per-address limit is per test.
            "CLAWHOST_ONBOARDING_MAX_NEW_SESSIONS_PER_IP_PER_HOUR": "5",
        },
    )
    service.start()
    yield service
    service.stop()
