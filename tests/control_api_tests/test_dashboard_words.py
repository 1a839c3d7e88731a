"""The dashboard's words for the agent's state and its usage gauge (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clawhost_control_api.dashboard.agent_status import AgentFacts, describe
from clawhost_control_api.dashboard.plan_words import plan_words, setting_choices
from clawhost_control_api.dashboard.usage_gauge import tokens, usage_gauge


def facts(
    phase: str | None = "Running",
    ready: bool = True,
    reason: str | None = None,
    suspended_by: tuple[str, ...] = (),
    billing_state: str | None = "active",
    billing_mode: str = "stripe",
) -> AgentFacts:
    return AgentFacts(phase, ready, reason, suspended_by, billing_mode, billing_state)


@pytest.mark.parametrize(
    ("given", "state", "headline", "action"),
    [
        (facts(), "running", "Your agent is running", None),
        (facts(phase="Provisioning", ready=False), "starting", "Your agent is starting", None),
        (facts(phase=None, ready=False), "starting", "Your agent is starting", None),
        (facts(phase="Suspended", ready=False), "starting", "Your agent is starting again", None),
        (
            facts(phase="Provisioning", ready=False, reason="NamespaceTerminating"),
            "starting",
            "Your agent is starting",
            None,
        ),
        (
            facts(suspended_by=("you",), phase="Suspended", ready=False),
            "suspended",
            "You suspended your agent",
            "resume",
        ),
        (facts(suspended_by=("you",)), "suspended", "Your agent is stopping", "resume"),
        (
            facts(suspended_by=("platform", "you"), phase="Suspended"),
            "suspended",
            "Your agent is suspended by clawhost",
            "support",
        ),
        (
            facts(billing_state=None, phase="AwaitingPayment", ready=False),
            "payment_needed",
            "Waiting for your first payment",
            "checkout",
        ),
        (facts(billing_state="incomplete"), "payment_needed", "Waiting for your first payment", "checkout"),
        (
            facts(billing_state="unpaid", phase="Suspended"),
            "payment_needed",
            "Payment needed: your agent is paused",
            "portal",
        ),
        (facts(billing_state="past_due"), "payment_needed", "Payment needed: your last payment failed", "portal"),
        (
            facts(billing_state="paused", phase="Suspended"),
            "suspended",
            "Your agent is paused with your subscription",
            "portal",
        ),
        (facts(billing_state="canceled", phase="Destroyed"), "cancelled", "Your subscription has ended", "checkout"),
        (facts(billing_state="incomplete_expired"), "cancelled", "Your subscription has ended", "checkout"),
        (
            facts(phase="Failed", ready=False, reason="BotTokenMissing"),
            "failed",
            "Your agent cannot start: its Telegram bot token is missing",
            "bot_token",
        ),
        (facts(phase="Failed", ready=False, reason="InvalidSpec"), "failed", "Your agent cannot start", "support"),
        (facts(billing_mode="none", billing_state=None), "running", "Your agent is running", None),
    ],
)
def test_each_state_has_its_words_and_what_to_do(
    given: AgentFacts, state: str, headline: str, action: str | None
) -> None:
    status = describe(given)
    assert (status.state, status.headline, status.action) == (state, headline, action)
    assert status.detail.endswith("."), "a whole sentence"


def test_token_counts_read_like_a_person_would_say_them() -> None:
    assert [tokens(n) for n in (0, 950, 1_000, 12_345, 850_000, 1_000_000, 1_500_000, 20_000_000)] == [
        "0",
        "950",
        "1k",
        "12.3k",
        "850k",
        "1M",
        "1.5M",
        "20M",
    ]


def test_the_gauge_says_how_much_is_used_and_when_it_resets() -> None:
    end = datetime(2027, 1, 1, tzinfo=UTC)
    now = datetime(2026, 12, 27, 15, tzinfo=UTC)
    calm = usage_gauge(120_000, 1_000_000, end, now)
    assert (calm.percent, calm.level, calm.resets_on, calm.days_left) == (12.0, "ok", "1 January", 5)
    assert calm.text == "120k of 1M tokens used (12%). Resets on 1 January (in 5 days)."
    high = usage_gauge(850_000, 1_000_000, end, datetime(2026, 12, 31, tzinfo=UTC))
    assert high.level == "high"
    assert "(tomorrow)" in high.text
    assert "upgrading raises it at once" in high.text
    full = usage_gauge(1_000_350, 1_000_000, end, now)
    assert (full.percent, full.level) == (100.0, "full"), "an overshoot by the last request is capped"
    assert "cannot answer until then" in full.text


def test_the_plan_in_words_with_a_scheduled_downgrade_and_an_unpaid_upgrade() -> None:
    end = datetime(2027, 1, 1, tzinfo=UTC)
    steady = plan_words("pro", "pro", "pro", True, end)
    assert (steady.current, steady.renewal, steady.pending) == ("Pro, $49 a month", "1 January 2027", None)
    assert steady.directions == {"starter": "down", "pro": "current", "team": "up"}
    downgrade = plan_words("starter", "starter", "pro", True, end)
    assert downgrade.pending == "Your change to Starter applies on 1 January 2027; until then you keep Pro."
    assert downgrade.directions["pro"] == "current", "what Stripe bills for is the current plan"
    upgrade = plan_words("team", "pro", "pro", True, end)
    assert upgrade.pending == "Your upgrade to Team applies as soon as Stripe confirms the payment."
    unpaid = plan_words("starter", "starter", None, True, None)
    assert (unpaid.renewal, unpaid.pending) == (None, None)
    assert plan_words("team", "team", None, False, end).renewal is None, "no billing, no renewal"


def test_settings_offer_only_what_the_running_plan_allows() -> None:
    starter = setting_choices("starter")
    assert (starter.models, starter.levels, starter.users_max) == (
        ("kimi-k2.5",),
        ("off", "minimal", "low", "medium"),
        1,
    )
    assert setting_choices("team").levels[-1] == "high"
    assert setting_choices("team").users_max == 10
