"""Stripe Checkout (subscription per tier) and Customer Portal sessions for the user's agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from clawhost_api.customer import BillingStatus, Customer
from clawhost_api.tiers import TierName
from clawhost_control_api.api.deps import CurrentUser, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.routes.agent import owned_customer
from clawhost_control_api.api.state import AppState
from clawhost_control_api.billing import local_checkouts
from clawhost_control_api.billing.events import SUBSCRIPTION_ENDED
from clawhost_control_api.billing.local_checkouts import LOCAL_CHECKOUT_PATH

router = APIRouter(tags=["billing"])


class CheckoutRequest(BaseModel):
    tier: TierName | None = None


class SessionUrl(BaseModel):
    id: str
    url: str


CHECKOUT_LIFETIME = timedelta(hours=23)


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    expires_at: datetime


@asynccontextmanager
async def stripe_client(state: AppState) -> AsyncIterator[stripe.StripeClient]:
    """A Stripe client for one call, its HTTP connections closed after it (a checkout is rare: nothing to keep)."""
    settings = state.settings
    if not settings.stripe_api_key.get_secret_value():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="Stripe is not configured")
    http = stripe.HTTPXClient()
    try:
        yield stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=2,
            http_client=http,
        )
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]  # stripe leaves it unannotated


async def open_checkout(
    state: AppState,
    customer: Customer,
    email: str,
    tier: TierName,
    return_path: str,
    idempotency_key: str | None = None,
) -> CheckoutSession:
    """A subscription-mode Checkout session for the Customer: the one way a checkout is opened (the dashboard's
    POST /billing/checkout and the onboarding chat). 409 while a subscription is live. With the local checkout
    setting the link points at this API's own completion page instead of Stripe's (see local_checkout.py)."""
    if customer.spec.billing.mode != "stripe":
        raise HTTPException(status.HTTP_409_CONFLICT, detail="this agent is not billed through Stripe")
    billing = customer.status.billing
    if billing is not None and billing.state not in SUBSCRIPTION_ENDED:
        # A second subscription would be charged beside the first; changing tier, card or cancelling
        # is the portal's job on the subscription that exists.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"this agent already has a {billing.state} subscription: manage it in the billing portal"
            " (POST /billing/portal)",
        )
    price = state.settings.stripe_price_ids.get(tier)
    if not price:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"no Stripe price configured for {tier}")
    name = customer.metadata.name
    metadata = {"customer_name": name, "tier": tier}
    base = state.settings.public_url.rstrip("/")
    separator = "&" if "?" in return_path else "?"
    # Set rather than read back: Stripe keeps it as asked (30 min to 24 h), and the chat re-sends a link only
    # while it is good.
    expires_at = datetime.now(UTC).replace(microsecond=0) + CHECKOUT_LIFETIME
    try:
        async with stripe_client(state) as client:
            session = await client.v1.checkout.sessions.create_async(
                params={
                    "mode": "subscription",
                    "line_items": [{"price": price, "quantity": 1}],
                    "client_reference_id": name,
                    # A returning subscriber stays one Stripe customer (one history, one fold).
                    **(
                        {"customer": billing.customer_id}
                        if billing and billing.customer_id
                        else {"customer_email": email}
                    ),
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": f"{base}{return_path}{separator}checkout=success",
                    "cancel_url": f"{base}{return_path}{separator}checkout=cancelled",
                    "expires_at": int(expires_at.timestamp()),
                },
                options={"idempotency_key": idempotency_key} if idempotency_key else None,
            )
    except stripe.StripeError:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail="Stripe refused to create a checkout session") from None
    url = str(session.url)
    if state.settings.local_checkout:
        local_id = await local_checkouts.record(
            state.pool, name, tier, billing.customer_id if billing else None, f"{base}{return_path}"
        )
        url = f"{base}{LOCAL_CHECKOUT_PATH}/{local_id}"
    return CheckoutSession(id=session.id, url=url, expires_at=expires_at)


@router.post(
    "/billing/checkout", status_code=status.HTTP_201_CREATED, responses=responses(400, 401, 404, 409, 422, 502, 503)
)
async def create_checkout(body: CheckoutRequest, user: CurrentUser, state: State) -> SessionUrl:
    customer = Customer.model_validate(owned_customer(state, user))
    session = await open_checkout(state, customer, user.email, body.tier or customer.spec.tier, "/dashboard")
    return SessionUrl(id=session.id, url=session.url)


class PortalRequest(BaseModel):
    tier: TierName | None = Field(
        default=None,
        description="Open the portal on confirming a change of the subscription to this plan (an upgrade is charged "
        "pro rata at once, a downgrade applies from the next period); none: the portal's home page.",
    )


@router.post(
    "/billing/portal", status_code=status.HTTP_201_CREATED, responses=responses(400, 401, 404, 409, 422, 502, 503)
)
async def create_portal(user: CurrentUser, state: State, body: PortalRequest | None = None) -> SessionUrl:
    customer = Customer.model_validate(owned_customer(state, user))
    billing = customer.status.billing
    if billing is None or not billing.customer_id:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="no Stripe subscription yet: check out first")
    tier = body.tier if body is not None else None
    params: dict[str, Any] = {
        "customer": billing.customer_id,
        "return_url": f"{state.settings.public_url.rstrip('/')}/dashboard",
    }
    try:
        async with stripe_client(state) as client:
            if tier is not None:
                params["flow_data"] = await _plan_change_flow(state, client, billing, tier)
            session = await client.v1.billing_portal.sessions.create_async(params=params)  # type: ignore[arg-type]
    except stripe.StripeError:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail="Stripe refused to create a portal session") from None
    return SessionUrl(id=session.id, url=str(session.url))


async def _plan_change_flow(
    state: State, client: stripe.StripeClient, billing: BillingStatus, tier: TierName
) -> dict[str, Any]:
    """The portal's flow that confirms the subscription's one item moving to `tier`'s price."""
    if billing.state in SUBSCRIPTION_ENDED or not billing.subscription_id:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="no live subscription to change: check out first")
    if billing.paid_tier == tier:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"you are already on the {tier} plan")
    price = state.settings.stripe_price_ids.get(tier)
    if not price:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"no Stripe price configured for {tier}")
    subscription = await client.v1.subscriptions.retrieve_async(billing.subscription_id)
    items = subscription["items"]["data"]
    if not items:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail="the subscription has no item to change")
    return {
        "type": "subscription_update_confirm",
        "subscription_update_confirm": {
            "subscription": billing.subscription_id,
            "items": [{"id": items[0]["id"], "price": price, "quantity": 1}],
        },
    }
