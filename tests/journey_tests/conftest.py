"""The whole journey's processes: the control API and the onboarding service as real processes, the operator, the
LLM and Telegram stand-ins, stripe-mock, Redis, PostgreSQL and the API server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clawhost_api.customer import PLATFORM_NAMESPACE
from clawhost_localcluster.control_api_launch import start_control_api
from clawhost_localcluster.control_api_process import ControlApiProcess
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.pki import write_jwt_keys
from clawhost_localcluster.platform import OperatorProcess
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.stripe_mock import StripeMock, running_stripe_mock
from clawhost_localcluster.telegram_bot_api import TelegramBotApi

REPO = Path(__file__).resolve().parents[2]
SITE = "https://site.test"  # the site's origin (CLAWHOST_API_SITE_ORIGINS)


@pytest.fixture(scope="module")
def onboarding(
    kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer, session_dir: Path
) -> Iterator[OnboardingProcess]:
    service = OnboardingProcess(
        redis_url=redis_server.url,
        llm_base_url=f"http://127.0.0.1:{kimi.port}/v1",
        telegram_api_root=telegram.api_root,
        workdir=session_dir / "journey-onboarding",
        extra={"CLAWHOST_ONBOARDING_LLM_TIMEOUT_SECONDS": "10", "CLAWHOST_ONBOARDING_LLM_MAX_RETRIES": "0"},
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def stripe_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeMock]:
    with running_stripe_mock(tmp_path_factory.mktemp("journey-stripe-mock")) as mock:
        yield mock


@pytest.fixture(scope="module")
def platform(operator: OperatorProcess, platform_installed: Cluster) -> Cluster:
    """The operator running, and the control API's RBAC and bot-token policy installed (as its deploy folder has)."""
    deploy = REPO / "control_api" / "deploy"
    platform_installed.kubectl(
        "apply", "-f", str(deploy / "10-rbac.yaml"), "-f", str(deploy / "15-bot-token-policy.yaml")
    )
    return platform_installed


@pytest.fixture(scope="module")
def control_api(
    platform: Cluster,
    onboarding: OnboardingProcess,
    stripe_mock: StripeMock,
    redis_server: RedisServer,
    postgres_dsn: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlApiProcess]:
    """The control API process as its Deployment runs it (its ServiceAccount's token), with local checkout on."""
    workdir = tmp_path_factory.mktemp("journey-api")
    database = f"journey_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"'.encode())
    kubeconfig = platform.service_account_kubeconfig(
        PLATFORM_NAMESPACE, "clawhost-control-api", workdir / "api.kubeconfig"
    )
    api = start_control_api(
        workdir=workdir,
        database_url=psycopg.conninfo.make_conninfo(postgres_dsn, dbname=database),
        redis_url=redis_server.url,
        jwt_keys=write_jwt_keys(workdir),
        kubeconfig=kubeconfig,
        stripe_url=stripe_mock.url,
        extra_env={
            "CLAWHOST_API_LOCAL_CHECKOUT": "true",
            "CLAWHOST_API_ONBOARDING_URL": onboarding.ws_url,
            "CLAWHOST_API_ONBOARDING_INTERNAL_TOKEN": onboarding.internal_token,
            "CLAWHOST_API_SITE_ORIGINS": json.dumps([SITE]),
        },
    )
    yield api
    api.process.stop()
