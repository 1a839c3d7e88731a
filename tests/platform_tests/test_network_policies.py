"""The NetworkPolicies read back from the real API server, run through a policy analyser (network-config-analyzer).

The cluster here has no policy enforcer (kwok plays kubelet), so what the policies allow is computed, from the
live objects: the platform's own policies (deploy/10-platform-network-policies.yaml), each customer's policy as
the operator rendered it, and pods with the labels and ports the shipped Deployments give theirs. A tenant may
reach cluster DNS, the token proxy's 8080 and HTTPS on public addresses, nothing else; `platform` takes exactly
the connections its policies list.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clawhost_localcluster.build import ensure_nca
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
SHIPPED_WORKLOADS = (
    REPO / "operator" / "deploy" / "30-deployment.yaml",
    REPO / "control_api" / "deploy" / "20-deployment.yaml",
    REPO / "proxy" / "deploy" / "deployment.yaml",
    REPO / "onboarding" / "deploy" / "20-deployment.yaml",
    REPO / "deploy" / "30-redis.yaml",
    REPO / "deploy" / "31-postgresql.yaml",
)
NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"

# Written out here, not imported from the operator: the analyser's answer is compared with an expectation of our own.
PRIVATE_V4: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "127.0.0.0/8")
]
NAT64 = int(ipaddress.IPv6Address("64:ff9b::"))
MAPPED = int(ipaddress.IPv6Address("::ffff:0:0"))
PRIVATE_V6: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
    ipaddress.ip_network(n)
    for n in ("fc00::/7", "fe80::/10", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "2001::/32", "2002::/16")
] + [
    ipaddress.IPv6Network((base + int(v4.network_address), 96 + v4.prefixlen))
    for v4 in PRIVATE_V4
    for base in (NAT64, MAPPED)
]
PUBLIC = [ipaddress.ip_address(a) for a in ("149.154.167.220", "2001:67c:4e8:f004::9", "64:ff9b::959a:a7dc")]

TCP = "{protocols:TCP,dst_ports:%d}"
DNS = "{protocols:TCP, UDP,dst_ports:53}"
# Every connection into `platform`, as (source, destination, connection): the design, and all of it.
PLATFORM_INGRESS = {
    ("gateway", "token-proxy", TCP % 8080),
    ("traefik", "clawhost-control-api", TCP % 8000),
    ("token-proxy", "redis", TCP % 6379),
    ("clawhost-control-api", "redis", TCP % 6379),
    ("clawhost-control-api", "clawhost-onboarding", TCP % 8095),
    ("clawhost-onboarding", "redis", TCP % 6379),
    ("token-proxy", "postgresql", TCP % 5432),
    ("clawhost-control-api", "postgresql", TCP % 5432),
    ("postgresql-backup", "postgresql", TCP % 5432),
    ("monitoring", "token-proxy", TCP % 9090),
    ("monitoring", "clawhost-control-api", TCP % 9090),
    ("monitoring", "clawhost-operator", TCP % 9090),
}


@dataclass(frozen=True)
class Connection:
    source: str  # "namespace/pod" or an address range "first-last"
    destination: str
    allowed: str  # "All connections" or "{protocols:...,dst_ports:...}"


def _pod(name: str, namespace: str, labels: dict[str, str], ports: list[int]) -> dict[str, Any]:
    """A pod the `restricted` Pod Security level admits, carrying the given labels and container ports."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": "stand-in",
                    "ports": [{"containerPort": port} for port in ports],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


def _pod_templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    kind, spec = document["kind"], document.get("spec", {})
    if kind in ("Deployment", "StatefulSet"):
        return [spec["template"]]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return []


def _shipped_platform_pods(suffix: str) -> list[dict[str, Any]]:
    """One pod per shipped workload (Deployments, the stores' StatefulSets, the backup CronJob), with its template's
    labels and container ports."""
    pods = []
    for path in SHIPPED_WORKLOADS:
        for document in yaml.safe_load_all(path.read_text()):
            for template in _pod_templates(document or {"kind": None}):
                ports = [p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])]
                name = f"{document['metadata']['name']}-{suffix}"
                pods.append(_pod(name, "platform", template["metadata"]["labels"], ports))
    return pods


@pytest.fixture
def landscape(platform_installed: Cluster) -> Iterator[str]:
    """Pods around the platform: its own (from the shipped workloads, the stores included), stand-ins for what the
    repository does not ship (cluster DNS, the ingress controller, a Prometheus) and an unrelated workload."""
    cluster = platform_installed
    suffix = uuid.uuid4().hex[:6]
    monitoring, elsewhere = "monitoring", f"elsewhere-{suffix}"
    for namespace in (monitoring, elsewhere):
        cluster.kubectl("create", "namespace", namespace, check=False)  # monitoring may be left from another run
    pods = [
        *_shipped_platform_pods(suffix),
        _pod(f"unlabelled-{suffix}", "platform", {"app": "something-else"}, [8080, 9090]),
        _pod(f"coredns-{suffix}", "kube-system", {"k8s-app": "kube-dns"}, [53]),
        _pod(f"traefik-{suffix}", "kube-system", {NAME: "traefik"}, [8000, 8443]),
        _pod(f"prometheus-{suffix}", monitoring, {NAME: "prometheus"}, [9090]),
        _pod(f"workload-{suffix}", elsewhere, {NAME: "workload"}, [8080]),
    ]
    for pod in pods:
        cluster.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    yield suffix
    for pod in pods:
        meta = pod["metadata"]
        cluster.kubectl("delete", "pod", meta["name"], "-n", meta["namespace"], "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", monitoring, elsewhere, "--wait=false", check=False)


