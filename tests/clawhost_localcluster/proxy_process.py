"""The token proxy as a process (what its Deployment runs, as its ServiceAccount), and a customer's view of it."""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from clawhost_api.customer import ANNOTATION_ROTATE_TOKEN
from clawhost_control_api.db.migrations import migrate
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import UPSTREAM_KEY
from clawhost_localcluster.platform import CustomerFactory, gateway_secret
from clawhost_localcluster.processes import ManagedProcess, free_port, wait_until
from clawhost_localcluster.services import PostgresServer, RedisServer

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RunningProxy:
    url: str  # the tenant port's OpenAI base URL
    process: ManagedProcess
    port: int = 0
    admin_url: str = ""  # probes and metrics


def apply_proxy_rbac(cluster: Cluster) -> None:
    """The proxy's ServiceAccount and what it may do, as deployed."""
    cluster.kubectl("apply", "-f", str(REPO / "proxy" / "deploy" / "rbac.yaml"))


def proxy_kubeconfig(cluster: Cluster, directory: Path, server: str | None = None) -> Path:
    """A kubeconfig with a token of the proxy's ServiceAccount; `server` replaces the API server's address."""
    apply_proxy_rbac(cluster)
    return cluster.service_account_kubeconfig("platform", "token-proxy", directory / "proxy.kubeconfig", server)


def ledger_stream_for(dsn: str) -> str:
    """The ledger stream of the proxies that file into database `dsn`. Deployed, a platform's proxies share one
    stream and one database. Tests run several platforms on one Redis, each with its own database: on one stream
    the proxies of one (a session-scoped fixture's, alive to the end) took the rows of another's and filed them in
    their own database, so a later test never saw its row."""
    return f"clawhost:ledger:{hashlib.sha256(dsn.encode()).hexdigest()[:12]}"


def start_proxy(
    cluster: Cluster,
    redis: RedisServer,
    upstream: str,
    workdir: Path,
    postgres: PostgresServer | None = None,
    **extra: str,
) -> RunningProxy:
    """The proxy as a real subprocess (with the ledger flusher when `postgres` is given, migrated as deployed). It
    reaches the API server as its ServiceAccount: by a kubeconfig of its own unless `extra` names one or the
    in-cluster variables."""
    if postgres is not None:
        migrate(postgres.dsn)  # the platform's migrations, which the control API applies in a deployment
    port, admin_port = free_port(), free_port()
    key_file = workdir / "upstream.key"
    key_file.write_text(UPSTREAM_KEY)
    env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    if "CLAWHOST_PROXY_KUBECONFIG" not in extra and "KUBERNETES_SERVICE_HOST" not in extra:
        env["CLAWHOST_PROXY_KUBECONFIG"] = str(proxy_kubeconfig(cluster, workdir))
    env.update(
        CLAWHOST_PROXY_PORT=str(port),
        CLAWHOST_PROXY_ADMIN_PORT=str(admin_port),
        CLAWHOST_PROXY_HOST="127.0.0.1",
        CLAWHOST_PROXY_UPSTREAM_BASE_URL=upstream,
        CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE=str(key_file),
        CLAWHOST_PROXY_REDIS_URL=redis.url,
        **({"CLAWHOST_PROXY_POSTGRES_DSN": postgres.dsn} if postgres is not None else {}),
        **extra,
    )
    dsn = env.get("CLAWHOST_PROXY_POSTGRES_DSN")
    if dsn and "CLAWHOST_PROXY_LEDGER_STREAM" not in extra:
        env["CLAWHOST_PROXY_LEDGER_STREAM"] = ledger_stream_for(dsn)
    process = ManagedProcess("proxy", [sys.executable, "-m", "clawhost_proxy"], workdir / f"proxy-{port}.log", env=env)
    process.start()

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=2) as response:
            return bool(response.status == 200)

    wait_until("the proxy's /readyz", ready, 60, process)
    return RunningProxy(f"http://127.0.0.1:{port}/v1", process, port, f"http://127.0.0.1:{admin_port}")


@dataclass
class ProxyCustomer:
    name: str
    token: str


def proxy_token_of(customers: CustomerFactory, name: str) -> str:
    return gateway_secret(customers, name)["proxy-token"]


def status_of(url: str, token: str | None = None) -> int:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=5).status_code


def readiness(proxy: RunningProxy) -> int:
    return status_of(f"{proxy.admin_url}/readyz")


def knows_token(proxy: RunningProxy, token: str) -> bool:
    """The proxy knows the token (what the upstream then says does not matter here)."""
    return status_of(f"{proxy.url}/models", token) != 401


def ready_customer(customers: CustomerFactory) -> ProxyCustomer:
    """A Customer brought to Ready by the real operator, with the token its gateway reads."""
    name = customers.create(tier="starter")
    customers.wait_ready(name)
    return ProxyCustomer(name, proxy_token_of(customers, name))


def rotate_token(customers: CustomerFactory, customer: ProxyCustomer) -> str:
    """The operator's rotation (the annotation): returns the new token once its hash is published."""
    old_hash = (customers.get(customer.name)["status"]["proxyToken"] or {}).get("hash")
    rotation = f"{ANNOTATION_ROTATE_TOKEN}={uuid.uuid4().hex[:8]}"
    customers.cluster.kubectl("annotate", "--overwrite", "customer", customer.name, rotation)
    customers.wait_for(
        customer.name, lambda c: (c["status"].get("proxyToken") or {}).get("hash") != old_hash, "a new token hash"
    )
    return proxy_token_of(customers, customer.name)
