"""The onboarding service's manifests applied to the real cluster: admitted under the `restricted` Pod Security level,
Available, reachable only as the NetworkPolicies say, and its ServiceAccount without any Kubernetes rights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster

pytestmark = pytest.mark.cluster
DEPLOY = Path(__file__).resolve().parents[2] / "onboarding" / "deploy"
SA = "system:serviceaccount:platform:clawhost-onboarding"


def test_manifests_apply_the_deployment_becomes_available_and_the_service_account_may_do_nothing(
    platform_installed: Cluster,
) -> None:
    cluster = platform_installed
    secret = cluster.kubectl(
        "create",
        "secret",
        "generic",
        "clawhost-onboarding",
        "-n",
        "platform",
        "--from-literal=llm-api-key=sk-test",
        "--from-literal=internal-token=internal-test",
        "--from-literal=redis-url=redis://redis:6379/0",
        "--dry-run=client",
        "-o",
        "json",
    ).stdout
    cluster.kubectl("apply", "-f", "-", stdin=secret)
    cluster.kubectl("apply", "--server-side", "-f", str(DEPLOY))
    # Pods are only created if the `restricted` level of the platform namespace admits them.
    cluster.kubectl("rollout", "status", "deployment/clawhost-onboarding", "-n", "platform", "--timeout=90s")
    deployment = json.loads(
        cluster.kubectl("get", "deployment", "clawhost-onboarding", "-n", "platform", "-o", "json").stdout
    )
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["serviceAccountName"] == "clawhost-onboarding"
    container = pod_spec["containers"][0]
    assert container["args"] == ["clawhost_onboarding"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8095}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert not [e for e in container["env"] if "value" in e and "KEY" in e["name"] and "FILE" not in e["name"]]
    service = json.loads(cluster.kubectl("get", "service", "onboarding", "-n", "platform", "-o", "json").stdout)
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8095, "http")]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "clawhost-onboarding"}
    account = json.loads(
        cluster.kubectl("get", "serviceaccount", "clawhost-onboarding", "-n", "platform", "-o", "json").stdout
    )
    assert account["automountServiceAccountToken"] is False
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", "platform", "-l", "app.kubernetes.io/name=clawhost-onboarding", "-o", "json"
        ).stdout
    )["items"]
    assert pods
    for pod in pods:
        mounts = [m["mountPath"] for c in pod["spec"]["containers"] for m in c.get("volumeMounts", [])]
        assert "/var/run/secrets/kubernetes.io/serviceaccount" not in mounts
    # No Kubernetes rights at all: not even reading Customers or its own Secret.
    for verb, resource in (
        ("get", "customers.clawhost.dev"),
        ("create", "customers.clawhost.dev"),
        ("get", "secrets"),
        ("list", "pods"),
        ("get", "configmaps"),
    ):
        for namespace in ("platform", "clawhost-secrets"):
            answer = cluster.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", SA, check=False)
            assert answer.stdout.strip() == "no", (verb, resource, namespace)
