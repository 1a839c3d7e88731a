"""The local control plane is a real one: scheduling, namespace deletion, quotas, RBAC and CEL validation."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import kubernetes
import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster

RESTRICTED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.invalid/app:1",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def _get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_deployment_pod_is_scheduled_on_a_kwok_node_and_becomes_ready(cluster: Cluster, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [RESTRICTED_CONTAINER]}},
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = _get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
        ready = [
            pod
            for pod in pods
            if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        ]
        return ready if len(ready) == 2 else None

    pods = eventually(ready_pods, timeout=60, what="2 Ready pods of the Deployment")
    nodes = {node["metadata"]["name"]: node for node in _get_json(cluster, "nodes")["items"]}
    for pod in pods:
        assert pod["spec"]["nodeName"] in nodes, "the scheduler bound the pod to a real Node object"
        assert nodes[pod["spec"]["nodeName"]]["metadata"]["annotations"].get("kwok.x-k8s.io/node") == "fake"
        assert pod["status"]["phase"] == "Running"
        assert pod["status"].get("podIP"), "kwok assigned a pod IP"

    def deployment_ready() -> dict[str, Any] | None:
        status: dict[str, Any] = _get_json(cluster, "deployment", "web", "-n", namespace)["status"]
        return status if status.get("readyReplicas") == 2 else None

    status = eventually(deployment_ready, timeout=30, what="the Deployment to report 2 ready replicas")
    assert status["availableReplicas"] == 2


def test_deleting_a_namespace_completes(cluster: Cluster) -> None:
    name = f"t-del-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("create", "configmap", "payload", "-n", name, "--from-literal=k=v")
    cluster.kubectl("create", "serviceaccount", "worker", "-n", name)
    cluster.kubectl("delete", "namespace", name, "--wait=false")

    def gone() -> bool:
        result = cluster.kubectl("get", "namespace", name, check=False)
        return result.returncode != 0 and "NotFound" in result.stderr

    eventually(gone, timeout=60, what=f"namespace {name} to be deleted by the namespace controller")


def test_resource_quota_reports_usage_and_rejects_a_pod_over_it(cluster: Cluster, namespace: str) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "small", "namespace": namespace},
        "spec": {"hard": {"pods": "1", "requests.cpu": "150m", "limits.memory": "256Mi"}},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(quota))
    eventually(
        lambda: _get_json(cluster, "resourcequota", "small", "-n", namespace)["status"].get("hard"),
        timeout=30,
        what="the quota controller to publish status.hard",
    )

    def pod(name: str) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"containers": [RESTRICTED_CONTAINER]},
            }
        )

    cluster.kubectl("apply", "-f", "-", stdin=pod("first"))
    used = eventually(
        lambda: (
            (u := _get_json(cluster, "resourcequota", "small", "-n", namespace)["status"].get("used", {})).get("pods")
            == "1"
            and u
        ),
        timeout=30,
        what="quota usage to count the first pod",
    )
    assert used["requests.cpu"] == "100m"
    assert used["limits.memory"] == "128Mi"

    rejected = cluster.kubectl("apply", "-f", "-", stdin=pod("second"), check=False)
    assert rejected.returncode != 0
    assert "exceeded quota: small" in rejected.stderr
    assert cluster.kubectl("get", "pod", "second", "-n", namespace, check=False).returncode != 0


def test_pod_security_restricted_is_enforced(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(privileged), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr
    assert "allowPrivilegeEscalation != false" in result.stderr
    assert "runAsNonRoot != true" in result.stderr


def test_rbac_denies_a_service_account_without_rights(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"system:serviceaccount:{namespace}:nobody"
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    api.set_default_header("Impersonate-User", who)
    body = kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="x"), data={"a": "b"})
    with pytest.raises(kubernetes.client.ApiException) as denied:
        kubernetes.client.CoreV1Api(api).create_namespaced_config_map(namespace, body)
    assert denied.value.status == 403
    status = json.loads(denied.value.body or "{}")
    assert status["reason"] == "Forbidden"
    assert f'User "{who}" cannot create resource "configmaps"' in status["message"]

    # The same identity succeeds once a Role grants exactly that verb: the denial came from RBAC.
    cluster.kubectl("create", "role", "cm-writer", "-n", namespace, "--verb=create", "--resource=configmaps")
    cluster.kubectl(
        "create",
        "rolebinding",
        "cm-writer",
        "-n",
        namespace,
        "--role=cm-writer",
        f"--serviceaccount={namespace}:nobody",
    )

    def create_as_service_account() -> bool:
        args = ("create", "configmap", "x", "-n", namespace, "--from-literal=a=b", f"--as={who}")
        return cluster.kubectl(*args, check=False).returncode == 0

    eventually(create_as_service_account, timeout=15, what="the RoleBinding to take effect")
    still_denied = cluster.kubectl("delete", "configmap", "x", "-n", namespace, f"--as={who}", check=False)
    assert still_denied.returncode != 0
    assert "Forbidden" in still_denied.stderr


def test_crd_validation_rule_rejects_a_bad_object_with_its_message(cluster: Cluster) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                                    "x-kubernetes-validations": [
                                        {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
    try:
        cluster.wait_established(f"widgets.{group}", timeout=30)

        def widget(name: str, low: int, high: int) -> str:
            return json.dumps(
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"min": low, "max": high},
                }
            )

        def rejected_by_the_rule() -> subprocess.CompletedProcess[str] | None:
            result = cluster.kubectl("apply", "-f", "-", stdin=widget("bad", 5, 1), check=False)
            served = "NotFound" not in result.stderr and "no matches" not in result.stderr
            return result if result.returncode != 0 and served else None

        bad = eventually(rejected_by_the_rule, timeout=30, what="the new CRD to be served and reject the bad object")
        assert "min must not exceed max" in bad.stderr
        assert "Invalid value" in bad.stderr
        cluster.kubectl("apply", "-f", "-", stdin=widget("good", 1, 5))
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)
