"""Stored Stripe events: dedupe by id, Stripe customer -> Customer name, and the per-customer fold + apply."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from clawhost_api.customer import BillingStatus
from clawhost_api.kube import KubeError
from clawhost_api.tiers import TierName
from clawhost_control_api.billing.events import fold
from clawhost_control_api.kube.client import BILLING_MANAGER, KubeClient

log = logging.getLogger(__name__)


def customer_name_of(obj: dict[str, Any]) -> str | None:
    """The Customer name we put in metadata at checkout (session, subscription or invoice shapes)."""
    candidates = [
        (obj.get("metadata") or {}).get("customer_name"),
        ((obj.get("subscription_details") or {}).get("metadata") or {}).get("customer_name"),
        (((obj.get("parent") or {}).get("subscription_details") or {}).get("metadata") or {}).get("customer_name"),
        obj.get("client_reference_id") if obj.get("object") == "checkout.session" else None,
    ]
    return next((c for c in candidates if isinstance(c, str) and c), None)


async def record_event(pool: AsyncConnectionPool, event: dict[str, Any]) -> tuple[str, bool]:
    """Store a verified event once. Returns its Stripe customer id ("" if none) and whether it was already handled."""
    obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    raw_customer = obj.get("customer")
    stripe_customer = raw_customer if isinstance(raw_customer, str) else (raw_customer or {}).get("id")
    created = datetime.fromtimestamp(int(event.get("created") or 0), UTC)
    name = customer_name_of(obj)
    event_id = str(event.get("id"))
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            "INSERT INTO stripe_events (id, type, created, stripe_customer, payload) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (event_id, str(event.get("type")), created, stripe_customer, Jsonb(event)),
        )
        if cursor.rowcount == 0:
            row = await (
                await conn.execute("SELECT stripe_customer, synced FROM stripe_events WHERE id = %s", (event_id,))
            ).fetchone()
            return (str(row[0] or "") if row else "", bool(row[1]) if row else True)
        if stripe_customer and name:
            await conn.execute(
                "INSERT INTO stripe_customers (stripe_customer, customer_name) VALUES (%s, %s)"
                " ON CONFLICT (stripe_customer) DO NOTHING",
                (stripe_customer, name),
            )
    return (str(stripe_customer) if stripe_customer else "", False)


async def customer_for(pool: AsyncConnectionPool, stripe_customer: str) -> str | None:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT customer_name FROM stripe_customers WHERE stripe_customer = %s", (stripe_customer,)
            )
        ).fetchone()
    return str(row[0]) if row else None


def _billing_json(billing: BillingStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = json.loads(billing.model_dump_json(by_alias=True, exclude_none=True))
    return dumped


async def sync_customer(
    pool: AsyncConnectionPool, kube: KubeClient, stripe_customer: str, price_tiers: dict[str, TierName]
) -> bool:
    """Fold all events of every Stripe customer mapped to this one's Customer and apply the result.

    One fold per Customer: a second checkout (another Stripe customer, another subscription) is folded
    together with the first, where the fold ignores it while the first is live, instead of being a
    second fold that writes status.billing over the first's. True when the Customer changed.
    """
    name = await customer_for(pool, stripe_customer)
    if name is None:
        return False  # kept; folded once the checkout event naming the Customer arrives
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"customer:{name}",))
        rows = await (
            await conn.execute(
                "SELECT id, payload FROM stripe_events WHERE stripe_customer IN"
                " (SELECT stripe_customer FROM stripe_customers WHERE customer_name = %s)",
                (name,),
            )
        ).fetchall()
        folded = fold([row[1] for row in rows], price_tiers)
        if folded.ignored:
            log.warning(
                "Stripe events of a subscription other than the Customer's live one ignored",
                extra={
                    "customer": name,
                    "subscription": folded.billing.subscription_id,
                    "ignored_events": len(folded.ignored),
                    "last_ignored_event": folded.ignored[-1],
                },
            )
        ids = [row[0] for row in rows]
        mark_synced = "UPDATE stripe_events SET synced = true WHERE id = ANY(%s) AND NOT synced"
        try:
            live = await kube.get_customer(name)
        except KubeError as error:
            if error.status == 404:
                await conn.execute(mark_synced, (ids,))  # the Customer is gone: nothing left to bill
                return False
            raise
        if (live.get("spec") or {}).get("billing", {}).get("mode") == "none":
            await conn.execute(mark_synced, (ids,))
            return False
        current_raw = (live.get("status") or {}).get("billing") or {}
        new = _billing_json(folded.billing)
        changed = False
        if new != current_raw:
            await kube.apply_customer(name, {"status": {"billing": new}}, BILLING_MANAGER, "status")
            changed = True
        current_paid = current_raw.get("paidTier")
        paid = folded.billing.paid_tier
        if paid and paid != current_paid and (live.get("spec") or {}).get("tier") != paid:
            await kube.apply_customer(name, {"spec": {"tier": paid}}, BILLING_MANAGER)
            changed = True
        await conn.execute(mark_synced, (ids,))
    return changed
