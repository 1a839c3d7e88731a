"""One real-node platform per session: the real OpenClaw gateways of every test here share it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import running_redis
from clawhost_localcluster.node_environment import RealNodeHolder
from clawhost_localcluster.real_platform import RealPlatform, progress, running_real_platform, show_progress_with
from clawhost_localcluster.services import PostgresServer, RedisServer


@pytest.fixture(scope="session", autouse=True)
def progress_on_the_terminal(pytestconfig: pytest.Config) -> None:
    """Progress lines reach the terminal while a test runs (pytest captures its output otherwise)."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def show(line: str) -> None:
        with capture.global_and_fixture_disabled():
            print(line, file=sys.stderr, flush=True)

    show_progress_with(show)


@pytest.fixture(scope="session")
def real_platform_redis(session_dir: Path) -> Iterator[RedisServer]:
    """The real platform's own Redis. It lives for the whole session, and its in-cluster proxy reads the ledger
    stream with the proxies' consumer group: on the session's shared Redis it took the rows of every later test's
    proxy and filed them in its own database (a dashboard's chart never saw its row)."""
    with running_redis(session_dir / "real-platform-redis") as server:
        yield server


@pytest.fixture(scope="session")
def real_platform(
    real_node_holder: RealNodeHolder,
    real_platform_redis: RedisServer,
    postgres_server: PostgresServer,
    session_dir: Path,
) -> Iterator[RealPlatform]:
    started = time.monotonic()
    progress("starting the real-node cluster (waits for the machine-wide node lock)")
    running = real_node_holder.get()
    progress(f"real node Ready ({time.monotonic() - started:.0f}s)")
    with running_real_platform(
        running, real_platform_redis.port, postgres_server.port, postgres_server.database, session_dir / "real-platform"
    ) as platform:
        yield platform
