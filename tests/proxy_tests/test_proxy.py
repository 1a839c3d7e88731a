"""The token proxy with real clients (openai SDK, langchain-openai), real Redis, tokens issued by the real operator."""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
import redis
from langchain_openai import ChatOpenAI

from clawhost_api.tiers import get_tier
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.platform import CustomerFactory
from clawhost_localcluster.proxy_process import ProxyCustomer, RunningProxy, knows_token, proxy_token_of
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually, eventually_async

pytestmark = pytest.mark.cluster
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _fake(directives: str) -> list[Any]:
    """Messages asking the stand-in upstream for a behaviour (see fake_kimi); unique, to find its reports."""
    return [{"role": "user", "content": f"fake:{directives} id={uuid.uuid4().int % 10**9}"}]


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
    assert forwarded["max_completion_tokens"] <= 8192, "the completion cap is always set upstream"
    assert "max_tokens" not in forwarded


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
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key=customer.token, max_retries=0) as client:
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


def _reservation_paths(proxy: RunningProxy) -> dict[str, float]:
    """clawhost_proxy_reservations_total by path (reserve_first, overlapped, overlap_refused)."""
    text = httpx.get(proxy.admin_url + "/metrics", timeout=10).text
    paths = {"reserve_first": 0.0, "overlapped": 0.0, "overlap_refused": 0.0}
    for line in text.splitlines():
        if line.startswith("clawhost_proxy_reservations_total{"):
            paths[line.split('path="', 1)[1].split('"', 1)[0]] = float(line.split()[-1])
    return paths


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {path: after[path] - before[path] for path in before}


def _post_raw(proxy: RunningProxy, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/chat/completions",
        content=json.dumps(body).encode(),
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_reservation_overlaps_the_upstream_call_only_with_plenty_left(
    proxy: RunningProxy, customer: ProxyCustomer, redis_server: RedisServer
) -> None:
    body = {"model": "kimi-k2.5", "messages": MESSAGES, "max_tokens": 100}
    wanted = len(json.dumps(body).encode()) + 16 + 100  # the reservation's bound (prompt bytes + overhead + cap)
    limit = get_tier("starter").monthly_tokens

    before = _reservation_paths(proxy)
    assert _post_raw(proxy, customer.token, body).status_code == 200
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 1, "overlapped": 0, "overlap_refused": 0}, (
        "nothing seen of this customer yet: reserve first"
    )
    before = _reservation_paths(proxy)
    assert _post_raw(proxy, customer.token, body).status_code == 200
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 0, "overlapped": 1, "overlap_refused": 0}

    # Another replica used most of the budget: this replica's hint is stale, so it still overlaps once
    # (and is granted: enough is left); the reply teaches it how little is left, so then it reserves first.
    _set_used(redis_server, customer.name, limit - (wanted + wanted // 2))
    before = _reservation_paths(proxy)
    assert _post_raw(proxy, customer.token, body).status_code == 200
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 0, "overlapped": 1, "overlap_refused": 0}
    before = _reservation_paths(proxy)
    assert _post_raw(proxy, customer.token, body).status_code == 200
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 1, "overlapped": 0, "overlap_refused": 0}
    assert _used(redis_server, customer.name) <= limit


def test_a_refused_overlapped_reservation_cancels_the_upstream_call(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi, redis_server: RedisServer
) -> None:
    limit = get_tier("starter").monthly_tokens
    assert _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES}).status_code == 200
    _set_used(redis_server, customer.name, limit)  # used up elsewhere; this replica still thinks plenty is left

    # Non-streaming: the client gets the ordinary 429.
    before = _reservation_paths(proxy)
    refused = _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "monthly_limit_reached"
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 0, "overlapped": 0, "overlap_refused": 1}

    # A stream, with Redis holding back the reservation's reply until the upstream has the call:
    # the refusal must stop the call the upstream is already serving.
    _set_used(redis_server, customer.name, 0)
    assert _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES}).status_code == 200
    _set_used(redis_server, customer.name, limit)
    forwarded, closed, before = len(fake_kimi.requests), fake_kimi.closed_streams, _reservation_paths(proxy)
    admin = redis.Redis.from_url(redis_server.url)
    body = {"model": "kimi-k2.5", "messages": _fake("long"), "stream": True, "max_tokens": 200}
    admin.client_pause(20_000, all=False)  # scripts wait; bounded in case the test dies
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_post_raw, proxy, customer.token, body)
            eventually(lambda: len(fake_kimi.requests) > forwarded, timeout=15, what="the overlapped upstream call")
            admin.client_unpause()
            response = pending.result(30)
    finally:
        admin.client_unpause()
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "monthly_limit_reached"
    eventually(lambda: fake_kimi.closed_streams > closed, timeout=10, what="the upstream call to be cancelled")
    assert len(fake_kimi.requests) == forwarded + 1, "the ordinary path forwarded nothing"
    assert _delta(before, _reservation_paths(proxy)) == {"reserve_first": 0, "overlapped": 0, "overlap_refused": 1}
    assert _used(redis_server, customer.name) == limit


