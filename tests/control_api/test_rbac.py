"""The control API's ServiceAccount may do exactly what the deploy manifests grant, nothing more."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster

pytestmark = pytest.mark.cluster


def _as_api(cluster: Cluster, kubeconfig: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = cluster.kubectl("--kubeconfig", str(kubeconfig), *args, stdin=stdin, check=False)
    return result.returncode, result.stderr


def test_service_account_can_only_do_its_job(customer_crd: Cluster, api_kubeconfig: Path) -> None:
    name = f"rbac{uuid.uuid4().hex[:8]}"
    customer = {
        "apiVersion": "clawhost.dev/v1alpha1",
        "kind": "Customer",
        "metadata": {"name": name},
        "spec": {"tier": "pro", "telegram": {"botTokenSecretRef": {"name": name}, "allowedUserIds": [1]}},
    }
    assert _as_api(customer_crd, api_kubeconfig, "create", "-f", "-", stdin=json.dumps(customer))[0] == 0
    assert _as_api(customer_crd, api_kubeconfig, "get", "customers")[0] == 0
    status_patch = '{"status":{"billing":{"state":"active"}}}'
    assert (
        _as_api(
            customer_crd,
            api_kubeconfig,
            "patch",
            "customer",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
        )[0]
        == 0
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "clawhost-secrets"}}
    assert _as_api(customer_crd, api_kubeconfig, "create", "-f", "-", stdin=json.dumps(secret))[0] == 0

    denied = [
        ("delete", "customer", name),
        ("get", "secrets", "-n", "kube-system"),
        ("get", "secrets", "-n", "clawhost-secrets"),  # get by name only, no listing
        ("create", "deployment", "x", "--image=busybox", "-n", "platform"),
        ("create", "namespace", f"customer-{name}"),
        ("delete", "secret", name, "-n", "clawhost-secrets"),
    ]
    for args in denied:
        code, stderr = _as_api(customer_crd, api_kubeconfig, *args)
        assert code != 0, args
        assert "forbidden" in stderr.lower(), (args, stderr)
