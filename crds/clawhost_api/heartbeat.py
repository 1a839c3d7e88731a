"""The agent's heartbeat (OpenClaw's `agents.defaults.heartbeat`): its cadence rules and what it costs in tokens.

A heartbeat is a full agent turn that OpenClaw starts on its own. Left at OpenClaw's default (every 30 minutes) it
would spend ~18M tokens a month, more than any tier's allowance, so it is off unless the customer chooses a cadence.
"""

from __future__ import annotations

import re
import zoneinfo

OFF = "0m"
EVERY_PATTERN = r"^(0m|[1-9][0-9]{0,3}[mh])$"  # minutes or hours, as OpenClaw writes them ("30m", "2h"); 0m: off
MIN_MINUTES = 15  # more often than this would spend a Starter allowance within days
MAX_MINUTES = 24 * 60
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"  # HH:MM, a window's start
END_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"  # HH:MM, a window's end (24:00: midnight)
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"  # an IANA name: UTC, Europe/Berlin

# Per-turn tokens for the estimate. Measured (product brief, OpenClaw 2026.9.6 with the operator's rendered config,
# one "ping" turn): 12,451 prompt tokens (system prompt, tools and workspace files) and 4 completion tokens.
FULL_CONTEXT_PROMPT_TOKENS = 12_451
# ASSUMED, not measured: lightContext injects only HEARTBEAT.md of the workspace files; the system prompt and tool
# schemas stay, so about two thirds of the full turn.
LIGHT_CONTEXT_PROMPT_TOKENS = 8_000
# ASSUMED: a heartbeat with nothing to do answers HEARTBEAT_OK (the measured ping took 4); reasoning tokens and
# a longer answer when something needs attention are not included.
COMPLETION_TOKENS = 10
DAYS_PER_MONTH = 30


def interval_minutes(every: str) -> int:
    """`every` in minutes (0: off). Raises ValueError on anything but <n>m or <n>h."""
    if not re.fullmatch(EVERY_PATTERN, every):
        raise ValueError("heartbeat cadence must be minutes or hours like 30m or 2h (0m: off)")
    value = int(every[:-1])
    return value * 60 if every.endswith("h") else value


def check_interval(every: str) -> str:
    """`every` if it is off or within the allowed cadences, else ValueError saying which are."""
    minutes = interval_minutes(every)
    if minutes and not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise ValueError(f"heartbeat cadence must be from {MIN_MINUTES}m to {MAX_MINUTES // 60}h, or 0m (off)")
    return every


def _clock_minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def active_minutes_per_day(start: str, end: str) -> int:
    """Length of the daily window [start, end) in minutes; a window past midnight (22:00-06:00) wraps."""
    length = _clock_minutes(end) - _clock_minutes(start)
    return length if length > 0 else length + 24 * 60


def estimated_monthly_tokens(every: str, light_context: bool, active_hours: tuple[str, str] | None) -> int:
    """Tokens a month the heartbeat alone would spend (30 days; with isolatedSession off, add the history)."""
    minutes = interval_minutes(every)
    if minutes == 0:
        return 0
    window = active_minutes_per_day(*active_hours) if active_hours else 24 * 60
    turns_per_day = max(window // minutes, 1)
    prompt = LIGHT_CONTEXT_PROMPT_TOKENS if light_context else FULL_CONTEXT_PROMPT_TOKENS
    return turns_per_day * DAYS_PER_MONTH * (prompt + COMPLETION_TOKENS)


def check_start(clock: str) -> str:
    if not re.fullmatch(CLOCK_PATTERN, clock):
        raise ValueError("active hours start at HH:MM, from 00:00 to 23:59")
    return clock


def check_end(clock: str) -> str:
    if not re.fullmatch(END_PATTERN, clock):
        raise ValueError("active hours end at HH:MM, from 00:00 to 24:00")
    return clock


def check_window(start: str, end: str) -> None:
    """A window of no time at all would silence the heartbeat for good: refuse it rather than guess."""
    if start == end:
        raise ValueError("active hours start and end must differ")


def check_timezone(name: str | None) -> str | None:
    """An IANA time zone the gateway's runtime knows too (Node ships the same database)."""
    if name is None:
        return None
    try:
        if re.fullmatch(TIMEZONE_PATTERN, name) and len(name) <= 64:
            zoneinfo.ZoneInfo(name)
            return name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    raise ValueError("unknown time zone: use an IANA name like Europe/Berlin or UTC")