@pytest.mark.parametrize("stale_hint", [False, True], ids=["fresh", "stale-hint"])
async def test_two_hundred_concurrent_streams_never_pass_the_limit(
    proxy_with_shipped_upstream_timeout: RunningProxy,
    customer: ProxyCustomer,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    stale_hint: bool,
) -> None:
    # With a stale hint the upstream holds every answer until all 200 calls reached it: on a loaded machine that
    # takes longer than the shared proxy's 3 s upstream timeout, which then rightly answers 504.
    proxy = proxy_with_shipped_upstream_timeout
    eventually(lambda: knows_token(proxy, customer.token), timeout=30, what="this proxy to know the customer's token")
    # Closed when done (not left to the garbage collector) and bounded: a stuck call fails in a minute, not ten.
    async with openai.AsyncOpenAI(base_url=proxy.url, api_key=customer.token, max_retries=0, timeout=60) as client:
        await _two_hundred_streams(client, proxy, customer, redis_server, fake_kimi, stale_hint)


async def _two_hundred_streams(
    client: openai.AsyncOpenAI,
    proxy: RunningProxy,
    customer: ProxyCustomer,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    stale_hint: bool,
) -> None:
    limit = get_tier("starter").monthly_tokens
    admin = redis.Redis.from_url(redis_server.url)
    if stale_hint:
        # The proxy last saw plenty left, so all 200 overlap their reservation with the upstream call;
        # Redis holds the scripts back until the upstream has all 200 calls, then grants what fits.
        await client.chat.completions.create(model="kimi-k2.5", messages=MESSAGES)
    used_before = limit - 3000
    _set_used(redis_server, customer.name, used_before)
    before, forwarded = _reservation_paths(proxy), len(fake_kimi.requests)
    # The upstream would answer each with 3,500 tokens when asked (more than is left): only the cap the proxy
    # sends keeps what it really produces within the limit. (Small enough that all 200 can overlap.) With a
    # stale hint the upstream holds its answers until Redis is let go, so the 200 calls reach it quickly.
    gate = uuid.uuid4().int % 10**9
    messages = _fake(f"words=4000 hold={gate}" if stale_hint else "words=4000")

    async def one() -> int | str:
        """The usage the upstream reported for this stream (what it really cost), or the refusal."""
        try:
            stream = await client.chat.completions.create(
                model="kimi-k2.5",
                messages=messages,
                stream=True,
                max_tokens=3500,
                stream_options={"include_usage": True},
            )
            total = 0
            async for chunk in stream:
                if chunk.usage is not None:
                    total = chunk.usage.total_tokens
            return total
        except openai.RateLimitError as error:
            return str(error)

    if stale_hint:
        admin.client_pause(25_000, all=False)  # bounded in case the test dies; the proxy gives up after 30 s
        running = asyncio.gather(*[one() for _ in range(200)])
        try:
            await eventually_async(
                lambda: len(fake_kimi.requests) >= forwarded + 200, timeout=20, what="200 overlapped upstream calls"
            )
        except BaseException:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            raise
        finally:
            admin.client_unpause()
            fake_kimi.release(gate)
        outcomes = await running
    else:
        outcomes = await asyncio.gather(*[one() for _ in range(200)])
    served = [outcome for outcome in outcomes if isinstance(outcome, int)]
    limited = [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert served
    assert all(served), "every served stream reported its usage"
    assert limited
    assert all("monthly limit reached" in message and "upgrade at" in message for message in limited)
    really_used = used_before + sum(served)
    assert really_used <= limit, "what the upstream really produced stays within the limit"
    assert _used(redis_server, customer.name) == really_used, "and exactly that is charged"
    if stale_hint:
        paths = _delta(before, _reservation_paths(proxy))
        assert paths["overlapped"] + paths["overlap_refused"] == 200
        assert paths["overlap_refused"] >= len(limited)


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
    messages = _fake("long stall-after=10")  # ten words, then nothing until the call is closed
    with httpx.stream(
        "POST",
        f"{proxy.url}/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {customer.token}"},
        json={"model": "kimi-k2.5", "messages": messages, "stream": True},
    ) as response:
        lines = 0
        for line in response.iter_lines():
            lines += line.startswith("data:")
            if lines >= 10:
                break  # hang up after the ten chunks
    eventually(lambda: fake_kimi.closed_streams > before_closed, timeout=10, what="the upstream call to be stopped")
    # No usage came (it ends a stream): the ten one-token words streamed, the prompt estimated at 4 bytes a token.
    streamed = 10
    prompt = len(json.dumps(messages, separators=(",", ":"))) // 4
    eventually(
        lambda: _used(redis_server, customer.name) == prompt + streamed,
        timeout=10,
        what=f"the partial stream billed as {prompt} + {streamed} tokens",
    )


