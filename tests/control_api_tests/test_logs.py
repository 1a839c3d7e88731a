"""The control API's log, as its process writes it: JSON lines (uvicorn's too), fields, no query strings."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from clawhost_localcluster import stripe_events as se
from clawhost_localcluster.control_api_process import StartApi
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.services
WEBHOOK_SECRET = "whsec_test_logs"


def test_every_line_is_json_with_access_and_event_fields(start_api: StartApi) -> None:
    api = start_api(stripe_webhook_secret=WEBHOOK_SECRET)
    password = f"pw-{uuid.uuid4().hex}"
    event_id = f"evt_{uuid.uuid4().hex[:16]}"
    event = se.as_payload({"id": event_id, "type": "invoice.paid", "created": 1, "data": {"object": {}}})
    with httpx.Client(base_url=api.url, timeout=60) as client:
        assert client.get("/.well-known/jwks.json", params={"code": "query-secret"}).status_code == 200
        login = client.post("/auth/login", json={"email": "nobody@example.com", "password": password})
        assert login.status_code == 401
        signed = {"Stripe-Signature": se.sign(event, WEBHOOK_SECRET)}
        assert client.post("/webhooks/stripe", content=event, headers=signed).status_code == 200

    def logged(**fields: Any) -> dict[str, Any] | None:
        matching = (r for r in api.process.json_log() if all(r.get(k) == v for k, v in fields.items()))
        return next(matching, None)

    jwks = eventually(lambda: logged(path="/.well-known/jwks.json"), what="the jwks access line")
    assert (jwks["message"], jwks["method"], jwks["status"], jwks["logger"]) == (
        "request",
        "GET",
        200,
        "uvicorn.access",
    )
    assert eventually(lambda: logged(path="/auth/login", status=401), what="the login access line")
    handled = eventually(lambda: logged(event_id=event_id), what="the webhook's line")
    assert (handled["message"], handled["event_type"], handled["outcome"]) == (
        "stripe event handled",
        "invoice.paid",
        "stored",
    )
    assert any(r["logger"] == "uvicorn.error" for r in api.process.json_log()), "uvicorn's own lines go through it too"
    text = api.process.log_path.read_text(errors="replace")
    assert "query-secret" not in text
    assert password not in text
    assert WEBHOOK_SECRET not in text