def _live_objects(cluster: Cluster, directory: Path) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Namespaces, pods and NetworkPolicies as the API server has them, written for the analyser; returns the labels
    of each namespace and of each pod ("namespace/name")."""
    directory.mkdir()
    listings = {}
    for kind in ("namespaces", "pods", "networkpolicies"):
        listing = json.loads(cluster.kubectl("get", kind, "-A", "-o", "json").stdout)
        if kind == "pods":  # a pod on its way out is no endpoint any more
            listing["items"] = [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]
        (directory / f"{kind}.json").write_text(json.dumps(listing))
        listings[kind] = listing["items"]
    namespaces = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in listings["namespaces"]}
    pods = {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["metadata"].get("labels") or {}
        for p in listings["pods"]
    }
    return namespaces, pods


_LINE = re.compile(r"^(?P<source>\S+) => (?P<destination>\S+) : (?P<allowed>.+)$")


def _analyse(directory: Path) -> list[Connection]:
    command = [str(ensure_nca()), "--connectivity", "--resource_list", str(directory)]
    result = subprocess.run(
        [*command, "-o", "txt_no_fw_rules", "--output_endpoints", "pods"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    connections = []
    for line in result.stdout.splitlines():
        if match := _LINE.match(line.strip()):
            source, destination = (match[key].removesuffix("[Pod]") for key in ("source", "destination"))
            connections.append(Connection(source, destination, match["allowed"].strip()))
    assert connections, f"the analyser printed no connection:\n{result.stdout}\n{result.stderr}"
    return connections


@dataclass(frozen=True)
class Span:
    """An address range the analyser printed ("first-last")."""

    version: int
    first: int
    last: int

    @classmethod
    def parse(cls, endpoint: str) -> Span:
        first, _, last = endpoint.partition("-")
        low, high = ipaddress.ip_address(first), ipaddress.ip_address(last or first)
        return cls(low.version, int(low), int(high))

    def meets(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        return (
            network.version == self.version
            and self.first <= int(network.broadcast_address)
            and int(network.network_address) <= self.last
        )

    def holds(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address.version == self.version and self.first <= int(address) <= self.last


def test_tenants_reach_only_dns_the_proxy_and_public_https_and_platform_takes_only_what_it_lists(
    operator: OperatorProcess, customers: CustomerFactory, landscape: str, tmp_path: Path
) -> None:
    tenants = [customers.create(), customers.create()]
    for name in tenants:
        customers.wait_ready(name)
    namespaces, pods = _live_objects(customers.cluster, tmp_path / "live")
    connections = _analyse(tmp_path / "live")

    def role(endpoint: str) -> str:
        """What an endpoint is, in the design's words; anything else is "other"."""
        if endpoint not in pods:
            return "address"
        namespace = endpoint.split("/", 1)[0]
        labels, namespace_labels = pods[endpoint], namespaces.get(namespace, {})
        if namespace_labels.get(MANAGED_BY) == "clawhost-operator" and labels.get(NAME) == "openclaw-gateway":
            return "gateway"
        if namespace == "platform" and labels.get(NAME):
            return labels[NAME]
        if namespace == "kube-system" and labels.get(NAME) == "traefik":
            return "traefik"
        if namespace == "kube-system" and labels.get("k8s-app") == "kube-dns":
            return "dns"
        if namespace == "monitoring":
            return "monitoring"
        return "other"

    # Tenants: DNS, the proxy's serving port, HTTPS to public addresses. Nothing else, least of all each other.
    tenant_pods = {p for p in pods if role(p) == "gateway"}
    assert {p.split("/")[0] for p in tenant_pods} >= {f"customer-{name}" for name in tenants}
    reached_public: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for connection in connections:
        if connection.source not in tenant_pods:
            continue
        target = role(connection.destination)
        if target == "address":
            span = Span.parse(connection.destination)
            assert connection.allowed == TCP % 443, connection
            assert not any(span.meets(n) for n in PRIVATE_V4 + PRIVATE_V6), (
                f"a tenant reaches private addresses: {connection}"
            )
            reached_public |= {address for address in PUBLIC if span.holds(address)}
        elif target == "dns":
            assert connection.allowed == DNS, connection
        else:
            assert (target, connection.allowed) == ("token-proxy", TCP % 8080), connection
    assert reached_public == set(PUBLIC), "public HTTPS (Telegram, over IPv4, IPv6 and NAT64) stays reachable"
    for tenant in tenant_pods:
        reached = {(role(c.destination), c.allowed) for c in connections if c.source == tenant}
        assert {("dns", DNS), ("token-proxy", TCP % 8080)} <= reached, tenant

    # The platform namespace: exactly the listed connections, from pods only (no address range reaches it).
    into_platform = [c for c in connections if c.destination.startswith("platform/")]
    assert not [c for c in into_platform if role(c.source) == "address"], "platform is reachable from addresses"
    seen = {(role(c.source), role(c.destination), c.allowed) for c in into_platform}
    assert seen == PLATFORM_INGRESS, (
        f"allowed beyond the design: {sorted(seen - PLATFORM_INGRESS)}; designed but not allowed: "
        f"{sorted(PLATFORM_INGRESS - seen)}"
    )