def test_one_completion_cap_goes_upstream_whatever_the_client_sent(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi
) -> None:
    # The stand-in honours max_tokens over max_completion_tokens, as an upstream may.
    messages = _fake("long")
    body = {"model": "kimi-k2.5", "messages": messages, "max_completion_tokens": 3, "max_tokens": 100_000}
    response = _post_raw(proxy, customer.token, body)
    assert response.status_code == 200, response.text
    forwarded = fake_kimi.requests[-1]
    assert forwarded["max_completion_tokens"] == 3
    assert "max_tokens" not in forwarded
    assert response.json()["usage"]["completion_tokens"] == 3
    assert [usage["completion_tokens"] for usage in fake_kimi.usage_reported(messages[0]["content"])] == [3]


def test_more_than_one_choice_is_refused_before_anything_is_forwarded(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi, redis_server: RedisServer
) -> None:
    forwarded = len(fake_kimi.requests)
    response = _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES, "n": 3})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "'n' must be 1: one choice per request"
    assert len(fake_kimi.requests) == forwarded
    assert _used(redis_server, customer.name) == 0
    assert _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES, "n": 1}).status_code == 200


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_an_upstream_overshoot_is_charged_in_full_and_the_next_request_refused(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi, redis_server: RedisServer, stream: bool
) -> None:
    limit = get_tier("starter").monthly_tokens
    used_before = limit - 1000
    _set_used(redis_server, customer.name, used_before)
    messages = _fake("overshoot=2000")  # 2,000 tokens more than the cap it is sent
    body = {"model": "kimi-k2.5", "messages": messages, "max_tokens": 100, "stream": stream}
    assert _post_raw(proxy, customer.token, body).status_code == 200
    [reported] = fake_kimi.usage_reported(messages[0]["content"])
    assert reported["completion_tokens"] == 2100
    assert _used(redis_server, customer.name) == used_before + reported["total_tokens"] > limit
    refused = _post_raw(proxy, customer.token, {"model": "kimi-k2.5", "messages": MESSAGES, "max_tokens": 1})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "monthly_limit_reached"


def test_upstream_429_is_passed_on_and_distinguishable(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    with pytest.raises(openai.RateLimitError) as error:
        _client(proxy, customer.token).chat.completions.create(model="kimi-k2.5", messages=_fake("fail-429"))
    body: Any = error.value.body
    assert body["type"] == "rate_limit_reached_error", "the upstream's own type, not clawhost_monthly_limit"


def test_upstream_hang_is_a_504_not_a_hang(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    response = httpx.post(
        f"{proxy.url}/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {customer.token}"},
        json={"model": "kimi-k2.5", "messages": _fake("hang")},
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "clawhost_upstream_timeout"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"messages": []}', 400, "'model' is required"),
        (b'{"model": "kimi-k2.5", "messages": "hi"}', 400, "'messages' must be a non-empty array"),
        (b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', 400, "positive"),
        (
            b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "x"}], "max_tokens": true}',
            400,
            "positive",
        ),
        (
            b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "x"}], "logit_bias": {}}',
            400,
            "unsupported",
        ),
        (
            b'{"model": "kimi-k2-thinking", "messages": [{"role": "user", "content": "x"}]}',
            400,
            'model "kimi-k2-thinking" is not available on the Starter plan (available: kimi-k2.5)',
        ),
        (
            b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "high"}',
            400,
            "above the Starter plan's thinking level (medium)",
        ),
        (
            b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"}',
            400,
            "one of",
        ),
        (
            b'{"model": "kimi-k2.5", "messages": [{"role": "user", "content": "' + b"x" * 1_100_000 + b'"}]}',
            413,
            "too large",
        ),
    ],
    ids=[
        "bad-json",
        "no-model",
        "bad-messages",
        "bad-max-tokens",
        "boolean-max-tokens",
        "unknown-field",
        "model-not-in-tier",
        "effort-above-tier",
        "unknown-effort",
        "oversized",
    ],
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


def test_a_huge_model_name_is_refused_cut_and_escaped(
    proxy: RunningProxy, customer: ProxyCustomer, fake_kimi: FakeKimi
) -> None:
    forwarded = len(fake_kimi.requests)
    model = '"\n' + "x" * 900_000
    response = _post_raw(proxy, customer.token, {"model": model, "messages": MESSAGES})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert len(message) < 200
    assert message.startswith('model "\\"\\n' + "x" * 62 + '..." is not available')
    assert len(fake_kimi.requests) == forwarded


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_probes_and_metrics_are_only_on_the_admin_port(proxy: RunningProxy, path: str) -> None:
    tenant = httpx.get(proxy.url.removesuffix("/v1") + path, timeout=10)
    assert tenant.status_code == 404
    assert tenant.json()["error"]["type"] == "invalid_request_error", "OpenAI's error format"
    admin = httpx.get(proxy.admin_url + path, timeout=10)
    assert admin.status_code == 200
    if path == "/metrics":
        assert "clawhost_proxy_reservations_total" in admin.text


def test_the_model_list_holds_the_tiers_models_only(proxy: RunningProxy, customer: ProxyCustomer) -> None:
    listed = [model.id for model in _client(proxy, customer.token).models.list()]
    assert listed == ["kimi-k2.5"], "the upstream offers three; a Starter customer may use one"


def test_wrong_method_is_a_json_405(proxy: RunningProxy) -> None:
    response = httpx.get(f"{proxy.url}/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"
