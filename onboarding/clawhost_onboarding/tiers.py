"""Tier recommendation and the plan facts the model may quote: all from the one tiers file, never from the model."""

from __future__ import annotations

from clawhost_api.onboarding import Activity
from clawhost_api.tiers import TIER_ORDER, Tier, TierName, load_tiers


def recommend(activity: Activity | None, telegram_users: int | None) -> TierName:
    """The smallest tier that fits: more Telegram users than a tier allows rule it out; occasional use fits the
    cheapest, heavy use the largest token allowance; when unsure (nothing known), Pro."""
    tiers = load_tiers()
    users = telegram_users or 1
    fitting = [name for name in TIER_ORDER if users <= tiers[name].telegram_users_max]
    if not fitting:
        return TIER_ORDER[-1]
    wanted: TierName
    if activity == "occasional":
        wanted = "starter"
    elif activity == "heavy":
        wanted = "team"
    else:
        wanted = "pro"
    return wanted if wanted in fitting else fitting[0]


def price_text(tier: Tier) -> str:
    dollars, cents = divmod(tier.price_cents, 100)
    return f"${dollars}.{cents:02d}/month" if cents else f"${dollars}/month"


def describe(tier: Tier) -> str:
    users = "1 Telegram user" if tier.telegram_users_max == 1 else f"up to {tier.telegram_users_max} Telegram users"
    return (
        f"{tier.display_name} ({tier.name}): {price_text(tier)}, {tier.monthly_tokens:,} tokens a month, "
        f"{users}, thinking level {tier.thinking}"
    )


def table() -> str:
    """Every tier, one line each, in the file's order."""
    return "\n".join(describe(tier) for tier in load_tiers().values())
