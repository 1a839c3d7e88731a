"""The per-request ledger: written to a Redis stream on the hot path, flushed to PostgreSQL off it.

Durability chain:

1. When a request is settled, the same Lua call that corrects the usage counter XADDs the ledger
   row to a Redis stream (`limits.py`), *before* the client receives the end of its response.
   So every response a client saw finish has its row in Redis (AOF, like the counters).
2. `LedgerFlusher` (a background task in every replica) reads the stream with a consumer group,
   inserts batches into `token_ledger` in one transaction (`ON CONFLICT (request_id) DO NOTHING`,
   so a batch written twice is written once), and only after the commit XACKs and XDELs them.
3. A replica killed between reading and acknowledging leaves its entries pending in the group:
   on start it re-reads its own pending entries, and every replica periodically XAUTOCLAIMs
   entries another (dead) consumer has held longer than `claim_idle`.
4. While PostgreSQL is down the flusher backs off and retries; entries wait in the stream (the
   `clawhost_proxy_ledger_backlog` gauge), and the hot path never touches PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError, ResponseError

from clawhost_api.usage import LEDGER_DDL
from clawhost_proxy.resp import PipelinedRedis, Script

logger = logging.getLogger("clawhost.proxy.ledger")

BACKLOG = Gauge("clawhost_proxy_ledger_backlog", "Ledger rows buffered in Redis, not yet in PostgreSQL")
FLUSH_ERRORS = Counter("clawhost_proxy_ledger_flush_errors_total", "Failed ledger flush attempts", ["store"])
ROWS_WRITTEN = Counter("clawhost_proxy_ledger_rows_total", "Ledger rows committed to PostgreSQL")
FIELD = "row"
_FIELD = FIELD.encode()

_INSERT = """
INSERT INTO token_ledger (request_id, customer, tier, model, prompt_tokens, completion_tokens,
                          latency_ms, status, estimated, created_at)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int[],
                     %s::int[], %s::int[], %s::bool[], %s::timestamptz[])
