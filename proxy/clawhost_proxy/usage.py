"""What an upstream reports a request used: prompt, completion and cached prompt tokens (OpenAI and Moonshot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt: int = 0
    completion: int = 0
    cached_prompt: int = 0  # part of `prompt`: served from the upstream's prompt cache
    estimated: bool = False  # no usage came: counted from what was sent and streamed


NOTHING = TokenUsage()


def usage_of(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The usage object of a response or chunk: top-level, or in `choices[0]` (where Moonshot also puts it)."""
    usage = chunk.get("usage")
    if not usage:
        choices = chunk.get("choices") or []
        usage = choices[0].get("usage") if choices and isinstance(choices[0], dict) else None
    return usage if isinstance(usage, dict) else None


def _count(value: Any) -> int:
    """A token count from the upstream; anything but a non-negative integer counts as 0."""
    return value if type(value) is int and value > 0 else 0


def reported(usage: dict[str, Any]) -> TokenUsage:
    """The counts of a usage object; cached prompt tokens from Moonshot's `cached_tokens` or OpenAI's
    `prompt_tokens_details.cached_tokens`, never more than the prompt."""
    prompt = _count(usage.get("prompt_tokens"))
    cached = _count(usage.get("cached_tokens"))
    if not cached:
        details = usage.get("prompt_tokens_details")
        cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return TokenUsage(prompt, _count(usage.get("completion_tokens")), min(cached, prompt))
