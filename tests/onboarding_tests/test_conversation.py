"""The conversation through the service's real WebSocket: the real langchain-openai client against the OpenAI-compatible
stand-in (scripted, streamed tool calls), the Bot API stand-in, and real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from clawhost_api.onboarding import OnboardingResult
from clawhost_api.tiers import get_tier
from clawhost_localcluster.fake_kimi import FakeKimi, Step, ToolCall
from clawhost_localcluster.onboarding_process import OnboardingClient, OnboardingProcess
from clawhost_localcluster.onboarding_script import (
    PREFIX,
    Conversation,
    chat_to_a_result,
    fresh_ip,
    of_type,
    redis_values,
    stored_session,
)
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi


async def test_happy_path_reaches_a_result_in_six_messages_with_the_token_kept_from_model_transcript_and_log(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot("bakery_helper_bot")
    async with onboarding.connect() as client:
        session_id, frames = await chat_to_a_result(client, talk, telegram, bot.token)
        replies = of_type(frames, "reply")
        assert [r["state"] for r in replies] == [
            "GATHERING_TELEGRAM",
            "GATHERING_TELEGRAM",
            "GATHERING_TELEGRAM",
            "GATHERING_PREFERENCES",
            "RECOMMENDING_TIER",
            "RECOMMENDING_TIER",
        ]
        assert len(of_type(client.received, "reply")) <= 7
        # Streamed: the model's words arrive as deltas before each reply, and add up to it.
        first_reply_at = frames.index(replies[0])
        deltas = [f["text"] for f in frames[:first_reply_at] if f["type"] == "delta"]
        assert len(deltas) > 3
        assert "".join(deltas) == replies[0]["text"]
        result = frames[-1]
        assert result["type"] == "result"
        assert result["session_id"] == session_id
        assert result["user_id"] == "7"
        body = result["result"]
        assert body["agent"] == {
            "tier": "pro",
            "bot_token": bot.token,
            "allowed_user_ids": [4242],
            "model": None,
            "thinking": None,
            "heartbeat": None,
        }
        assert body["billing_mode"] == "stripe"
        assert body["price_cents"] == get_tier("pro").price_cents
        assert (body["bot_username"], body["bot_id"], body["telegram_user_first_name"]) == (
            "bakery_helper_bot",
            bot.id,
            "Ana",
        )
        assert body["language"] == "en"
        assert body["activity"] == "daily"
        assert OnboardingResult.model_validate(body).agent.tier == "pro"  # the type the control API reads it with
        # Kept for a day from the last activity, the token exactly as long (and deleted sooner: below).
        ttls = {key: redis.Redis.from_url(redis_server.url).ttl(key) for key in redis_values(redis_server.url)}
        assert 86_000 < ttls[f"{PREFIX}:session:{session_id}"] <= 86_400
        assert 86_000 < ttls[f"{PREFIX}:bot-token:{session_id}"] <= 86_400

        # The token: never in what the model got, in the stored conversation, or in the log.
        sent_to_model = json.dumps([r for r in kimi.requests if talk.tag in json.dumps(r)])
        assert "[bot token removed]" in sent_to_model
        assert "a valid token for @bakery_helper_bot" in sent_to_model
        assert bot.token not in sent_to_model
        assert bot.token.split(":")[1] not in sent_to_model
        stored = stored_session(redis_server.url, session_id)
        assert bot.token.split(":")[1] not in json.dumps(stored)
        assert any("[bot token removed]" in line["text"] for line in stored["transcript"])
        holding = [k for k, v in redis_values(redis_server.url).items() if bot.token.encode() in v]
        assert holding == [f"{PREFIX}:bot-token:{session_id}"]
        assert bot.token.split(":")[1] not in onboarding.log()
        assert session_id not in onboarding.log()
        assert onboarding.process is not None
        records = onboarding.process.json_log()  # every line a JSON object
        mine = [r for r in records if r.get("bot_username") == "bakery_helper_bot"]
        assert [r["message"] for r in mine] == ["bot token accepted"]
        assert {r["message"] for r in records if r.get("session") == mine[0]["session"]} >= {
            "session started",
            "telegram user seen",
            "reply",
            "result sent",
        }

        # After the conversation: the control API's frames move it on.
        await client.send({"type": "checkout_created", "customer_name": "c-bakery", "url": "https://checkout.test/x"})
        checkout = (await client.until("checkout"))[-1]
        assert checkout["url"] == "https://checkout.test/x"
        await client.send({"type": "secret_written"})
        for phase in ("payment_received", "starting", "live"):
            await client.send({"type": "provisioning", "phase": phase})
            frame = (await client.until("provisioning"))[-1]
            assert frame["phase"] == phase
        assert "@bakery_helper_bot" in frame["text"]
    assert f"{PREFIX}:bot-token:{session_id}" not in redis_values(redis_server.url)
    stored = stored_session(redis_server.url, session_id)
    assert stored["state"] == "COMPLETE"
    assert stored["customer_name"] == "c-bakery"


async def _at_telegram_step(client: OnboardingClient, talk: Conversation, user_id: str | None = "7") -> str:
    """A new session past the use case: its id."""
    talk.script(
        1,
        Step(tool_calls=(ToolCall("record_use_case", {"use_case": "reminders", "language": "en"}),)),
        Step(text="Now your bot's token, please."),
    )
    session = await client.hello(client_ip=fresh_ip(), user_id=user_id)
    frames = await client.say(f"reminders please {talk.marker(1)}")
    assert frames[-1]["state"] == "GATHERING_TELEGRAM", frames[-1]
    return str(session["session_id"])


def _server_notes(request: dict[str, Any]) -> str:
    return " ".join(str(m["content"]) for m in request["messages"] if m["role"] == "system")


@pytest.mark.parametrize("how", ["malformed", "unknown", "revoked"])
async def test_a_refused_bot_token_is_removed_not_kept_and_the_model_learns_only_why(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer, how: str
) -> None:
    talk = Conversation(kimi)
    bot = telegram.register_bot()
    token = {
        "malformed": f"{bot.id}:AAshort_{talk.tag}xyzxyzxyz",  # too short for a token: removed all the same
        "unknown": f"{bot.id + 10**6}:{bot.token.split(':')[1]}",
        "revoked": bot.token,
    }[how]
    if how == "revoked":
        telegram.revoke(bot.token)
    talk.script(2, Step(text="That token did not work; please copy it again from @BotFather."))
    async with onboarding.connect() as client:
        session_id = await _at_telegram_step(client, talk)
        frames = await client.say(f"my token {talk.marker(2)} {token}")
    assert frames[-1]["type"] == "reply"
    assert frames[-1]["state"] == "GATHERING_TELEGRAM"
    (request,) = talk.requests(2)
    notes = _server_notes(request)
    expected = {
        "malformed": "not in the format",
        "unknown": "revoked (for example with /revoke) or mistyped",
        "revoked": "revoked (for example with /revoke) or mistyped",
    }[how]
    assert expected in notes
    assert "valid token" not in notes
    secret = token.split(":")[1]
    assert secret not in json.dumps(request)
    stored = stored_session(redis_server.url, session_id)
    assert stored["gathered"]["bot"] is None
    assert secret not in json.dumps(stored)
    assert f"{PREFIX}:bot-token:{session_id}" not in redis_values(redis_server.url)
    assert secret not in onboarding.log()


async def test_the_telegram_user_is_whoever_pressed_start_once_confirmed_and_a_typed_id_must_be_the_users_own(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi, redis_server: RedisServer
) -> None:
    talk = Conversation(kimi)
    bot = telegram.register_bot()
    talk.script(2, Step(text="Connected. Press Start in your bot."))
    talk.script(3, Step(text="I don't see anyone yet."))
    talk.script(4, Step(text="Is this you: Bob?"))
    talk.script(
        5,
        Step(tool_calls=(ToolCall("confirm_telegram_user", {"is_them": False}),)),
        Step(text="Then press Start from your own account, or type your id."),
    )
    # The model invents an id the user never typed: refused; then the one the user typed: recorded.
    talk.script(
        6,
        Step(tool_calls=(ToolCall("set_telegram_user_id", {"user_id": 11111111}),)),
        Step(tool_calls=(ToolCall("set_telegram_user_id", {"user_id": 55667788}),)),
        Step(text="Got it."),
    )
    async with onboarding.connect() as client:
        session_id = await _at_telegram_step(client, talk)
        await client.say(f"token {talk.marker(2)} {bot.token}")
        nobody = await client.say(f"pressed it {talk.marker(3)}")
        assert nobody[-1]["state"] == "GATHERING_TELEGRAM"
        assert "nobody has pressed Start" in _server_notes(talk.requests(3)[0])
        telegram.send_dm(bot.token, 31337, "/start", first_name="Bob")
        await client.say(f"now? {talk.marker(4)}")
        assert "'Bob' pressed Start" in _server_notes(talk.requests(4)[0])
        assert stored_session(redis_server.url, session_id)["gathered"]["telegram_user"] == {
            "id": 31337,
            "first_name": "Bob",
            "confirmed": False,
        }
        await client.say(f"no, that's not me {talk.marker(5)}")
        assert stored_session(redis_server.url, session_id)["gathered"]["telegram_user"] is None
        typed = await client.say(f"my id is 55667788 {talk.marker(6)}")
    assert typed[-1]["state"] == "GATHERING_PREFERENCES"
    tool_results = [m["content"] for m in talk.requests(6)[-1]["messages"] if m["role"] == "tool"]
    assert tool_results[-2].startswith("Refused: that number is not in the user's last message")
    assert tool_results[-1].startswith("Recorded.")
    assert stored_session(redis_server.url, session_id)["gathered"]["telegram_user"] == {
        "id": 55667788,
        "first_name": "",
        "confirmed": True,
    }
    # The owner's /start was read without consuming it: the agent's gateway sees the same updates later.
    assert telegram.pending_updates(bot.token) == 1


async def test_an_anonymous_conversation_asks_for_an_account_and_the_result_follows_authentication(
    onboarding: OnboardingProcess, kimi: FakeKimi, telegram: TelegramBotApi
) -> None:
    talk = Conversation(kimi)
    talk.happy_path()
    bot = telegram.register_bot()
    async with onboarding.connect() as client:
        session_id, frames = await chat_to_a_result(client, talk, telegram, bot.token, user_id=None)
        assert frames[-1]["type"] == "sign_in_required"
        assert not of_type(client.received, "result")
        await client.send({"type": "authenticated", "user_id": "alice-1"})
        result = (await client.until("result"))[-1]
        assert result["user_id"] == "alice-1"
        assert result["result"]["agent"]["bot_token"] == bot.token
    # Bound now: another account cannot resume it, an anonymous connection must sign in first.
    async with onboarding.connect() as other:
        refused = await other.hello(session_id, user_id="mallory")
        assert (refused["type"], refused.get("code")) == ("error", "forbidden")
        with pytest.raises(ConnectionClosed) as closed:
            await other.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403
    async with onboarding.connect() as anonymous:
        asked = await anonymous.hello(session_id, user_id=None)
        assert asked["type"] == "sign_in_required"
        await anonymous.send({"type": "message", "text": "let me in"})
        assert (await anonymous.receive())["type"] == "sign_in_required"
        await anonymous.send({"type": "authenticated", "user_id": "alice-1"})
        frames = await anonymous.until("result")
        assert frames[0]["type"] == "session"
        assert frames[0]["session_id"] == session_id


async def test_only_the_control_api_may_connect(onboarding: OnboardingProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with onboarding.connect(token="not-the-credential"):
            pass
    assert refused.value.response.status_code == 401


async def test_bad_frames_get_a_clear_error_and_change_nothing(onboarding: OnboardingProcess) -> None:
    async with onboarding.connect() as client:
        await client.send({"type": "message", "text": "hi"})
        assert (await client.receive())["message"] == "send hello first"
        await client.websocket.send("not json")
        error = await client.receive()
        assert (error["type"], error["code"], error["retryable"]) == ("error", "bad_request", False)
        await client.send({"type": "make_me_admin"})
        assert (await client.receive())["code"] == "bad_request"
        session = await client.hello(client_ip=fresh_ip())
        assert session["state"] == "GATHERING_USE_CASE"
        assert session["transcript"][0]["role"] == "assistant"
        await client.send({"type": "message", "text": "x" * 4001})
        too_long = await client.receive()
        assert (too_long["code"], too_long["message"]) == ("bad_request", "A message has 1 to 4000 characters.")
        await client.send({"type": "checkout_created", "customer_name": "c-x", "url": "https://x"})
        assert (await client.receive())["code"] == "bad_request"
