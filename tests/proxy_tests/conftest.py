"""Proxy fixtures: the fake Kimi upstream, the proxy as a subprocess (as its ServiceAccount), and a customer's token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess
from clawhost_localcluster.proxy_process import ProxyCustomer, RunningProxy, ready_customer, start_proxy
from clawhost_localcluster.services import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def fake_kimi() -> Iterator[FakeKimi]:
    server = FakeKimi()
    server.start()
    yield server
    server.stop()


def _start_test_proxy(
    name: str,
    cluster: Cluster,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    fake_kimi: FakeKimi,
    session_dir: Path,
    **extra: str,
) -> RunningProxy:
    workdir = session_dir / name
    workdir.mkdir(exist_ok=True)
    return start_proxy(
        cluster,
        redis_server,
        f"http://127.0.0.1:{fake_kimi.port}/v1",
        workdir,
        postgres_server,
        # Tests hold Redis's replies back (CLIENT PAUSE) for as long as a loaded machine needs.
        CLAWHOST_PROXY_REDIS_TIMEOUT_SECONDS="30",
        CLAWHOST_PROXY_REQUESTS_PER_SECOND="1000",
        **extra,
    )


@pytest.fixture(scope="session")
def proxy(
    platform_installed: Cluster,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    fake_kimi: FakeKimi,
    session_dir: Path,
) -> Iterator[RunningProxy]:
    """The proxy most tests share. Its upstream read timeout is 3 s (120 s shipped), so the upstream-hang test gets its
    504 quickly: a test that holds the upstream's answer for longer uses `proxy_with_shipped_upstream_timeout`."""
    running = _start_test_proxy(
        "proxy",
        platform_installed,
        redis_server,
        postgres_server,
        fake_kimi,
        session_dir,
        CLAWHOST_PROXY_UPSTREAM_TIMEOUT_SECONDS="3",
    )
    yield running
    running.process.stop()
    print(f"proxy log tail:\n{running.process.log_tail(3000)}")


@pytest.fixture(scope="session")
def proxy_with_shipped_upstream_timeout(
    platform_installed: Cluster,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    fake_kimi: FakeKimi,
    session_dir: Path,
) -> Iterator[RunningProxy]:
    """A proxy with the upstream read timeout it ships with (120 s): for tests whose upstream holds its answers until
    something slow on a loaded machine happened (200 calls reached it), which 3 s does not bound."""
    running = _start_test_proxy(
        "proxy-shipped-timeout", platform_installed, redis_server, postgres_server, fake_kimi, session_dir
    )
    yield running
    running.process.stop()
    print(f"proxy (shipped upstream timeout) log tail:\n{running.process.log_tail(3000)}")


@pytest.fixture
def customer(operator: OperatorProcess, customers: CustomerFactory, proxy: RunningProxy) -> ProxyCustomer:
    """A Customer brought to Ready by the real operator; its token read where the gateway pod reads it."""
    return ready_customer(customers)
