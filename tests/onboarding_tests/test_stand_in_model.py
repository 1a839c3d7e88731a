"""The local stand-in model of `make up` (onboarding_stand_in.py), as pure logic on requests shaped as the service
sends them: the step and facts in the system prompt, server notes after the user's message, tool results."""

from __future__ import annotations

from typing import Any

from clawhost_localcluster.fake_kimi import Step, ToolCall
from clawhost_localcluster.onboarding_stand_in import ASK_PREFERENCES, ASK_TOKEN, answer

PLANS = "Plans (the only ones; prices are per month):\nStarter (starter): $19/month\nPro (pro): $49/month"
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {}}}
    for name in ("record_use_case", "confirm_telegram_user", "set_telegram_user_id", "record_preferences")
] + [
    {"type": "function", "function": {"name": "recommend_tier", "parameters": {}}},
    {
        "type": "function",
        "function": {
            "name": "finish_onboarding",
            "parameters": {"properties": {"tier": {"enum": ["starter", "pro", "team"]}}},
        },
    },
]
CONNECTED = "Telegram bot connected: @shop_bot"
SEEN_ANA = f"{CONNECTED}\nTelegram user: Ana (not yet confirmed by the user)"


def request(step: str, user: str, *after: dict[str, Any], facts: str = "") -> dict[str, Any]:
    system = f"You are ...\n\n{PLANS}\n\nCurrent step: {step}. Do it.\n{facts}".rstrip()
    return {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}, *after],
        "tools": TOOLS,
    }


def reply(step: str, user: str, *after: dict[str, Any], facts: str = "") -> Step:
    found = answer(request(step, user, *after, facts=facts))
    assert found is not None, "an onboarding request is answered"
    return found


def note(text: str) -> dict[str, Any]:
    return {"role": "system", "content": f"Server note: {text}"}


def tool_result(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": None, "tool_calls": []}, {"role": "tool", "content": text}]


def test_each_step_answers_with_the_tool_call_it_needs() -> None:
    assert reply("GATHERING_USE_CASE", "reminders for my  bakery").tool_calls == (
        ToolCall("record_use_case", {"use_case": "reminders for my bakery", "language": "en"}),
    )
    yes = reply("GATHERING_TELEGRAM", "yes, that's me", facts=SEEN_ANA)
    assert yes.tool_calls == (ToolCall("confirm_telegram_user", {"is_them": True}),)
    no = reply("GATHERING_TELEGRAM", "no, not me", facts=SEEN_ANA)
    assert no.tool_calls == (ToolCall("confirm_telegram_user", {"is_them": False}),)
    typed = reply("GATHERING_TELEGRAM", "my id is 123456789", facts=CONNECTED)
    assert typed.tool_calls == (ToolCall("set_telegram_user_id", {"user_id": 123456789}),)
    prefs = reply("GATHERING_PREFERENCES", "heavily, the three of us")
    assert prefs.tool_calls == (ToolCall("record_preferences", {"activity": "heavy", "telegram_users": 3}),)
    pick = reply("RECOMMENDING_TIER", "Team please", facts="Recommended plan: pro")
    assert pick.tool_calls == (ToolCall("finish_onboarding", {"tier": "team"}),)
    agree = reply("RECOMMENDING_TIER", "ok, sounds good", facts="Recommended plan: pro")
    assert agree.tool_calls == (ToolCall("finish_onboarding", {"tier": "pro"}),)


def test_server_notes_and_tool_results_become_the_next_question() -> None:
    after_use_case = reply("GATHERING_TELEGRAM", "bakery", *tool_result("Recorded. Now at step X."))
    assert (after_use_case.text, after_use_case.tool_calls) == (ASK_TOKEN, ())
    refused = reply("GATHERING_TELEGRAM", "[bot token removed]", note("the bot token was refused: Unauthorized. Ask."))
    assert "Unauthorized" in refused.text
    waiting = reply(
        "GATHERING_TELEGRAM",
        "[bot token removed]",
        note("a valid token for @shop_bot was received and kept."),
        note("nobody has pressed Start in @shop_bot yet. Ask the user to open t.me/shop_bot"),
        facts=CONNECTED,
    )
    assert "t.me/shop_bot" in waiting.text
    assert waiting.tool_calls == ()
    started = reply("GATHERING_TELEGRAM", "done", note("'Ana' pressed Start in @shop_bot. Ask"), facts=CONNECTED)
    assert started.text.endswith("Is this you, Ana?")
    prefs = reply("GATHERING_PREFERENCES", "yes", *tool_result("Confirmed. Now at step X."))
    assert prefs.text == ASK_PREFERENCES
    plans = reply(
        "RECOMMENDING_TIER", "daily", *tool_result("Recorded. Recommended: pro."), facts="Recommended plan: pro"
    )
    assert "I recommend Pro" in plans.text
    assert "Pro (pro): $49/month" in plans.text
    for said in (after_use_case, refused, waiting, started, prefs, plans):
        assert said.text.count("?") <= 2, said.text


def test_requests_that_are_not_the_onboarding_agents_are_left_alone() -> None:
    assert answer({"messages": [{"role": "user", "content": "hi"}]}) is None
    assert answer({"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS[:2]}) is None
