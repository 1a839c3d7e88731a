"""At most two questions a message, enforced by the service: a model reply asking three is rewritten by the model once
(the `reply` replaces what the deltas showed), and cut to two questions when the rewrite still asks too many; through
the real process, the real langchain-openai client on the scripted stand-in, and real Redis."""

from __future__ import annotations

import uuid

from langchain_core.messages import AIMessage, messages_from_dict

from clawhost_localcluster.fake_kimi import FakeKimi, Step, ToolCall
from clawhost_localcluster.onboarding_process import OnboardingProcess
from clawhost_localcluster.onboarding_script import Conversation, fresh_ip, of_type, stored_session
from clawhost_localcluster.services import RedisServer

USE_CASE = ToolCall("record_use_case", {"use_case": "bakery order reminders", "language": "en"})


def _three_questions(tag: str) -> str:
    return (
        f"Great, a bakery helper (ref {tag})! Do you have a Telegram bot yet? "
        "What is its username? Have you used @BotFather before?"
    )


async def test_a_reply_with_three_questions_is_rewritten_by_the_model_before_the_user_gets_it(
    onboarding: OnboardingProcess, kimi: FakeKimi, redis_server: RedisServer
) -> None:
    talk = Conversation(kimi)
    tag = uuid.uuid4().hex[:8]
    draft = _three_questions(tag)
    shorter = "Great, a bakery helper! Do you have a Telegram bot yet? If not, have you used @BotFather before?"
    talk.script(1, Step(tool_calls=(USE_CASE,)), Step(text=draft))
    kimi.script(f"(ref {tag})", Step(text=shorter))  # the rewrite request carries the draft
    async with onboarding.connect() as client:
        session = await client.hello(client_ip=fresh_ip())
        frames = await client.say(f"I want a bakery helper {talk.marker(1)}")
    reply = frames[-1]
    assert reply["type"] == "reply", reply
    assert reply["text"] == shorter
    assert "".join(f["text"] for f in of_type(frames, "delta")) == draft, "the draft streamed, the reply replaces it"
    rewrite = [r for r in kimi.requests if tag in str(r["messages"][-1].get("content"))]
    assert len(rewrite) == 1
    assert "asks 3 questions" in rewrite[0]["messages"][0]["content"]
    assert "tools" not in rewrite[0], "the rewrite may not call tools"
    stored = stored_session(redis_server.url, session["session_id"])
    assert stored["transcript"][-1] == {"role": "assistant", "text": shorter}
    said = [m for m in messages_from_dict(stored["history"]) if isinstance(m, AIMessage)]
    assert said[-1].content == shorter, "the model later sees what the user saw"
    assert draft not in str(stored["history"])
    assert stored["tokens_used"] > 0


async def test_a_rewrite_that_still_asks_three_is_cut_to_the_first_two_questions(
    onboarding: OnboardingProcess, kimi: FakeKimi, redis_server: RedisServer
) -> None:
    talk = Conversation(kimi)
    tag = uuid.uuid4().hex[:8]
    talk.script(1, Step(tool_calls=(USE_CASE,)), Step(text=_three_questions(tag)))
    kimi.script(f"(ref {tag})", Step(text="Nice! Do you have a bot? What is its name? Used @BotFather? Then paste it."))
    async with onboarding.connect() as client:
        session = await client.hello(client_ip=fresh_ip())
        frames = await client.say(f"I want a bakery helper {talk.marker(1)}")
    assert frames[-1]["type"] == "reply", frames[-1]
    assert frames[-1]["text"] == "Nice! Do you have a bot? What is its name? Then paste it."
    stored = stored_session(redis_server.url, session["session_id"])
    assert stored["transcript"][-1]["text"] == frames[-1]["text"]


async def test_the_model_unreachable_for_the_rewrite_still_leaves_two_questions(
    onboarding: OnboardingProcess, kimi: FakeKimi
) -> None:
    talk = Conversation(kimi)
    tag = uuid.uuid4().hex[:8]
    talk.script(1, Step(tool_calls=(USE_CASE,)), Step(text=_three_questions(tag)))
    kimi.script(f"(ref {tag})", Step(text="never sent", hold=9_999_999))  # the rewrite outlasts the 5 s timeout
    async with onboarding.connect() as client:
        await client.hello(client_ip=fresh_ip())
        frames = await client.say(f"I want a bakery helper {talk.marker(1)}")
    assert frames[-1]["type"] == "reply", frames[-1]
    assert frames[-1]["text"] == (
        f"Great, a bakery helper (ref {tag})! Do you have a Telegram bot yet? What is its username?"
    )
