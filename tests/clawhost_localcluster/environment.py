"""The whole local environment (cluster, Redis, PostgreSQL) as one context manager that always cleans up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from clawhost_localcluster.build import ensure_binaries
from clawhost_localcluster.controlplane import ControlPlane
from clawhost_localcluster.processes import StartupError
from clawhost_localcluster.services import PostgresServer, RedisServer

EXISTING_KUBECONFIG_ENV = "CLAWHOST_KUBECONFIG"


@dataclass(frozen=True)
class Cluster:
    """What every consumer needs of a cluster: a kubeconfig and a kubectl that uses it."""

    kubeconfig: Path
    kubectl_path: Path
    existing: bool
    control_plane: ControlPlane | None

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        if check and result.returncode != 0:
            raise StartupError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


@dataclass(frozen=True)
class Environment:
    cluster: Cluster
    redis: RedisServer
    postgres: PostgresServer
    workdir: Path


def _log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception so `finally` blocks (and so cleanup) run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def local_environment(workdir: Path | None = None, keep_data: bool = False) -> Iterator[Environment]:
    """Start (or attach to) a cluster plus Redis and PostgreSQL; stop all and delete temp data on exit."""
    started = time.monotonic()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="clawhost-env-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, _terminate_on_sigterm():
        if own_dir and not keep_data:
            stack.callback(shutil.rmtree, root, True)
        existing = os.environ.get(EXISTING_KUBECONFIG_ENV)
        if existing:
            kubeconfig = Path(existing).expanduser().resolve()
            if not kubeconfig.is_file():
                raise StartupError(f"{EXISTING_KUBECONFIG_ENV}={existing} does not name a kubeconfig file")
            kubectl = shutil.which("kubectl")
            if kubectl is None:
                raise StartupError("using an existing cluster needs kubectl on PATH")
            cluster = Cluster(kubeconfig, Path(kubectl), existing=True, control_plane=None)
            cluster.kubectl("get", "nodes")
            _log(f"using the existing cluster of {kubeconfig}")
        else:
            binaries = ensure_binaries()
            control_plane = ControlPlane(binaries, root / "cluster")
            stack.callback(control_plane.stop)
            control_plane.start()
            cluster = Cluster(control_plane.kubeconfig, binaries.kubectl, existing=False, control_plane=control_plane)
        redis = RedisServer(root / "redis")
        stack.callback(redis.stop)
        redis.start()
        postgres = PostgresServer(root / "postgres")
        stack.callback(postgres.stop)
        postgres.start()
        _log(f"environment ready in {time.monotonic() - started:.1f}s (redis :{redis.port}, postgres :{postgres.port})")
        yield Environment(cluster=cluster, redis=redis, postgres=postgres, workdir=root)