ON CONFLICT (request_id) DO NOTHING
"""
# KEYS[1] stream; ARGV[1] group, ARGV[2..] entry ids: acknowledged and deleted together.
_ACK_AND_DELETE = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    request_id: str
    customer: str
    tier: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    status: int
    estimated: bool
    created_at_ms: int

    def encode(self) -> bytes:
        return orjson.dumps(
            [
                self.request_id,
                self.customer,
                self.tier,
                self.model,
                self.prompt_tokens,
                self.completion_tokens,
                self.latency_ms,
                self.status,
                self.estimated,
                self.created_at_ms,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> LedgerEntry:
        r, c, t, m, p, o, lat, s, e, at = orjson.loads(raw)
        return cls(str(r), str(c), str(t), str(m), int(p), int(o), int(lat), int(s), bool(e), int(at))


def _columns(entries: Sequence[LedgerEntry]) -> list[list[Any]]:
    return [
        [e.request_id for e in entries],
        [e.customer for e in entries],
        [e.tier for e in entries],
        [e.model[:200] for e in entries],
        [e.prompt_tokens for e in entries],
        [e.completion_tokens for e in entries],
        [e.latency_ms for e in entries],
        [e.status for e in entries],
        [e.estimated for e in entries],
        [datetime.fromtimestamp(e.created_at_ms / 1000, UTC) for e in entries],
    ]


class LedgerFlusher:
    """Moves ledger rows from the Redis stream into PostgreSQL; at-least-once, made exactly-once by the key."""

    def __init__(
        self,
        client: PipelinedRedis,
        dsn: str,
        *,
        stream: str,
        group: str,
        consumer: str,
        batch_size: int = 500,
        linger_seconds: float = 0.05,
        claim_idle_seconds: float = 30.0,
        create_table: bool = True,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._redis = client
        self._ack_and_delete = Script(client, _ACK_AND_DELETE)
        self._dsn = dsn
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.batch_size = batch_size
        self.linger = linger_seconds
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.create_table = create_table
        self.max_backoff = max_backoff_seconds
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._own_pending = True  # after a restart, first re-read what this consumer name still holds

    async def run(self) -> None:
        backoff = 0.2
        try:
            while True:
                try:
                    await self.step()
                    backoff = 0.2
                except (RedisError, OSError) as error:
                    FLUSH_ERRORS.labels("redis").inc()
                    logger.warning("ledger: redis unavailable, retrying", extra={"error": type(error).__name__})
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                except psycopg.Error as error:
                    FLUSH_ERRORS.labels("postgres").inc()
                    logger.warning("ledger: postgres unavailable, retrying", extra={"error": type(error).__name__})
                    await self._drop_connection()
                    self._own_pending = True  # the failed batch is still pending for us: retry it first
                    with contextlib.suppress(RedisError, OSError):
                        BACKLOG.set(await self._redis.execute("XLEN", self.stream))
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            await self._drop_connection()

    @staticmethod
    async def _sleep(seconds: float) -> None:
        await asyncio.sleep(seconds * (0.75 + random.random() / 2))  # noqa: S311 - jitter, not crypto

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=5, options="-c statement_timeout=15000"
            )
            if self.create_table:
                async with conn.transaction():
                    await conn.execute(LEDGER_DDL)
            self._conn = conn
        return self._conn

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.execute("XGROUP", "CREATE", self.stream, self.group, "0", "MKSTREAM")
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    async def step(self) -> int:
        """Read one batch (own pending, then reclaimed, then new), write it, acknowledge it. Returns its size."""
        await self._ensure_group()
        batch = await self._read()
        if batch:
            await self._flush(batch)
        BACKLOG.set(await self._redis.execute("XLEN", self.stream))
        return len(batch)

    async def _read(self) -> list[tuple[bytes, bytes | None]]:
        if self._own_pending:
            pending = await self._xread("0", block=None)
            if pending:
                return pending
            self._own_pending = False
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_claim:
            claimed = await self._claim()
            if claimed:
                return claimed
            self._next_claim = loop.time() + max(1.0, self.claim_idle_ms / 2000)
        batch = await self._xread(">", block=1000)
        if batch and len(batch) < self.batch_size and self.linger > 0:
            await asyncio.sleep(self.linger)  # let a burst fill the batch: fewer, larger transactions
            batch += await self._xread(">", block=None, count=self.batch_size - len(batch))
        return batch

    async def _xread(self, start: str, block: int | None, count: int | None = None) -> list[tuple[bytes, bytes | None]]:
        args: list[str | int] = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", count or self.batch_size]
        if block is not None:
            args += ["BLOCK", block]
        reply: Any = await self._redis.execute(*args, "STREAMS", self.stream, start)
        if not reply:
            return []
        return [(entry_id, _row(fields)) for entry_id, fields in reply[0][1]]

    async def _claim(self) -> list[tuple[bytes, bytes | None]]:
        reply: Any = await self._redis.execute(
            "XAUTOCLAIM", self.stream, self.group, self.consumer, self.claim_idle_ms, self._claim_cursor,
            "COUNT", self.batch_size,
        )  # fmt: skip
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor.decode()
        # Entries deleted while pending come back separately (Redis 7: reply[2]); they only need an ack.
        gone = list(reply[2]) if len(reply) > 2 else []
        return [(entry_id, _row(fields)) for entry_id, fields in entries] + [(entry_id, None) for entry_id in gone]

    async def _flush(self, batch: list[tuple[bytes, bytes | None]]) -> None:
        entries: list[LedgerEntry] = []
        for _, raw in batch:
            if raw is None:
                continue
            try:
                entries.append(LedgerEntry.decode(raw))
            except (ValueError, TypeError):
                logger.error("ledger: dropping a malformed stream entry")
        if entries:
            conn = await self._connection()
            async with conn.transaction():
                await conn.execute(_INSERT, _columns(entries))
            ROWS_WRITTEN.inc(len(entries))
        await self._ack_and_delete([self.stream], [self.group, *(entry_id for entry_id, _ in batch)])


def _row(fields: list[bytes] | None) -> bytes | None:
    """The `row` field of a stream entry (None for an entry deleted while pending)."""
    if not fields:
        return None
    for index in range(0, len(fields) - 1, 2):
        if fields[index] == _FIELD:
            return fields[index + 1]
    return None
