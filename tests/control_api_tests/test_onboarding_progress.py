"""What the chat says after payment, from a Customer as the cache holds it (pure; the live path is tested with the
operator in test_onboarding_socket.py)."""

from __future__ import annotations

from typing import Any

from clawhost_control_api.journey.progress import Progress, progress_of, to_announce


def _customer(
    billing: str | None, phase: str | None, ready: bool = False, stalled: str | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if billing is not None:
        status["billing"] = {"state": billing, "customerId": "cus_1", "subscriptionId": "sub_1"}
    if phase is not None:
        status["phase"] = phase
        ts = "2026-12-01T00:00:00Z"
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": stalled or phase,
                "lastTransitionTime": ts,
            },
            {
                "type": "Stalled",
                "status": "True" if stalled else "False",
                "reason": stalled or "Healthy",
                "lastTransitionTime": ts,
            },
        ]
    return {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": "c1"},
        "spec": {
            "tier": "pro",
            "telegram": {"botTokenSecretRef": {"name": "bot-c1"}, "allowedUserIds": [1]},
            "billing": {"mode": "stripe"},
        },
        "status": status,
    }


def test_phases_follow_billing_then_the_operator() -> None:
    assert progress_of(None, "bot") is None
    assert progress_of(_customer(None, "AwaitingPayment"), "bot") is None, "nothing to say before the payment"
    paid = progress_of(_customer("active", "AwaitingPayment"), "bot")
    assert paid is not None
    assert paid.phase == "payment_received"
    starting = progress_of(_customer("active", "Provisioning"), "bot")
    assert starting is not None
    assert starting.phase == "starting"
    live = progress_of(_customer("active", "Running", ready=True), "my_helper_bot")
    assert live == Progress("live", "Your agent is live: message @my_helper_bot on Telegram.")
    trial = progress_of(_customer("trialing", "Running", ready=True), "b")
    assert trial is not None
    assert trial.phase == "live"


def test_failures_say_what_to_do() -> None:
    unpaid = progress_of(_customer("incomplete", "AwaitingPayment"), "bot")
    assert unpaid is not None
    assert unpaid.phase == "failed"
    assert "checkout link" in unpaid.text
    missing = progress_of(_customer("active", "Failed", stalled="BotTokenMissing"), "bot")
    assert missing is not None
    assert missing.phase == "failed"
    assert "bot token" in missing.text.lower()
    other = progress_of(_customer("active", "Provisioning", stalled="ImagePullBackOff"), "bot")
    assert other is not None
    assert other.phase == "failed"
    assert "ImagePullBackOff" in other.text


def test_skipped_phases_are_told_in_order_but_a_first_look_only_says_where_it_stands() -> None:
    live = Progress("live", "x")
    assert to_announce(None, live, first_look=True) == ["live"]
    assert to_announce(None, live, first_look=False) == ["payment_received", "starting", "live"]
    assert to_announce("payment_received", live, first_look=False) == ["starting", "live"]
    assert to_announce("live", live, first_look=False) == []
    failed = Progress("failed", "y")
    assert to_announce("starting", failed, first_look=False) == ["failed"]
    assert to_announce("failed", failed, first_look=False) == []
    assert to_announce("failed", Progress("starting", "z"), first_look=False) == ["starting"], "a recovery is told"
