"""Onboarding fixtures: the OpenAI-compatible and Bot API stand-ins, and the service as a real process against Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi


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


@pytest.fixture
def start_service(
    kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer, session_dir: Path
) -> Iterator[Callable[..., OnboardingProcess]]:
    """A service of the test's own (settings as keyword arguments, e.g. MAX_MESSAGES_PER_SESSION="3"), stopped after."""
    started: list[OnboardingProcess] = []

    def start(**settings: str) -> OnboardingProcess:
        service = OnboardingProcess(
            redis_url=redis_server.url,
            llm_base_url=f"http://127.0.0.1:{kimi.port}/v1",
            telegram_api_root=telegram.api_root,
            workdir=session_dir / "onboarding",
            extra={
                "CLAWHOST_ONBOARDING_LLM_TIMEOUT_SECONDS": "5",
                "CLAWHOST_ONBOARDING_LLM_MAX_RETRIES": "0",
                **{f"CLAWHOST_ONBOARDING_{name}": value for name, value in settings.items()},
            },
        )
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
