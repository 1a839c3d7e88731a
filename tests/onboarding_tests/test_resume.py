"""A conversation survives its connection and its process: a reconnect with the session id shows exactly what was
shown and goes on; a service killed (SIGKILL) mid-conversation, even mid-reply, resumes from Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clawhost_localcluster.fake_kimi import FakeKimi, Step
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.onboarding_script import Conversation, fresh_ip, of_type
from clawhost_localcluster.telegram_bot_api import TelegramBotApi


def shown(frames: list[dict[str, Any]], greeting: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The transcript a browser built from the frames it got: the greeting, then each message and reply."""
    lines = list(greeting)
    for frame in frames:
        if frame["type"] == "reply":
            lines.append({"role": "assistant", "text": frame["text"]})
    return lines


async def test_a_reconnect_with_the_session_id_shows_the_same_conversation_and_goes_on_to_the_result(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot()
    async with onboarding.connect() as first:
        session = await first.hello(client_ip=fresh_ip(), user_id="9")
        frames = await talk.play(first, telegram, bot.token, last=3)
    assert [f["state"] for f in of_type(frames, "reply")] == ["GATHERING_TELEGRAM"] * 3
    async with onboarding.connect() as second:
        resumed = await second.hello(session["session_id"], user_id="9")
        assert resumed["session_id"] == session["session_id"]
        assert resumed["state"] == "GATHERING_TELEGRAM"
        assert resumed["bot_username"] == bot.username
        replies = [line for line in resumed["transcript"] if line["role"] == "assistant"]
        assert replies == shown(frames, session["transcript"])
        users = [line["text"] for line in resumed["transcript"] if line["role"] == "user"]
        assert users == [talk.happy_message(n, "[bot token removed]") for n in (1, 2, 3)]
        await talk.play(second, telegram, bot.token, first=4)
        result = (await second.until("result"))[-1]
    assert result["result"]["agent"]["allowed_user_ids"] == [4242]
    assert result["result"]["agent"]["bot_token"] == bot.token


async def test_the_service_killed_between_messages_and_mid_reply_resumes_where_it_stopped(
    start_service: Callable[..., OnboardingProcess], kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    service = start_service()
    talk = Conversation(kimi)
    talk.happy_path()
    hold = 9001
    talk.script(5, Step(text="…", hold=hold))  # the reply to message 5 hangs until released
    bot = telegram.register_bot()
    async with service.connect() as client:
        session = await client.hello(client_ip=fresh_ip(), user_id="11")
        await talk.play(client, telegram, bot.token, last=2)
    service.kill()
    service.start()
    async with service.connect() as client:
        resumed = await client.hello(session["session_id"], user_id="11")
        assert resumed["state"] == "GATHERING_TELEGRAM"
        assert len(resumed["transcript"]) == 5  # greeting + two messages and their replies
        await talk.play(client, telegram, bot.token, first=3, last=4)
        await client.send({"type": "message", "text": talk.happy_message(5, bot.token)})
        assert (await client.receive())["type"] == "typing"  # the model is being asked: now the process dies
    service.kill()
    talk.happy_path()  # the same request now answers at once (the newest script wins)
    kimi.release(hold)
    service.start()
    async with service.connect() as client:
        await client.send({"type": "hello", "session_id": session["session_id"], "user_id": "11"})
        frames = await client.until("reply")
        assert frames[0]["type"] == "session"
        assert frames[0]["transcript"][-1] == {"role": "user", "text": talk.happy_message(5, "")}
        assert frames[-1]["state"] == "RECOMMENDING_TIER"  # the cut-off reply, answered on resume
        await client.say(talk.happy_message(6, bot.token))
        result = (await client.until("result"))[-1]
    assert result["result"]["agent"]["tier"] == "pro"
    assert result["result"]["agent"]["bot_token"] == bot.token
