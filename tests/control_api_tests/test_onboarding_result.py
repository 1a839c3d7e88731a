"""The chat's typed result becomes one agent (POST /agent's code path) and one checkout, however often it arrives."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.config import Settings
from clawhost_control_api.journey.agent_from_result import AgentAndCheckout, JourneyError, agent_and_checkout
from clawhost_control_api.journey.frames import OnboardedAgent
from clawhost_control_api.main import create_app
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.platform import get_json
from clawhost_localcluster.stripe_mock import StripeMock

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "7712345678:AAFx_onboarding_result_token_abcdefghij"


@pytest.fixture
def app(cluster_settings: Settings, stripe_mock: StripeMock) -> Iterator[TestClient]:
    settings = cluster_settings.model_copy(
        update={"stripe_api_key": SecretStr("sk_test_123"), "stripe_api_base": stripe_mock.url}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _user(client: TestClient) -> tuple[uuid.UUID, dict[str, str]]:
    email = f"o{uuid.uuid4().hex[:8]}@example.com"
    client.post("/auth/signup", json={"email": email, "password": "long enough pw"})
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    return uuid.UUID(client.get("/auth/me", headers=auth).json()["id"]), auth


BOT = "my_helper_bot"


def _result(token: str | None = TOKEN, tier: str = "pro") -> OnboardedAgent:
    return OnboardedAgent.model_validate({"tier": tier, "bot_token": token, "allowed_user_ids": [987654321]})


def _make(client: TestClient, user: uuid.UUID, session: str, agent: OnboardedAgent) -> AgentAndCheckout:
    state: AppState = client.app.state.clawhost  # type: ignore[attr-defined]
    kube = state.kube
    assert kube is not None
    assert client.portal is not None
    return client.portal.call(lambda: agent_and_checkout(state, kube, user, session, agent, BOT))


def test_a_repeated_result_makes_one_agent_and_one_checkout(app: TestClient, customer_crd: Cluster) -> None:
    user, auth = _user(app)
    session = f"s-{uuid.uuid4().hex}"
    first = _make(app, user, session, _result())
    assert first.created
    assert first.checkout_url
    # Again with the token (the service had not dropped it yet), and again without (after secret_written).
    again = _make(app, user, session, _result())
    later = _make(app, user, session, _result(token=None))
    assert (again.customer_name, again.checkout_url) == (first.customer_name, first.checkout_url)
    assert (later.customer_name, later.checkout_url) == (first.customer_name, first.checkout_url)
    assert not again.created
    assert not later.created
    mine = app.get("/agent", headers=auth).json()
    assert mine["name"] == first.customer_name
    assert mine["tier"] == "pro"
    assert mine["allowed_user_ids"] == [987654321]

    customer = get_json(customer_crd, "customer", first.customer_name)
    assert TOKEN not in json.dumps(customer), "the bot token is never in the Customer"
    assert TOKEN.split(":")[1] not in json.dumps(customer)
    assert customer["spec"]["billing"] == {"mode": "stripe"}
    secret = get_json(customer_crd, "secret", f"bot-{first.customer_name}", "-n", "clawhost-secrets")
    assert secret["metadata"]["name"] == customer["spec"]["telegram"]["botTokenSecretRef"]["name"]


def test_results_at_once_still_make_one_agent(app: TestClient, customer_crd: Cluster) -> None:
    user, _ = _user(app)
    session = f"s-{uuid.uuid4().hex}"
    state: AppState = app.app.state.clawhost  # type: ignore[attr-defined]
    assert state.kube is not None
    made: list[AgentAndCheckout] = []

    async def both() -> None:
        async def one() -> None:
            made.append(await agent_and_checkout(state, state.kube, user, session, _result(), BOT))  # type: ignore[arg-type]

        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(one)

    app.portal.call(both)  # type: ignore[union-attr]
    assert len({m.customer_name for m in made}) == 1
    assert len({m.checkout_url for m in made}) == 1
    assert sum(m.created for m in made) == 1


def test_one_agent_per_account_and_a_session_stays_its_accounts(app: TestClient, customer_crd: Cluster) -> None:
    owner, auth = _user(app)
    created = app.post("/agent", headers=auth, json={"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [5]})
    assert created.status_code == 201
    with pytest.raises(JourneyError, match="already have an agent") as refused:
        _make(app, owner, f"s-{uuid.uuid4().hex}", _result())
    assert not refused.value.retryable

    someone, _ = _user(app)
    session = f"s-{uuid.uuid4().hex}"
    _make(app, someone, session, _result())
    intruder, _ = _user(app)
    with pytest.raises(JourneyError, match="another account"):
        _make(app, intruder, session, _result())
    assert app.get("/agent", headers=auth).json()["name"] == created.json()["name"]


def test_a_refused_agent_is_a_clear_error_and_leaves_nothing(app: TestClient, customer_crd: Cluster) -> None:
    user, auth = _user(app)
    result = OnboardedAgent.model_validate({"tier": "starter", "bot_token": TOKEN, "allowed_user_ids": [1, 2]})
    with pytest.raises(JourneyError, match="at most 1 Telegram user") as refused:
        _make(app, user, f"s-{uuid.uuid4().hex}", result)
    assert not refused.value.retryable
    assert TOKEN not in refused.value.message
    assert app.get("/agent", headers=auth).status_code == 404
