"""The operator started as `deploy/30-deployment.yaml` starts it: in-cluster, with its ServiceAccount's token.

It gets a control plane of its own: the session's operator reconciles every Customer of the shared one, so a
second operator there would prove nothing about this one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import EXISTING_KUBECONFIG_ENV, Cluster, running_cluster
from clawhost_localcluster.in_cluster import ServiceAccountMount
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess, install_platform
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster

SERVICE_ACCOUNT = "clawhost-operator"  # deploy/30-deployment.yaml's serviceAccountName


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get(EXISTING_KUBECONFIG_ENV):
        pytest.skip("needs a control plane of its own; an existing cluster is shared with the session's operator")
    with running_cluster(tmp_path_factory.mktemp("own") / "cluster") as cluster:
        install_platform(cluster)
        yield cluster


def test_in_cluster_login_reconciles_and_survives_token_rotation(own_cluster: Cluster, tmp_path: Path) -> None:
    mount = ServiceAccountMount(own_cluster, SERVICE_ACCOUNT, tmp_path / "serviceaccount")
    operator = OperatorProcess(None, tmp_path, in_cluster_env=mount.env())
    customers = CustomerFactory(own_cluster)
    operator.start()
    try:
        first = customers.create()
        customers.wait_ready(first, timeout=120)

        old = mount.rotate()
        eventually(lambda: not mount.accepted(old), timeout=60, what="the API server to refuse the old token")
        # Its writes (children, status) and kopf's (Events) now need the new token.
        second = customers.create()
        customers.wait_ready(second, timeout=120)
        assert customers.events(second), "kopf posted no Event with the rotated token"
        assert operator.healthy()
        log = operator.log()
        assert old not in log
        assert mount.token not in log
    finally:
        operator.stop()
