"""/ws/onboarding on the control API as a real process with its onboarding service down: Origin, limits, and whose
progress a connection may follow. The whole journey, with the service and the operator, is in tests/journey_tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from websockets.exceptions import InvalidStatus

from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.config import Settings
from clawhost_control_api.journey.agent_from_result import AgentAndCheckout, agent_and_checkout
from clawhost_control_api.journey.frames import OnboardedAgent
from clawhost_control_api.main import create_app
from clawhost_localcluster.control_api_process import ControlApiProcess, StartApi
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.onboarding_chat import ChatClient
from clawhost_localcluster.platform import CustomerFactory
from clawhost_localcluster.processes import free_port
from clawhost_localcluster.stripe_mock import StripeMock

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "7712345678:AAFx_onboarding_socket_token_abcdefghij"
WEBHOOK_SECRET = "whsec_onboarding_socket_test"
SITE = "https://site.test"  # the site's origin, as CLAWHOST_API_SITE_ORIGINS names it
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}


def _nothing_listens() -> str:
    return f"ws://127.0.0.1:{free_port()}/v1/onboarding"


def test_a_foreign_or_missing_origin_is_refused_before_the_upgrade(start_api: StartApi) -> None:
    api = start_api(onboarding_url=_nothing_listens(), site_origins=json.dumps([SITE]))
    for origin in ("https://evil.example", api.url, "https://site.test.evil.example", "null"):
        with pytest.raises(InvalidStatus) as refused:
            ChatClient.open(api.url, origin=origin)
        assert refused.value.response.status_code == 403
        assert json.loads(refused.value.response.body or b"{}") == {
            "detail": "this origin may not open the onboarding chat"
        }
    with pytest.raises(InvalidStatus) as missing:
        ChatClient.open(api.url, origin="")
    assert missing.value.response.status_code == 403
    # The site's own origin is let in: hello reaches the relay, whose service is down.
    chat = ChatClient.open(api.url, origin=SITE)
    chat.hello()
    error = chat.until_type("error")
    assert (error["code"], error["retryable"]) == ("internal", True)
    assert chat.close_code() == 1011


def test_limits_answer_with_clear_error_frames(start_api: StartApi) -> None:
    api = start_api(
        onboarding_url=_nothing_listens(),
        onboarding_max_frame_bytes="1024",
        onboarding_frame_rate=json.dumps({"count": 3, "seconds": 600}),
        onboarding_idle_seconds="3",
        site_origins=json.dumps([SITE]),
    )
    chat = ChatClient.open(api.url, origin=SITE)
    chat.send("x" * 2000)
    too_large = chat.next()
    assert too_large == {
        "type": "error",
        "code": "frame_too_large",
        "message": "A frame may hold at most 1024 bytes; shorten it.",
        "retryable": False,
    }
    chat.send(b"\x00binary")
    assert chat.next()["code"] == "bad_request"
    chat.send("not json")  # counted: 1
    assert chat.next()["code"] == "bad_request"
    chat.send({"type": "message", "text": "hi"})  # 2
    first = chat.next()
    assert (first["code"], first["message"]) == ("bad_request", "Send hello first.")
    chat.send({"type": "launch_missiles"})  # 3
    assert chat.next()["code"] == "bad_request"
    chat.send({"type": "message", "text": "hi"})  # 4: over the limit
    limited = chat.next()
    assert (limited["code"], limited["retryable"]) == ("rate_limited", True)
    assert "at most 3 every 600 s" in limited["message"]
    # Then silence: the idle timeout says so and closes.
    idle = chat.next(timeout=30)
    assert (idle["code"], idle["retryable"]) == ("idle_timeout", True)
    assert chat.close_code() == 1000


@pytest.fixture
def journey_api(
    start_api: StartApi,
    api_kubeconfig: Path,
    stripe_mock: StripeMock,
    customer_crd: Cluster,
) -> ControlApiProcess:
    """The control API process with local checkout on; the onboarding service is down."""
    return start_api(
        kubeconfig=str(api_kubeconfig),
        stripe_api_key="sk_test_123",
        stripe_api_base=stripe_mock.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_price_ids=json.dumps(PRICES),
        local_checkout="true",
        onboarding_url=_nothing_listens(),
        site_origins=json.dumps([SITE]),
    )


@pytest.fixture
def in_process(
    cluster_settings: Settings, journey_api: ControlApiProcess, stripe_mock: StripeMock
) -> Iterator[TestClient]:
    """The same control API in this process (same database, keys, cluster), to make a journey as a result would."""
    settings = cluster_settings.model_copy(
        update={
            "stripe_api_key": SecretStr("sk_test_123"),
            "stripe_api_base": stripe_mock.url,
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "local_checkout": True,
            "public_url": journey_api.url,
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _account(client: TestClient) -> tuple[uuid.UUID, str]:
    email = f"w{uuid.uuid4().hex[:8]}@example.com"
    client.post("/auth/signup", json={"email": email, "password": "long enough pw"})
    token = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()["access_token"]
    user = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["id"]
    return uuid.UUID(user), token


def _journey(client: TestClient, user: uuid.UUID, session: str, agent: OnboardedAgent) -> AgentAndCheckout:
    """What the relay does with the service's `result` frame, done here in-process (same database and cluster)."""
    state: AppState = client.app.state.clawhost  # type: ignore[attr-defined]
    kube = state.kube
    assert kube is not None
    assert client.portal is not None
    return client.portal.call(lambda: agent_and_checkout(state, kube, user, session, agent, "my_helper_bot"))


def test_only_the_sessions_account_sees_its_progress(
    journey_api: ControlApiProcess, in_process: TestClient, customers: CustomerFactory
) -> None:
    user, _ = _account(in_process)
    _, stranger = _account(in_process)
    session = f"s-{uuid.uuid4().hex}"
    agent = OnboardedAgent.model_validate({"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [5]})
    made = _journey(in_process, user, session, agent)
    customers.created.append(made.customer_name)
    for token in (None, stranger, "not-a-jwt"):
        chat = ChatClient.open(journey_api.url, origin=SITE)
        chat.hello(session_id=session, access_token=token)
        assert chat.next()["code"] == "internal"
        assert chat.close_code() == 1011, "not following someone else's agent: nothing to keep the connection for"
        assert not [f for f in chat.seen if f["type"] == "provisioning"]
