"""Redis and PostgreSQL answer on the ports the harness chose."""

from __future__ import annotations

import psycopg
import pytest
import redis

from clawhost_localcluster.services import PostgresServer, RedisServer

pytestmark = pytest.mark.services


def test_redis_answers_on_its_port(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    assert redis_server.url.endswith(f":{redis_server.port}/0")
    assert client.ping() is True
    client.set("clawhost:probe", "1")
    assert client.get("clawhost:probe") == b"1"
    client.delete("clawhost:probe")


def test_postgres_answers_on_its_port(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.dsn) as conn:
        row = conn.execute("SELECT current_setting('port'), current_database(), version()").fetchone()
    assert row is not None
    assert int(row[0]) == postgres_server.port
    assert row[1] == "clawhost"
    assert "PostgreSQL" in row[2]


def test_postgres_survives_stop_and_start(postgres_server: PostgresServer) -> None:
    """Tests that stop PostgreSQL mid-traffic rely on a restart keeping data and port."""
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS harness_probe (v int)")
        conn.execute("INSERT INTO harness_probe VALUES (42)")
    postgres_server.stop()
    postgres_server.start()
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT v FROM harness_probe").fetchone()
        conn.execute("DROP TABLE harness_probe")
    assert row == (42,)
