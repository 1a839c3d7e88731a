"""The local checkout page (local use only): completing it sends this API signed Stripe events, as Stripe would."""

from __future__ import annotations

import html
import json
import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from clawhost_control_api.api.deps import State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.routes.webhooks import STRIPE_WEBHOOK_PATH
from clawhost_control_api.billing import local_checkouts
from clawhost_control_api.billing.local_checkouts import LOCAL_CHECKOUT_PATH, LocalCheckout

# Not part of the API a deployment offers (off there): kept out of the OpenAPI document.
router = APIRouter(tags=["local checkout"], include_in_schema=False)
log = logging.getLogger(__name__)

_OFF = (
    "local checkout completion is off: payments complete on Stripe's checkout page "
    "(CLAWHOST_API_LOCAL_CHECKOUT=true turns it on, for local use only)"
)


CheckoutId = Annotated[str, Path(pattern=r"^lcs_[A-Za-z0-9_-]{8,64}$", description="The local checkout's id.")]


async def _checkout(state: State, checkout_id: str) -> LocalCheckout:
    if not state.settings.local_checkout:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_OFF)
    checkout = await local_checkouts.find(state.pool, checkout_id)
    if checkout is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such local checkout")
    return checkout


@router.get(f"{LOCAL_CHECKOUT_PATH}/{{checkout_id}}", response_class=HTMLResponse, responses=responses(404, 422))
async def local_checkout_page(checkout_id: CheckoutId, state: State) -> HTMLResponse:
    """A page standing in for Stripe's checkout: one button completes the payment (no money moves)."""
    checkout = await _checkout(state, checkout_id)
    tier = html.escape(checkout.tier)
    action = html.escape(f"{LOCAL_CHECKOUT_PATH}/{checkout.id}")
    done = "<p>This checkout is already complete.</p>" if checkout.completed_at else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Local checkout</title></head>
<body><main>
<h1>Local checkout</h1>
<p>This is the local platform: no real payment is taken. Completing it sends the signed Stripe events a paid
checkout would (checkout.session.completed, invoice.paid) to this API's webhook.</p>
<p>Plan: <strong>{tier}</strong></p>
{done}
<form method="post" action="{action}"><button type="submit">Complete payment</button></form>
</main></body></html>"""
    return HTMLResponse(body)


@router.post(
    f"{LOCAL_CHECKOUT_PATH}/{{checkout_id}}",
    status_code=status.HTTP_303_SEE_OTHER,
    responses=responses(404, 409, 422, 502, 503),
)
async def complete_local_checkout(checkout_id: CheckoutId, request: Request, state: State) -> RedirectResponse:
    """Deliver `checkout.session.completed` and `invoice.paid`, signed with the webhook secret, to the real webhook
    endpoint (this app, its whole middleware stack), then return to where Stripe would send the buyer."""
    checkout = await _checkout(state, checkout_id)
    secret = state.settings.stripe_webhook_secret.get_secret_value()
    if not secret:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="webhook secret not configured")
    if not await local_checkouts.mark_completed(state.pool, checkout.id):
        raise HTTPException(status.HTTP_409_CONFLICT, detail="this checkout was already completed")
    transport = httpx.ASGITransport(app=request.app, client=("127.0.0.1", 0))
    async with httpx.AsyncClient(transport=transport, base_url="http://control-api.local") as client:
        for event in local_checkouts.completion_events(checkout):
            payload = json.dumps(event).encode()
            answer = await client.post(
                STRIPE_WEBHOOK_PATH,
                content=payload,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": local_checkouts.signature_header(payload, secret),
                },
            )
            if answer.status_code != 200:
                await local_checkouts.reopen(state.pool, checkout.id)
                log.warning(
                    "local checkout event refused",
                    extra={"event_type": event["type"], "status": answer.status_code},
                )
                raise HTTPException(
                    status.HTTP_502_BAD_GATEWAY,
                    detail=f"the webhook answered {answer.status_code} to {event['type']}; try again",
                )
    separator = "&" if "?" in checkout.return_url else "?"
    return RedirectResponse(f"{checkout.return_url}{separator}checkout=success", status.HTTP_303_SEE_OTHER)
