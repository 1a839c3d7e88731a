"""Render the gateway's openclaw.json (OPENCLAW_VERSION's keys) for one customer; secrets stay as ${ENV} references."""

from __future__ import annotations

import json
from typing import Any

from clawhost_api.customer import HeartbeatSpec
from clawhost_api.entitlement import Entitlement

# The OpenClaw release the rendered keys are written for and the gateway image's tag. The image pins the same
# release in images/openclaw/package.json (a test keeps the two equal).
OPENCLAW_VERSION = "2026.9.6"
GATEWAY_PORT = 18789
PROVIDER_ID = "platform"  # neutral: OpenClaw's bundled Kimi plugin rewrites `kimi-coding`
CONTEXT_WINDOW = 262144
MAX_COMPLETION_TOKENS = 8192


def render_openclaw_config(
    entitled: Entitlement, proxy_base_url: str, telegram_api_root: str | None = None
) -> dict[str, Any]:
    """Everything from what the customer is entitled to (see `clawhost_api.entitlement`), never the raw spec: ids,
    model and thinking beyond the effective tier do not run. `telegram_api_root` replaces https://api.telegram.org
    (a local Bot API stand-in; unset in production)."""
    model, thinking = entitled.model, entitled.thinking
    telegram: dict[str, Any] = {
        "enabled": True,
        "botToken": "${TELEGRAM_BOT_TOKEN}",
        "dmPolicy": "allowlist",
        "allowFrom": sorted(entitled.active_telegram_ids),
    }
    if telegram_api_root:
        telegram["apiRoot"] = telegram_api_root
    return {
        # Bound to the pod's address, not loopback, so the kubelet's httpGet probes reach /healthz and /readyz (an
        # exec probe starts a Node process each time). Nothing else can: the pod's NetworkPolicy admits no ingress,
        # and every other route needs the gateway token. The origins are what the gateway would seed itself for a
        # non-loopback bind; written here so it does not try at each start.
        "gateway": {
            "mode": "local",
            "bind": "lan",
            "port": GATEWAY_PORT,
            "auth": {"mode": "token", "token": "${OPENCLAW_GATEWAY_TOKEN}"},
            "controlUi": {"allowedOrigins": [f"http://localhost:{GATEWAY_PORT}", f"http://127.0.0.1:{GATEWAY_PORT}"]},
        },
        "channels": {"telegram": telegram},
        "models": {
            "catalogRefresh": {"enabled": False},
            "providers": {
                PROVIDER_ID: {
                    "baseUrl": proxy_base_url,
                    "apiKey": "${KIMI_API_KEY}",
                    "api": "openai-completions",
                    "models": [
                        {
                            "id": model,
                            "name": model,
                            "reasoning": True,
                            "contextWindow": CONTEXT_WINDOW,
                            "maxTokens": MAX_COMPLETION_TOKENS,
                            "compat": {"supportsReasoningEffort": True},
                        }
                    ],
                }
            },
        },
        "agents": {
            "defaults": {
                "model": {"primary": f"{PROVIDER_ID}/{model}"},
                "thinkingDefault": thinking,
                "heartbeat": render_heartbeat(entitled.heartbeat),
            }
        },
        # Hosted tenant: no shell on the pod, no elevated escape hatch; and no plugin downloads at start.
        "tools": {"deny": ["exec", "process"], "elevated": {"enabled": False}},
        "plugins": {"entries": {"kimi": {"enabled": False}, "moonshot": {"enabled": False}}},
        "update": {"checkOnStart": False},
    }


def render_heartbeat(spec: HeartbeatSpec) -> dict[str, Any]:
    """Always explicit: OpenClaw's own default (a full turn every 30 minutes) would spend a Starter allowance in two
    days. Off is `every: "0m"`; a heartbeat's message goes to the user who wrote last (`target: "last"`)."""
    heartbeat: dict[str, Any] = {
        "every": spec.every,
        "target": "last",
        "lightContext": spec.light_context,
        "isolatedSession": spec.isolated_session,
    }
    if spec.active_hours is not None:
        window = spec.active_hours
        heartbeat["activeHours"] = {"start": window.start, "end": window.end}
        if window.timezone:
            heartbeat["activeHours"]["timezone"] = window.timezone
    return heartbeat


def serialize_config(config: dict[str, Any]) -> str:
    """Stable JSON (valid JSON5) so equal configs hash equal."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"
