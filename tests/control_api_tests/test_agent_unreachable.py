"""POST /agent when the API server cannot be reached mid-request, or an earlier POST was cut off: the user can retry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from clawhost_control_api.core.config import Settings
from clawhost_control_api.main import create_app
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.relay import TcpRelay
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
AGENT = {"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [111]}


@pytest.fixture
def relayed_client(
    cluster_settings: Settings, api_kubeconfig: Path, api_relay: TcpRelay, tmp_path: Path
) -> Iterator[TestClient]:
    """The control API, as its ServiceAccount, reaching the API server only through `api_relay`."""
    config = yaml.safe_load(api_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://{api_relay.address}"
    kubeconfig = tmp_path / "relayed.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    with TestClient(create_app(cluster_settings.model_copy(update={"kubeconfig": kubeconfig}))) as client:
        yield client


def _login(client: TestClient) -> tuple[str, dict[str, str]]:
    email = f"u{uuid.uuid4().hex[:8]}@example.com"
    assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    return email, {"Authorization": f"Bearer {tokens['access_token']}"}


def _linked_name(settings: Settings, email: str) -> str | None:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute("SELECT customer_name FROM users WHERE email = %s", (email,)).fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


def _reserve(settings: Settings, email: str, name: str) -> None:
    """What a POST that died between its two steps leaves: the user linked to a name no Customer has."""
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute("UPDATE users SET customer_name = %s WHERE email = %s", (name, email))


def test_the_api_server_unreachable_mid_request_then_a_retry_succeeds(
    relayed_client: TestClient, api_relay: TcpRelay, cluster_settings: Settings, customer_crd: Cluster
) -> None:
    email, auth = _login(relayed_client)
    api_relay.cut()
    failed = relayed_client.post("/agent", headers=auth, json=AGENT)
    assert failed.status_code == 503, failed.text
    assert "retry" in failed.json()["detail"]
    assert relayed_client.get("/agent", headers=auth).status_code == 404

    api_relay.start()
    retried = relayed_client.post("/agent", headers=auth, json=AGENT)
    assert retried.status_code == 201, retried.text
    name = retried.json()["name"]
    assert _linked_name(cluster_settings, email) == name
    seen = relayed_client.get("/agent", headers=auth).json()
    assert seen.get("name") == name, seen
    assert customer_crd.kubectl("get", "customer", name, "-o", "name").stdout.strip() == f"customer.clawhost.dev/{name}"
    again = relayed_client.post("/agent", headers=auth, json=AGENT)
    assert again.status_code == 409


def test_a_post_cut_off_before_its_customer_was_created_is_completed_by_the_next(
    cluster_client: TestClient, cluster_settings: Settings, customer_crd: Cluster
) -> None:
    email, auth = _login(cluster_client)
    reserved = f"c{uuid.uuid4().hex[:12]}"
    _reserve(cluster_settings, email, reserved)
    assert cluster_client.get("/agent", headers=auth).status_code == 404
    created = cluster_client.post("/agent", headers=auth, json=AGENT)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == reserved
    assert cluster_client.get("/agent", headers=auth).status_code == 200


def test_a_post_whose_answer_was_lost_after_the_customer_was_created_finds_it(
    cluster_client: TestClient, cluster_settings: Settings, customer_crd: Cluster
) -> None:
    email, auth = _login(cluster_client)
    reserved = f"c{uuid.uuid4().hex[:12]}"
    _reserve(cluster_settings, email, reserved)
    body = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": reserved},
        "spec": {
            "tier": "starter",
            "telegram": {"botTokenSecretRef": {"name": f"bot-{reserved}"}, "allowedUserIds": [1]},
        },
    }
    customer_crd.kubectl("create", "-f", "-", stdin=json.dumps(body))
    assert cluster_client.post("/agent", headers=auth, json=AGENT).status_code == 409
    assert _linked_name(cluster_settings, email) == reserved
    seen = eventually(
        lambda: cluster_client.get("/agent", headers=auth).json().get("name"), what="the agent in the cache"
    )
    assert seen == reserved


def test_a_change_after_the_api_server_closed_its_idle_connections_succeeds(
    relayed_client: TestClient, api_relay: TcpRelay
) -> None:
    """The API server closes kept-alive connections idle for 90 s, which a loaded machine reaches between two changes
    of an agent: the next change goes over a new connection. (It answered 503 "could not reach the cluster".)"""
    _, auth = _login(relayed_client)
    assert relayed_client.post("/agent", headers=auth, json=AGENT).status_code == 201
    for ids in ([222], [333], [444]):
        opened = api_relay.accepted
        api_relay.close_connections()
        changed = relayed_client.patch("/agent", headers=auth, json={"allowed_user_ids": ids})
        assert changed.status_code == 200, changed.text
        assert changed.json()["allowed_user_ids"] == ids
        assert api_relay.accepted > opened, "over a new connection"
