"""POST /webhooks/stripe: verify the signature first, store the event once, fold it into status.billing."""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe
from fastapi import APIRouter, HTTPException, Request, status

from clawhost_api.kube import KubeError
from clawhost_control_api.api.deps import State, get_kube
from clawhost_control_api.api.errors import responses
from clawhost_control_api.billing.events import HANDLED
from clawhost_control_api.billing.store import record_event, sync_customer

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)


_SIGNED_EVENT = {
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "t=<unix time>,v1=<HMAC-SHA256 of '<t>.<body>' with the endpoint secret>",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "A Stripe event."}}},
    },
}


STRIPE_WEBHOOK_PATH = "/webhooks/stripe"


@router.post(STRIPE_WEBHOOK_PATH, openapi_extra=_SIGNED_EVENT, responses=responses(400, 503))
async def stripe_webhook(request: Request, state: State) -> dict[str, Any]:
    # The body limit (api/body_limit.py) has already refused anything over webhook_max_body_bytes.
    payload = await request.body()
    metrics = state.metrics
    signature = request.headers.get("stripe-signature", "")
    settings = state.settings
    if not settings.stripe_webhook_secret.get_secret_value():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="webhook secret not configured")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"),
            signature,
            settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance_seconds,
        )
        event: dict[str, Any] = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError):
        metrics.webhook(None, "rejected")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="invalid Stripe signature or payload") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("created"), int):
        metrics.webhook(None, "rejected")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="not a Stripe event")
    if event.get("type") not in HANDLED:
        metrics.webhook(event.get("type"), "unhandled")
        return {"received": True, "handled": False}
    stripe_customer, handled = await record_event(state.pool, event)
    if handled:
        metrics.webhook(event["type"], "duplicate")
        return {"received": True, "duplicate": True}
    outcome = "stored"  # no Stripe customer in it: nothing to fold
    if stripe_customer:
        kube = get_kube(state)  # only now: nothing about the cluster is revealed before the signature holds
        price_tiers = {price: tier for tier, price in settings.stripe_price_ids.items()}
        try:
            changed = await sync_customer(state.pool, kube, stripe_customer, price_tiers)  # type: ignore[arg-type]
        except KubeError as error:
            # Kept but not handled: Stripe retries on a non-2xx, and the redelivery folds again.
            metrics.webhook(event["type"], "failed")
            log.warning(
                "stripe event not applied yet",
                extra={"event_id": event["id"], "event_type": event["type"], "error": type(error).__name__},
            )
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="stored; applying it failed, retry"
            ) from None
        outcome = "applied" if changed else "unchanged"
    metrics.webhook(event["type"], outcome)
    log.info("stripe event handled", extra={"event_id": event["id"], "event_type": event["type"], "outcome": outcome})
    return {"received": True}
