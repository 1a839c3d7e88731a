"""The dashboard's live stream against the real control API process and API server: a Customer's status change
reaches a connected client within 1 s, usage and health are pushed, and a stream only ever shows its own user's
agent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import yaml

from clawhost_api.customer import BillingStatus
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_localcluster.control_api_process import ControlApiProcess, StartApi
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.event_stream import EventStream
from clawhost_localcluster.relay import TcpRelay

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def api(start_api: StartApi, api_kubeconfig: Path) -> ControlApiProcess:
    """The default intervals (usage 5 s, keep-alive 15 s): a change seen sooner was pushed by the cache's notice."""
    return start_api(kubeconfig=str(api_kubeconfig))


@pytest.fixture
def fast_api(start_api: StartApi, api_kubeconfig: Path) -> ControlApiProcess:
    return start_api(kubeconfig=str(api_kubeconfig), dashboard_usage_seconds="0.2", dashboard_keepalive_seconds="1")


def _sign_in(api: ControlApiProcess) -> dict[str, str]:
    email = f"live{uuid.uuid4().hex[:8]}@example.com"
    assert httpx.post(f"{api.url}/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
    tokens = httpx.post(f"{api.url}/auth/login", json={"email": email, "password": "long enough pw"}).json()
    return {"Authorization": f"Bearer {tokens['access_token']}", "X-Refresh": tokens["refresh_token"]}


def _agent(api: ControlApiProcess, auth: dict[str, str], tier: str = "starter") -> str:
    body = {"tier": tier, "bot_token": TOKEN, "allowed_user_ids": [42]}
    created = httpx.post(f"{api.url}/agent", headers=auth, json=body, timeout=30)
    assert created.status_code == 201, created.text
    return str(created.json()["name"])


@pytest.fixture
def streams() -> Iterator[list[EventStream]]:
    opened: list[EventStream] = []
    yield opened
    for stream in opened:
        stream.close()


def _open(api: ControlApiProcess, auth: dict[str, str], streams: list[EventStream]) -> EventStream:
    stream = EventStream(f"{api.url}/agent/events", {"Authorization": auth["Authorization"]})
    streams.append(stream)
    assert stream.status == 200
    return stream


def test_a_status_change_reaches_the_client_within_one_second(
    api: ControlApiProcess, customer_crd: Cluster, streams: list[EventStream]
) -> None:
    auth = _sign_in(api)
    name = _agent(api, auth)
    stream = _open(api, auth, streams)
    first = stream.next_event("agent")
    assert first.data["agent"]["name"] == name
    assert first.data["status"]["state"] == "payment_needed", "no payment yet: the words say so"
    assert stream.next_event("health").data == {"cluster": True, "usage": True, "messages": []}

    changes: list[tuple[dict[str, Any], str]] = [
        ({"billing": {"state": "active", "customerId": "cus_live"}}, "starting"),
        ({"phase": "Provisioning"}, "starting"),
        (
            {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Running",
                        "lastTransitionTime": "2026-12-01T00:00:00Z",
                    }
                ],
            },
            "running",
        ),
        ({"billing": {"state": "unpaid"}}, "payment_needed"),
        ({"billing": {"state": "canceled"}}, "cancelled"),
    ]
    delays = []
    for status, state in changes:
        before = time.monotonic()  # an upper bound: it includes kubectl's own start and request
        customer_crd.patch_customer_status(name, status)
        event = stream.next_event("agent", timeout=10, where=lambda d, s=state: d["status"]["state"] == s)
        delays.append(event.arrived - before)
    print("status change -> event (s):", [round(d, 3) for d in delays])
    assert max(delays) < 1.0, f"status change to page: {[round(d, 3) for d in delays]} s"


def test_suspend_from_another_tab_and_usage_moves_are_pushed(
    fast_api: ControlApiProcess, customer_crd: Cluster, streams: list[EventStream], redis_url: str
) -> None:
    api = fast_api
    auth = _sign_in(api)
    name = _agent(api, auth)
    stream = _open(api, auth, streams)
    usage = stream.next_event("usage")
    assert usage.data["usage"]["tokens_used"] == 0
    assert usage.data["gauge"]["limit"] == 1_000_000
    assert usage.data["chart_svg"].startswith("<svg")

    assert httpx.patch(f"{api.url}/agent", headers=auth, json={"suspend": True}, timeout=30).status_code == 200
    suspended = stream.next_event("agent", where=lambda d: d["agent"]["suspended"])
    assert suspended.data["agent"]["suspended_by"] == ["you"]

    period = usage_period(BillingStatus())
    redis.Redis.from_url(redis_url).set(usage_counter_key(name, period), 850_000)
    moved = stream.next_event("usage", where=lambda d: d["usage"]["tokens_used"] == 850_000)
    assert moved.data["gauge"]["level"] == "high"
    assert "850k of 1M tokens used" in moved.data["gauge"]["text"]


