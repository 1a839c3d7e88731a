"""The ledger through the real proxy process: request ids, SIGKILL mid-traffic, PostgreSQL and Redis outages."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from clawhost_api.tiers import get_tier
from clawhost_api.usage import usage_counter_key, usage_period
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.proxy_process import ProxyCustomer, RunningProxy, start_proxy
from clawhost_localcluster.services import PostgresServer, RedisServer
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _ledger_rows(postgres: PostgresServer, customer: str) -> list[dict[str, Any]]:
    with psycopg.connect(postgres.dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute("SELECT * FROM token_ledger WHERE customer = %s", (customer,)).fetchall()


def _ledger(postgres: PostgresServer, customer: str) -> dict[str, dict[str, Any]]:
    """The customer's rows by the client's request id (for requests whose ids were not reused)."""
    return {row["request_id"]: row for row in _ledger_rows(postgres, customer)}


def _post(proxy: RunningProxy, token: str, request_id: str | None = None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return httpx.post(
        f"{proxy.url}/chat/completions",
        timeout=30,
        headers=headers,
        json={"model": "kimi-k2.5", "messages": MESSAGES, "max_tokens": 20, **body},
    )


def _log_records(proxy: RunningProxy) -> list[dict[str, Any]]:
    """The proxy's log, one JSON object a line (clawhost_api.logs)."""
    return [json.loads(line) for line in proxy.process.log_path.read_text().splitlines() if line.startswith("{")]


