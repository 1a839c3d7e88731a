"""The token proxy in the real node's cluster, as proxy/deploy/ ships it: what `make up` runs on the real node and
what the real-gateway tests run, through the same `start_token_proxy_in_cluster`.

Where each piece lives, and who may reach it (nothing here loosens a customer's NetworkPolicy):
- the proxy: the `token-proxy` Deployment and Service in `platform`, the platform image imported into the node, its
  Secrets (`token-proxy-upstream`, `token-proxy-stores`) written as the installer writes them. Gateways reach it at
  http://token-proxy.platform.svc.cluster.local:8080/v1, as in production.
- the API server (the proxy reads Customers): behind the `kubernetes` Service, whose endpoint is the node's relay to
  the API server on loopback.
- Redis, PostgreSQL and the local LLM stand-in: relays on the node's address, on ports other than 443. `platform` has
  no egress policy; a customer's pod may reach only DNS, the proxy's 8080 and public addresses on 443, so none of them.
- Kimi, when a key is given: the proxy's Secret carries the key, the base URL is Moonshot's (as shipped) or the given
  one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clawhost_control_api.db.migrations import migrate
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import UPSTREAM_KEY, FakeKimi
from clawhost_localcluster.images import ensure_platform_image
from clawhost_localcluster.node_environment import RealNodeCluster
from clawhost_localcluster.processes import StartupError
from clawhost_localcluster.relay import TcpRelay

REPO = Path(__file__).resolve().parents[2]
PROXY_DEPLOY = REPO / "proxy" / "deploy"
PROXY_SELECTOR = "app.kubernetes.io/name=token-proxy"
PROXY_URL_IN_CLUSTER = "http://token-proxy.platform.svc.cluster.local:8080/v1"
KEY_ENV, KEY_FILE_ENV, BASE_URL_ENV = (
    "CLAWHOST_PROXY_UPSTREAM_API_KEY",
    "CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE",
    "CLAWHOST_PROXY_UPSTREAM_BASE_URL",
)
STAND_IN = "the local OpenAI-compatible stand-in"

Report = Callable[[str], None]


@dataclass(frozen=True)
class ProxyUpstream:
    """The model the proxy forwards to: `base_url` None keeps proxy/deploy/'s (Moonshot's)."""

    api_key: str
    base_url: str | None
    description: str  # for people: never the key

    def __repr__(self) -> str:
        return f"ProxyUpstream({self.description!r})"


def upstream_from_environment(environ: Mapping[str, str], stand_in_url: str) -> ProxyUpstream:
    """Kimi when CLAWHOST_PROXY_UPSTREAM_API_KEY or _FILE is given (base URL CLAWHOST_PROXY_UPSTREAM_BASE_URL or
    Moonshot's), else the local stand-in at `stand_in_url`."""
    key = environ.get(KEY_ENV)
    if key is None and KEY_FILE_ENV in environ:
        path = Path(environ[KEY_FILE_ENV]).expanduser()
        try:
            key = path.read_text().strip()
        except OSError as error:
            raise StartupError(f"{KEY_FILE_ENV}={path}: cannot read it ({error.strerror})") from None
    if key is None:
        return ProxyUpstream(UPSTREAM_KEY, stand_in_url, f"{STAND_IN} at {stand_in_url} (set {KEY_ENV} to use Kimi)")
    if not key:
        raise StartupError(f"the Kimi key given in {KEY_ENV} or {KEY_FILE_ENV} is empty")
    base_url = environ.get(BASE_URL_ENV) or None
    return ProxyUpstream(key, base_url, f"Kimi at {base_url or shipped_upstream_url()} (the key you gave)")


def _proxy_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(PROXY_DEPLOY.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def _proxy_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [doc for doc in documents if doc["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def shipped_upstream_url() -> str:
    """The upstream base URL proxy/deploy/ ships (Moonshot's)."""
    [value] = [v["value"] for v in _proxy_container(_proxy_documents())["env"] if v["name"] == BASE_URL_ENV]
    return str(value)


def render_token_proxy(upstream_url: str | None, replicas: int = 1) -> list[dict[str, Any]]:
    """proxy/deploy/ as shipped, but for the upstream (None: as shipped), the replica count, and the image taken as
    imported (a `:latest` image is otherwise pulled every time, and nothing can be pulled here)."""
    documents = _proxy_documents()
    for doc in documents:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = replicas
            [container] = doc["spec"]["template"]["spec"]["containers"]
            container["imagePullPolicy"] = "IfNotPresent"
            for variable in container["env"]:
                if variable["name"] == BASE_URL_ENV and upstream_url is not None:
                    variable["value"] = upstream_url
    return documents


def secret_manifest(name: str, namespace: str, data: dict[str, str]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": data,
        }
    )


@dataclass
class OutsideServices:
    """The stores and the LLM stand-in, reachable on the node's address (relays in front of loopback servers)."""

    node_ip: str
    kimi: FakeKimi
    redis: TcpRelay
    postgres: TcpRelay
    postgres_database: str

    @property
    def upstream_url(self) -> str:
        return f"http://{self.node_ip}:{self.kimi.port}/v1"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis.address}/0"

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://postgres@{self.postgres.address}/{self.postgres_database}"

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
        self.kimi.stop()


def start_outside_services(
    node_ip: str, redis_port: int, postgres_port: int, database: str, kimi: FakeKimi | None = None
) -> OutsideServices:
    """`kimi`: the stand-in to start on the node's address (a plain FakeKimi when None)."""
    migrate(f"postgresql://postgres@127.0.0.1:{postgres_port}/{database}")  # what the control API applies deployed
    kimi = kimi or FakeKimi()
    kimi.start(host=node_ip)
    redis = TcpRelay("127.0.0.1", redis_port, host=node_ip)
    postgres = TcpRelay("127.0.0.1", postgres_port, host=node_ip)
    redis.start()
    postgres.start()
    return OutsideServices(node_ip, kimi, redis, postgres, database)


def expose_api_server(cluster: Cluster, relay: TcpRelay) -> None:
    """The `kubernetes` Service (what in-cluster clients dial, KUBERNETES_SERVICE_HOST) backed by the node's relay to
    the API server, which listens on loopback; its certificate names the Service's address."""
    host, port = relay.address.rsplit(":", 1)
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes-node-relay",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "clawhost",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": int(port), "protocol": "TCP"}],
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(endpoints))


