"""The agent's state in plain words: what a person sees at the top of the dashboard, and what they can do about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["running", "starting", "suspended", "payment_needed", "cancelled", "failed", "no_agent"]
Tone = Literal["ok", "progress", "attention", "error"]
# What the page offers next to the words: the billing portal, a checkout, the resume button, the bot-token form.
Action = Literal["portal", "checkout", "resume", "bot_token", "support"]


@dataclass(frozen=True)
class AgentStatus:
    state: State
    tone: Tone
    headline: str
    detail: str
    action: Action | None = None


@dataclass(frozen=True)
class AgentFacts:
    """What the words are made from: the agent's view (`GET /agent`), the fields that matter here."""

    phase: str | None
    ready: bool
    reason: str | None
    suspended_by: tuple[str, ...]
    billing_mode: str
    billing_state: str | None


NO_AGENT = AgentStatus(
    "no_agent", "attention", "You have no agent yet", "Start the onboarding chat to set one up.", "checkout"
)
NOT_IN_CLUSTER = AgentStatus(
    "starting",
    "progress",
    "Your agent is being created",
    "We have your order and are setting your agent up. This page updates by itself.",
)


def describe(facts: AgentFacts) -> AgentStatus:
    """Billing first (it decides whether anything may run), then who suspended it, then what the operator reports."""
    billing = _billing_words(facts)
    if billing is not None:
        return billing
    if "platform" in facts.suspended_by:
        return AgentStatus(
            "suspended",
            "attention",
            "Your agent is suspended by clawhost",
            "Our team paused it; it does not answer on Telegram and uses no tokens. Contact support to resume it.",
            "support",
        )
    if "you" in facts.suspended_by:
        stopping = facts.phase not in ("Suspended", None) and facts.ready
        return AgentStatus(
            "suspended",
            "progress" if stopping else "attention",
            "Your agent is stopping" if stopping else "You suspended your agent",
            "It does not answer on Telegram and uses no tokens until you resume it. "
            "Your settings and history are kept.",
            "resume",
        )
    if facts.phase == "Failed":
        if facts.reason == "BotTokenMissing":
            return AgentStatus(
                "failed",
                "error",
                "Your agent cannot start: its Telegram bot token is missing",
                "Paste your bot token from @BotFather under Settings → Replace the bot token.",
                "bot_token",
            )
        return AgentStatus(
            "failed",
            "error",
            "Your agent cannot start",
            "Its settings were refused. Contact support; nothing you saved is lost.",
            "support",
        )
    if facts.phase == "Running" and facts.ready:
        return AgentStatus("running", "ok", "Your agent is running", "It answers your messages on Telegram.")
    if facts.reason == "NamespaceTerminating":
        return AgentStatus(
            "starting",
            "progress",
            "Your agent is starting",
            "The previous copy is still being cleaned up; then your agent starts. This page updates by itself.",
        )
    resuming = facts.phase == "Suspended"
    return AgentStatus(
        "starting",
        "progress",
        "Your agent is starting again" if resuming else "Your agent is starting",
        "This usually takes under a minute. This page updates by itself.",
    )


def _billing_words(facts: AgentFacts) -> AgentStatus | None:
    if facts.billing_mode != "stripe":
        return None
    state = facts.billing_state
    if state in ("canceled", "incomplete_expired") or facts.phase == "Destroyed":
        return AgentStatus(
            "cancelled",
            "attention",
            "Your subscription has ended",
            "Your agent was removed and uses nothing. Your settings are kept: subscribe again to bring it back.",
            "checkout",
        )
    if state in (None, "incomplete"):
        return AgentStatus(
            "payment_needed",
            "attention",
            "Waiting for your first payment",
            "Your agent starts as soon as the payment goes through. Finish the checkout to pay.",
            "checkout",
        )
    if state == "unpaid":
        return AgentStatus(
            "payment_needed",
            "error",
            "Payment needed: your agent is paused",
            "Your last payment failed after several tries. Update your card in the billing portal; "
            "your agent starts again once the payment goes through.",
            "portal",
        )
    if state == "past_due":
        return AgentStatus(
            "payment_needed",
            "attention",
            "Payment needed: your last payment failed",
            "Your agent keeps running while the payment is retried. Update your card in the billing portal "
            "so it is not paused.",
            "portal",
        )
    if state == "paused":
        return AgentStatus(
            "suspended",
            "attention",
            "Your agent is paused with your subscription",
            "Resume the subscription in the billing portal to start your agent again.",
            "portal",
        )
    return None