def _metric(proxy: RunningProxy, name: str) -> float:
    text = httpx.get(proxy.admin_url + "/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith((name + " ", name + "{"))]
    return sum(values)


@dataclass
class Traffic:
    """Clients in threads sending streaming and non-streaming requests; records what each client saw finish."""

    url: str
    token: str
    finished: set[str] = field(default_factory=set)
    outcomes: dict[int, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _one(self, client: httpx.Client, index: int) -> None:
        request_id = f"t-{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {self.token}", "X-Request-Id": request_id}
        body = {"model": "kimi-k2.5", "messages": MESSAGES, "max_tokens": 20, "stream": index % 2 == 0}
        if body["stream"]:
            done = False
            with client.stream("POST", f"{self.url}/chat/completions", json=body, headers=headers) as response:
                status = response.status_code
                for line in response.iter_lines():
                    done = done or line == "data: [DONE]"
            if status == 200 and done:
                self.finished.add(request_id)
        else:
            response = client.post(f"{self.url}/chat/completions", json=body, headers=headers)
            status = response.status_code
            if status == 200 and response.json()["choices"]:
                self.finished.add(request_id)
        self.outcomes[status] = self.outcomes.get(status, 0) + 1

    def _worker(self) -> None:
        with httpx.Client(timeout=10) as client:
            index = 0
            while not self.stop.is_set():
                index += 1
                try:
                    self._one(client, index)
                except httpx.HTTPError:
                    self.outcomes[-1] = self.outcomes.get(-1, 0) + 1
                    self.stop.wait(0.05)  # the proxy is gone: pace the retries

    @contextmanager
    def running(self, workers: int = 8) -> Iterator[Traffic]:
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(30)


def _start(
    cluster: Cluster,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    workdir: Path,
    postgres: PostgresServer | None,
    stream: str,
    consumer: str,
    **extra: str,
) -> RunningProxy:
    workdir.mkdir(parents=True, exist_ok=True)
    return start_proxy(
        cluster,
        redis_server,
        f"http://127.0.0.1:{fake_kimi.port}/v1",
        workdir,
        postgres,
        CLAWHOST_PROXY_REQUESTS_PER_SECOND="10000",
        CLAWHOST_PROXY_LEDGER_STREAM=stream,
        CLAWHOST_PROXY_LEDGER_CONSUMER=consumer,
        **extra,
    )


def test_request_id_is_echoed_and_each_request_has_one_row(
    proxy: RunningProxy, customer: ProxyCustomer, postgres_server: PostgresServer
) -> None:
    given = f"agent-{uuid.uuid4().hex[:12]}"
    first = _post(proxy, customer.token, given)
    assert first.status_code == 200
    assert first.headers["X-Request-Id"] == given
    streamed = _post(proxy, customer.token, "not a valid id!", stream=True)
    generated = streamed.headers["X-Request-Id"]
    assert generated != "not a valid id!"
    assert len(generated) == 32, "an invalid id is replaced by a generated one"
    refused = _post(proxy, "chp_unknown", "whatever-1")
    assert refused.status_code == 401
    assert refused.headers["X-Request-Id"] == "whatever-1"

    def both() -> dict[str, dict[str, Any]] | None:
        rows = _ledger(postgres_server, customer.name)
        return rows if len(rows) == 2 else None

    rows = eventually(both, timeout=20, what="both rows in the ledger")
    usage = first.json()["usage"]
    row = rows[given]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert (row["status"], row["tier"], row["model"], row["estimated"]) == (200, "starter", "kimi-k2.5", False)
    assert row["latency_ms"] >= 0
    assert rows[generated]["completion_tokens"] > 0
    # The request's log line: its fields as fields, no prompt or completion.
    [line] = eventually(
        lambda: [r for r in _log_records(proxy) if r.get("request_id") == given], timeout=10, what="the log line"
    )
    assert {key: line[key] for key in ("customer", "model", "status", "prompt_tokens", "completion_tokens")} == {
        "customer": customer.name,
        "model": "kimi-k2.5",
        "status": 200,
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }
    assert not {"messages", "content", "choices"} & set(line), "no prompt or completion in the log"
    assert rows[generated]["id"] == generated, "without a usable X-Request-Id the row's own id is the request id"
    assert row["id"] != given, "the row's key is the proxy's, never the client's"
    assert len(row["id"]) == 32


def test_a_reused_request_id_keeps_every_billed_request_in_the_ledger(
    proxy: RunningProxy, customer: ProxyCustomer, postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    given = f"retry-{uuid.uuid4().hex[:12]}"
    first = _post(proxy, customer.token, given)
    assert first.status_code == 200
    assert _post(proxy, customer.token, given, stream=True).status_code == 200
    marker = f"after-{uuid.uuid4().hex[:12]}"
    assert _post(proxy, customer.token, marker).status_code == 200

    # The ledger is written in stream order, so once the marker is in, both requests were flushed.
    def with_marker() -> list[dict[str, Any]] | None:
        rows = _ledger_rows(postgres_server, customer.name)
        return rows if any(row["request_id"] == marker for row in rows) else None

    rows = eventually(with_marker, timeout=20, what="the marker row")
    reused = [row for row in rows if row["request_id"] == given]
    assert len(reused) == 2, "both billed requests have their row: a reused id hides neither"
    assert sorted(row["status"] for row in reused) == [200, 200]
    assert len({row["id"] for row in reused}) == 2
    billed = redis.Redis.from_url(redis_server.url).get(usage_counter_key(customer.name, usage_period(None)))
    assert sum(row["charged_tokens"] for row in rows) == int(billed or 0), (
        "the ledger accounts for everything the counter charged"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["moonshot-complete", "openai-stream"])
def test_cached_prompt_tokens_count_at_the_tiers_weight(
    proxy: RunningProxy,
    customer: ProxyCustomer,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    stream: bool,
) -> None:
    # The upstream reports 12 of the prompt's tokens as cached: in Moonshot's place (usage.cached_tokens)
    # or OpenAI's (usage.prompt_tokens_details.cached_tokens).
    content = f"fake:{'cached-openai' if stream else 'cached'}=12 id={uuid.uuid4().int % 10**9}"
    given = f"cached-{uuid.uuid4().hex[:12]}"
    response = _post(proxy, customer.token, given, messages=[{"role": "user", "content": content}], stream=stream)
    assert response.status_code == 200
    [reported] = fake_kimi.usage_reported(content)
    prompt, completion = reported["prompt_tokens"], reported["completion_tokens"]
    assert prompt > 12
    assert get_tier("starter").cached_prompt_weight == 0.25, "the tiers file's default"
    charged = prompt - 12 + 3 + completion  # the 12 cached count a quarter each
    counter = usage_counter_key(customer.name, usage_period(None))
    assert int(redis.Redis.from_url(redis_server.url).get(counter) or 0) == charged
    row = eventually(lambda: _ledger(postgres_server, customer.name).get(given), timeout=20, what="the row")
    assert (row["prompt_tokens"], row["cached_prompt_tokens"], row["completion_tokens"]) == (prompt, 12, completion)
    assert row["charged_tokens"] == charged


def test_proxy_killed_mid_traffic_loses_no_finished_response(
    platform_installed: Cluster,
    customer: ProxyCustomer,
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    fake_kimi: FakeKimi,
    tmp_path: Path,
) -> None:
    stream = f"test:ledger:kill:{uuid.uuid4().hex}"
    # A long linger keeps read-but-unacknowledged entries in the group when the kill lands.
    doomed = _start(
        platform_installed,
        redis_server,
        fake_kimi,
        tmp_path / "a",
        postgres_server,
        stream,
        "replica-a",
        CLAWHOST_PROXY_LEDGER_LINGER_SECONDS="1.0",
    )
    traffic = Traffic(doomed.url, customer.token)
    buffered = redis.Redis.from_url(redis_server.url)
    with traffic.running():
        eventually(lambda: len(traffic.finished) >= 150, timeout=60, what="150 finished responses")
        assert doomed.process.popen is not None
        doomed.process.popen.send_signal(signal.SIGKILL)
        doomed.process.popen.wait(10)
        waiting = buffered.xlen(stream)
    assert waiting > 0, "the kill should land while rows are still buffered (else this test proves nothing)"
    finished = set(traffic.finished)

    # A new replica (a new pod name) reclaims what the dead one held and flushes what it never read.
    successor = _start(
        platform_installed,
        redis_server,
        fake_kimi,
        tmp_path / "b",
        postgres_server,
        stream,
        "replica-b",
        CLAWHOST_PROXY_LEDGER_CLAIM_IDLE_SECONDS="1",
    )
    try:
        expected = set(finished)
        eventually(
            lambda: expected <= set(_ledger(postgres_server, customer.name)),
            timeout=60,
            what=f"all {len(finished)} finished responses in the ledger",
        )
        assert eventually(lambda: buffered.xlen(stream) == 0, timeout=20, what="an empty buffer")
        assert _post(successor, customer.token).status_code == 200
    finally:
        successor.process.stop()
        buffered.delete(stream)


def test_postgres_down_mid_traffic_loses_nothing_and_limits_still_hold(
    platform_installed: Cluster,
    customer: ProxyCustomer,
    redis_server: RedisServer,
    fake_kimi: FakeKimi,
    tmp_path: Path,
) -> None:
    postgres = PostgresServer(tmp_path / "pg")  # our own: the session-wide one stays up for the others
    postgres.start()
    stream = f"test:ledger:pg:{uuid.uuid4().hex}"
    proxy = _start(platform_installed, redis_server, fake_kimi, tmp_path / "proxy", postgres, stream, "replica-pg")
    counters = redis.Redis.from_url(redis_server.url)
    counter = usage_counter_key(customer.name, usage_period(None))
    limit = get_tier("starter").monthly_tokens
    try:
        traffic = Traffic(proxy.url, customer.token)
        with traffic.running(workers=4):
            eventually(lambda: len(_ledger(postgres, customer.name)) >= 20, timeout=30, what="rows before the outage")
            postgres.stop_fast()
            before = len(traffic.finished)
            eventually(
                lambda: len(traffic.finished) >= before + 100, timeout=60, what="traffic served during the outage"
            )
            assert _metric(proxy, "clawhost_proxy_ledger_backlog") > 0
            assert _metric(proxy, "clawhost_proxy_ledger_flush_errors_total") > 0
            failures = [r for r in _log_records(proxy) if r["message"] == "ledger: postgres unavailable, retrying"]
            assert failures, "the flusher says why it retries"
            assert all(r.get("error") for r in failures), "with the error it passes as a field"

            # Limits are still enforced from Redis alone.
            counters.set(counter, limit - 5)

            def limited() -> httpx.Response | None:
                response = _post(proxy, customer.token)
                return response if response.status_code == 429 else None

            refused = eventually(limited, timeout=10, what="a 429")
            assert refused.json()["error"]["code"] == "monthly_limit_reached"
            assert int(counters.get(counter) or 0) <= limit
            counters.set(counter, 0)
            eventually(lambda: _post(proxy, customer.token).status_code == 200, timeout=10, what="served again")
            postgres.start()
        finished = set(traffic.finished)
        eventually(
            lambda: finished <= set(_ledger(postgres, customer.name)),
            timeout=60,
            what=f"all {len(finished)} finished responses in the ledger after PostgreSQL came back",
        )
        eventually(lambda: _metric(proxy, "clawhost_proxy_ledger_backlog") == 0, timeout=20, what="no backlog")
    finally:
        proxy.process.stop()
        postgres.remove()
        counters.delete(stream)


def test_redis_down_fails_closed_with_503(
    platform_installed: Cluster, customer: ProxyCustomer, fake_kimi: FakeKimi, tmp_path: Path
) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    proxy = _start(platform_installed, private, fake_kimi, tmp_path / "proxy", None, "test:ledger:redis", "r")
    try:
        assert _post(proxy, customer.token).status_code == 200
        private.stop()
        refused = _post(proxy, customer.token)
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "clawhost_usage_unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert httpx.get(proxy.admin_url + "/healthz", timeout=5).status_code == 200
        private.start()
        eventually(lambda: _post(proxy, customer.token).status_code == 200, timeout=30, what="served after Redis")
    finally:
        proxy.process.stop()
        private.stop()
