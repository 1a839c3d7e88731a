"""The token proxy with real clients (openai SDK, langchain-openai), real Redis, tokens issued by the real operator."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
import redis
from langchain_openai import ChatOpenAI

from clawhost_api.tiers import get_tier
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually
from operator_tests.conftest import CustomerFactory
from proxy_tests.conftest import ProxyCustomer, RunningProxy, proxy_token_of

pytestmark = pytest.mark.cluster
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _used(redis_server: RedisServer, name: str) -> int:
    value = redis.Redis.from_url(redis_server.url).get(usage_counter_key(name, usage_period(None)))
    return int(value or 0)


def _set_used(redis_server: RedisServer, name: str, used: int) -> None:
    redis.Redis.from_url(redis_server.url).set(usage_counter_key(name, usage_period(None)), used)


def _client(proxy: RunningProxy, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url, api_key=token, max_retries=0)


def test_openai_sdk_non_streaming_is_forwarded_and_metered(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi, redis_server: RedisServer
) -> None:
    reply = _client(proxy, customer.token).chat.completions.create(model="kimi-k2.5", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello from fake Kimi"
    assert reply.usage is not None
    assert _used(redis_server, customer.name) == reply.usage.total_tokens
    forwarded = fake_kimi.requests[-1]
    assert forwarded["max_tokens"] <= 8192, "the completion cap is always set upstream"


def test_openai_sdk_streaming_strips_the_usage_chunk_unless_asked(
    proxy: RunningProxy, customer: ProxyCustomer, redis_server: RedisServer
) -> None:
    client = _client(proxy, customer.token)
    chunks = list(client.chat.completions.create(model="kimi-k2.5", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from fake Kimi"
    assert all(c.choices for c in chunks), "no usage-only chunk when the client did not ask"
    billed = _used(redis_server, customer.name)
    assert billed > 0, "streamed tokens are billed from the upstream's usage"

    asked = list(
        client.chat.completions.create(
            model="kimi-k2.5", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].usage is not None
    assert asked[-1].choices == []
    assert _used(redis_server, customer.name) == billed + asked[-1].usage.total_tokens


async def test_async_openai_sdk(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.url, api_key=customer.token, max_retries=0)
    replies = await asyncio.gather(
        *[client.chat.completions.create(model="kimi-k2.5", messages=MESSAGES) for _ in range(5)]
    )
    assert {r.choices[0].message.content for r in replies} == {"Hello from fake Kimi"}


def test_langchain_chat_openai_invoke_and_stream(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    llm = ChatOpenAI(base_url=proxy.url, api_key=customer.token, model="kimi-k2.5", max_retries=0)  # type: ignore[arg-type]
    assert llm.invoke("hi").content == "Hello from fake Kimi"
    assert "".join(str(chunk.content) for chunk in llm.stream("hi")) == "Hello from fake Kimi"


def test_unknown_and_missing_tokens_get_openai_401(proxy: RunningProxy) -> None:
    with pytest.raises(openai.AuthenticationError) as error:
        _client(proxy, "chp_not-a-real-token").chat.completions.create(model="kimi-k2.5", messages=MESSAGES)
    assert error.value.status_code == 401
    assert error.value.code == "invalid_api_key"
    response = httpx.post(f"{proxy.url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_rotated_token_stops_working_within_five_seconds(
    proxy: RunningProxy, customer: ProxyCustomer, customers: CustomerFactory
) -> None:
    client = _client(proxy, customer.token)
    client.chat.completions.create(model="kimi-k2.5", messages=MESSAGES)
    customers.cluster.kubectl("annotate", "customer", customer.name, "clawhost.dev/rotate-proxy-token=2")

    def refused() -> bool:
        try:
            client.chat.completions.create(model="kimi-k2.5", messages=MESSAGES)
        except openai.AuthenticationError:
            return True
        return False

    eventually(refused, timeout=5, interval=0.1, what="the old token to be refused")
    new_token = eventually(
        lambda: (t := proxy_token_of(customers, customer.name)) != customer.token and t,
        timeout=5,
        what="the new token in the Secret",
    )
    eventually(
        lambda: _client(proxy, str(new_token)).chat.completions.create(model="kimi-k2.5", messages=MESSAGES),
        timeout=5,
        what="the new token to work",
    )


async def test_two_hundred_concurrent_streams_never_pass_the_limit(
    proxy: RunningProxy, customer: ProxyCustomer, redis_server: RedisServer
) -> None:
    limit = get_tier("starter").monthly_tokens
    _set_used(redis_server, customer.name, limit - 3000)
    client = openai.AsyncOpenAI(base_url=proxy.url, api_key=customer.token, max_retries=0)

    async def one() -> str:
        try:
            stream = await client.chat.completions.create(
                model="kimi-k2.5", messages=MESSAGES, stream=True, max_tokens=50
            )
            async for _ in stream:
                pass
            return "ok"
        except openai.RateLimitError as error:
            return str(error)

    outcomes = await asyncio.gather(*[one() for _ in range(200)])
    limited = [outcome for outcome in outcomes if outcome != "ok"]
    assert "ok" in outcomes
    assert limited
    assert all("monthly limit reached" in message and "upgrade at" in message for message in limited)
    assert _used(redis_server, customer.name) <= limit


def test_warning_header_at_ninety_percent(
    proxy: RunningProxy, customer: ProxyCustomer, redis_server: RedisServer
) -> None:
    limit = get_tier("starter").monthly_tokens
    _set_used(redis_server, customer.name, int(limit * 0.95))
    raw = _client(proxy, customer.token).chat.completions.with_raw_response.create(model="kimi-k2.5", messages=MESSAGES)
    assert raw.headers["X-Clawhost-Usage-Warning"].startswith("95%")


def test_client_hang_up_mid_stream_is_billed(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi, redis_server: RedisServer
) -> None:
    before_closed = fake_kimi.closed_streams
    with httpx.stream(
        "POST",
        f"{proxy.url}/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {customer.token}"},
        json={"model": "long", "messages": MESSAGES, "stream": True},
    ) as response:
        lines = 0
        for line in response.iter_lines():
            lines += line.startswith("data:")
            if lines >= 10:
                break  # hang up after ten chunks
    eventually(lambda: _used(redis_server, customer.name) > 0, timeout=10, what="the partial stream to be billed")
    eventually(lambda: fake_kimi.closed_streams > before_closed, timeout=10, what="the upstream call to be stopped")


def test_upstream_429_is_passed_on_and_distinguishable(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        _client(proxy, customer.token).chat.completions.create(model="fail-429", messages=MESSAGES)
    body: Any = error.value.body
    assert body["type"] == "rate_limit_reached_error", "the upstream's own type, not clawhost_monthly_limit"


def test_upstream_hang_is_a_504_not_a_hang(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    response = httpx.post(
        f"{proxy.url}/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {customer.token}"},
        json={"model": "hang", "messages": MESSAGES},
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "clawhost_upstream_timeout"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"messages": []}', 400, "'model' is required"),
        (b'{"model": "m", "messages": "hi"}', 400, "'messages' must be a non-empty array"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', 400, "positive integer"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 1_100_000 + b'"}]}', 413, "too large"),
    ],
    ids=["bad-json", "no-model", "bad-messages", "bad-max-tokens", "oversized"],
)
def test_bad_bodies_get_clear_4xx(
    proxy: RunningProxy, customer: ProxyCustomer, body: bytes, status: int, fragment: str
) -> None:
    response = httpx.post(
        f"{proxy.url}/chat/completions",
        content=body,
        timeout=30,
        headers={"Authorization": f"Bearer {customer.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]


def test_wrong_method_is_a_json_405(proxy: RunningProxy) -> None:
    response = httpx.get(f"{proxy.url}/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"
