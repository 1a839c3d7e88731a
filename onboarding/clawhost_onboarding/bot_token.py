"""Recognising a Telegram bot token in what a user typed, and taking it out before anything else sees the text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What @BotFather hands out: the bot's numeric id, a colon, a 35-character secret (the control API accepts 30-64).
VALID_FORMAT = re.compile(r"^\d{5,12}:[A-Za-z0-9_-]{30,64}$")
# Anything that looks like an attempt at one (a digit run, a colon, a long run of token characters): removed too,
# even when malformed, because a mistyped token is still most of a secret.
_CANDIDATE = re.compile(r"(?<!\d)\d{1,15}\s?:\s?[A-Za-z0-9_-]{16,}(?![A-Za-z0-9_-])")
PLACEHOLDER = "[bot token removed]"


@dataclass(frozen=True)
class Extraction:
    text: str  # the message with every candidate replaced by PLACEHOLDER
    candidates: tuple[str, ...]  # what was removed, in order (whitespace around the colon dropped)

    @property
    def token(self) -> str | None:
        """The last well-formed token, if any (people paste again after a typo)."""
        valid = [c for c in self.candidates if VALID_FORMAT.match(c)]
        return valid[-1] if valid else None


def extract(text: str) -> Extraction:
    found: list[str] = []

    def take(match: re.Match[str]) -> str:
        found.append(re.sub(r"\s", "", match.group(0)))
        return PLACEHOLDER

    return Extraction(_CANDIDATE.sub(take, text), tuple(found))


def bot_id_of(token: str) -> int:
    return int(token.split(":", 1)[0])
