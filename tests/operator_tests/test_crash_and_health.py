"""Crash-safety of the operator, and what Argo CD (our health Lua) and Flux (kstatus) say of real Customers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lupa
import pytest

from clawhost_api.customer import namespace_for
from clawhost_localcluster.build import ensure_kstatus
from clawhost_localcluster.platform import CustomerFactory, OperatorProcess, get_json
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster

HEALTH_LUA = (Path(__file__).resolve().parents[2] / "crds" / "argocd" / "customer-health.lua").read_text()


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(HEALTH_LUA)
    return str(result["status"]), str(result["message"])


@pytest.fixture(scope="session")
def kstatus() -> Callable[[dict[str, Any]], tuple[str, str]]:
    """What kstatus (sigs.k8s.io/cli-utils, the library behind Flux's health checks) says of an object."""
    binary = ensure_kstatus()

    def verdict(obj: dict[str, Any]) -> tuple[str, str]:
        result = subprocess.run([binary], input=json.dumps(obj), capture_output=True, text=True, check=True)
        answer = json.loads(result.stdout)
        return str(answer["status"]), str(answer["message"])

    return verdict


def _labelled(customers: CustomerFactory, kind: str, name: str) -> list[Any]:
    listing = get_json(customers.cluster, kind, "-A", "-l", f"clawhost.dev/customer={name}")
    return list(listing["items"]) if listing else []


def test_operator_killed_mid_provisioning_converges_without_duplicates(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create(tier="pro")
    eventually(
        lambda: get_json(customers.cluster, "namespace", namespace_for(name)),
        timeout=30,
        interval=0.05,
        what="provisioning to start",
    )
    operator.kill()
    operator.start()
    customer = customers.wait_ready(name, timeout=90)
    for kind in (
        "namespaces",
        "secrets",
        "resourcequotas",
        "networkpolicies",
        "serviceaccounts",
        "deployments",
        "replicasets",
        "pods",
    ):
        assert len(_labelled(customers, kind, name)) == 1, f"exactly one {kind} for {name}"
    orphans = [
        ns["metadata"]["name"]
        for ns in _labelled(customers, "namespaces", name)
        if ns["metadata"]["name"] != namespace_for(name)
    ]
    assert orphans == []
    secret = get_json(customers.cluster, "secret", "gateway-inputs", "-n", namespace_for(name))
    assert customer["status"]["applied"]["configHash"]
    assert secret["metadata"]["labels"]["clawhost.dev/customer"] == name


def test_argocd_and_kstatus_health_on_real_customers(
    operator: OperatorProcess, customers: CustomerFactory, kstatus: Callable[[dict[str, Any]], tuple[str, str]]
) -> None:
    fresh = customers.as_created()  # before the operator has written anything: in progress
    assert argocd_health(fresh)[0] == "Progressing"
    assert kstatus(fresh)[0] == "InProgress"

    healthy = customers.create()
    stalled = customers.create()
    # A LimitRange the gateway cannot satisfy keeps its pod from ever being created: Progressing for good.
    progressing = customers.new_name()
    customers.block_pods(progressing)
    customers.create(tier="team", name=progressing)
    customers.cluster.kubectl("delete", "secret", f"{stalled}-bot", "-n", "clawhost-secrets")

    ready = customers.wait_ready(healthy)
    assert argocd_health(ready)[0] == "Healthy"
    assert kstatus(ready)[0] == "Current"
    degraded = customers.wait_for(stalled, lambda c: (c.get("status") or {}).get("phase") == "Failed", "Stalled")
    status, message = argocd_health(degraded)
    assert status == "Degraded"
    assert "BotTokenMissing" in message
    status, message = kstatus(degraded)
    assert status == "Failed"
    assert "Secret clawhost-secrets/" in message, message
    in_flight = customers.wait_for(
        progressing, lambda c: (c.get("status") or {}).get("phase") == "Provisioning", "Provisioning"
    )
    assert argocd_health(in_flight)[0] == "Progressing"
    assert kstatus(in_flight)[0] == "InProgress"
    pods = get_json(customers.cluster, "pods", "-n", namespace_for(progressing))["items"]
    assert pods == [], "the LimitRange really blocks the pod"

    customers.cluster.kubectl("patch", "customer", healthy, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    suspended = customers.wait_for(
        healthy,
        lambda c: (
            c["status"]["phase"] == "Suspended" and c["status"]["observedGeneration"] == c["metadata"]["generation"]
        ),
        "Suspended",
    )
    assert argocd_health(suspended)[0] in ("Suspended", "Progressing")


def test_periodic_pass_reconciles_every_customer_and_writes_nothing_when_in_sync(
    operator: OperatorProcess, customers: CustomerFactory
) -> None:
    name = customers.create()
    ready = customers.wait_ready(name, timeout=90)
    version = ready["metadata"]["resourceVersion"]
    before = operator.reconciles_of(name, "resync")
    # The fixture's pass runs every 5 s; each live Customer is visited once per pass. Counted for this customer:
    # the other tests' Customers are resynced too.
    eventually(
        lambda: operator.reconciles_of(name, "resync") > before,
        timeout=30,
        what="a periodic pass to reach the customer",
    )
    after = get_json(customers.cluster, "customer", name)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == version, "an in-sync Customer must not be written by the pass"
