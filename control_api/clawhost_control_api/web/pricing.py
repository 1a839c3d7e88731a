"""The plans as the pricing page shows them: every figure read from the one tiers table, never copied."""

from __future__ import annotations

from dataclasses import dataclass

from clawhost_api.tiers import TIER_ORDER, ThinkingLevel, load_tiers

RECOMMENDED = "pro"  # the onboarding agent's advice when a person is unsure, so the page says the same
_THINKING_WORDS: dict[ThinkingLevel, str] = {
    "off": "No extended thinking",
    "minimal": "Minimal thinking",
    "low": "Light thinking",
    "medium": "Medium thinking",
    "high": "Deep thinking (high)",
}


@dataclass(frozen=True)
class Plan:
    name: str
    display_name: str
    price: str  # "$19"
    monthly_tokens: str  # "1M"
    telegram_users: str  # "1 Telegram user"
    thinking: str
    models: tuple[str, ...]
    recommended: bool


def dollars(cents: int) -> str:
    whole, rest = divmod(cents, 100)
    return f"${whole:,}" if rest == 0 else f"${whole:,}.{rest:02d}"


def token_amount(tokens: int) -> str:
    """1000000 -> "1M", 2500000 -> "2.5M", 750000 -> "750K"."""
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if tokens >= size:
            return f"{tokens / size:.1f}".removesuffix(".0") + unit
    return str(tokens)


def plans() -> list[Plan]:
    tiers = load_tiers()
    return [
        Plan(
            name=name,
            display_name=tiers[name].display_name,
            price=dollars(tiers[name].price_cents),
            monthly_tokens=token_amount(tiers[name].monthly_tokens),
            telegram_users=f"{tiers[name].telegram_users_max} Telegram user"
            + ("s" if tiers[name].telegram_users_max != 1 else ""),
            thinking=_THINKING_WORDS[tiers[name].thinking],
            models=tiers[name].models,
            recommended=name == RECOMMENDED,
        )
        for name in TIER_ORDER
    ]
