"""The proxy's token directory when it stops hearing from the API server: unready after a bounded time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess
from clawhost_localcluster.proxy_process import (
    RunningProxy,
    knows_token,
    proxy_kubeconfig,
    readiness,
    ready_customer,
    rotate_token,
    start_proxy,
)
from clawhost_localcluster.relay import TcpRelay
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

STALE_SECONDS = 4


@pytest.fixture
def relayed_proxy(
    platform_installed: Cluster, redis_server: RedisServer, fake_kimi: FakeKimi, api_relay: TcpRelay, tmp_path: Path
) -> Iterator[RunningProxy]:
    """The proxy reaching the API server only through `api_relay`, with a short staleness limit."""
    kubeconfig = proxy_kubeconfig(platform_installed, tmp_path, server=f"https://{api_relay.address}")
    running = start_proxy(
        platform_installed,
        redis_server,
        f"http://127.0.0.1:{fake_kimi.port}/v1",
        tmp_path,
        CLAWHOST_PROXY_KUBECONFIG=str(kubeconfig),
        CLAWHOST_PROXY_DIRECTORY_STALE_SECONDS=str(STALE_SECONDS),
        CLAWHOST_PROXY_DIRECTORY_WATCH_SECONDS="1",
    )
    yield running
    running.process.stop()


def test_a_directory_cut_off_from_the_api_server_turns_unready_and_recovers(
    relayed_proxy: RunningProxy, api_relay: TcpRelay, operator: OperatorProcess, customers: CustomerFactory
) -> None:
    customer = ready_customer(customers)
    eventually(lambda: knows_token(relayed_proxy, customer.token), what="the proxy to learn the token from its watch")
    # A quiet cluster is not a stale directory: watches ending and opening again keep it current.
    stays_ready_until = time.monotonic() + 2 * STALE_SECONDS
    while time.monotonic() < stays_ready_until:  # observing a duration, not waiting for an event
        assert readiness(relayed_proxy) == 200
        time.sleep(0.2)
    api_relay.cut()
    rotate_token(customers, customer)  # the old token is revoked meanwhile (the operator reaches the API server)
    eventually(
        lambda: readiness(relayed_proxy) == 503, timeout=STALE_SECONDS + 30, what="the stale proxy to turn unready"
    )
    assert knows_token(relayed_proxy, customer.token)  # what unready protects against: it cannot know of the revocation

    api_relay.start()
    eventually(lambda: readiness(relayed_proxy) == 200, timeout=60, what="the proxy to be ready again")
    assert not knows_token(relayed_proxy, customer.token)