def _container_state(status: dict[str, Any]) -> str:
    state = status.get("state") or {}
    name = next(iter(state), "unknown")
    reason = (state.get("waiting") or {}).get("reason")
    return f"{status['name']} {name}{f' ({reason})' if reason else ''}{' ready' if status.get('ready') else ''}"


def _pods_state(cluster: Cluster) -> str:
    """One line on the proxy's pods: phase and what each container waits for (for progress and errors)."""
    listing = json.loads(cluster.kubectl("get", "pods", "-n", "platform", "-l", PROXY_SELECTOR, "-o", "json").stdout)
    parts = []
    for pod in listing["items"]:
        status = pod.get("status") or {}
        containers = ", ".join(_container_state(c) for c in status.get("containerStatuses") or [])
        parts.append(
            f"{pod['metadata']['name']}: {status.get('phase', 'Pending')}{'; ' + containers if containers else ''}"
        )
    return "; ".join(parts) or "no pod yet"


def wait_for_token_proxy(cluster: Cluster, report: Report, timeout: float = 300, every: float = 10) -> None:
    """Until the Deployment's pods of its current template are all Ready; a line of progress every `every` s."""
    started = time.monotonic()
    last_report = started
    while True:
        got = cluster.kubectl("get", "deployment", "token-proxy", "-n", "platform", "-o", "json")
        deployment = json.loads(got.stdout)
        wanted = deployment["spec"]["replicas"]
        status = deployment.get("status") or {}
        if (
            status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == wanted
            and status.get("readyReplicas", 0) == wanted
            and status.get("replicas", 0) == wanted
        ):
            report(f"token proxy Ready in the cluster ({time.monotonic() - started:.0f}s)")
            return
        now = time.monotonic()
        if now - started > timeout:
            logs = cluster.kubectl(
                "logs", "-n", "platform", "-l", PROXY_SELECTOR, "--tail=20", "--all-containers", check=False
            ).stdout
            raise StartupError(
                f"the in-cluster token proxy was not Ready after {timeout:.0f}s: {_pods_state(cluster)}; "
                f"its log ends:\n{logs}"
            )
        if now - last_report >= every:
            report(f"waiting for the token proxy's pod ({now - started:.0f}s): {_pods_state(cluster)}")
            last_report = now
        time.sleep(1)  # polling the Deployment's status, with a deadline


def deploy_token_proxy(
    cluster: Cluster, outside: OutsideServices, upstream: ProxyUpstream | None, report: Report
) -> None:
    """The token proxy's Deployment and Service from proxy/deploy/, its Secrets as the installer would write them;
    returns once its pod is Ready. `upstream` None: the stand-in of `outside`."""
    upstream = upstream or ProxyUpstream(UPSTREAM_KEY, outside.upstream_url, STAND_IN)
    upstream_secret = secret_manifest("token-proxy-upstream", "platform", {"api-key": upstream.api_key})
    cluster.kubectl("apply", "-f", "-", stdin=upstream_secret)
    stores = {"redis-url": outside.redis_url, "postgres-dsn": outside.postgres_dsn}
    cluster.kubectl("apply", "-f", "-", stdin=secret_manifest("token-proxy-stores", "platform", stores))
    for document in render_token_proxy(upstream.base_url):
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(document))
    wait_for_token_proxy(cluster, report)


def start_token_proxy_in_cluster(
    running: RealNodeCluster,
    redis_port: int,
    postgres_port: int,
    database: str,
    report: Report,
    upstream: Callable[[OutsideServices], ProxyUpstream | None] = lambda _: None,
    kimi: FakeKimi | None = None,
) -> OutsideServices:
    """The platform image imported, the API server behind the `kubernetes` Service, the stores and the stand-in on
    the node's address, and the proxy Ready in `platform` (upstream: what `upstream` chooses, given the stand-in;
    None: the stand-in `kimi`, started here). The caller stops the returned services. Expects the platform's
    manifests installed."""
    report("importing the platform image (the token proxy's) into the real node")
    running.import_image(ensure_platform_image())
    node = running.node
    assert node.api_relay is not None, "the node relays the API server to pods"
    expose_api_server(running.cluster, node.api_relay)
    outside = start_outside_services(node.ip, redis_port, postgres_port, database, kimi)
    try:
        chosen = upstream(outside)
        described = chosen.description if chosen else STAND_IN
        report(f"deploying the token proxy from proxy/deploy/ (upstream: {described})")
        deploy_token_proxy(running.cluster, outside, chosen, report)
    except BaseException:
        outside.stop()
        raise
    return outside
