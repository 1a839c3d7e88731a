"""The proxy's pipelined Redis client against the real Redis: replies, script reloads, outages."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError, ResponseError

from clawhost_localcluster.pki import create_pki
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until
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


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks only TLS, its certificate signed by a CA of our own: (port, the CA's PEM)."""
    pki = create_pki(tmp_path / "pki")
    port = free_port()
    server = ManagedProcess(
        "redis-tls",
        [
            "redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(pki.serving_cert), "--tls-key-file", str(pki.serving_key),
            "--tls-ca-cert-file", str(pki.ca_cert), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        ],
        tmp_path / "redis-tls.log",
    )  # fmt: skip
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))

        def answers() -> bool:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(b"PING\r\n")
                return tls.recv(16) == b"+PONG\r\n"

        wait_until("redis to answer over TLS", answers, 20, server)
        yield port, pki.ca_cert
    finally:
        server.stop()


async def test_rediss_urls_connect_over_tls_and_verify_the_server(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    client = PipelinedRedis(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    untrusted = PipelinedRedis(f"rediss://127.0.0.1:{port}/0", connect_timeout=2)  # the system's CAs only
    try:
        assert await client.execute("PING") == b"PONG"
        assert await Script(client, "return ARGV[1]")([], ["over tls"]) == b"over tls"
        with pytest.raises(RedisError, match="SSLCertVerificationError"):
            await untrusted.execute("PING")
    finally:
        await client.close()
        await untrusted.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("unix:///run/redis.sock", "unsupported Redis URL scheme 'unix'"),
        ("rediss://r:6379/0?ssl_cert_reqs=none", "unsupported Redis URL parameter(s) ssl_cert_reqs"),
        ("redis://r:6379/0?ssl_ca_certs=/ca.pem", "ssl_ca_certs is for rediss:// URLs"),
    ],
)
def test_a_url_the_client_cannot_honour_is_refused_at_once(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        PipelinedRedis(url)
