"""The chat's result becomes the agent and its checkout: POST /agent's and POST /billing/checkout's own code paths,
once per chat session, however often the result arrives."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException

from clawhost_api.customer import Customer
from clawhost_api.kube import KubeError
from clawhost_control_api.api.routes.agent import create_agent_customer
from clawhost_control_api.api.routes.billing import open_checkout
from clawhost_control_api.api.state import AppState
from clawhost_control_api.billing.events import SUBSCRIPTION_ENDED
from clawhost_control_api.db import accounts, journeys
from clawhost_control_api.journey.frames import OnboardedAgent
from clawhost_control_api.kube.client import KubeClient

log = logging.getLogger(__name__)

# A stored checkout link is sent again while it has this long left; after that a new one is opened.
_LINK_MARGIN = timedelta(minutes=10)


class JourneyError(Exception):
    """The agent or its checkout could not be made; `message` is for the user (never a token or internal detail)."""

    def __init__(self, message: str, retryable: bool, secret_stored: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.secret_stored = secret_stored


@dataclass(frozen=True)
class AgentAndCheckout:
    customer_name: str
    checkout_url: str
    bot_username: str
    created: bool  # False: a repeated result found both already made


async def _live_customer(state: AppState, kube: KubeClient, name: str) -> dict[str, Any] | None:
    cached = state.cache.get(name) if state.cache is not None else None
    if cached is not None:
        return cached
    try:
        return await kube.get_customer(name)
    except KubeError as error:
        if error.status == 404:
            return None
        raise JourneyError("Could not reach the cluster to create your agent; try again.", True) from None


def _as_journey_error(error: HTTPException, secret_stored: bool) -> JourneyError:
    retryable = error.status_code >= 500
    return JourneyError(str(error.detail), retryable, secret_stored)


async def agent_and_checkout(
    state: AppState, kube: KubeClient, user_id: uuid.UUID, session_id: str, agent: OnboardedAgent, bot_username: str
) -> AgentAndCheckout:
    """Create (or find) the session's Customer and open (or find) its checkout, under the session's lock."""
    async with journeys.session_lock(state.pool, session_id):
        user = await accounts.find_user(state.pool, user_id)
        if user is None:
            raise JourneyError("Your account no longer exists; sign up again.", False)
        journey = await journeys.find(state.pool, session_id)
        if journey is not None and journey.user_id != user.id:
            raise JourneyError("This conversation belongs to another account.", False)
        if journey is None:
            if user.customer_name is not None and await _live_customer(state, kube, user.customer_name) is not None:
                raise JourneyError(
                    "You already have an agent: manage it from the dashboard (one agent per account).", False
                )
            # A reservation whose Customer never came to be (a lost answer) is taken over, as POST /agent would.
            name = user.customer_name or f"c{uuid.uuid4().hex[:12]}"
            journey = await journeys.start(state.pool, session_id, user.id, name, bot_username)
        name = journey.customer_name
        live = await _live_customer(state, kube, name)
        created = live is None
        if live is None:
            try:
                live = await create_agent_customer(agent, agent.bot_token, user, state, kube, reserved_name=name)
            except HTTPException as error:
                raise _as_journey_error(error, secret_stored=False) from None
            log.info("onboarding created an agent", extra={"customer": name})
        customer = Customer.model_validate(live)
        billing = customer.status.billing
        url = journey.checkout_url
        now = datetime.now(UTC)
        fresh = journey.checkout_expires_at is None or journey.checkout_expires_at - _LINK_MARGIN > now
        paid = billing is not None and billing.state not in SUBSCRIPTION_ENDED
        if url is None or (not fresh and not paid):
            key = f"onboarding-checkout:{session_id}:{name}:{journey.checkout_id or 'first'}"
            try:
                session = await open_checkout(
                    state, customer, user.email, customer.spec.tier, state.settings.chat_path, key
                )
            except HTTPException as error:
                raise _as_journey_error(error, secret_stored=True) from None
            await journeys.record_checkout(state.pool, session_id, session.id, session.url, session.expires_at)
            url = session.url
            created = True
        return AgentAndCheckout(name, url, journey.bot_username, created)
