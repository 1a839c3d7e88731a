"""Dashboard routes against the real API server, acting as the control API's ServiceAccount."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clawhost_control_api.api.routes.agent import view_of
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _login(client: TestClient) -> dict[str, str]:
    email = f"a{uuid.uuid4().hex[:8]}@example.com"
    assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _get(cluster: Cluster, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json", "--show-managed-fields").stdout)
    return result


def test_create_read_update_own_agent(cluster_client: TestClient, customer_crd: Cluster) -> None:
    auth = _login(cluster_client)
    assert cluster_client.get("/agent", headers=auth).status_code == 404
    created = cluster_client.post(
        "/agent", headers=auth, json={"tier": "team", "bot_token": TOKEN, "allowed_user_ids": [111, 222]}
    )
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    live = _get(customer_crd, "customer", name)
    assert live["spec"]["tier"] == "team"
    assert live["spec"]["telegram"]["allowedUserIds"] == [111, 222]
    secret_name = live["spec"]["telegram"]["botTokenSecretRef"]["name"]
    secret = _get(customer_crd, "secret", secret_name, "-n", "clawhost-secrets")
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
    assert TOKEN not in json.dumps(live)
    assert (
        cluster_client.post(
            "/agent", headers=auth, json={"tier": "pro", "bot_token": TOKEN, "allowed_user_ids": [1]}
        ).status_code
        == 409
    )

    # Billing facts: only the webhooks write status.billing (the operator, which may be running in this session
    # once operator tests ran, rewrites the rest of status); the cache follows the watch.
    billing = {"state": "active", "paidTier": "team", "currentPeriodEnd": "2026-12-31T00:00:00Z"}
    customer_crd.patch_customer_status(name, {"billing": billing})

    def billed() -> dict[str, Any] | None:
        body: dict[str, Any] = cluster_client.get("/agent", headers=auth).json()
        return body if body["billing_state"] == "active" else None

    view = eventually(billed, timeout=20, what="watch delivers the status")
    assert view["paid_tier"] == "team"
    assert view["current_period_end"].startswith("2026-12-31")
    assert view["namespace"] == f"customer-{name}"
    assert view["tier"] == "team"
    assert view["thinking"] == "high"

    changed = cluster_client.patch("/agent", headers=auth, json={"thinking": "low"})
    assert changed.status_code == 200, changed.text
    changed = cluster_client.patch("/agent", headers=auth, json={"suspend": True})
    assert changed.status_code == 200
    live = _get(customer_crd, "customer", name)
    assert live["spec"]["agent"]["thinking"] == "low", "an earlier change survives a later partial one"
    assert live["spec"]["dashboardSuspend"] is True
    assert live["spec"]["suspend"] is False, "the platform's switch is not the dashboard's"
    assert live["spec"]["telegram"]["allowedUserIds"] == [111, 222]
    assert "clawhost-dashboard" in {m["manager"] for m in live["metadata"]["managedFields"]}
    assert live["status"]["billing"]["state"] == "active", "the dashboard's spec writes leave status alone"

    new_token = "987654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsbb"
    assert cluster_client.put("/agent/bot-token", headers=auth, json={"bot_token": new_token}).status_code == 204
    # The same token again: the write-only policy refuses an update that keeps a stored value, which is success.
    assert cluster_client.put("/agent/bot-token", headers=auth, json={"bot_token": new_token}).status_code == 204
    secret = _get(customer_crd, "secret", secret_name, "-n", "clawhost-secrets")
    assert base64.b64decode(secret["data"]["token"]).decode() == new_token


def test_the_view_reads_ready_and_its_reason_from_the_conditions() -> None:
    customer: dict[str, Any] = {
        "metadata": {"name": "c1"},
        "spec": {"tier": "starter", "telegram": {"botTokenSecretRef": {"name": "s"}, "allowedUserIds": [1]}},
        "status": {
            "phase": "Running",
            "namespace": "customer-c1",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Running", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ],
        },
    }
    running = view_of(customer)
    assert (running.phase, running.ready, running.reason) == ("Running", True, None)
    customer["status"]["phase"] = "Failed"
    customer["status"]["conditions"][0].update(status="False", reason="BotTokenMissing")
    failed = view_of(customer)
    assert (failed.phase, failed.ready, failed.reason) == ("Failed", False, "BotTokenMissing")


def test_tier_limits_and_bad_input(cluster_client: TestClient, customer_crd: Cluster) -> None:
    auth = _login(cluster_client)
    too_many = cluster_client.post(
        "/agent", headers=auth, json={"tier": "pro", "bot_token": TOKEN, "allowed_user_ids": [1, 2]}
    )
    assert too_many.status_code == 422
    assert "at most 1 Telegram user" in too_many.json()["detail"]
    bad_token = cluster_client.post(
        "/agent", headers=auth, json={"tier": "pro", "bot_token": "123:short-secret-value", "allowed_user_ids": [1]}
    )
    assert bad_token.status_code == 422
    assert "bot token" in bad_token.text
    assert "short-secret-value" not in bad_token.text, "submitted secrets are never echoed"
    assert cluster_client.get("/agent", headers=auth).status_code == 404, "no partial state"
    ok = cluster_client.post("/agent", headers=auth, json={"tier": "pro", "bot_token": TOKEN, "allowed_user_ids": [7]})
    assert ok.status_code == 201
    high = cluster_client.patch("/agent", headers=auth, json={"thinking": "high"})
    assert high.status_code == 422
    assert "at most medium" in high.json()["detail"]
    model = cluster_client.patch("/agent", headers=auth, json={"model": "gpt-9"})
    assert model.status_code == 422
    allowed = cluster_client.patch("/agent", headers=auth, json={"model": "kimi-k2-thinking"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["model"] == "kimi-k2-thinking"
    assert _get(customer_crd, "customer", ok.json()["name"])["spec"]["agent"]["model"] == "kimi-k2-thinking"


def test_starter_offers_only_its_models_and_the_user_can_suspend_and_resume(
    cluster_client: TestClient, customer_crd: Cluster
) -> None:
    auth = _login(cluster_client)
    created = cluster_client.post(
        "/agent", headers=auth, json={"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [8]}
    )
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    refused = cluster_client.patch("/agent", headers=auth, json={"model": "kimi-k2-thinking"})
    assert refused.status_code == 422
    assert "kimi-k2.5" in refused.json()["detail"]
    suspended = cluster_client.patch("/agent", headers=auth, json={"suspend": True}).json()
    assert (suspended["suspended"], suspended["suspended_by"]) == (True, ["you"])
    assert _get(customer_crd, "customer", name)["spec"]["dashboardSuspend"] is True
    resumed = cluster_client.patch("/agent", headers=auth, json={"suspend": False})
    assert resumed.status_code == 200
    assert (resumed.json()["suspended"], resumed.json()["suspended_by"]) == (False, [])
    live = _get(customer_crd, "customer", name)
    assert live["spec"]["dashboardSuspend"] is False
    assert "model" not in live["spec"].get("agent", {}), "a refused change wrote nothing"


def test_users_see_only_their_own_agent(cluster_client: TestClient, customer_crd: Cluster) -> None:
    alice, bob = _login(cluster_client), _login(cluster_client)
    body = {"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [5]}
    a = cluster_client.post("/agent", headers=alice, json=body).json()["name"]
    assert cluster_client.get("/agent", headers=bob).status_code == 404
    b = cluster_client.post("/agent", headers=bob, json=body).json()["name"]
    assert a != b
    assert cluster_client.get("/agent", headers=alice).json()["name"] == a
    assert cluster_client.get("/agent", headers=bob).json()["name"] == b
    assert cluster_client.get("/agent").status_code == 401


def test_ids_beyond_the_paid_tier_show_as_inactive_and_changes_are_judged_by_it(
    cluster_client: TestClient, customer_crd: Cluster
) -> None:
    """Team with 10 ids, then Stripe pays only for starter (the downgrade's spec patch failed CEL): the dashboard
    shows what runs, the first id, and 9 inactive; a change is judged by the paid tier."""
    auth = _login(cluster_client)
    ids = list(range(9001, 9011))
    body = {"tier": "team", "bot_token": TOKEN, "allowed_user_ids": ids, "thinking": "high"}
    created = cluster_client.post("/agent", headers=auth, json=body)
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    billing = {"state": "active", "paidTier": "starter", "customerId": "cus_x", "subscriptionId": "sub_x"}
    customer_crd.patch_customer_status(name, {"billing": billing})

    def starter_paid() -> dict[str, Any] | None:
        view: dict[str, Any] = cluster_client.get("/agent", headers=auth).json()
        return view if view["paid_tier"] == "starter" else None

    view = eventually(starter_paid, timeout=20, what="the watch to deliver status.billing")
    assert view["tier"] == "team"
    assert view["effective_tier"] == "starter"
    assert view["allowed_user_ids"] == ids
    assert view["active_user_ids"] == [9001]
    assert view["inactive_user_ids"] == ids[1:]
    assert view["thinking"] == "medium", "the starter tier's level runs"
    refused = cluster_client.patch("/agent", headers=auth, json={"allowed_user_ids": [9001, 9002]})
    assert refused.status_code == 422
    assert "starter tier allows at most 1" in refused.json()["detail"]
    fixed = cluster_client.patch("/agent", headers=auth, json={"allowed_user_ids": [9002]})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["active_user_ids"] == [9002], "an id the agent was created with can be removed"
    assert fixed.json()["inactive_user_ids"] == []
    assert _get(customer_crd, "customer", name)["spec"]["telegram"]["allowedUserIds"] == [9002]


def test_heartbeat_is_off_by_default_and_a_chosen_one_shows_its_monthly_cost(
    cluster_client: TestClient, customer_crd: Cluster
) -> None:
    auth = _login(cluster_client)
    created = cluster_client.post(
        "/agent", headers=auth, json={"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [3]}
    )
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    off = created.json()["heartbeat"]
    assert off["every"] == "0m"
    assert off["estimated_monthly_tokens"] == 0
    assert _get(customer_crd, "customer", name)["spec"]["heartbeat"]["every"] == "0m"

    chosen = {
        "every": "2h",
        "light_context": True,
        "isolated_session": True,
        "active_hours": {"start": "08:00", "end": "20:00", "timezone": "Europe/Berlin"},
    }
    changed = cluster_client.patch("/agent", headers=auth, json={"heartbeat": chosen})
    assert changed.status_code == 200, changed.text
    view = changed.json()["heartbeat"]
    assert {k: view[k] for k in chosen} == chosen
    assert view["estimated_monthly_tokens"] == 6 * 30 * (8_000 + 10)  # 6 turns a day in a 12-hour window
    assert view["share_of_allowance"] == round(6 * 30 * 8_010 / 1_000_000, 3)
    assert _get(customer_crd, "customer", name)["spec"]["heartbeat"] == {
        "every": "2h",
        "lightContext": True,
        "isolatedSession": True,
        "activeHours": {"start": "08:00", "end": "20:00", "timezone": "Europe/Berlin"},
    }
    other = cluster_client.patch("/agent", headers=auth, json={"thinking": "low"})
    assert other.json()["heartbeat"]["every"] == "2h", "a change of something else keeps the heartbeat"

    for bad, message in [
        ({"every": "5m"}, "heartbeat cadence must be from 15m to 24h, or 0m (off)"),
        ({"every": "every hour"}, "heartbeat cadence must be minutes or hours like 30m or 2h (0m: off)"),
        ({"every": "1h", "active_hours": {"start": "8", "end": "20:00"}}, "active hours start at HH:MM"),
        ({"every": "1h", "active_hours": {"start": "08:00", "end": "25:00"}}, "active hours end at HH:MM"),
        ({"every": "1h", "active_hours": {"start": "08:00", "end": "08:00"}}, "start and end must differ"),
        (
            {"every": "1h", "active_hours": {"start": "08:00", "end": "20:00", "timezone": "Mars/Olympus"}},
            "unknown time zone",
        ),
    ]:
        refused = cluster_client.patch("/agent", headers=auth, json={"heartbeat": bad})
        assert refused.status_code == 422, bad
        assert message in json.dumps(refused.json()), refused.text
    assert _get(customer_crd, "customer", name)["spec"]["heartbeat"]["every"] == "2h", "refused changes wrote nothing"


def _owner_of_suspend(live: dict[str, Any]) -> set[str]:
    """The field managers that own spec.suspend (server-side apply's managedFields)."""
    return {
        m["manager"]
        for m in live["metadata"]["managedFields"]
        if "f:suspend" in m.get("fieldsV1", {}).get("f:spec", {})
    }


def test_the_dashboard_never_takes_over_a_platform_suspension(
    cluster_client: TestClient, customer_crd: Cluster
) -> None:
    auth = _login(cluster_client)
    created = cluster_client.post(
        "/agent", headers=auth, json={"tier": "team", "bot_token": TOKEN, "allowed_user_ids": [31]}
    )
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    # A person suspends the agent by hand, as the runbook says.
    customer_crd.kubectl("patch", "customer", name, "--type=merge", "-p", '{"spec":{"suspend":true}}')

    def seen_suspended() -> dict[str, Any] | None:
        view: dict[str, Any] = cluster_client.get("/agent", headers=auth).json()
        return view if view["suspended"] else None

    view = eventually(seen_suspended, timeout=20, what="the cache to see the platform's suspension")
    assert view["suspended_by"] == ["platform"]
    # The customer's resume cannot undo it: 409, nothing written.
    resume = cluster_client.patch("/agent", headers=auth, json={"suspend": False})
    assert resume.status_code == 409
    assert resume.headers["content-type"] == "application/json"
    assert "suspended by the platform" in resume.json()["detail"]
    # Other dashboard changes (its apply is forced) leave the platform's field and its owner alone.
    assert cluster_client.patch("/agent", headers=auth, json={"allowed_user_ids": [31, 32]}).status_code == 200
    assert cluster_client.patch("/agent", headers=auth, json={"suspend": True}).json()["suspended_by"] == [
        "you",
        "platform",
    ]
    live = _get(customer_crd, "customer", name)
    assert live["spec"]["suspend"] is True
    assert "clawhost-dashboard" not in _owner_of_suspend(live), _owner_of_suspend(live)
    assert _owner_of_suspend(live) == {"kubectl-patch"}
    # The person lifts theirs: still suspended by the customer's own switch until the customer resumes.
    customer_crd.kubectl("patch", "customer", name, "--type=merge", "-p", '{"spec":{"suspend":false}}')

    def suspended_only_by_you() -> dict[str, Any] | None:
        view: dict[str, Any] = cluster_client.get("/agent", headers=auth).json()
        return view if view["suspended_by"] == ["you"] else None

    view = eventually(suspended_only_by_you, timeout=20, what="the cache to see the platform's resume")
    assert view["suspended"] is True
    resumed = cluster_client.patch("/agent", headers=auth, json={"suspend": False})
    assert resumed.status_code == 200
    assert (resumed.json()["suspended"], resumed.json()["suspended_by"]) == (False, [])


def test_a_heartbeat_chosen_at_creation_is_replaced_whole(cluster_client: TestClient, customer_crd: Cluster) -> None:
    auth = _login(cluster_client)
    chosen = {"every": "1h", "active_hours": {"start": "09:00", "end": "17:00", "timezone": "UTC"}}
    body = {"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [4], "heartbeat": chosen}
    created = cluster_client.post("/agent", headers=auth, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["heartbeat"]["active_hours"] == chosen["active_hours"]
    changed = cluster_client.patch("/agent", headers=auth, json={"heartbeat": {"every": "2h"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["heartbeat"]["active_hours"] is None
    spec = _get(customer_crd, "customer", created.json()["name"])["spec"]
    assert spec["heartbeat"] == {"every": "2h", "lightContext": True, "isolatedSession": True}
