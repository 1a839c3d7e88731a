"""The proxy's Prometheus metrics, with the label children the hot path uses resolved once."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from clawhost_proxy.usage import TokenUsage

TOKENS = Counter(
    "clawhost_proxy_tokens_total",
    "Tokens metered; kind: prompt, completion, cached_prompt (part of prompt: served from the upstream's cache)",
    ["customer", "tier", "model", "kind"],
)
DURATION = Histogram("clawhost_proxy_request_duration_seconds", "Request duration", ["route", "stream"])
BLOCKED = Counter("clawhost_proxy_blocked_total", "Requests refused by the proxy", ["reason"])
UPSTREAM_ERRORS = Counter("clawhost_proxy_upstream_errors_total", "Upstream failures", ["kind"])
RESERVATIONS = Counter(
    "clawhost_proxy_reservations_total",
    "Reservations by path: reserve_first, overlapped (with the upstream call), overlap_refused",
    ["path"],
)
# Label children resolved once: a labels() lookup per request is measurable on the hot path.
RESERVE_FIRST = RESERVATIONS.labels("reserve_first")
OVERLAPPED = RESERVATIONS.labels("overlapped")
OVERLAP_REFUSED = RESERVATIONS.labels("overlap_refused")
CHAT_DURATION = {True: DURATION.labels("chat", "true"), False: DURATION.labels("chat", "false")}


class TokenMeters:
    """`clawhost_proxy_tokens_total` children per (customer, tier, model), looked up once each."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], tuple[Counter, Counter, Counter]] = {}

    def count(self, customer: str, tier: str, model: str, usage: TokenUsage) -> None:
        labels = (customer, tier, model)
        children = self._children.get(labels)
        if children is None:
            children = self._children[labels] = (
                TOKENS.labels(*labels, "prompt"),
                TOKENS.labels(*labels, "completion"),
                TOKENS.labels(*labels, "cached_prompt"),
            )
        children[0].inc(usage.prompt)
        children[1].inc(usage.completion)
        if usage.cached_prompt:
            children[2].inc(usage.cached_prompt)
