"""The plan part of the dashboard in words: the plan that runs, when it renews, a change waiting to apply, and what
each other plan would be (an upgrade or a downgrade), plus the choices the settings form may offer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from clawhost_api.tiers import THINKING_ORDER, TIER_ORDER, ThinkingLevel, TierName, get_tier

Direction = Literal["up", "down", "current"]


@dataclass(frozen=True)
class PlanWords:
    current: str  # "Pro, $49 a month"
    renewal: str | None  # "1 January 2027"; None before the first payment
    pending: str | None  # a chosen plan that is not the one running yet
    directions: dict[str, Direction]  # every tier: an upgrade, a downgrade or the current one


@dataclass(frozen=True)
class SettingChoices:
    models: tuple[str, ...]
    levels: tuple[ThinkingLevel, ...]
    users_max: int


def long_date(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def price(cents: int) -> str:
    whole, rest = divmod(cents, 100)
    return f"${whole:,}" if rest == 0 else f"${whole:,}.{rest:02d}"


def plan_words(
    chosen: TierName, running: TierName, paid: TierName | None, billed: bool, period_end: datetime | None
) -> PlanWords:
    """`chosen` is spec.tier, `running` the effective tier, `paid` what Stripe bills for; `billed`: Stripe mode."""
    tier = get_tier(running)
    renewal = long_date(period_end) if billed and period_end is not None else None
    pending = None
    if billed and paid is not None and chosen != paid:
        target = get_tier(chosen).display_name
        if TIER_ORDER.index(chosen) < TIER_ORDER.index(paid):
            when = f"on {renewal}" if renewal else "when this period ends"
            pending = f"Your change to {target} applies {when}; until then you keep {get_tier(paid).display_name}."
        else:
            pending = f"Your upgrade to {target} applies as soon as Stripe confirms the payment."
    base = paid if billed and paid is not None else running
    directions: dict[str, Direction] = {
        name: "current" if name == base else "up" if TIER_ORDER.index(name) > TIER_ORDER.index(base) else "down"
        for name in TIER_ORDER
    }
    return PlanWords(f"{tier.display_name}, {price(tier.price_cents)} a month", renewal, pending, directions)


def setting_choices(running: TierName) -> SettingChoices:
    tier = get_tier(running)
    levels = tuple(level for level in THINKING_ORDER if tier.allows_thinking(level))
    return SettingChoices(tuple(tier.models), levels, tier.telegram_users_max)
