"""Stripe webhooks through the real app into real Customers on the real API server."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from clawhost_api.customer import BillingStatus
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_control_api.core.config import Settings
from clawhost_control_api.main import create_app
from clawhost_localcluster import stripe_events as se
from clawhost_localcluster.environment import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.services]

# Shared with conftest (importlib mode: fixtures cross, module names do not).
WEBHOOK_SECRET = "whsec_test_controlapi"
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}


def _new_customer(cluster: Cluster, tier: str = "pro", billing: str = "stripe") -> str:
    name = f"c{uuid.uuid4().hex[:10]}"
    body = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name},
        "spec": {
            "tier": tier,
            "telegram": {"botTokenSecretRef": {"name": f"bot-{name}"}, "allowedUserIds": [12345]},
            "billing": {"mode": billing},
        },
    }
    cluster.kubectl("create", "-f", "-", stdin=json.dumps(body))
    return name


def _get(cluster: Cluster, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        cluster.kubectl("get", "customer", name, "-o", "json", "--show-managed-fields").stdout
    )
    return result


def _post(client: TestClient, event: dict[str, Any], secret: str = WEBHOOK_SECRET, ts: int | None = None) -> int:
    payload = se.as_payload(event)
    headers = {"Stripe-Signature": se.sign(payload, secret, ts), "Content-Type": "application/json"}
    return client.post("/webhooks/stripe", content=payload, headers=headers).status_code


def test_lifecycle_patches_status_billing_and_tier(cluster_client: TestClient, customer_crd: Cluster) -> None:
    name = _new_customer(customer_crd, tier="pro")
    # The operator's status fields must survive billing's writes.
    customer_crd.patch_customer_status(name, {"phase": "Provisioning"})
    t0 = int(time.time()) - 3600
    p2 = t0 + se.MONTH
    checkout = se.checkout_completed(t0, name, "cus_life", "sub_life", "pro")
    assert _post(cluster_client, checkout) == 200
    assert _post(cluster_client, checkout) == 200  # duplicate delivery: no-op
    live = _get(customer_crd, name)
    billing = live["status"]["billing"]
    assert billing["state"] == "active"
    assert billing["paidTier"] == "pro"
    assert billing["subscriptionId"] == "sub_life"
    assert billing["lastEventId"] == checkout["id"]
    assert live["status"]["phase"] == "Provisioning"
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}
    assert "clawhost-billing" in managers

    paid = se.invoice("invoice.paid", t0 + 10, name, "cus_life", "sub_life", t0, p2)
    assert _post(cluster_client, paid) == 200
    billing = _get(customer_crd, name)["status"]["billing"]
    assert billing["currentPeriodEnd"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(p2)))

    up = se.subscription(
        "customer.subscription.updated", t0 + 20, name, "cus_life", "sub_life", "active", PRICES["team"], t0, p2
    )
    assert _post(cluster_client, up) == 200
    live = _get(customer_crd, name)
    assert live["status"]["billing"]["paidTier"] == "team"
    assert live["spec"]["tier"] == "team", "upgrade applies at once"

    down = se.subscription(
        "customer.subscription.updated", t0 + 30, name, "cus_life", "sub_life", "active", PRICES["starter"], t0, p2
    )
    assert _post(cluster_client, down) == 200
    live = _get(customer_crd, name)
    assert live["spec"]["tier"] == "team", "downgrade waits for the next period"

    failed = se.invoice("invoice.payment_failed", t0 + 40, name, "cus_life", "sub_life", t0, p2)
    assert _post(cluster_client, failed) == 200
    assert _get(customer_crd, name)["status"]["billing"]["state"] == "past_due"

    deleted = se.subscription(
        "customer.subscription.deleted", t0 + 50, name, "cus_life", "sub_life", "canceled", PRICES["team"], t0, p2
    )
    stale = se.subscription(
        "customer.subscription.updated", t0 + 45, name, "cus_life", "sub_life", "active", PRICES["team"], t0, p2
    )
    assert _post(cluster_client, deleted) == 200
    assert _post(cluster_client, stale) == 200
    assert _get(customer_crd, name)["status"]["billing"]["state"] == "canceled", "old update cannot revive"


def test_new_period_starts_a_fresh_usage_counter_once(cluster_client: TestClient, customer_crd: Cluster) -> None:
    name = _new_customer(customer_crd)
    now = int(time.time())
    p1, p2, p3 = now - se.MONTH - 100, now - 100, now - 100 + se.MONTH
    _post(cluster_client, se.checkout_completed(p1, name, f"cus_{name}", f"sub_{name}", "pro"))
    _post(cluster_client, se.invoice("invoice.paid", p1 + 1, name, f"cus_{name}", f"sub_{name}", p1, p2))
    old_key = usage_counter_key(
        name,
        usage_period(
            BillingStatus.model_validate(_get(customer_crd, name)["status"]["billing"]),
            now=__import__("datetime").datetime.fromtimestamp(p2 - 10, __import__("datetime").UTC),
        ),
    )
    renewal = se.invoice("invoice.paid", p2 + 1, name, f"cus_{name}", f"sub_{name}", p2, p3)
    assert _post(cluster_client, renewal) == 200
    billing = BillingStatus.model_validate(_get(customer_crd, name)["status"]["billing"])
    new_key = usage_counter_key(name, usage_period(billing))
    assert new_key != old_key
    assert _post(cluster_client, renewal) == 200  # retried delivery
    again = BillingStatus.model_validate(_get(customer_crd, name)["status"]["billing"])
    assert usage_counter_key(name, usage_period(again)) == new_key, "a retry never opens another period"


def test_billing_mode_none_is_untouched(cluster_client: TestClient, customer_crd: Cluster) -> None:
    name = _new_customer(customer_crd, billing="none")
    assert (
        _post(cluster_client, se.checkout_completed(int(time.time()), name, f"cus_{name}", f"sub_{name}", "team"))
        == 200
    )
    assert "billing" not in _get(customer_crd, name).get("status", {})


def test_forged_and_stale_events_are_rejected(
    cluster_client: TestClient, customer_crd: Cluster, cluster_settings: Settings
) -> None:
    name = _new_customer(customer_crd)
    rng = random.Random(3)
    rejected = 0
    for i in range(100):
        event = se.checkout_completed(int(time.time()), name, f"cus_{name}", f"sub_{name}", "team")
        payload = se.as_payload(event)
        mode = i % 4
        if mode == 0:
            header = se.sign(payload, "whsec_wrong")
        elif mode == 1:
            header = se.sign(payload, WEBHOOK_SECRET, int(time.time()) - 301 - rng.randint(0, 10_000))
        elif mode == 2:
            header = se.sign(payload, WEBHOOK_SECRET)
            payload = payload.replace(b'"team"', b'"pro"')  # body altered after signing
        else:
            header = "t=1,v1=" + "0" * 64
        response = cluster_client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": header})
        rejected += response.status_code == 400
    assert rejected == 100
    assert "billing" not in _get(customer_crd, name).get("status", {})
    with psycopg.connect(cluster_settings.database_url.get_secret_value()) as conn:
        row = conn.execute("SELECT count(*) FROM stripe_events").fetchone()
    assert row == (0,)


def test_replay_1000_shuffled_duplicated_events_matches_the_histories(
    cluster_client: TestClient, customer_crd: Cluster
) -> None:
    rng = random.Random(11)
    start = int(time.time()) - 4 * se.MONTH
    histories: dict[str, se.Lifecycle] = {}
    total = 0
    while total < 600:
        name = _new_customer(customer_crd, tier="starter")
        histories[name] = se.lifecycle(rng, name, PRICES, start)
        total += len(histories[name].events)
    events = [e for history in histories.values() for e in history.events]
    noisy = events + [rng.choice(events) for _ in range(1000 - len(events))]
    rng.shuffle(noisy)
    assert len(noisy) >= 1000
    for event in noisy:
        assert _post(cluster_client, event) == 200
    for name, history in histories.items():
        # What the generator wrote down while making the history (no code shared with the app's fold).
        live = _get(customer_crd, name)
        billing = live["status"]["billing"]
        assert (billing["state"], billing["paidTier"], billing["lastEventId"]) == (
            history.state,
            history.paid_tier,
            history.last_id,
        ), name
        assert live["spec"]["tier"] == history.paid_tier, name


def _burst(client: TestClient, cluster: Cluster, events: list[dict[str, Any]], *orders: list[int]) -> list[str]:
    """Deliver the same events in each arrival order, each time to a fresh Customer; the states they end in."""
    outcomes = []
    for order in orders:
        name = _new_customer(cluster)
        for index in order:
            raw = json.dumps(events[index])
            event = json.loads(
                raw.replace("CUSTOMER", name).replace("cus_X", f"cus_{name}").replace("sub_X", f"sub_{name}")
            )
            event["id"] = f"{event['id']}_{name}"
            assert _post(client, event) == 200
        live = _get(cluster, name)
        billing = live["status"]["billing"]
        assert billing["subscriptionId"] == f"sub_{name}"
        assert billing["paidTier"] == "pro"
        outcomes.append(billing["state"])
    return outcomes


def _sub(kind: str, at: int, status: str) -> dict[str, Any]:
    return se.subscription(kind, at, "CUSTOMER", "cus_X", "sub_X", status, PRICES["pro"], at, at + se.MONTH)


def _inv(kind: str, at: int) -> dict[str, Any]:
    return se.invoice(kind, at, "CUSTOMER", "cus_X", "sub_X", at, at + se.MONTH)


def test_stripe_bursts_within_one_second(cluster_client: TestClient, customer_crd: Cluster) -> None:
    t = int(time.time()) - 3600
    checkout = se.checkout_completed(t - 100, "CUSTOMER", "cus_X", "sub_X", "pro")
    # The final retry fails: the invoice and the subscription going unpaid carry the same second.
    final_retry = [checkout, _inv("invoice.payment_failed", t), _sub("customer.subscription.updated", t, "unpaid")]
    assert _burst(cluster_client, customer_crd, final_retry, [0, 1, 2], [0, 2, 1]) == ["unpaid", "unpaid"]
    # Checkout and its first invoice: session, incomplete subscription, paid invoice, active subscription.
    first = [
        se.checkout_completed(t, "CUSTOMER", "cus_X", "sub_X", "pro"),
        _sub("customer.subscription.created", t, "incomplete"),
        _inv("invoice.paid", t),
        _sub("customer.subscription.updated", t, "active"),
    ]
    assert _burst(cluster_client, customer_crd, first, [0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]) == ["active"] * 3
    # A trial: the session needs no payment, its 0.00 invoice is paid, the subscription is trialing.
    trial = [
        se.checkout_completed(t, "CUSTOMER", "cus_X", "sub_X", "pro", paid=False),
        _inv("invoice.paid", t),
        _sub("customer.subscription.created", t, "trialing"),
    ]
    assert _burst(cluster_client, customer_crd, trial, [0, 1, 2], [2, 1, 0]) == ["trialing", "trialing"]
    # Paused: the subscription's pause and update in one second, a stray failed invoice after them.
    paused = [
        checkout,
        _sub("customer.subscription.paused", t, "paused"),
        _sub("customer.subscription.updated", t, "paused"),
        _inv("invoice.payment_failed", t + 1),
    ]
    assert _burst(cluster_client, customer_crd, paused, [0, 1, 2, 3], [3, 2, 0, 1]) == ["paused", "paused"]
    # Cancelled at period end: the last update and the deletion in one second, a final invoice beside them.
    cancel = [
        checkout,
        _sub("customer.subscription.updated", t - 50, "active"),
        _inv("invoice.paid", t),
        _sub("customer.subscription.updated", t, "canceled"),
        _sub("customer.subscription.deleted", t, "canceled"),
    ]
    assert _burst(cluster_client, customer_crd, cancel, [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]) == ["canceled", "canceled"]


def test_a_second_checkouts_subscription_does_not_fight_the_first(
    cluster_client: TestClient, customer_crd: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    name = _new_customer(customer_crd, tier="pro")
    t, end = int(time.time()) - 600, int(time.time()) + se.MONTH
    sub1, sub2 = f"sub_1{name}", f"sub_2{name}"
    first = [
        se.checkout_completed(t, name, "cus_first", sub1, "pro"),
        se.subscription(
            "customer.subscription.updated", t + 1, name, "cus_first", sub1, "active", PRICES["pro"], t, end
        ),
    ]
    # Opened in a second tab before the first completed: another Stripe customer and subscription.
    second = [
        se.checkout_completed(t + 5, name, "cus_second", sub2, "team"),
        se.subscription(
            "customer.subscription.updated", t + 6, name, "cus_second", sub2, "active", PRICES["team"], t, end
        ),
        se.subscription(
            "customer.subscription.deleted", t + 60, name, "cus_second", sub2, "canceled", PRICES["team"], t, end
        ),
    ]
    for event in [first[0], second[0], second[1], first[1], second[2]]:
        assert _post(cluster_client, event) == 200
    live = _get(customer_crd, name)
    billing = live["status"]["billing"]
    assert (billing["state"], billing["subscriptionId"], billing["customerId"]) == ("active", sub1, "cus_first")
    assert billing["paidTier"] == "pro"
    assert live["spec"]["tier"] == "pro", "the ignored subscription's tier is not applied"
    ignored = [r for r in caplog.records if getattr(r, "customer", None) == name and r.levelname == "WARNING"]
    assert ignored, "a person is told about the second subscription (it is charged and must be refunded)"
    assert getattr(ignored[-1], "ignored_events", 0) == len(second)


@pytest.fixture
def read_only_kubeconfig(customer_crd: Cluster, tmp_path: Path) -> Iterator[Path]:
    """A ServiceAccount that may list and watch Customers but change nothing: every billing write fails."""
    cluster, folder = customer_crd, tmp_path
    name = f"ro-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "serviceaccount", name, "-n", "platform")
    cluster.kubectl("create", "clusterrole", name, "--verb=get,list,watch", "--resource=customers.clawhost.dev")
    cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}", f"--serviceaccount=platform:{name}")
    path = cluster.service_account_kubeconfig("platform", name, folder / f"{name}.kubeconfig", duration="1h")
    yield path
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False)
    cluster.kubectl("delete", "serviceaccount", name, "-n", "platform", "--ignore-not-found", check=False)


def test_an_event_that_could_not_be_applied_is_applied_on_redelivery(
    cluster_settings: Settings, customer_crd: Cluster, read_only_kubeconfig: Path
) -> None:
    name = _new_customer(customer_crd)
    checkout = se.checkout_completed(int(time.time()), name, f"cus_{name}", f"sub_{name}", "pro")
    broken = cluster_settings.model_copy(update={"kubeconfig": read_only_kubeconfig})
    with TestClient(create_app(broken)) as client:
        assert _post(client, checkout) == 503, "stored but not applied: Stripe must retry"
    assert "billing" not in _get(customer_crd, name).get("status", {})
    with TestClient(create_app(cluster_settings)) as client:
        payload = se.as_payload(checkout)
        headers = {"Stripe-Signature": se.sign(payload, WEBHOOK_SECRET), "Content-Type": "application/json"}
        retried = client.post("/webhooks/stripe", content=payload, headers=headers)
        assert retried.status_code == 200
        assert "duplicate" not in retried.json(), "the redelivery is folded, not dropped"
        assert _get(customer_crd, name)["status"]["billing"]["state"] == "active"
        again = client.post("/webhooks/stripe", content=payload, headers=headers)
        assert again.json().get("duplicate") is True, "once applied, a redelivery is a no-op"
