"""Session fixtures: one real control plane, Redis and PostgreSQL per run, each started on first use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawhost_api.customer import PLATFORM_NAMESPACE
from clawhost_localcluster.browser import launch_args
from clawhost_localcluster.control_api_launch import local_site_settings, start_control_api
from clawhost_localcluster.environment import (
    Cluster,
    running_cluster,
    running_postgres,
    running_redis,
    scratch_dir,
)
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.node_environment import RealNodeCluster, RealNodeHolder
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.pki import write_jwt_keys
from clawhost_localcluster.platform import (
    CustomerFactory,
    OperatorProcess,
    install_platform,
    service_account_kubeconfig,
)
from clawhost_localcluster.relay import TcpRelay, relay_to_api_server
from clawhost_localcluster.services import PostgresServer, RedisServer, fresh_database
from clawhost_localcluster.site_server import SITE_TEST_LIMITS, SiteServer, StartSite, apply_control_api_rbac
from clawhost_localcluster.stripe_mock import StripeMock, running_stripe_mock
from clawhost_localcluster.telegram_bot_api import TelegramBotApi

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    with scratch_dir() as root:
        yield root


@pytest.fixture(scope="session")
def cluster(session_dir: Path) -> Iterator[Cluster]:
    with running_cluster(session_dir / "cluster") as running:
        yield running


@pytest.fixture(scope="session")
def redis_server(session_dir: Path) -> Iterator[RedisServer]:
    with running_redis(session_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(session_dir: Path) -> Iterator[PostgresServer]:
    with running_postgres(session_dir / "postgres") as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    return postgres_server.dsn


@pytest.fixture(scope="session")
def real_node_holder(session_dir: Path) -> Iterator[RealNodeHolder]:
    holder = RealNodeHolder(session_dir / "real-node")
    yield holder
    holder.release()


@pytest.fixture
def real_node_cluster(real_node_holder: RealNodeHolder) -> RealNodeCluster:
    """A cluster of its own whose only node is real (containerd, kubelet, kube-proxy, kube-router, CoreDNS), started
    on first use and kept for the session; mark tests that use it `node`."""
    return real_node_holder.get()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# The operator-backed fixtures live here so every test directory shares one operator process.
@pytest.fixture
def api_relay(cluster: Cluster) -> Iterator[TcpRelay]:
    """The API server behind a relay a test can cut (`cut()`) and restore (`start()`)."""
    relay = relay_to_api_server(cluster.kubeconfig)
    yield relay
    relay.stop()


@pytest.fixture(scope="session")
def platform_installed(cluster: Cluster) -> Cluster:
    install_platform(cluster)
    return cluster


@pytest.fixture(scope="session")
def operator(platform_installed: Cluster, session_dir: Path) -> Iterator[OperatorProcess]:
    workdir = session_dir / "operator"
    workdir.mkdir(exist_ok=True)
    running = OperatorProcess(service_account_kubeconfig(platform_installed, workdir), workdir)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def customers(platform_installed: Cluster) -> Iterator[CustomerFactory]:
    factory = CustomerFactory(platform_installed)
    yield factory
    for name in factory.created:
        platform_installed.kubectl("delete", "customer", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def stripe_mock(session_dir: Path) -> Iterator[StripeMock]:
    """Stripe's own API double (stateless), one for the run."""
    workdir = session_dir / "stripe-mock"
    workdir.mkdir(exist_ok=True)
    with running_stripe_mock(workdir) as mock:
        yield mock


# Browser tests: Debian's Chromium through pytest-playwright, against the platform as `make up` runs it.
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, **launch_args()}


@pytest.fixture(scope="session")
def site_kimi() -> Iterator[FakeKimi]:
    """The site's model upstream (OpenAI-compatible stand-in): tests script the onboarding conversation on it."""
    server = FakeKimi()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def site_telegram() -> Iterator[TelegramBotApi]:
    """The site's Telegram Bot API stand-in: tests register bots and press Start in them."""
    server = TelegramBotApi()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def site_onboarding(
    site_kimi: FakeKimi, site_telegram: TelegramBotApi, redis_url: str, session_dir: Path
) -> Iterator[OnboardingProcess]:
    """The onboarding service behind every site of the run (as `make up` runs it, on the stand-ins)."""
    service = OnboardingProcess(
        redis_url=redis_url,
        llm_base_url=f"http://127.0.0.1:{site_kimi.port}/v1",
        telegram_api_root=site_telegram.api_root,
        workdir=session_dir / "site-onboarding",
    )
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def start_site(
    platform_installed: Cluster,
    operator: OperatorProcess,
    site_onboarding: OnboardingProcess,
    postgres_dsn: str,
    redis_url: str,
    stripe_mock: StripeMock,
    session_dir: Path,
) -> Iterator[StartSite]:
    """Start a control API (the site) as `make up` does, next to the session's real operator, API server, Redis,
    PostgreSQL, stripe-mock and onboarding service, with extra CLAWHOST_API_* settings; each call gets its own
    database unless given one. All are stopped at the end of the run."""
    cluster = platform_installed
    workdir = session_dir / "site"
    workdir.mkdir(exist_ok=True)
    apply_control_api_rbac(cluster)
    kubeconfig = cluster.service_account_kubeconfig(
        PLATFORM_NAMESPACE, "clawhost-control-api", workdir / "control-api.kubeconfig"
    )
    keys = write_jwt_keys(workdir)
    started: list[SiteServer] = []

    def start(database_url: str | None = None, **settings: str) -> SiteServer:
        database = database_url or fresh_database(postgres_dsn)
        extra = {
            **local_site_settings(site_onboarding, workdir),
            **SITE_TEST_LIMITS,
            "CLAWHOST_API_RATE_LIMIT_KEY_PREFIX": f"site:{uuid.uuid4().hex[:12]}",
            **{f"CLAWHOST_API_{k.upper()}": v for k, v in settings.items()},
        }
        api = start_control_api(
            workdir=workdir,
            database_url=database,
            redis_url=redis_url,
            jwt_keys=keys,
            kubeconfig=kubeconfig,
            stripe_url=stripe_mock.url,
            extra_env=extra,
            log_name=f"control-api-{len(started)}.log",
        )
        server = SiteServer(api=api, database_url=database, cluster=cluster)
        started.append(server)
        return server

    yield start
    for server in started:
        server.api.process.stop()


@pytest.fixture(scope="session")
def site(start_site: StartSite) -> SiteServer:
    """The site as `make up` runs it; `site.url` is what a person opens."""
    return start_site()


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    """Where browser tests save screenshots: under pytest-playwright's --output folder (test-results/, git-ignored,
    emptied at the start of each run)."""
    return Path(str(pytestconfig.getoption("--output"))).absolute() / "screenshots"


# The LLM and Telegram Bot API stand-ins, one of each per test module (the onboarding and journey suites).
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
