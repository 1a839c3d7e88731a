"""What the control API says went wrong, made safe to show: no secret survives, whatever a message upstream held."""

from __future__ import annotations

import re

from clawhost_onboarding import bot_token

SECRET_REMOVED = "[secret removed]"  # noqa: S105 - the placeholder, not a secret
MAX_CHARS = 600

# The platform's credentials by their shapes: proxy and gateway tokens (chp_, gw_), Stripe keys and webhook secrets,
# a bearer credential, a JWT. A bot token is taken out by bot_token.extract, as from the user's own messages.
_SECRETS = (
    re.compile(r"(?<![A-Za-z0-9])(?:chp|gw|sk|rk|pk|whsec)_[A-Za-z0-9_-]{6,}"),
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
)


def scrub(text: str) -> str:
    """The text with every secret-shaped run replaced, whitespace collapsed, at most MAX_CHARS characters."""
    cleaned = bot_token.extract(text).text
    for pattern in _SECRETS:
        cleaned = pattern.sub(SECRET_REMOVED, cleaned)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= MAX_CHARS else cleaned[: MAX_CHARS - 1].rstrip() + "…"
