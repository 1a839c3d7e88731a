"""The proxy started as `deploy/deployment.yaml` starts it: in-cluster, with its ServiceAccount's token."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.in_cluster import ServiceAccountMount
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess
from clawhost_localcluster.proxy_process import apply_proxy_rbac, knows_token, readiness, ready_customer, start_proxy
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

SERVICE_ACCOUNT = "token-proxy"  # deploy/deployment.yaml's serviceAccountName


def test_in_cluster_login_watches_customers_and_survives_token_rotation(
    platform_installed: Cluster,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    operator: OperatorProcess,
    customers: CustomerFactory,
    tmp_path: Path,
) -> None:
    apply_proxy_rbac(platform_installed)
    mount = ServiceAccountMount(platform_installed, SERVICE_ACCOUNT, tmp_path / "serviceaccount")
    proxy = start_proxy(
        platform_installed,
        redis_server,
        f"http://127.0.0.1:{fake_kimi.port}/v1",
        tmp_path,
        None,
        **mount.env(),
        # Watches reopened every second, unready after 5 s without news: it must log in again to stay ready.
        CLAWHOST_PROXY_DIRECTORY_WATCH_SECONDS="1",
        CLAWHOST_PROXY_DIRECTORY_STALE_SECONDS="5",
    )
    try:
        first = ready_customer(customers)
        eventually(lambda: knows_token(proxy, first.token), what="the proxy to learn a token from its watch")

        old = mount.rotate()
        eventually(lambda: not mount.accepted(old), timeout=60, what="the API server to refuse the old token")
        second = ready_customer(customers)
        eventually(lambda: knows_token(proxy, second.token), what="a token that appeared after the rotation")
        assert readiness(proxy) == 200
        log = proxy.process.log_path.read_text()
        assert old not in log
        assert mount.token not in log
    finally:
        proxy.process.stop()
