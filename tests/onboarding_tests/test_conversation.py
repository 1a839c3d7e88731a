"""The conversation through the service's real WebSocket: the real langchain-openai client against the OpenAI-compatible
stand-in (scripted, streamed tool calls), the Bot API stand-in, and real Redis."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

from clawhost_api.tiers import get_tier
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.onboarding_process import OnboardingClient, OnboardingProcess
from clawhost_localcluster.onboarding_script import Conversation
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.telegram_bot_api import TelegramBotApi

PREFIX = "clawhost:onboarding"


def fresh_ip() -> str:
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:6]}"


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def stored_session(redis_server: RedisServer, session_id: str) -> dict[str, Any]:
    raw = redis.Redis.from_url(redis_server.url).get(f"{PREFIX}:session:{session_id}")
    assert raw is not None, "the session is not in Redis"
    return dict(json.loads(raw))


def everything_in_redis(redis_server: RedisServer) -> dict[str, bytes]:
    client = redis.Redis.from_url(redis_server.url)
    return {key.decode(): client.dump(key) or b"" for key in client.scan_iter(f"{PREFIX}:*")}


async def chat_to_a_result(
    client: OnboardingClient, talk: Conversation, telegram: TelegramBotApi, token: str, user_id: str | None = "7"
) -> tuple[str, list[dict[str, Any]]]:
    """The happy path on `client`; returns the session id and every frame of the conversation."""
    session = await client.hello(client_ip=fresh_ip(), user_id=user_id)
    assert session["type"] == "session", session
    frames = await client.say(f"Hi {talk.marker(1)} I want an agent that reminds me of my bakery's orders")
    frames += await client.say(f"Here it is {talk.marker(2)} {token}")
    telegram.send_dm(token, 4242, "/start", first_name="Ana")
    frames += await client.say(f"done {talk.marker(3)}")
    frames += await client.say(f"yes, that's me {talk.marker(4)}")
    frames += await client.say(f"daily, only me {talk.marker(5)}")
    frames += await client.say(f"Pro please {talk.marker(6)}")
    frames += await client.until("result", "sign_in_required")
    return session["session_id"], frames


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

        # The token: never in what the model got, in the stored conversation, or in the log.
        sent_to_model = json.dumps([r for r in kimi.requests if talk.tag in json.dumps(r)])
        assert "[bot token removed]" in sent_to_model
        assert "a valid token for @bakery_helper_bot" in sent_to_model
        assert bot.token not in sent_to_model
        assert bot.token.split(":")[1] not in sent_to_model
        stored = stored_session(redis_server, session_id)
        assert bot.token.split(":")[1] not in json.dumps(stored)
        assert any("[bot token removed]" in line["text"] for line in stored["transcript"])
        holding = [k for k, v in everything_in_redis(redis_server).items() if bot.token.encode() in v]
        assert holding == [f"{PREFIX}:bot-token:{session_id}"]
        assert bot.token.split(":")[1] not in onboarding.log()
        assert session_id not in onboarding.log()

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
    assert f"{PREFIX}:bot-token:{session_id}" not in everything_in_redis(redis_server)
    stored = stored_session(redis_server, session_id)
    assert stored["state"] == "COMPLETE"
    assert stored["customer_name"] == "c-bakery"
