"""The dashboard's upgrade and downgrade buttons: a Customer Portal session that confirms the move to one plan
(stripe-mock speaks Stripe's real API: the subscription is read, the flow accepted)."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_a_plan_change_opens_the_portal_on_its_confirmation(
    stripe_client_app: TestClient, customer_crd: Cluster
) -> None:
    client = stripe_client_app
    email = f"plan{uuid.uuid4().hex[:8]}@example.com"
    client.post("/auth/signup", json={"email": email, "password": "long enough pw"})
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = client.post("/agent", headers=auth, json={"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [1]})
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    customer_crd.patch_customer_status(name, {"billing": {"customerId": "cus_plan", "state": "incomplete"}})
    eventually(
        lambda: client.get("/agent", headers=auth).json()["billing_state"] == "incomplete",
        timeout=20,
        what="the cache to see the customer id",
    )
    early = client.post("/billing/portal", headers=auth, json={"tier": "pro"})
    assert (early.status_code, early.json()["detail"]) == (409, "no live subscription to change: check out first")

    billing = {"state": "active", "subscriptionId": "sub_plan", "paidTier": "starter"}
    customer_crd.patch_customer_status(name, {"billing": billing})
    eventually(
        lambda: client.get("/agent", headers=auth).json()["billing_state"] == "active",
        timeout=20,
        what="the cache to see the subscription",
    )
    same = client.post("/billing/portal", headers=auth, json={"tier": "starter"})
    assert (same.status_code, same.json()["detail"]) == (409, "you are already on the starter plan")
    upgrade = client.post("/billing/portal", headers=auth, json={"tier": "pro"})
    assert upgrade.status_code == 201, upgrade.text
    assert upgrade.json()["id"].startswith("bps_")
    home = client.post("/billing/portal", headers=auth)
    assert home.status_code == 201, "no body: the portal's home page, as before"
