"""Control API fixtures: RSA keys on disk, a fresh PostgreSQL database, the app behind a TestClient."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clawhost_api.customer import PLATFORM_NAMESPACE
from clawhost_control_api.core.config import Settings
from clawhost_control_api.main import create_app
from clawhost_localcluster.control_api_process import ControlApiProcess, StartApi
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.pki import JwtKeys, write_jwt_keys
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until
from clawhost_localcluster.services import fresh_database
from clawhost_localcluster.stripe_mock import StripeMock


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JwtKeys:
    return write_jwt_keys(tmp_path_factory.mktemp("jwt"))


@pytest.fixture(scope="session")
def other_jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> JwtKeys:
    return write_jwt_keys(tmp_path_factory.mktemp("jwt-other"))


@pytest.fixture
def database_url(postgres_dsn: str) -> str:
    return fresh_database(postgres_dsn)


@pytest.fixture(scope="session")
def new_database(postgres_dsn: str) -> Callable[[], str]:
    """For wider-scoped fixtures: a call creates another empty database and returns its DSN."""
    return lambda: fresh_database(postgres_dsn)


@pytest.fixture
def settings(database_url: str, redis_url: str, jwt_keys: JwtKeys) -> Settings:
    return Settings(
        database_url=SecretStr(database_url),
        redis_url=redis_url,
        jwt_private_key_file=jwt_keys.private_file,
        jwt_public_key_file=jwt_keys.public_file,
        metrics_port=0,  # any free port: tests run many apps side by side
        rate_limit_key_prefix=f"test:{uuid.uuid4().hex[:12]}",  # tests share one Redis, not their counters
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


WEBHOOK_SECRET = "whsec_test_controlapi"
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}
CRD = Path(__file__).resolve().parents[2] / "crds" / "customer.crd.yaml"


DEPLOY = Path(__file__).resolve().parents[2] / "control_api" / "deploy"
PLATFORM_NAMESPACES = Path(__file__).resolve().parents[2] / "deploy" / "00-namespaces.yaml"
SERVICE_ACCOUNT = "clawhost-control-api"


@pytest.fixture(scope="session")
def customer_crd(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.wait_established("customers.clawhost.dev")
    cluster.kubectl(
        "apply",
        "-f",
        str(PLATFORM_NAMESPACES),
        "-f",
        str(DEPLOY / "10-rbac.yaml"),
        "-f",
        str(DEPLOY / "15-bot-token-policy.yaml"),
    )
    return cluster


@pytest.fixture(scope="session")
def api_kubeconfig(customer_crd: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig holding a real token of the control API's ServiceAccount: every test acts as it."""
    path = tmp_path_factory.mktemp("sa") / "api.kubeconfig"
    return customer_crd.service_account_kubeconfig(PLATFORM_NAMESPACE, SERVICE_ACCOUNT, path)


@pytest.fixture
def cluster_settings(settings: Settings, api_kubeconfig: Path) -> Settings:
    return settings.model_copy(
        update={
            "kubeconfig": api_kubeconfig,
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "stripe_price_ids": PRICES,
        }
    )


@pytest.fixture
def cluster_client(cluster_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(cluster_settings)) as test_client:
        yield test_client


@pytest.fixture
def stripe_client_app(cluster_settings: Settings, stripe_mock: StripeMock) -> Iterator[TestClient]:
    """The app with every outgoing Stripe call going to stripe-mock."""
    settings = cluster_settings.model_copy(
        update={"stripe_api_key": SecretStr("sk_test_123"), "stripe_api_base": stripe_mock.url}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def start_api(database_url: str, redis_url: str, jwt_keys: JwtKeys, tmp_path: Path) -> Iterator[StartApi]:
    """Start the control API process with extra CLAWHOST_API_* variables; all are stopped after the test."""
    started: list[ManagedProcess] = []

    def start(wait: bool = True, **extra: str) -> ControlApiProcess:
        port, metrics_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWHOST_API_", "KUBERNETES_"))}
        env.update(
            CLAWHOST_API_DATABASE_URL=database_url,
            CLAWHOST_API_REDIS_URL=redis_url,
            CLAWHOST_API_JWT_PRIVATE_KEY_FILE=str(jwt_keys.private_file),
            CLAWHOST_API_JWT_PUBLIC_KEY_FILE=str(jwt_keys.public_file),
            CLAWHOST_API_HOST="127.0.0.1",
            CLAWHOST_API_PORT=str(port),
            CLAWHOST_API_METRICS_PORT=str(metrics_port),
            CLAWHOST_API_RATE_LIMIT_KEY_PREFIX=f"test:{uuid.uuid4().hex[:12]}",
        )
        env.update({f"CLAWHOST_API_{k.upper()}": v for k, v in extra.items()})
        process = ManagedProcess(
            "control-api", [sys.executable, "-m", "clawhost_control_api"], tmp_path / f"api-{port}.log", env=env
        )
        process.start()
        started.append(process)
        api = ControlApiProcess(port, metrics_port, process)
        if wait:
            wait_until(
                "the control API to serve",
                lambda: httpx.get(f"{api.url}/.well-known/jwks.json", timeout=2).status_code == 200,
                timeout=60,
                process=process,
            )
        return api

    yield start
    for process in started:
        process.stop()
