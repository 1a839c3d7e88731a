"""Local-only checkout completion: signed events to the real webhook endpoint, off unless the setting is on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clawhost_control_api.core.config import Settings
from clawhost_control_api.main import create_app
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.platform import get_json
from clawhost_localcluster.stripe_mock import StripeMock
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _app(settings: Settings, stripe_mock: StripeMock, local: bool) -> TestClient:
    configured = settings.model_copy(
        update={
            "stripe_api_key": SecretStr("sk_test_123"),
            "stripe_api_base": stripe_mock.url,
            "local_checkout": local,
            "public_url": "http://testserver",
        }
    )
    return TestClient(create_app(configured))


@pytest.fixture
def local_app(cluster_settings: Settings, stripe_mock: StripeMock) -> Iterator[TestClient]:
    with _app(cluster_settings, stripe_mock, local=True) as client:
        yield client


def _agent(client: TestClient, tier: str) -> tuple[dict[str, str], str]:
    email = f"l{uuid.uuid4().hex[:8]}@example.com"
    client.post("/auth/signup", json={"email": email, "password": "long enough pw"})
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = client.post("/agent", headers=auth, json={"tier": tier, "bot_token": TOKEN, "allowed_user_ids": [9]})
    assert created.status_code == 201, created.text
    return auth, created.json()["name"]


def _billing(cluster: Cluster, name: str) -> dict[str, Any]:
    return dict(((get_json(cluster, "customer", name) or {}).get("status") or {}).get("billing") or {})


def test_completing_a_local_checkout_pays_through_the_signed_webhook(
    local_app: TestClient, customer_crd: Cluster
) -> None:
    auth, name = _agent(local_app, "pro")
    checkout = local_app.post("/billing/checkout", headers=auth, json={})
    assert checkout.status_code == 201, checkout.text
    url = checkout.json()["url"]
    assert url.startswith("http://testserver/local-checkout/lcs_"), url
    path = url.removeprefix("http://testserver")

    page = local_app.get(path)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "Complete payment" in page.text
    assert "pro" in page.text
    assert _billing(customer_crd, name) == {}, "nothing is paid before the page is used"

    done = local_app.post(path, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "http://testserver/dashboard?checkout=success"
    billing = eventually(
        lambda: _billing(customer_crd, name) if _billing(customer_crd, name).get("currentPeriodEnd") else None,
        timeout=20,
        what="status.billing from the two signed events",
    )
    assert billing["state"] == "active"
    assert billing["paidTier"] == "pro"
    assert billing["customerId"].startswith("cus_local_")
    assert billing["subscriptionId"].startswith("sub_local_")
    # The webhook verified and stored both (the metrics count what the real endpoint did with them).
    metrics = local_app.app.state.clawhost.metrics  # type: ignore[attr-defined]
    applied = metrics.webhook_events.labels(type="checkout.session.completed", outcome="applied")._value.get()
    assert applied == 1

    again = local_app.post(path, follow_redirects=False)
    assert again.status_code == 409
    assert again.json() == {"detail": "this checkout was already completed"}


def test_local_checkout_is_refused_when_the_setting_is_off(
    cluster_settings: Settings, stripe_mock: StripeMock, customer_crd: Cluster
) -> None:
    with _app(cluster_settings, stripe_mock, local=True) as on:
        auth, _ = _agent(on, "starter")
        path = on.post("/billing/checkout", headers=auth, json={}).json()["url"].removeprefix("http://testserver")
    with _app(cluster_settings, stripe_mock, local=False) as off:
        for answer in (off.get(path), off.post(path, follow_redirects=False)):
            assert answer.status_code == 404
            assert "local checkout completion is off" in answer.json()["detail"]
            assert "CLAWHOST_API_LOCAL_CHECKOUT" in answer.json()["detail"]
        auth, _ = _agent(off, "starter")
        stripe_url = off.post("/billing/checkout", headers=auth, json={}).json()["url"]
        assert "/local-checkout/" not in stripe_url, "with the setting off the link is Stripe's own"
