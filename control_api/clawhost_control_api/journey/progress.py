"""What the chat says after payment, read from the Customer as the cache holds it (pure; no Stripe, no API calls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from clawhost_api.customer import Customer

Phase = Literal["payment_received", "starting", "live", "failed"]
PHASES: tuple[Phase, ...] = ("payment_received", "starting", "live")  # the order they happen in; failed ends any

# Subscription states a checkout may end in without the money arriving.
_UNPAID = {
    "incomplete": "Your payment has not gone through yet. Open the checkout link again to finish it.",
    "incomplete_expired": "Your payment did not go through and the checkout expired. Ask me for a new checkout link.",
    "past_due": "Your payment failed. Update your card in the billing portal (dashboard) and your agent starts.",
    "unpaid": "Your payment failed. Update your card in the billing portal (dashboard) and your agent starts.",
    "canceled": "Your subscription was cancelled, so your agent will not run. Start a new checkout to get it back.",
    "paused": "Your subscription is paused, so your agent is not running. Resume it in the billing portal.",
}
_FAILED_REASONS = {
    "BotTokenMissing": "Your agent could not read its Telegram bot token. Set the token again in the dashboard "
    "(Bot token) and it starts on its own.",
    "InvalidSpec": "Your agent's settings were refused. Please contact support; nothing was charged twice.",
}


@dataclass(frozen=True)
class Progress:
    phase: Phase
    text: str


def phase_text(phase: Phase, bot_username: str) -> str:
    """What the chat says on reaching a phase on the way to live (failures say why instead)."""
    return {
        "payment_received": "Payment received, thank you. Your agent is being set up.",
        "starting": "Starting your agent: this takes about a minute.",
        "live": f"Your agent is live: message @{bot_username} on Telegram.",
        "failed": "Your agent could not start. Please contact support.",
    }[phase]


def _condition_reason(customer: Customer, kind: str) -> str | None:
    found = next((c for c in customer.status.conditions if c.type == kind), None)
    return found.reason if found is not None else None


def _ready(customer: Customer) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in customer.status.conditions)


def _stalled_reason(customer: Customer) -> str | None:
    stalled = next((c for c in customer.status.conditions if c.type == "Stalled" and c.status == "True"), None)
    return stalled.reason if stalled is not None else None


def progress_of(raw: dict[str, Any] | None, bot_username: str) -> Progress | None:
    """The chat's phase for this Customer, or None while it waits for the payment (nothing to say yet)."""
    if raw is None:
        return None
    try:
        customer = Customer.model_validate(raw)
    except ValidationError:
        return Progress("failed", "Your agent's settings could not be read. Please contact support.")
    billing = customer.status.billing
    state = billing.state if billing is not None else None
    if state is None:
        return None
    if state in _UNPAID:
        return Progress("failed", _UNPAID[state])
    # active or trialing: paid (or not due yet); from here on it is the operator's word.
    phase = customer.status.phase
    stalled = _stalled_reason(customer)
    if phase == "Failed" or stalled is not None:
        reason = stalled or _condition_reason(customer, "Ready")
        default = f"Your agent could not start ({reason}). We have been told; contact support if it stays like this."
        return Progress("failed", _FAILED_REASONS.get(reason or "", default))
    if phase == "Running" and _ready(customer):
        return Progress("live", phase_text("live", bot_username))
    if phase in ("Provisioning", "Running"):
        return Progress("starting", phase_text("starting", bot_username))
    if phase == "Suspended":
        return Progress("failed", "Your agent is suspended. Resume it from the dashboard.")
    return Progress("payment_received", phase_text("payment_received", bot_username))


def to_announce(last: Phase | None, now: Progress, first_look: bool) -> list[Phase]:
    """The phases to tell the chat, in order: every one between the last told and now, so a quick provisioning
    still reads "payment received, starting, live"; on a connection's first look, only where it stands."""
    if now.phase == "failed":
        return [] if last == "failed" else ["failed"]
    if last == "failed":
        return [now.phase]  # it recovered (say a card updated after a failed payment): where it stands now
    target = PHASES.index(now.phase)
    if first_look and last is None:
        return [now.phase]
    start = PHASES.index(last) + 1 if last is not None else 0
    return list(PHASES[start : target + 1])
