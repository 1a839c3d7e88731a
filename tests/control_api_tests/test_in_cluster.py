"""The control API started as `deploy/20-deployment.yaml` starts it: in-cluster, with its ServiceAccount's token."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.in_cluster import ServiceAccountMount
from clawhost_localcluster.pki import JwtKeys
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

SERVICE_ACCOUNT = "clawhost-control-api"  # deploy/20-deployment.yaml's serviceAccountName
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@dataclass
class InClusterApi:
    url: str
    process: ManagedProcess
    mount: ServiceAccountMount

    def new_user(self) -> dict[str, str]:
        email = f"ic{uuid.uuid4().hex[:8]}@example.com"
        signup = httpx.post(f"{self.url}/auth/signup", json={"email": email, "password": "long enough pw"})
        assert signup.status_code == 201, signup.text
        tokens = httpx.post(f"{self.url}/auth/login", json={"email": email, "password": "long enough pw"}).json()
        return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def in_cluster_api(
    customer_crd: Cluster, new_database: Callable[[], str], redis_server: RedisServer, jwt_keys: JwtKeys, tmp_path: Path
) -> Iterator[InClusterApi]:
    mount = ServiceAccountMount(customer_crd, SERVICE_ACCOUNT, tmp_path / "serviceaccount")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if "KUBECONFIG" not in key}
    env.update(
        mount.env(),
        CLAWHOST_API_DATABASE_URL=new_database(),
        CLAWHOST_API_REDIS_URL=redis_server.url,
        CLAWHOST_API_JWT_PRIVATE_KEY_FILE=str(jwt_keys.private_file),
        CLAWHOST_API_JWT_PUBLIC_KEY_FILE=str(jwt_keys.public_file),
        CLAWHOST_API_HOST="127.0.0.1",
        CLAWHOST_API_PORT=str(port),
        CLAWHOST_API_METRICS_PORT="0",  # any free port: the deployment's 9090 may be taken on a shared machine
    )
    process = ManagedProcess(
        "control-api", [sys.executable, "-m", "clawhost_control_api"], tmp_path / "api.log", env=env
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        # The Deployment's readiness probe; the app answers only once its Customer cache is listed.
        wait_until(
            "the control API's readiness", lambda: httpx.get(f"{url}/.well-known/jwks.json").is_success, 60, process
        )
        yield InClusterApi(url, process, mount)
    finally:
        process.stop()


def _create_and_read_an_agent(api: InClusterApi, cluster: Cluster) -> str:
    auth = api.new_user()
    created = httpx.post(
        f"{api.url}/agent", headers=auth, json={"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [7]}
    )
    assert created.status_code == 201, created.text
    name = str(created.json()["name"])
    assert cluster.kubectl("get", "customer", name, "-o", "name").stdout.strip() == f"customer.clawhost.dev/{name}"
    assert httpx.get(f"{api.url}/agent", headers=auth).json()["name"] == name  # from the watch-fed cache
    return name


def test_in_cluster_login_reads_and_writes_customers_and_survives_token_rotation(
    in_cluster_api: InClusterApi, customer_crd: Cluster
) -> None:
    first = _create_and_read_an_agent(in_cluster_api, customer_crd)

    old = in_cluster_api.mount.rotate()
    eventually(
        lambda: not in_cluster_api.mount.accepted(old), timeout=60, what="the API server to refuse the old token"
    )
    second = _create_and_read_an_agent(in_cluster_api, customer_crd)
    assert second != first
    log = in_cluster_api.process.log_path.read_text()
    assert old not in log
    assert in_cluster_api.mount.token not in log
