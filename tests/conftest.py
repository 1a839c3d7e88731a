"""Session fixtures: one real control plane, Redis and PostgreSQL per run, each started on first use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import (
    Cluster,
    running_cluster,
    running_postgres,
    running_redis,
    scratch_dir,
)
from clawhost_localcluster.platform import (
    CustomerFactory,
    OperatorProcess,
    install_platform,
    service_account_kubeconfig,
)
from clawhost_localcluster.relay import TcpRelay, relay_to_api_server
from clawhost_localcluster.services import PostgresServer, RedisServer

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
