"""The usage gauge in numbers and words: tokens used of this period's allowance, and the day it resets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Level = Literal["ok", "high", "full"]
HIGH_SHARE = 0.8  # from here the gauge turns to a warning colour and says what happens at the limit


@dataclass(frozen=True)
class UsageGauge:
    used: int
    limit: int
    percent: float  # of the allowance, 0-100 (capped: a period can overshoot by the last request's tokens)
    level: Level
    resets_on: str  # e.g. "1 January"
    days_left: int
    text: str  # the gauge's one sentence, also its accessible value text


def tokens(count: int) -> str:
    """A token count for people: 950, 12.3k, 1.5M."""
    if count < 1_000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1_000:.1f}".removesuffix(".0") + "k"
    return f"{count / 1_000_000:.2f}".rstrip("0").rstrip(".") + "M"


def day_and_month(moment: datetime) -> str:
    return f"{moment.day} {moment:%B}"


def usage_gauge(used: int, limit: int, period_end: datetime, now: datetime | None = None) -> UsageGauge:
    moment = now or datetime.now(UTC)
    end = period_end.astimezone(UTC)
    days_left = max(0, (end.date() - moment.astimezone(UTC).date()).days)
    share = used / limit if limit > 0 else 1.0
    percent = round(min(share, 1.0) * 100, 1)
    level: Level = "full" if share >= 1 else "high" if share >= HIGH_SHARE else "ok"
    resets = day_and_month(end)
    when = "today" if days_left == 0 else "tomorrow" if days_left == 1 else f"in {days_left} days"
    text = f"{tokens(used)} of {tokens(limit)} tokens used ({percent:g}%). Resets on {resets} ({when})."
    if level == "full":
        text += " The allowance is used up: your agent cannot answer until then, or upgrade your plan now."
    elif level == "high":
        text += " When it is used up your agent cannot answer until the reset; upgrading raises it at once."
    return UsageGauge(used, limit, percent, level, resets, days_left, text)
