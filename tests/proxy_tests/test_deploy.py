"""The proxy's manifests applied to the real cluster: admitted under the `restricted` Pod Security level, Available."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster

pytestmark = pytest.mark.cluster
DEPLOY = Path(__file__).resolve().parents[2] / "proxy" / "deploy"


def test_manifests_apply_and_the_deployment_becomes_available(platform_installed: Cluster) -> None:
    cluster = platform_installed
    for name, data in (
        ("token-proxy-upstream", ["--from-literal=api-key=sk-test"]),
        ("token-proxy-stores", ["--from-literal=redis-url=redis://r:6379/0", "--from-literal=postgres-dsn=pg"]),
    ):
        manifest = cluster.kubectl(
            "create", "secret", "generic", name, "-n", "platform", *data, "--dry-run=client", "-o", "json"
        ).stdout
        cluster.kubectl("apply", "-f", "-", stdin=manifest)
    cluster.kubectl("apply", "--server-side", "-f", str(DEPLOY))
    # Pods are only created if the `restricted` level of the platform namespace admits them.
    cluster.kubectl("rollout", "status", "deployment/token-proxy", "-n", "platform", "--timeout=90s")
    deployment = json.loads(cluster.kubectl("get", "deployment", "token-proxy", "-n", "platform", "-o", "json").stdout)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080, "admin": 9090}
    # Probes and metrics on the admin port, which tenants' NetworkPolicies do not allow.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin", "scheme": "HTTP"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("9090", "/metrics")
    service = json.loads(cluster.kubectl("get", "service", "token-proxy", "-n", "platform", "-o", "json").stdout)
    assert [port["port"] for port in service["spec"]["ports"]] == [8080], "the Service exposes the tenant port only"
    # The ServiceAccount may read Customers and nothing else.
    sa = "system:serviceaccount:platform:token-proxy"
    assert cluster.kubectl("auth", "can-i", "watch", "customers.clawhost.dev", "--as", sa).stdout.strip() == "yes"
    for verb, resource in (("get", "secrets"), ("patch", "customers.clawhost.dev"), ("list", "pods")):
        assert cluster.kubectl("auth", "can-i", verb, resource, "--as", sa, check=False).stdout.strip() == "no"
