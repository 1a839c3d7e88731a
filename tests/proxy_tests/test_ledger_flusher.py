"""The ledger flusher against the real Redis and PostgreSQL: redelivery, reclaiming and duplicates write once."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import redis.asyncio as aioredis

from clawhost_localcluster.services import PostgresServer, RedisServer
from clawhost_proxy.ledger import FIELD, LedgerEntry, LedgerFlusher
from clawhost_proxy.resp import PipelinedRedis

pytestmark = pytest.mark.services


def _entry(request_id: str, prompt: int = 7) -> LedgerEntry:
    return LedgerEntry(request_id, "cust-x", "starter", "kimi-k2.5", prompt, 3, 12, 200, False, int(time.time() * 1000))


def _rows(postgres: PostgresServer, prefix: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(postgres.dsn) as conn:
        found = conn.execute(
            "SELECT request_id, prompt_tokens, completion_tokens FROM token_ledger WHERE request_id LIKE %s",
            (prefix + "%",),
        ).fetchall()
    return {row[0]: (row[1], row[2]) for row in found}


def _flusher(redis_server: RedisServer, postgres: PostgresServer, stream: str, consumer: str) -> LedgerFlusher:
    return LedgerFlusher(
        PipelinedRedis(redis_server.url),
        postgres.dsn,
        stream=stream,
        group="g",
        consumer=consumer,
        linger_seconds=0,
        claim_idle_seconds=0,
    )


async def test_duplicates_redeliveries_and_dead_consumers_write_each_request_once(
    redis_server: RedisServer, postgres_server: PostgresServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    stream = f"test:ledger:{uuid.uuid4().hex}"
    prefix = f"dup-{uuid.uuid4().hex[:8]}-"
    first = _flusher(redis_server, postgres_server, stream, "a")
    try:
        # The same request id twice in one batch (a client reusing its X-Request-Id): one row, the first.
        await first.step()  # creates the group
        for entry in (_entry(prefix + "1", prompt=7), _entry(prefix + "1", prompt=99), _entry(prefix + "2")):
            await client.xadd(stream, {FIELD: entry.encode()})
        assert await first.step() == 3
        assert _rows(postgres_server, prefix) == {prefix + "1": (7, 3), prefix + "2": (7, 3)}
        assert await client.xlen(stream) == 0, "acknowledged entries are deleted from the buffer"

        # A replica reads entries and dies before acknowledging: another one reclaims and writes them.
        for name in ("3", "4"):
            await client.xadd(stream, {FIELD: _entry(prefix + name).encode()})
        await client.xreadgroup("g", "dead", {stream: ">"}, count=10)
        # One of them had even been committed before the crash (commit, then killed before XACK).
        with psycopg.connect(postgres_server.dsn) as conn:
            conn.execute(
                "INSERT INTO token_ledger (request_id, customer, tier, model, prompt_tokens, completion_tokens,"
                " latency_ms, status, created_at) VALUES (%s, 'cust-x', 'starter', 'm', 7, 3, 1, 200, now())",
                (prefix + "3",),
            )
        second = _flusher(redis_server, postgres_server, stream, "b")
        assert await second.step() == 2
        assert set(_rows(postgres_server, prefix)) == {prefix + n for n in "1234"}
        pending = await client.xpending(stream, "g")
        assert pending["pending"] == 0
        assert await client.xlen(stream) == 0
    finally:
        await client.delete(stream)
        await client.aclose()
