"""What a chat request may ask for: an allow-listed body, checked against the customer's tier.

Only fields whose cost the proxy can bound go upstream. The completion cap is the proxy's own:
the client's `max_tokens` / `max_completion_tokens` are read (the smaller wins) and removed, and
the caller writes one cap key, cut to the reservation (`ChatHandler`). `n` must be 1, the model one
the tier offers, `reasoning_effort` no higher than the tier's thinking level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clawhost_api.tiers import ThinkingLevel, Tier

CAP_KEYS = ("max_completion_tokens", "max_tokens")
# The gateway's fields (model, messages, stream, stream_options, max_completion_tokens, reasoning_effort,
# tools) and OpenAI's sampling and tool-call options: none of them changes what a request can cost
# beyond its size (the prompt bound) and the cap.
ALLOWED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        *CAP_KEYS,
        "n",
        "reasoning_effort",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "response_format",
        "user",
        "store",
    }
)
# OpenAI's reasoning_effort values and the tier thinking level each one is.
REASONING_EFFORTS: dict[str, ThinkingLevel] = {
    "none": "off",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
}


@dataclass(frozen=True, slots=True)
class BodyProblem:
    """Why a body is refused (HTTP 400, `invalid_request_error`)."""

    message: str
    code: str


@dataclass(slots=True)
class ChatRequest:
    body: dict[str, Any]  # what goes upstream, without a cap key yet
    model: str
    requested: int  # the completion cap the client asked for, else the default
    stream: bool
    wants_usage: bool  # the client asked for the usage chunk of a stream


def quoted(text: str, limit: int = 64) -> str:
    """A client-supplied string fit for a message or a log line: escaped, and cut to `limit` characters."""
    return json.dumps(text[:limit] + ("..." if len(text) > limit else ""))


def _positive_int(value: Any) -> bool:
    return type(value) is int and value >= 1


def parse_chat_request(body: Any, tier: Tier, default_cap: int) -> ChatRequest | BodyProblem:
    """The request as it may go upstream, or why it may not."""
    if not isinstance(body, dict):
        return BodyProblem("request body must be a JSON object", "invalid_body")
    unknown = [key for key in body if key not in ALLOWED_FIELDS]
    if unknown:
        named = ", ".join(quoted(key, 40) for key in sorted(unknown)[:3])
        return BodyProblem(f"unsupported field(s): {named}", "unsupported_field")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return BodyProblem("'model' is required and must be a string", "invalid_body")
    if model not in tier.models:
        return BodyProblem(
            f"model {quoted(model)} is not available on the {tier.display_name} plan "
            f"(available: {', '.join(tier.models)})",
            "model_not_allowed",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return BodyProblem("'messages' must be a non-empty array of message objects", "invalid_body")
    caps: list[int] = []
    for key in CAP_KEYS:
        value = body.pop(key, None)
        if value is None:
            continue
        if not _positive_int(value):
            return BodyProblem(f"'{key}' must be a positive integer", "invalid_body")
        caps.append(value)
    n = body.get("n")
    if n is not None and (type(n) is not int or n != 1):
        return BodyProblem("'n' must be 1: one choice per request", "invalid_body")
    effort = body.get("reasoning_effort")
    if effort is not None:
        level = REASONING_EFFORTS.get(effort) if isinstance(effort, str) else None
        if level is None:
            return BodyProblem(f"'reasoning_effort' must be one of {', '.join(REASONING_EFFORTS)}", "invalid_body")
        if not tier.allows_thinking(level):
            return BodyProblem(
                f"reasoning_effort {effort!r} is above the {tier.display_name} plan's thinking level ({tier.thinking})",
                "reasoning_effort_not_allowed",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return BodyProblem("'stream' must be a boolean", "invalid_body")
    options = body.get("stream_options")
    if options is not None and (
        not isinstance(options, dict)
        or set(options) - {"include_usage"}
        or not isinstance(options.get("include_usage", False), bool)
    ):
        return BodyProblem("'stream_options' may only hold a boolean 'include_usage'", "invalid_body")
    wants_usage = bool(options and options.get("include_usage"))
    if stream:
        body["stream_options"] = {"include_usage": True}
    return ChatRequest(body, model, min(caps) if caps else default_cap, bool(stream), wants_usage)
