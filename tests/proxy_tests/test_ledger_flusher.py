"""The ledger flusher against the real Redis and PostgreSQL: redelivery, reclaiming and duplicates write once."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import redis.asyncio as aioredis

from clawhost_control_api.db.migrations import load_migrations, migrate
from clawhost_localcluster.services import PostgresServer, RedisServer
from clawhost_proxy.ledger import FIELD, LedgerEntry, LedgerFlusher, LedgerSchemaError
from clawhost_proxy.resp import PipelinedRedis

pytestmark = pytest.mark.services


def _entry(row_id: str, prompt: int = 7, request_id: str = "") -> LedgerEntry:
    return LedgerEntry(
        row_id,
        request_id or row_id,
        "cust-x",
        "starter",
        "kimi-k2.5",
        prompt,
        3,
        12,
        200,
        False,
        int(time.time() * 1000),
        0,
        prompt + 3,
    )


def _rows(postgres: PostgresServer, prefix: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(postgres.dsn) as conn:
        found = conn.execute(
            "SELECT id, prompt_tokens, completion_tokens FROM token_ledger WHERE id LIKE %s",
            (prefix + "%",),
        ).fetchall()
    return {row[0]: (row[1], row[2]) for row in found}


def _flusher(redis_server: RedisServer, postgres: PostgresServer, stream: str, consumer: str) -> LedgerFlusher:
    migrate(postgres.dsn)
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
        # The same entry twice in one batch (written again after a crash): one row, the first.
        # Two requests that share a client's X-Request-Id are two entries with their own ids: two rows.
        await first.step()  # creates the group
        for entry in (
            _entry(prefix + "1", prompt=7),
            _entry(prefix + "1", prompt=99),
            _entry(prefix + "2", request_id="reused"),
            _entry(prefix + "2b", request_id="reused"),
        ):
            await client.xadd(stream, {FIELD: entry.encode()})
        assert await first.step() == 4
        assert _rows(postgres_server, prefix) == {prefix + "1": (7, 3), prefix + "2": (7, 3), prefix + "2b": (7, 3)}
        assert await client.xlen(stream) == 0, "acknowledged entries are deleted from the buffer"

        # A replica reads entries and dies before acknowledging: another one reclaims and writes them.
        for name in ("3", "4"):
            await client.xadd(stream, {FIELD: _entry(prefix + name).encode()})
        await client.xreadgroup("g", "dead", {stream: ">"}, count=10)
        # One of them had even been committed before the crash (commit, then killed before XACK).
        with psycopg.connect(postgres_server.dsn) as conn:
            conn.execute(
                "INSERT INTO token_ledger (id, request_id, customer, tier, model, prompt_tokens, completion_tokens,"
                " latency_ms, status, created_at, charged_tokens)"
                " VALUES (%s, %s, 'cust-x', 'starter', 'm', 7, 3, 1, 200, now(), 10)",
                (prefix + "3", prefix + "3"),
            )
        second = _flusher(redis_server, postgres_server, stream, "b")
        assert await second.step() == 2
        assert set(_rows(postgres_server, prefix)) == {prefix + n for n in ("1", "2", "2b", "3", "4")}
        pending = await client.xpending(stream, "g")
        assert pending["pending"] == 0
        assert await client.xlen(stream) == 0
    finally:
        await client.delete(stream)
        await client.aclose()


def _fresh_database(postgres: PostgresServer) -> str:
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return psycopg.conninfo.make_conninfo(postgres.dsn, dbname=name)


async def test_without_the_migrated_table_rows_wait_in_redis(
    redis_server: RedisServer, postgres_server: PostgresServer
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    stream = f"test:ledger:{uuid.uuid4().hex}"
    dsn = _fresh_database(postgres_server)  # the platform's migrations have not run here
    flusher = LedgerFlusher(
        PipelinedRedis(redis_server.url), dsn, stream=stream, group="g", consumer="a", linger_seconds=0
    )
    try:
        await flusher.step()  # creates the group
        await client.xadd(stream, {FIELD: _entry("waiting-1").encode()})
        with pytest.raises(LedgerSchemaError, match="token_ledger lacks id, request_id"):
            await flusher.step()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT to_regclass('token_ledger')").fetchone() == (None,), "the proxy creates nothing"
        assert await client.xlen(stream) == 1, "the row waits in Redis"
        migrate(dsn)
        flusher._own_pending = True  # as the run loop does after a failed batch
        assert await flusher.step() == 1
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT id FROM token_ledger").fetchall() == [("waiting-1",)]
    finally:
        await flusher._drop_connection()
        await client.delete(stream)
        await client.aclose()


def test_the_row_id_migration_keeps_rows_keyed_the_old_way(postgres_server: PostgresServer) -> None:
    dsn = _fresh_database(postgres_server)
    before = [m for m in load_migrations() if m.version < "0006"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations ("
            " version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in before:  # a database migrated by an earlier release
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
            )
        conn.execute(
            "INSERT INTO token_ledger (request_id, customer, tier, model, prompt_tokens, completion_tokens,"
            " latency_ms, status, created_at) VALUES ('cust-a/agent-7', 'cust-a', 'starter', 'm', 1, 2, 3, 200, now())"
        )
    assert "0006_token_ledger_row_ids" in migrate(dsn)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, request_id, cached_prompt_tokens, charged_tokens FROM token_ledger").fetchall()
    assert rows == [("cust-a/agent-7", "agent-7", 0, 3)], "old rows: nothing cached, charged in full"


def test_entries_buffered_by_an_earlier_proxy_still_decode() -> None:
    keyed_by_client = b'["cust-a/agent-7", "cust-a", "starter", "kimi-k2.5", 5, 2, 9, 200, false, 1700000000000]'
    without_cache = b'["id-1", "agent-8", "cust-a", "starter", "kimi-k2.5", 5, 2, 9, 200, false, 1700000000000]'
    assert LedgerEntry.decode(keyed_by_client) == LedgerEntry(
        "cust-a/agent-7", "agent-7", "cust-a", "starter", "kimi-k2.5", 5, 2, 9, 200, False, 1700000000000, 0, 7
    )
    assert LedgerEntry.decode(without_cache).charged_tokens == 7
