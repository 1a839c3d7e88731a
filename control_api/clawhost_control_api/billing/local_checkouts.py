"""Local-only checkout completion: the checkouts this API completes itself, and the signed Stripe events it sends.

Where no real Stripe runs (`make up`: stripe-mock answers API calls but never pays or sends webhooks), a checkout
link points at this API's own page; completing it sends `checkout.session.completed` and `invoice.paid`, shaped as
Stripe's and signed with the webhook secret exactly as Stripe signs, to the real webhook endpoint. Everything after
that (signature check, event store, fold, status.billing, the operator) is the production path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

LOCAL_CHECKOUT_PATH = "/local-checkout"
PERIOD_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class LocalCheckout:
    id: str
    customer_name: str
    tier: str
    stripe_customer: str
    return_url: str
    completed_at: datetime | None


async def record(
    pool: AsyncConnectionPool, customer_name: str, tier: str, stripe_customer: str | None, return_url: str
) -> str:
    """A new local checkout (a returning subscriber keeps their Stripe customer id); returns its id."""
    checkout_id = f"lcs_{secrets.token_urlsafe(18)}"
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO local_checkouts (id, customer_name, tier, stripe_customer, return_url)"
            " VALUES (%s, %s, %s, %s, %s)",
            (checkout_id, customer_name, tier, stripe_customer or f"cus_local_{secrets.token_hex(7)}", return_url),
        )
    return checkout_id


async def find(pool: AsyncConnectionPool, checkout_id: str) -> LocalCheckout | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT id, customer_name, tier, stripe_customer, return_url, completed_at FROM local_checkouts"
                " WHERE id = %s",
                (checkout_id,),
            )
        ).fetchone()
    return LocalCheckout(*row) if row else None


async def mark_completed(pool: AsyncConnectionPool, checkout_id: str) -> bool:
    """True for the one call that completes it (a second click, or two at once, gets False)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "UPDATE local_checkouts SET completed_at = now() WHERE id = %s AND completed_at IS NULL", (checkout_id,)
        )
        return cursor.rowcount == 1


async def reopen(pool: AsyncConnectionPool, checkout_id: str) -> None:
    """Undo mark_completed when the events could not be delivered, so the page can be used again."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE local_checkouts SET completed_at = NULL WHERE id = %s", (checkout_id,))


def _derived(prefix: str, checkout_id: str, what: str) -> str:
    """An id derived from the checkout: completing it again sends the same events (duplicates to the webhook)."""
    return f"{prefix}{hashlib.sha256(f'{checkout_id}:{what}'.encode()).hexdigest()[:24]}"


def _event(checkout_id: str, kind: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _derived("evt_local_", checkout_id, kind),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


def completion_events(checkout: LocalCheckout, now: int | None = None) -> list[dict[str, Any]]:
    """What Stripe sends when a subscription checkout is paid: the completed session, then the first paid invoice."""
    created = int(time.time()) if now is None else now
    subscription = _derived("sub_local_", checkout.id, "subscription")
    metadata = {"customer_name": checkout.customer_name, "tier": checkout.tier}
    session = {
        "id": checkout.id,
        "object": "checkout.session",
        "mode": "subscription",
        "customer": checkout.stripe_customer,
        "subscription": subscription,
        "payment_status": "paid",
        "status": "complete",
        "client_reference_id": checkout.customer_name,
        "metadata": metadata,
    }
    invoice = {
        "id": _derived("in_local_", checkout.id, "invoice"),
        "object": "invoice",
        "customer": checkout.stripe_customer,
        "status": "paid",
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription, "metadata": metadata},
        },
        "lines": {"object": "list", "data": [{"period": {"start": created, "end": created + PERIOD_SECONDS}}]},
        "period_start": created,
        "period_end": created + PERIOD_SECONDS,
    }
    return [
        _event(checkout.id, "checkout.session.completed", created, session),
        _event(checkout.id, "invoice.paid", created, invoice),
    ]


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as Stripe writes it: `t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`."""
    moment = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{moment}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={moment},v1={mac}"
