"""What a Customer may run: the effective tier (never more than what is paid) and everything derived from it.

The operator renders from this and the control API shows and validates against it, so the two can never disagree
about what runs (services import this package, never each other).
"""

from __future__ import annotations

from dataclasses import dataclass

from clawhost_api.customer import BillingStatus, CustomerSpec, HeartbeatSpec
from clawhost_api.tiers import TIER_ORDER, ThinkingLevel, Tier, TierName, get_tier


def effective_tier(spec: CustomerSpec, billing: BillingStatus | None) -> TierName:
    """Never more than what is paid: the lower of spec.tier and the paid tier (billing schedules downgrades)."""
    if spec.billing.mode == "stripe" and billing is not None and billing.paid_tier is not None:
        return min(spec.tier, billing.paid_tier, key=TIER_ORDER.index)
    return spec.tier


@dataclass(frozen=True)
class Entitlement:
    """What runs for one customer: the effective tier's allowance applied to the spec."""

    tier: Tier
    active_telegram_ids: tuple[int, ...]  # the first N distinct ids in spec order, N = the tier's allowance
    inactive_telegram_ids: tuple[int, ...]  # the rest: in the spec, not allowed to talk to the agent
    model: str
    thinking: ThinkingLevel
    heartbeat: HeartbeatSpec  # the customer's choice as is: its turns are metered against the tier's allowance


def entitlement(spec: CustomerSpec, billing: BillingStatus | None) -> Entitlement:
    """The spec within the effective tier: extra Telegram ids dropped (kept in the spec, shown as inactive), a model
    or thinking level beyond the tier replaced by the tier's own."""
    tier = get_tier(effective_tier(spec, billing))
    distinct = tuple(dict.fromkeys(spec.telegram.allowed_user_ids))
    wanted_model, wanted_thinking = spec.agent.model, spec.agent.thinking
    return Entitlement(
        tier=tier,
        active_telegram_ids=distinct[: tier.telegram_users_max],
        inactive_telegram_ids=distinct[tier.telegram_users_max :],
        model=wanted_model if wanted_model is not None and wanted_model in tier.models else tier.default_model,
        thinking=wanted_thinking if wanted_thinking and tier.allows_thinking(wanted_thinking) else tier.thinking,
        heartbeat=spec.heartbeat,
    )
