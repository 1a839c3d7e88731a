"""GitOps: what Flux's health check (kstatus, the real library, built by the harness) says of Customers as the
operator moves them, and the Flux and Argo CD setups in gitops/ keep the promises their comments make."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from clawhost_localcluster.build import ensure_kstatus
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.nix_eval import REPO
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess
from clawhost_localcluster.waiting import eventually

GITOPS = REPO / "gitops"
Verdict = Callable[[dict[str, Any]], str]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_flux_prunes_customers_but_never_all_of_them() -> None:
    kustomization = next(d for d in _documents(GITOPS / "flux" / "customers.yaml") if d["kind"] == "Kustomization")
    spec = kustomization["spec"]
    assert spec["prune"] is True
    assert spec["deletionPolicy"] == "Orphan", "deleting the Kustomization must not delete every Customer"
    assert spec["wait"] is True, "health-check every Customer (kstatus)"


def test_argocd_prunes_customers_but_never_all_of_them() -> None:
    documents = _documents(GITOPS / "argocd" / "customers.yaml")
    application = next(d for d in documents if d["kind"] == "Application")
    automated = application["spec"]["syncPolicy"]["automated"]
    assert automated["prune"] is True
    assert automated["allowEmpty"] is False
    assert "resources-finalizer.argocd.argoproj.io" not in application["metadata"].get("finalizers", [])
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    lua = config["data"]["resource.customizations.health.clawhost.dev_Customer"]
    assert lua == (REPO / "crds" / "argocd" / "customer-health.lua").read_text(), "the health check shipped is ours"


def test_the_crd_is_protected_from_pruning_and_not_in_the_customers_repository() -> None:
    crd = _documents(REPO / "crds" / "customer.crd.yaml")[0]
    annotations = crd["metadata"]["annotations"]
    assert annotations["kustomize.toolkit.fluxcd.io/prune"] == "disabled"
    assert "Prune=false" in annotations["argocd.argoproj.io/sync-options"]
    kinds = {d["kind"] for path in (GITOPS / "customers").glob("*.yaml") for d in _documents(path)}
    assert kinds == {"Customer"}


@pytest.fixture(scope="module")
def kstatus() -> Verdict:
    binary = ensure_kstatus()

    def verdict(obj: dict[str, Any]) -> str:
        result = subprocess.run([binary], input=json.dumps(obj), capture_output=True, text=True, check=True)
        return str(json.loads(result.stdout)["status"])

    return verdict


def _ready(customer: dict[str, Any]) -> bool:
    conditions = (customer.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _watch_until_ready(customers: CustomerFactory, name: str, kstatus: Verdict) -> list[tuple[bool, str]]:
    """Every (Ready, kstatus verdict) read until Ready, as Flux's health check would poll it."""
    seen: list[tuple[bool, str]] = []

    def ready() -> bool:
        customer = customers.get(name)
        if customer is None:
            return False
        seen.append((_ready(customer), kstatus(customer)))
        return seen[-1][0]

    eventually(ready, timeout=90, interval=0.05, what=f"{name} to be Ready")
    return seen


@pytest.mark.cluster
def test_a_customer_from_git_reads_in_progress_until_ready(
    operator: OperatorProcess, customers: CustomerFactory, kstatus: Verdict, platform_installed: Cluster
) -> None:
    # Applied as Flux applies it: server-side, as the kustomize-controller.
    name = customers.new_name()
    customers.bot_secret(f"{name}-telegram", "123456:AAexample")
    body = _documents(GITOPS / "customers" / "alice.yaml")[0]
    body["metadata"]["name"] = name
    body["spec"]["telegram"]["botTokenSecretRef"]["name"] = f"{name}-telegram"
    platform_installed.kubectl(
        "apply", "--server-side", "--field-manager=kustomize-controller", "-f", "-", stdin=json.dumps(body)
    )
    customers.created.append(name)
    seen = _watch_until_ready(customers, name, kstatus)
    assert [verdict for ready, verdict in seen if not ready] == ["InProgress"] * (len(seen) - 1)
    assert seen[-1] == (True, "Current")

    # A change to the spec: in progress again until the operator has acted on the new generation.
    platform_installed.kubectl("patch", "customer", name, "--type=merge", "-p", '{"spec": {"tier": "team"}}')
    changed = customers.get(name)
    if changed["status"]["observedGeneration"] < changed["metadata"]["generation"]:
        assert kstatus(changed) == "InProgress"
    customers.wait_for(
        name,
        lambda c: c["status"].get("observedGeneration") == c["metadata"]["generation"] and _ready(c),
        "the new generation Ready",
    )
    assert kstatus(customers.get(name)) == "Current"


@pytest.mark.cluster
def test_a_customer_whose_pod_never_starts_never_reads_current(
    operator: OperatorProcess, customers: CustomerFactory, kstatus: Verdict
) -> None:
    name = customers.new_name()
    customers.block_pods(name)
    customers.create(name=name)
    provisioning = customers.wait_for(
        name, lambda c: (c.get("status") or {}).get("phase") == "Provisioning", "Provisioning"
    )
    assert kstatus(provisioning) == "InProgress", "Flux keeps waiting (and times out) instead of passing it"
