"""DELETE /agent: typed confirmation, billing stopped first, then the Customer and the bot token; the user may start
over. Real API server (as the control API's ServiceAccount), PostgreSQL, Redis and stripe-mock."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
AGENT = {"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [77]}


def _login(client: TestClient) -> dict[str, str]:
    email = f"del{uuid.uuid4().hex[:8]}@example.com"
    assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _subscribed(client: TestClient, cluster: Cluster, auth: dict[str, str]) -> str:
    created = client.post("/agent", headers=auth, json=AGENT)
    assert created.status_code == 201, created.text
    name = str(created.json()["name"])
    billing = {"state": "active", "customerId": "cus_del", "subscriptionId": "sub_del"}
    cluster.patch_customer_status(name, {"billing": billing})
    eventually(
        lambda: client.get("/agent", headers=auth).json().get("billing_state") == "active",
        timeout=20,
        what="the cache to see the subscription",
    )
    return name


def _exists(cluster: Cluster, kind: str, name: str, *args: str) -> bool:
    found = cluster.kubectl("get", kind, name, *args, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    return not json.loads(found.stdout)["metadata"].get("deletionTimestamp")


def test_delete_needs_the_typed_words_then_removes_everything_and_allows_a_new_agent(
    stripe_client_app: TestClient, customer_crd: Cluster
) -> None:
    client = stripe_client_app
    auth = _login(client)
    name = _subscribed(client, customer_crd, auth)
    for wrong in ("", "delete", "delete my agen", "yes"):
        refused = client.request("DELETE", "/agent", headers=auth, json={"confirmation": wrong})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"] == 'type "delete my agent" to confirm; nothing was deleted'
    assert client.request("DELETE", "/agent", headers=auth).status_code == 422, "no body: no deletion"
    assert _exists(customer_crd, "customer", name)

    deleted = client.request("DELETE", "/agent", headers=auth, json={"confirmation": "Delete my agent"})
    assert deleted.status_code == 204, deleted.text
    assert not _exists(customer_crd, "customer", name), "the Customer is gone or going (its finalizer runs)"
    assert not _exists(customer_crd, "secret", f"bot-{name}", "-n", "clawhost-secrets"), "the bot token is gone"
    gone = client.get("/agent", headers=auth)
    assert (gone.status_code, gone.json()["detail"]) == (404, "you have no agent yet")
    again = client.request("DELETE", "/agent", headers=auth, json={"confirmation": "delete my agent"})
    assert again.status_code == 404

    fresh = client.post("/agent", headers=auth, json=AGENT)
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["name"] != name


def test_without_a_cancelled_subscription_nothing_is_deleted(cluster_client: TestClient, customer_crd: Cluster) -> None:
    """Stripe not reachable (here: not configured): the subscription cannot be cancelled, so the agent stays."""
    auth = _login(cluster_client)
    name = _subscribed(cluster_client, customer_crd, auth)
    refused = cluster_client.request("DELETE", "/agent", headers=auth, json={"confirmation": "delete my agent"})
    assert refused.status_code == 503, refused.text
    assert _exists(customer_crd, "customer", name)
    assert cluster_client.get("/agent", headers=auth).json()["name"] == name


def test_one_user_cannot_delete_anothers_agent(cluster_client: TestClient, customer_crd: Cluster) -> None:
    alice, bob = _login(cluster_client), _login(cluster_client)
    created = cluster_client.post("/agent", headers=alice, json=AGENT)
    assert created.status_code == 201
    refused = cluster_client.request("DELETE", "/agent", headers=bob, json={"confirmation": "delete my agent"})
    assert refused.status_code == 404
    assert _exists(customer_crd, "customer", created.json()["name"])
