"""`DELETE /agent`: the user deletes their agent, confirmed by typing a phrase; billing stops first.

Order, so that a failure at any step leaves something a retry finishes and never a bill for nothing: the Stripe
subscription is cancelled at once (a refusal stops here: nothing deleted), then the Customer is deleted (its
finalizer makes the operator delete the namespace, the pod and the proxy token), then the bot-token Secret, then
the user's link, after which they may set up a new agent. A retry after a partial failure finds the link, skips
what is already gone and finishes.
"""

from __future__ import annotations

import logging

import stripe
from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from clawhost_api.customer import Customer
from clawhost_api.kube import KubeError
from clawhost_control_api.api.deps import CurrentUser, Kube, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.routes.agent import refused
from clawhost_control_api.api.routes.billing import stripe_client
from clawhost_control_api.billing.events import SUBSCRIPTION_ENDED
from clawhost_control_api.db import accounts

router = APIRouter(tags=["agent"])
log = logging.getLogger("clawhost.control_api.agent_delete")

CONFIRMATION = "delete my agent"


class AgentDelete(BaseModel):
    confirmation: str = Field(
        max_length=100, description=f'Exactly "{CONFIRMATION}": the words the person typed to confirm.'
    )


@router.delete("/agent", status_code=status.HTTP_204_NO_CONTENT, responses=responses(400, 401, 404, 422, 502, 503))
async def delete_agent(body: AgentDelete, user: CurrentUser, state: State, kube: Kube) -> Response:
    if body.confirmation.strip().lower() != CONFIRMATION:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f'type "{CONFIRMATION}" to confirm; nothing was deleted'
        )
    name = user.customer_name
    if name is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="you have no agent")
    raw = state.cache.get(name) if state.cache is not None else None
    customer = Customer.model_validate(raw) if raw is not None else None
    if customer is not None:
        await _cancel_subscription(state, customer)
        try:
            await kube.delete_customer(name)
        except KubeError as error:
            if error.status != 404:
                raise refused(error, "delete the agent") from None
        if state.cache is not None:
            state.cache.forget(name)
    secret = customer.spec.telegram.bot_token_secret_ref.name if customer is not None else f"bot-{name}"
    try:
        await kube.delete_bot_token_secret(secret)
    except KubeError as error:
        if error.status != 404:
            code = status.HTTP_503_SERVICE_UNAVAILABLE if error.unreachable else status.HTTP_502_BAD_GATEWAY
            raise HTTPException(code, detail="the agent is deleted but its bot token is not yet: retry") from None
    await accounts.unlink_customer(state.pool, user.id, name)
    log.info("agent deleted by its owner", extra={"customer": name})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _cancel_subscription(state: State, customer: Customer) -> None:
    billing = customer.status.billing
    if customer.spec.billing.mode != "stripe" or billing is None or billing.state in SUBSCRIPTION_ENDED:
        return
    if not billing.subscription_id:
        return
    try:
        async with stripe_client(state) as client:
            await client.v1.subscriptions.cancel_async(billing.subscription_id)
    except stripe.InvalidRequestError as error:
        if error.code == "resource_missing":  # already gone in Stripe
            return
        raise _stripe_refused() from None
    except stripe.StripeError:
        raise _stripe_refused() from None


def _stripe_refused() -> HTTPException:
    return HTTPException(
        status.HTTP_502_BAD_GATEWAY,
        detail="Stripe did not cancel the subscription, so nothing was deleted: retry, "
        "or cancel it in the billing portal first",
    )
