"""The tiers table (prices, token limits, pod sizes), loaded once from tiers.yaml."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

TierName = Literal["starter", "pro", "team"]
ThinkingLevel = Literal["off", "minimal", "low", "medium", "high"]
THINKING_ORDER: tuple[ThinkingLevel, ...] = ("off", "minimal", "low", "medium", "high")


class Tier(BaseModel):
    """One row of the tiers table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: TierName
    display_name: str
    price_cents: int = Field(gt=0)
    monthly_tokens: int = Field(gt=0)
    thinking: ThinkingLevel
    telegram_users_max: int = Field(ge=1)
    models: tuple[str, ...] = Field(min_length=1)
    default_model: str
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    node_heap_mb: int = Field(gt=0)
    # A cached prompt token counts this much of a fresh one against `monthly_tokens` (see tiers.yaml).
    cached_prompt_weight: float = Field(default=0.25, ge=0, le=1)

    def allows_thinking(self, level: ThinkingLevel) -> bool:
        """A customer may pick any thinking level up to the tier's own."""
        return THINKING_ORDER.index(level) <= THINKING_ORDER.index(self.thinking)


@cache
def load_tiers() -> dict[TierName, Tier]:
    """All tiers by name, in the order of the file (cheapest first)."""
    raw = yaml.safe_load(resources.files(__package__).joinpath("tiers.yaml").read_text())
    return {name: Tier(name=name, **row) for name, row in raw["tiers"].items()}


def get_tier(name: TierName) -> Tier:
    return load_tiers()[name]


TIER_ORDER: tuple[TierName, ...] = ("starter", "pro", "team")
