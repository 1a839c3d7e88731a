"""The shared Customer logic both services use: the effective tier and what it entitles, the heartbeat's rules and
its token estimate."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from clawhost_api.customer import BillingStatus, CustomerSpec
from clawhost_api.entitlement import effective_tier, entitlement
from clawhost_api.heartbeat import estimated_monthly_tokens


def _spec(**overrides: Any) -> CustomerSpec:
    raw: dict[str, Any] = {
        "tier": "pro",
        "telegram": {"botTokenSecretRef": {"name": "s"}, "allowedUserIds": [7]},
        "billing": {"mode": "stripe"},
    }
    raw.update(overrides)
    return CustomerSpec.model_validate(raw)


def test_effective_tier_never_exceeds_the_paid_one() -> None:
    assert effective_tier(_spec(tier="team"), BillingStatus(paid_tier="pro")) == "pro"
    assert effective_tier(_spec(tier="starter"), BillingStatus(paid_tier="team")) == "starter"
    assert effective_tier(_spec(tier="team", billing={"mode": "none"}), BillingStatus(paid_tier="starter")) == "team"


def test_the_effective_tier_entitles_the_first_ids_and_its_own_model_and_level() -> None:
    ids = list(range(1001, 1011))
    spec = _spec(
        tier="team",
        telegram={"botTokenSecretRef": {"name": "s"}, "allowedUserIds": ids},
        agent={"model": "kimi-k2-thinking", "thinking": "high"},
    )
    starter = entitlement(spec, BillingStatus(state="active", paid_tier="starter"))
    assert starter.tier.name == "starter"
    assert starter.active_telegram_ids == (1001,), "the first id in spec order"
    assert starter.inactive_telegram_ids == tuple(ids[1:])
    assert (starter.model, starter.thinking) == ("kimi-k2.5", "medium")
    team = entitlement(spec, BillingStatus(state="active", paid_tier="team"))
    assert team.active_telegram_ids == tuple(ids)
    assert team.inactive_telegram_ids == ()
    assert (team.model, team.thinking) == ("kimi-k2-thinking", "high")


@pytest.mark.parametrize(
    "heartbeat",
    [
        {"every": "5m"},
        {"every": "25h"},
        {"every": "30"},
        {"every": "30m", "activeHours": {"start": "08:00", "end": "08:00"}},
        {"every": "30m", "activeHours": {"start": "8:00", "end": "22:00"}},
    ],
)
def test_heartbeat_spec_refuses_what_the_crd_refuses(heartbeat: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _spec(heartbeat=heartbeat)


def test_heartbeat_token_estimate() -> None:
    # OpenClaw's own default, a full-context turn every 30 minutes: ~18M tokens a month (the issue's figure).
    assert estimated_monthly_tokens("30m", False, None) == 48 * 30 * (12_451 + 10) == 17_943_840
    assert estimated_monthly_tokens("0m", False, None) == 0
    assert estimated_monthly_tokens("2h", True, None) == 12 * 30 * (8_000 + 10)
    assert estimated_monthly_tokens("1h", True, ("08:00", "20:00")) == 12 * 30 * 8_010
    assert estimated_monthly_tokens("1h", True, ("22:00", "06:00")) == 8 * 30 * 8_010, "a window past midnight"
    assert estimated_monthly_tokens("24h", False, ("09:00", "10:00")) == 30 * 12_461, "at least once a day"
