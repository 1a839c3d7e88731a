"""The proxy's pipelined Redis client against the real Redis: replies, script reloads, outages."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from redis.exceptions import RedisError, ResponseError

from clawhost_localcluster.services import RedisServer
from clawhost_proxy.resp import PipelinedRedis, Script

pytestmark = pytest.mark.services


async def test_replies_ordering_and_errors(redis_server: RedisServer) -> None:
    client = PipelinedRedis(redis_server.url)
    key = f"test:resp:{uuid.uuid4().hex}"
    try:
        # Many commands in one tick share one write; each gets its own reply, in order.
        counts = await asyncio.gather(*[client.execute("INCRBY", key, 1) for _ in range(500)])
        assert counts == list(range(1, 501))
        assert await client.execute("SET", key + ":s", b"x" * 100_000) == b"OK"
        assert await client.execute("GET", key + ":s") == b"x" * 100_000
        assert await client.execute("GET", key + ":missing") is None
        assert await client.execute("MGET", key, key + ":missing") == [b"500", None]
        with pytest.raises(ResponseError):
            await client.execute("INCRBY", key + ":s", 1)
        assert await client.execute("DEL", key, key + ":s") == 2
    finally:
        await client.close()


async def test_scripts_survive_a_script_flush(redis_server: RedisServer) -> None:
    client = PipelinedRedis(redis_server.url)
    script = Script(client, "return {tonumber(ARGV[1]) + 1, KEYS[1]}")
    try:
        assert await script(["k"], [41]) == [42, b"k"]
        await client.execute("SCRIPT", "FLUSH")
        assert await script(["k"], [1]) == [2, b"k"], "NOSCRIPT falls back to EVAL"
    finally:
        await client.close()


async def test_an_outage_fails_fast_and_the_client_reconnects(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = PipelinedRedis(server.url, connect_timeout=1)
    try:
        assert await client.execute("PING") == b"PONG"
        server.stop()
        with pytest.raises(RedisError):
            await client.execute("PING")
        with pytest.raises(RedisError):
            await client.execute("PING")
        server.start()
        assert await client.execute("PING") == b"PONG"
    finally:
        await client.close()
        server.stop()
