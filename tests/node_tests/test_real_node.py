"""The real node: kubelet, containerd, CNI, kube-proxy, CoreDNS and kube-router doing their jobs, proven from inside
pods (a connection accepted or refused, a name resolved), not by reading objects back."""

from __future__ import annotations

import json

import pytest

from clawhost_localcluster.node import CLUSTER_DNS_IP, NODE_NAME, POD_CIDR
from clawhost_localcluster.node_environment import RealNodeCluster
from clawhost_localcluster.versions import KUBERNETES_VERSION
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.node


def _service(namespace: str, name: str, port: int, target: int) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]},
        }
    )


def test_the_node_is_real_and_ready(real_node_cluster: RealNodeCluster) -> None:
    node = json.loads(real_node_cluster.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == KUBERNETES_VERSION
    assert info["containerRuntimeVersion"].startswith("containerd://1.")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == real_node_cluster.node.ip
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})  # nobody fakes this one


def test_a_pod_runs_from_a_locally_imported_image(real_node_cluster: RealNodeCluster) -> None:
    namespace = real_node_cluster.fresh_namespace()
    pod = real_node_cluster.nettest_pod(namespace, "web", ["serve", "8080"])
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith(POD_CIDR.split(".0.0/")[0] + ".")
    # The process really runs in the container: it answers, as its non-root user, through the pod's own loopback.
    reply = real_node_cluster.exec(namespace, "web", "/nettest", "connect", "127.0.0.1:8080")
    assert reply.stdout.strip() == "connected: hello from web", reply.stderr
    (status,) = pod["status"]["containerStatuses"]
    assert status["imageID"].startswith("sha256:") or "sha256:" in status["imageID"]


def test_pod_dns_resolves_service_names(real_node_cluster: RealNodeCluster) -> None:
    namespace = real_node_cluster.fresh_namespace()
    real_node_cluster.nettest_pod(namespace, "client")
    real_node_cluster.kubectl("apply", "-f", "-", stdin=_service(namespace, "named", 80, 8080))
    ip = json.loads(real_node_cluster.kubectl("get", "svc", "named", "-n", namespace, "-o", "json").stdout)["spec"][
        "clusterIP"
    ]
    resolved = real_node_cluster.exec(
        namespace, "client", "/nettest", "resolve", "kube-dns.kube-system.svc.cluster.local"
    )
    assert resolved.stdout.split() == [CLUSTER_DNS_IP], resolved.stderr

    def short_name() -> list[str]:  # the search path of the pod's resolv.conf, from the kubelet's clusterDNS
        return list(real_node_cluster.exec(namespace, "client", "/nettest", "resolve", "named").stdout.split())

    assert eventually(short_name, timeout=30, what="the new Service's name to resolve") == [ip]
    missing = real_node_cluster.exec(namespace, "client", "/nettest", "resolve", "absent.nowhere.svc.cluster.local")
    assert missing.returncode != 0


def test_a_cluster_ip_service_reaches_another_pod_through_kube_proxy(real_node_cluster: RealNodeCluster) -> None:
    namespace = real_node_cluster.fresh_namespace()
    real_node_cluster.nettest_pod(namespace, "backend", ["serve", "9090"])
    real_node_cluster.nettest_pod(namespace, "client")
    real_node_cluster.kubectl("apply", "-f", "-", stdin=_service(namespace, "backend", 80, 9090))

    def through_service() -> str | None:
        reply = str(real_node_cluster.exec(namespace, "client", "/nettest", "connect", "backend:80").stdout)
        return reply if "hello" in reply else None

    assert eventually(through_service, timeout=60, what="the Service to answer") == "connected: hello from backend\n"
    # Port 80 exists only as the Service's: nothing in the backend pod listens on it.
    backend_ip = json.loads(real_node_cluster.kubectl("get", "pod", "backend", "-n", namespace, "-o", "json").stdout)[
        "status"
    ]["podIP"]
    assert not real_node_cluster.connects(namespace, "client", f"{backend_ip}:80")


def test_network_policy_default_deny_refuses_connections(real_node_cluster: RealNodeCluster) -> None:
    namespace = real_node_cluster.fresh_namespace()
    server = real_node_cluster.nettest_pod(namespace, "server", ["serve", "8080"])
    real_node_cluster.nettest_pod(namespace, "client")
    address = f"{server['status']['podIP']}:8080"
    assert real_node_cluster.connects(namespace, "client", address)

    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": namespace},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    real_node_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deny))
    eventually(
        lambda: not real_node_cluster.connects(namespace, "client", address),
        timeout=60,
        what="kube-router to refuse the connection",
    )
    # A pod created after the policy is covered from its first connection attempt.
    late = real_node_cluster.nettest_pod(namespace, "late", ["serve", "8080"])
    assert not real_node_cluster.connects(namespace, "client", f"{late['status']['podIP']}:8080")

    real_node_cluster.kubectl("delete", "networkpolicy", "default-deny", "-n", namespace)
    eventually(
        lambda: real_node_cluster.connects(namespace, "client", address),
        timeout=60,
        what="the connection to be accepted again without the policy",
    )
