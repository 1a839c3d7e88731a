"""The whole local environment (cluster, Redis, PostgreSQL) as one context manager that always cleans up."""

from __future__ import annotations

import json
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
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from clawhost_localcluster.build import ensure_binaries
from clawhost_localcluster.controlplane import FAKE_NODE_COUNT, ControlPlane
from clawhost_localcluster.node import RealNode
from clawhost_localcluster.processes import StartupError
from clawhost_localcluster.services import PostgresServer, RedisServer
from clawhost_localcluster.waiting import eventually

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

    def wait_established(self, *crds: str, timeout: float = 60) -> None:
        """Wait until each CRD (its full name, e.g. customers.clawhost.dev) is Established. Unlike `kubectl wait`,
        a CRD read before the API server wrote any status is not an error (it failed a loaded run: `.status.conditions
        accessor error: <nil>`), just not Established yet."""

        def established(crd: str) -> bool:
            result = self.kubectl("get", "crd", crd, "-o", "json", check=False)
            if result.returncode != 0:
                return False
            conditions = (json.loads(result.stdout).get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

        for crd in crds:
            eventually(partial(established, crd), timeout=timeout, what=f"CRD {crd} to be Established")

    def patch_customer_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge `status` into a Customer's status subresource, as billing or the operator would write it."""
        self.kubectl(
            "patch", "customer", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
        )

    def service_account_kubeconfig(
        self, namespace: str, account: str, path: Path, server: str | None = None, duration: str = "6h"
    ) -> Path:
        """Write to `path` a kubeconfig that authenticates with a real token of ServiceAccount `namespace/account`,
        so whatever uses it is held to that account's RBAC; `server` replaces the API server's address."""
        token = self.kubectl("create", "token", account, "-n", namespace, f"--duration={duration}").stdout.strip()
        config = json.loads(self.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout)
        cluster = config["clusters"][0]
        if server is not None:
            cluster["cluster"]["server"] = server
        config["users"] = [{"name": account, "user": {"token": token}}]
        config["contexts"] = [{"name": account, "context": {"cluster": cluster["name"], "user": account}}]
        config["current-context"] = account
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path


@dataclass(frozen=True)
class Environment:
    cluster: Cluster
    redis: RedisServer
    postgres: PostgresServer
    workdir: Path
    node: RealNode | None = None  # the real node, when the cluster has one (make up's default)


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
def running_cluster(workdir: Path, fake_nodes: int = FAKE_NODE_COUNT) -> Iterator[Cluster]:
    """The existing cluster named by CLAWHOST_KUBECONFIG, or a fresh local control plane stopped on exit."""
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
        yield cluster
        return
    binaries = ensure_binaries()
    control_plane = ControlPlane(binaries, workdir, fake_nodes=fake_nodes)
    try:
        control_plane.start()
        yield Cluster(control_plane.kubeconfig, binaries.kubectl, existing=False, control_plane=control_plane)
    finally:
        control_plane.stop()


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    redis = RedisServer(workdir)
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()


@contextmanager
def running_postgres(workdir: Path) -> Iterator[PostgresServer]:
    postgres = PostgresServer(workdir)
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.remove()


@contextmanager
def scratch_dir(prefix: str = "clawhost-env-") -> Iterator[Path]:
    """A temp directory that is removed on exit, whatever happened."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data dir
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_real_node(cluster: Cluster, workdir: Path) -> Iterator[RealNode]:
    if cluster.control_plane is None:
        raise StartupError("a real node joins the local control plane, not an existing cluster")
    node = RealNode(cluster.control_plane, workdir)
    try:
        node.start()
        yield node
    finally:
        node.stop()


@contextmanager
def local_environment(workdir: Path | None = None, real_node: bool = False) -> Iterator[Environment]:
    """Start (or attach to) a cluster plus Redis and PostgreSQL; stop all and delete temp data on exit.
    With `real_node` the cluster's only node is a real one (no kwok nodes)."""
    started = time.monotonic()
    with ExitStack() as stack, _terminate_on_sigterm():
        if workdir is None:
            root = stack.enter_context(scratch_dir())
        else:
            root = workdir
            root.mkdir(parents=True, exist_ok=True)
            root.chmod(0o755)
        cluster = stack.enter_context(running_cluster(root / "cluster", fake_nodes=0 if real_node else FAKE_NODE_COUNT))
        node = stack.enter_context(running_real_node(cluster, root / "node")) if real_node else None
        redis = stack.enter_context(running_redis(root / "redis"))
        postgres = stack.enter_context(running_postgres(root / "postgres"))
        _log(f"environment ready in {time.monotonic() - started:.1f}s (redis :{redis.port}, postgres :{postgres.port})")
        yield Environment(cluster=cluster, redis=redis, postgres=postgres, workdir=root, node=node)
