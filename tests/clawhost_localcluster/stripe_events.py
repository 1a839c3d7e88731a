"""Stripe webhook events shaped like Stripe's own, and signed exactly as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from typing import Any


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header: `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>`."""
    moment = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={moment},v1={mac}"


def _event(kind: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


def checkout_completed(created: int, customer: str, cus: str, sub: str, tier: str) -> dict[str, Any]:
    return _event(
        "checkout.session.completed",
        created,
        {
            "id": f"cs_test_{uuid.uuid4().hex[:20]}",
            "object": "checkout.session",
            "mode": "subscription",
            "customer": cus,
            "subscription": sub,
            "payment_status": "paid",
            "status": "complete",
            "client_reference_id": customer,
            "metadata": {"customer_name": customer, "tier": tier},
        },
    )


def invoice(kind: str, created: int, customer: str, cus: str, sub: str, start: int, end: int) -> dict[str, Any]:
    return _event(
        kind,
        created,
        {
            "id": f"in_{uuid.uuid4().hex[:20]}",
            "object": "invoice",
            "customer": cus,
            "status": "paid" if kind == "invoice.paid" else "open",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub, "metadata": {"customer_name": customer}},
            },
            "lines": {"object": "list", "data": [{"period": {"start": start, "end": end}}]},
            "period_start": start,
            "period_end": end,
        },
    )


def subscription(
    kind: str, created: int, customer: str, cus: str, sub: str, status: str, price: str, start: int, end: int
) -> dict[str, Any]:
    return _event(
        kind,
        created,
        {
            "id": sub,
            "object": "subscription",
            "customer": cus,
            "status": status,
            "metadata": {"customer_name": customer},
            "items": {
                "object": "list",
                "data": [
                    {
                        "price": {"id": price, "object": "price"},
                        "current_period_start": start,
                        "current_period_end": end,
                    }
                ],
            },
        },
    )


MONTH = 30 * 24 * 3600


def lifecycle(rng: random.Random, customer: str, prices: dict[str, str], start: int) -> list[dict[str, Any]]:
    """One customer's plausible history: checkout, paid months, maybe failures, tier changes, cancellation."""
    cus, sub = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    tiers = list(prices)
    tier = rng.choice(tiers)
    t = start
    events = [checkout_completed(t, customer, cus, sub, tier)]
    events.append(
        subscription("customer.subscription.updated", t + 1, customer, cus, sub, "active", prices[tier], t, t + MONTH)
    )
    period = t
    for _ in range(rng.randint(1, 3)):
        t = period + MONTH
        if rng.random() < 0.3:
            events.append(invoice("invoice.payment_failed", t + 2, customer, cus, sub, t, t + MONTH))
            events.append(
                subscription(
                    "customer.subscription.updated", t + 3, customer, cus, sub, "past_due", prices[tier], t, t + MONTH
                )
            )
        events.append(invoice("invoice.paid", t + 5, customer, cus, sub, t, t + MONTH))
        if rng.random() < 0.4:
            tier = rng.choice(tiers)
        events.append(
            subscription(
                "customer.subscription.updated", t + 6, customer, cus, sub, "active", prices[tier], t, t + MONTH
            )
        )
        period = t
    if rng.random() < 0.3:
        events.append(
            subscription(
                "customer.subscription.deleted",
                t + 10,
                customer,
                cus,
                sub,
                "canceled",
                prices[tier],
                period,
                period + MONTH,
            )
        )
    return events


def as_payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
