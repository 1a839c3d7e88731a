"""Usage from the proxy's Redis counter and ledger; Checkout and Portal sessions through stripe-mock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from clawhost_api.customer import BillingStatus
from clawhost_api.usage import charged_tokens, usage_counter_key, usage_period
from clawhost_control_api.core.config import Settings
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _agent(client: TestClient, tier: str = "pro") -> tuple[dict[str, str], str]:
    email = f"b{uuid.uuid4().hex[:8]}@example.com"
    client.post("/auth/signup", json={"email": email, "password": "long enough pw"})
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    created = client.post("/agent", headers=auth, json={"tier": tier, "bot_token": TOKEN, "allowed_user_ids": [9]})
    assert created.status_code == 201, created.text
    return auth, created.json()["name"]


def test_usage_reads_counter_and_daily_series(
    cluster_client: TestClient, cluster_settings: Settings, redis_url: str
) -> None:
    auth, name = _agent(cluster_client, "pro")
    now = datetime.now(UTC)
    period = usage_period(BillingStatus(), now)
    redis.Redis.from_url(redis_url).set(usage_counter_key(name, period), 12345)
    day1 = period.start + timedelta(hours=1)
    # (id, when, prompt, completion, of the prompt cached); charged as the proxy does, cached at 0.25
    rows = [("r1", day1, 100, 50, 80), ("r2", day1 + timedelta(minutes=5), 10, 5, 0), ("r3", now, 7, 3, 4)]
    with psycopg.connect(cluster_settings.database_url.get_secret_value(), autocommit=True) as conn:
        for rid, at, prompt, completion, cached in [*rows, ("old", period.start - timedelta(days=2), 999, 999, 9)]:
            conn.execute(
                "INSERT INTO token_ledger (id, request_id, customer, tier, model, prompt_tokens, completion_tokens,"
                " latency_ms, status, created_at, cached_prompt_tokens, charged_tokens)"
                " VALUES (%s, %s, %s, 'pro', 'kimi', %s, %s, 10, 200, %s, %s, %s)",
                (
                    f"{name}-{rid}",
                    rid,
                    name,
                    prompt,
                    completion,
                    at,
                    cached,
                    charged_tokens(prompt, completion, cached, 0.25),
                ),
            )
    usage = cluster_client.get("/usage", headers=auth)
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["tokens_used"] == 12345
    assert body["tokens_limit"] == 5_000_000
    assert body["cached_prompt_weight"] == 0.25
    series = {
        d["day"]: (d["tokens"], d["cached_prompt_tokens"], d["charged_tokens"], d["requests"]) for d in body["days"]
    }
    # charged: r1 100 - 80 + 80/4 + 50 = 90, r2 15, r3 7 - 4 + 1 + 3 = 7
    if day1.date() == now.date():
        assert series == {now.date().isoformat(): (175, 84, 112, 3)}
    else:
        assert series == {day1.date().isoformat(): (165, 80, 105, 2), now.date().isoformat(): (10, 4, 7, 1)}
    assert sum(t for t, *_ in series.values()) == 175, "only this period's rows count"


def test_checkout_and_portal_through_stripe_mock(stripe_client_app: TestClient, customer_crd: Cluster) -> None:
    auth, name = _agent(stripe_client_app, "starter")
    assert stripe_client_app.post("/billing/portal", headers=auth).status_code == 409, "no subscription yet"
    checkout = stripe_client_app.post("/billing/checkout", headers=auth, json={"tier": "team"})
    assert checkout.status_code == 201, checkout.text
    assert checkout.json()["id"].startswith("cs_")
    assert checkout.json()["url"]
    customer_crd.patch_customer_status(name, {"billing": {"customerId": "cus_mock", "state": "active"}})

    def portal() -> dict[str, str] | None:
        response = stripe_client_app.post("/billing/portal", headers=auth)
        return response.json() if response.status_code == 201 else None

    session = eventually(portal, timeout=20, what="portal session once the cache has the customer id")
    assert session["id"].startswith("bps_")


def test_checkout_without_configured_price_is_a_clear_error(
    cluster_client: TestClient,
) -> None:
    auth, _ = _agent(cluster_client)
    response = cluster_client.post("/billing/checkout", headers=auth, json={})
    assert response.status_code == 503
    assert "Stripe" in response.json()["detail"]


def test_a_second_checkout_while_subscribed_is_refused(stripe_client_app: TestClient, customer_crd: Cluster) -> None:
    auth, name = _agent(stripe_client_app, "starter")
    assert stripe_client_app.post("/billing/checkout", headers=auth, json={}).status_code == 201

    def set_state(state: str) -> None:
        billing = {"customerId": "cus_mock", "subscriptionId": "sub_mock", "state": state}
        customer_crd.patch_customer_status(name, {"billing": billing})

    def checkout_status() -> int:
        return stripe_client_app.post("/billing/checkout", headers=auth, json={"tier": "team"}).status_code

    for state in ("active", "past_due", "unpaid", "trialing", "paused", "incomplete"):
        set_state(state)
        eventually(lambda: checkout_status() == 409, timeout=20, what=f"checkout refused while {state}")
    refused = stripe_client_app.post("/billing/checkout", headers=auth, json={"tier": "team"})
    assert refused.headers["content-type"] == "application/json"
    assert "/billing/portal" in refused.json()["detail"]
    # Once that subscription has ended, checking out again is allowed (as the same Stripe customer).
    set_state("canceled")
    eventually(lambda: checkout_status() == 201, timeout=20, what="checkout allowed after cancellation")