def test_the_chart_catches_up_with_a_ledger_that_lags_the_counter(
    fast_api: ControlApiProcess, customer_crd: Cluster, streams: list[EventStream], redis_url: str, database_url: str
) -> None:
    """The proxy counts at once and files its ledger row later; a row filed long after the count still reaches the
    chart (it once stayed at 0 for good when the row came more than three ticks late on a busy machine)."""
    api = fast_api
    auth = _sign_in(api)
    name = _agent(api, auth)
    stream = _open(api, auth, streams)
    assert stream.next_event("usage").data["usage"]["days"] == []

    now = datetime.now(UTC)
    period = usage_period(BillingStatus(), now)
    redis.Redis.from_url(redis_url).set(usage_counter_key(name, period), 1_234)
    counted = stream.next_event("usage", where=lambda d: d["usage"]["tokens_used"] == 1_234)
    assert counted.data["usage"]["days"] == [], "the row is not filed yet"
    time.sleep(3.0)  # the lag itself (15 ticks of 0.2 s), not a wait for something to happen
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO token_ledger (id, request_id, customer, tier, model, prompt_tokens, completion_tokens,"
            " latency_ms, status, created_at, cached_prompt_tokens, charged_tokens)"
            " VALUES (%s, 'late', %s, 'starter', 'kimi', 1000, 234, 10, 200, %s, 0, 1234)",
            (f"{name}-late", name, now),
        )
    filed = stream.next_event("usage", timeout=10, where=lambda d: d["usage"]["days"] != [])
    assert [(d["day"], d["charged_tokens"]) for d in filed.data["usage"]["days"]] == [(now.date().isoformat(), 1_234)]
    assert f"{now.day} {now:%b}: 1,234 tokens" in filed.data["chart_svg"]


def test_a_stream_shows_only_its_own_users_agent(
    api: ControlApiProcess, customer_crd: Cluster, streams: list[EventStream]
) -> None:
    alice, bob = _sign_in(api), _sign_in(api)
    alices = _agent(api, alice)
    bob_stream = _open(api, bob, streams)
    assert bob_stream.next_event("agent").data["status"]["state"] == "no_agent"
    customer_crd.patch_customer_status(alices, {"phase": "Provisioning"})
    bobs = _agent(api, bob)
    seen = bob_stream.next_event("agent", where=lambda d: d["agent"] is not None)
    assert seen.data["agent"]["name"] == bobs
    customer_crd.patch_customer_status(alices, {"billing": {"state": "active"}})
    customer_crd.patch_customer_status(bobs, {"billing": {"state": "past_due"}})
    later = bob_stream.next_event("agent", where=lambda d: d["agent"]["billing_state"] == "past_due")
    assert later.data["agent"]["name"] == bobs
    while not bob_stream.events.empty():
        event = bob_stream.events.get()
        assert alices not in str(event.data), "never another user's agent"


def test_no_token_is_refused_and_logout_ends_the_stream(
    fast_api: ControlApiProcess, customer_crd: Cluster, streams: list[EventStream]
) -> None:
    api = fast_api
    refused = httpx.get(f"{api.url}/agent/events")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "missing bearer token"}
    auth = _sign_in(api)
    stream = _open(api, auth, streams)
    stream.next_event("agent")
    assert httpx.post(f"{api.url}/auth/logout", json={"refresh_token": auth["X-Refresh"]}).status_code == 204
    assert stream.next_event("expired", timeout=10).data == {"detail": "you were signed out"}
    assert stream.ended.wait(10), "the server closed the stream"


def test_the_api_server_or_redis_down_is_pushed_as_health_and_recovers(
    start_api: StartApi,
    api_kubeconfig: Path,
    api_relay: TcpRelay,
    redis_url: str,
    customer_crd: Cluster,
    streams: list[EventStream],
    tmp_path: Path,
) -> None:
    """The control API reaches the API server and Redis through relays a test can cut: the page hears of each
    outage at once, in words, and of the recovery; the agent's last known state stays on the page."""
    config = yaml.safe_load(api_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://{api_relay.address}"
    kubeconfig = tmp_path / "relayed.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    redis_relay = TcpRelay("127.0.0.1", redis_port)
    redis_relay.start()
    try:
        api = start_api(
            kubeconfig=str(kubeconfig), redis_url=f"redis://{redis_relay.address}/0", dashboard_usage_seconds="0.2"
        )
        auth = _sign_in(api)
        name = _agent(api, auth)
        stream = _open(api, auth, streams)
        stream.next_event("health", where=lambda d: d["cluster"] and d["usage"])

        api_relay.cut()
        down = stream.next_event("health", where=lambda d: not d["cluster"])
        assert "cannot reach the cluster" in down.data["messages"][0]
        refused = httpx.patch(f"{api.url}/agent", headers=auth, json={"suspend": True}, timeout=60)
        assert refused.status_code == 503, refused.text
        assert "retry" in refused.json()["detail"]
        still = httpx.get(f"{api.url}/agent", headers=auth)
        assert still.status_code == 200
        assert still.json()["name"] == name, "the last known state is still shown"
        api_relay.start()
        stream.next_event("health", timeout=40, where=lambda d: d["cluster"])

        redis_relay.cut()
        gone = stream.next_event("health", where=lambda d: not d["usage"])
        assert gone.data["messages"] == [
            "Usage figures cannot be read right now. While this lasts your agent may not be able to answer; "
            "it recovers by itself and nothing you saved is lost."
        ]
        usage = httpx.get(f"{api.url}/usage", headers=auth, timeout=30)
        assert usage.status_code == 503
        assert "retry in a minute" in usage.json()["detail"]
        redis_relay.start()
        stream.next_event("health", timeout=20, where=lambda d: d["usage"] and d["cluster"])
        assert httpx.get(f"{api.url}/usage", headers=auth, timeout=30).status_code == 200
    finally:
        redis_relay.stop()
