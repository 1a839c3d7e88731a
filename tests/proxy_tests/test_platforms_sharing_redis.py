"""Test harness: several platforms (each with its own database) share the session's Redis, as the test suite runs
them. A proxy's ledger rows must reach its own platform's database, never another platform's proxy: one session-
scoped proxy once took a later test's rows and filed them in its database, and that test's chart stayed at 0."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from clawhost_control_api.db.migrations import migrate
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import FakeKimi
from clawhost_localcluster.proxy_process import ProxyCustomer, RunningProxy, start_proxy
from clawhost_localcluster.services import RedisServer, fresh_database
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster

REQUESTS = 12


def _rows(dsn: str, customer: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM token_ledger WHERE customer = %s", (customer,)).fetchone()
    return int(row[0]) if row else 0


def test_each_platforms_proxy_files_its_rows_in_its_own_database(
    platform_installed: Cluster,
    redis_server: RedisServer,
    postgres_dsn: str,
    fake_kimi: FakeKimi,
    customer: ProxyCustomer,
    tmp_path: Path,
) -> None:
    mine, other = fresh_database(postgres_dsn), fresh_database(postgres_dsn)
    started: list[RunningProxy] = []
    try:
        for name, dsn in (("mine", mine), ("other", other)):
            migrate(dsn)
            workdir = tmp_path / name
            workdir.mkdir()
            upstream = f"http://127.0.0.1:{fake_kimi.port}/v1"
            started.append(
                start_proxy(platform_installed, redis_server, upstream, workdir, CLAWHOST_PROXY_POSTGRES_DSN=dsn)
            )
        proxy = started[0]
        for _ in range(REQUESTS):
            answer = httpx.post(
                f"{proxy.url}/chat/completions",
                headers={"Authorization": f"Bearer {customer.token}"},
                json={"model": "kimi-k2.5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        eventually(lambda: _rows(mine, customer.name) == REQUESTS, timeout=60, what="every row in its own database")
        assert _rows(other, customer.name) == 0, "another platform's proxy filed rows it never served"
    finally:
        for running in started:
            running.process.stop()
