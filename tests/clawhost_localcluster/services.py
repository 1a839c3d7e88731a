"""Redis and PostgreSQL from Debian's packages, each on a free loopback port with its own data directory."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from clawhost_localcluster.processes import ManagedProcess, StartupError, free_port, wait_until

_POSTGRES_ROOTS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64).startswith(b"+PONG")


@dataclass
class RedisServer:
    """A private redis-server; `url` is what clients use."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StartupError("redis-server is not installed (Debian package redis-server; `make deps` installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ],
            self.data_dir / "redis.log",
        )
        self.process.start()
        wait_until("redis to answer PING", lambda: _redis_ping(self.port), 20, self.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _postgres_bin(name: str) -> str:
    for root in _POSTGRES_ROOTS:
        if (root / name).is_file():
            return str(root / name)
    found = shutil.which(name)
    if found is None:
        raise StartupError(f"{name} not found (Debian package postgresql; `make deps` installs it)")
    return found


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster (trust auth on loopback only); `dsn` is what clients use."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "clawhost"
    process: ManagedProcess | None = None
    _cluster_dir: Path | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run_as(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        # PostgreSQL refuses to run as root; use the package's own system user.
        entry = pwd.getpwnam("postgres")
        return entry.pw_gid, entry.pw_uid

    @property
    def cluster_dir(self) -> Path:
        """Where the database files and socket live.

        As root the server runs as the `postgres` user, which may not traverse the caller's private
        directories (/root, pytest's tmp), so the files go to a directory of its own under /tmp.
        """
        if self._cluster_dir is None:
            run_as = self._run_as()
            if run_as is None:
                self._cluster_dir = self.data_dir
            else:
                self._cluster_dir = Path(tempfile.mkdtemp(prefix="clawhost-pg-"))
                os.chown(self._cluster_dir, run_as[1], run_as[0])
            self.data_dir.mkdir(parents=True, exist_ok=True)
            (self.data_dir / "cluster-dir").write_text(str(self._cluster_dir))
        return self._cluster_dir

    def _initdb(self) -> None:
        run_as = self._run_as()
        cmd = [
            _postgres_bin("initdb"),
            "-D",
            str(self.cluster_dir / "pgdata"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            user=run_as[1] if run_as else None,
            group=run_as[0] if run_as else None,
            extra_groups=[] if run_as else None,
        )
        if result.returncode != 0:
            raise StartupError(f"initdb failed: {result.stderr[-2000:]}")

    def start(self) -> None:
        """Start the server (initialising the data directory the first time); safe after `stop`."""
        if not (self.cluster_dir / "pgdata" / "PG_VERSION").exists():
            self._initdb()
        self.process = ManagedProcess(
            "postgres",
            [
                _postgres_bin("postgres"),
                "-D",
                str(self.cluster_dir / "pgdata"),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.cluster_dir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            self.data_dir / "postgres.log",
            run_as=self._run_as(),
        )
        self.process.start()
        wait_until("postgres to accept connections", self._ensure_database, 30, self.process, interval=0.2)

    def _ensure_database(self) -> bool:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True, connect_timeout=2
        ) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return True

    def stop(self) -> None:
        """Stop the server, keeping its data (start() again resumes it on the same port)."""
        if self.process is not None:
            self.process.stop(grace=15)

    def stop_fast(self) -> None:
        """Stop at once as in an outage: PostgreSQL's fast shutdown (SIGINT) drops open sessions.

        `stop` (SIGTERM, smart shutdown) waits for clients to disconnect first.
        """
        if self.process is not None and self.process.popen is not None and self.process.running:
            self.process.popen.send_signal(signal.SIGINT)
            self.process.popen.wait(timeout=30)

    def remove(self) -> None:
        """Stop and delete the database files."""
        self.stop()
        if self._cluster_dir is not None and self._cluster_dir != self.data_dir:
            shutil.rmtree(self._cluster_dir, ignore_errors=True)


def fresh_database(postgres_dsn: str) -> str:
    """An empty database on the server of `postgres_dsn`, under a new name; returns its DSN."""
    import psycopg

    name = f"api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return psycopg.conninfo.make_conninfo(postgres_dsn, dbname=name)
