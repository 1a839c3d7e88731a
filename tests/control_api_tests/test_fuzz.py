"""Fuzz the OpenAPI schema of the real app (real PostgreSQL, Redis, API server, stripe-mock) over real HTTP.

Every generated request, valid or not, with and without a valid bearer token, must get a response
that is not a 5xx, carries no stack trace, and is JSON whenever it is an error.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis import GenerationMode, checks

from clawhost_control_api.core.config import RateLimit, Settings
from clawhost_control_api.main import create_app
from clawhost_localcluster.processes import free_port
from clawhost_localcluster.stripe_mock import StripeMock
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.services]

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WEBHOOK_SECRET = "whsec_test_controlapi"
PRICES = {"starter": "price_starter_test", "pro": "price_pro_test", "team": "price_team_test"}
MAX_EXAMPLES = 30
ROOMY = RateLimit(count=100_000, seconds=60)
_TRACE_MARKERS = ("Traceback (most recent call last)", 'File "/', "psycopg.", "Error at 0x")


class LiveServer:
    """The app in a real uvicorn server on a loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fuzzed-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()

        def up() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError("the API server exited during startup")
            return bool(self.server.started)

        eventually(up, timeout=60, interval=0.05, what="the fuzzed API to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the API server did not stop"


@dataclass(frozen=True)
class FuzzTarget:
    url: str
    with_agent: str  # bearer token of a user who owns an agent
    without_agent: str  # bearer token of a user who has none


def _login(client: httpx.Client) -> str:
    email = f"fz{uuid.uuid4().hex[:8]}@example.com"
    assert client.post("/auth/signup", json={"email": email, "password": "long enough pw"}).status_code == 201
    tokens = client.post("/auth/login", json={"email": email, "password": "long enough pw"}).json()
    return str(tokens["access_token"])


@pytest.fixture(scope="module")
def fuzz_target(
    new_database: Callable[[], str],
    redis_url: str,
    jwt_keys: Any,
    api_kubeconfig: Path,
    stripe_mock: StripeMock,
) -> Iterator[FuzzTarget]:
    config = Settings(
        database_url=SecretStr(new_database()),
        redis_url=redis_url,
        jwt_private_key_file=jwt_keys.private_file,
        jwt_public_key_file=jwt_keys.public_file,
        kubeconfig=api_kubeconfig,
        stripe_api_key=SecretStr("sk_test_123"),
        stripe_api_base=stripe_mock.url,
        stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
        stripe_price_ids=PRICES,
        metrics_port=None,
        rate_limit_key_prefix=f"test:{uuid.uuid4().hex[:12]}",
        # The fuzzer signs in hundreds of times from one address; test_limits covers the limits.
        login_per_ip=ROOMY,
        login_per_account=ROOMY,
        signup_per_ip=ROOMY,
        signup_per_account=ROOMY,
        refresh_per_ip=ROOMY,
        refresh_per_account=ROOMY,
    )
    with LiveServer(create_app(config)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        owner = _login(client)
        created = client.post(
            "/agent",
            headers={"Authorization": f"Bearer {owner}"},
            json={"tier": "team", "bot_token": TOKEN, "allowed_user_ids": [42]},
        )
        assert created.status_code == 201, created.text
        yield FuzzTarget(server.url, owner, _login(client))


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document; building the app touches nothing (all I/O waits for its lifespan)."""
    unused = Path("/nonexistent")
    config = Settings(
        database_url=SecretStr("postgresql:///unused"), jwt_private_key_file=unused, jwt_public_key_file=unused
    )
    document: dict[str, Any] = create_app(config).openapi()
    return document


OPENAPI = _openapi()


def _streams(operation: dict[str, Any]) -> bool:
    """An endless event stream (the dashboard's): a request never ends, so test_agent_events covers it instead."""
    return "text/event-stream" in (operation.get("responses", {}).get("200", {}).get("content") or {})


OPERATIONS = [
    (path, method.upper())
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if not _streams(operation)
]
# Negative data needs something to break: an operation without parameters or a body has none.
CASES = [
    (path, method, mode)
    for path, method in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or OPENAPI["paths"][path][method.lower()].get("parameters")
    or OPENAPI["paths"][path][method.lower()].get("requestBody")
]
SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
# A string far past its maxLength can also pass the request-body limit: refused with 413 before validation.
_REJECTIONS = SCHEMA.config.checks.negative_data_rejection
_REJECTIONS.expected_statuses = [*(_REJECTIONS.expected_statuses or []), "413"]
# Beyond "no 5xx": every status code, content type and body is the documented one, and invalid input is refused.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


def _assert_sane(response: Any) -> None:
    status = response.status_code
    body = response.text
    assert status < 500, f"{status}: {body[:500]}"
    for marker in _TRACE_MARKERS:
        assert marker not in body, f"stack trace or internals in the body: {body[:500]}"
    if status >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), response.headers
        detail = json.loads(body)
        assert isinstance(detail, dict)
        assert "detail" in detail


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=[f"{m} {p} {g.value}" for p, m, g in CASES])
def test_fuzz_openapi(path: str, method: str, mode: GenerationMode, fuzz_target: FuzzTarget) -> None:
    operation = SCHEMA[path][method]
    secured = bool(OPENAPI["paths"][path][method.lower()].get("security"))
    # Authenticated routes: as the agent's owner, as a user without one, and anonymously.
    tokens = (fuzz_target.with_agent, fuzz_target.without_agent, None) if secured else (None,)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = case.call(base_url=fuzz_target.url, headers=headers, timeout=30)
            _assert_sane(response)
            case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def test_inputs_the_fuzzer_rarely_draws_are_specific_client_errors(fuzz_target: FuzzTarget) -> None:
    """Regressions: each of these once reached PostgreSQL or the API server and came back as a 5xx."""
    with httpx.Client(base_url=fuzz_target.url, timeout=30) as client:
        nul_email = {"email": "a\u0000b@example.com", "password": "long enough pw"}
        assert client.post("/auth/signup", json=nul_email).status_code == 422
        assert client.post("/auth/login", json=nul_email).status_code == 422
        fresh = _login(client)
        auth = {"Authorization": f"Bearer {fresh}"}
        for ids in ([7, 7], [2**63], [0], [-5]):
            body = {"tier": "team", "bot_token": TOKEN, "allowed_user_ids": ids}
            response = client.post("/agent", headers=auth, json=body)
            assert response.status_code == 422, (ids, response.text)
            assert TOKEN not in response.text
        owner = {"Authorization": f"Bearer {fuzz_target.with_agent}"}
        assert client.patch("/agent", headers=owner, json={"allowed_user_ids": [3, 3]}).status_code == 422
        not_json = client.post("/auth/login", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
        assert not_json.status_code in (400, 422)
        assert not_json.json()["detail"]
        latin1 = {b"Authorization": "Bearer \u00e9t\u00e9".encode("latin-1")}
        assert client.get("/agent", headers=latin1).status_code == 401
