"""Stripe webhook events shaped like Stripe's own, and signed exactly as Stripe signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass, field
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


def checkout_completed(
    created: int, customer: str, cus: str, sub: str, tier: str, *, paid: bool = True
) -> dict[str, Any]:
    return _event(
        "checkout.session.completed",
        created,
        {
            "id": f"cs_test_{uuid.uuid4().hex[:20]}",
            "object": "checkout.session",
            "mode": "subscription",
            "customer": cus,
            "subscription": sub,
            "payment_status": "paid" if paid else "no_payment_required",
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
TIERS_IN_ORDER = ("starter", "pro", "team")


@dataclass
class Lifecycle:
    """One customer's generated history and, written down while generating it, what it must end in."""

    events: list[dict[str, Any]] = field(default_factory=list)
    state: str | None = None
    paid_tier: str | None = None
    last_id: str | None = None


def lifecycle(rng: random.Random, customer: str, prices: dict[str, str], start: int) -> Lifecycle:
    """A plausible history: checkout (maybe a trial), months paid or failed (Stripe's same-second bursts
    included: a failed retry beside the subscription update it causes), tier changes, cancellation.

    The expected outcome is kept by construction as each step is written (an upgrade is paid at once, a
    downgrade with the next period's paid invoice), never by reading the events back.
    """
    cus, sub = f"cus_{uuid.uuid4().hex[:14]}", f"sub_{uuid.uuid4().hex[:14]}"
    out = Lifecycle()
    tier = rng.choice(list(prices))
    pending: str | None = None

    def add(event: dict[str, Any], state: str | None = None) -> None:
        out.events.append(event)
        out.last_id = event["id"]
        if state is not None:
            out.state = state

    def change_tier(new: str) -> None:
        nonlocal pending
        if out.paid_tier is None or TIERS_IN_ORDER.index(new) > TIERS_IN_ORDER.index(out.paid_tier):
            out.paid_tier, pending = new, None
        elif TIERS_IN_ORDER.index(new) < TIERS_IN_ORDER.index(out.paid_tier):
            pending = new
        else:
            pending = None

    t = start
    trial = rng.random() < 0.2
    add(checkout_completed(t, customer, cus, sub, tier, paid=not trial), "active")
    out.paid_tier = tier
    # Each second's events are listed in the order their objects settle in Stripe: the session, the
    # invoice, then the subscription it changed (what status.billing.lastEventId names).
    if trial:  # one second: the session, its 0.00 invoice, the trialing subscription
        add(invoice("invoice.paid", t, customer, cus, sub, t, t + MONTH))
        add(
            subscription(
                "customer.subscription.created", t, customer, cus, sub, "trialing", prices[tier], t, t + MONTH
            ),
            "trialing",
        )
    else:
        add(
            subscription(
                "customer.subscription.updated", t + 1, customer, cus, sub, "active", prices[tier], t, t + MONTH
            )
        )
    period = t
    for _ in range(rng.randint(1, 3)):
        t = period + MONTH
        roll = rng.random()
        if roll < 0.15:  # the last retry fails: one second, the invoice and the subscription going unpaid
            add(invoice("invoice.payment_failed", t + 2, customer, cus, sub, t, t + MONTH))
            add(
                subscription(
                    "customer.subscription.updated", t + 2, customer, cus, sub, "unpaid", prices[tier], t, t + MONTH
                ),
                "unpaid",
            )
            period = t
            break
        if roll < 0.35:  # a failed attempt: past_due until the next retry succeeds
            add(invoice("invoice.payment_failed", t + 2, customer, cus, sub, t, t + MONTH))
            add(
                subscription(
                    "customer.subscription.updated", t + 3, customer, cus, sub, "past_due", prices[tier], t, t + MONTH
                ),
                "past_due",
            )
        add(invoice("invoice.paid", t + 5, customer, cus, sub, t, t + MONTH), "active")
        if pending is not None:
            out.paid_tier, pending = pending, None
        if rng.random() < 0.4:
            tier = rng.choice(list(prices))
        change_tier(tier)
        add(
            subscription(
                "customer.subscription.updated", t + 6, customer, cus, sub, "active", prices[tier], t, t + MONTH
            ),
            "active",
        )
        period = t
    if rng.random() < 0.3:
        end = period + MONTH
        # Cancelled at period end: the update saying so, at the end the deletion.
        add(
            subscription(
                "customer.subscription.updated",
                t + 20,
                customer,
                cus,
                sub,
                out.state or "active",
                prices[tier],
                period,
                end,
            )
        )
        add(
            subscription(
                "customer.subscription.deleted", end, customer, cus, sub, "canceled", prices[tier], period, end
            ),
            "canceled",
        )
    return out


def as_payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
