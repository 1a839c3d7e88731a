"""The platform on the local cluster: its manifests installed, the operator as a process with its ServiceAccount, and
Customers made and read for tests."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawhost_api.customer import LABEL_MANAGED_BY, namespace_for
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.processes import ManagedProcess, free_port
from clawhost_localcluster.waiting import eventually
from clawhost_operator.children import MANAGER

REPO = Path(__file__).resolve().parents[2]
BOT_NS = "clawhost-secrets"


def get_json(cluster: Cluster, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def gateway_secret(customers: CustomerFactory, name: str) -> dict[str, str]:
    """The decoded data of a customer's gateway Secret (what its pod reads)."""
    secret = get_json(customers.cluster, "secret", "gateway-inputs", "-n", namespace_for(name))
    assert secret is not None, f"no gateway Secret for {name}"
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def install_platform(cluster: Cluster) -> None:
    """The Customer CRD, the platform's namespaces and NetworkPolicies and the operator's deploy manifests but its
    Deployment's pod, ready for Customers: served, and the finalizer policy in force."""
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "customer.crd.yaml"))
    cluster.wait_established("customers.clawhost.dev")
    # As the README installs it: the platform-wide manifests (namespaces, their NetworkPolicies) first.
    cluster.kubectl("apply", "-f", str(REPO / "deploy"), "-f", str(REPO / "operator" / "deploy"))
    # Established is not yet usable: until the API server has built the Customer's schema for the finalizer
    # policy (a MutatingAdmissionPolicy), every create answers 503 "Resource kind ... not found", for seconds
    # on a loaded machine. Ready means a create comes back with the policy's finalizer.
    probe = json.dumps(
        {
            "apiVersion": "clawhost.dev/v1alpha1",
            "kind": "Customer",
            "metadata": {"name": "served-probe"},
            "spec": {"tier": "starter", "telegram": {"botTokenSecretRef": {"name": "x"}, "allowedUserIds": [1]}},
        }
    )

    def mutated_on_create() -> bool:
        attempt = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=probe, check=False)
        if attempt.returncode != 0:
            return False
        return "clawhost.dev/namespace-cleanup" in json.loads(attempt.stdout)["metadata"].get("finalizers", [])

    eventually(mutated_on_create, timeout=120, what="Customers to be served with the finalizer policy in force")


def service_account_kubeconfig(cluster: Cluster, directory: Path) -> Path:
    """A kubeconfig that authenticates with a real token of the operator's ServiceAccount."""
    return cluster.service_account_kubeconfig("platform", "clawhost-operator", directory / "operator.kubeconfig")


@dataclass
class OperatorProcess:
    kubeconfig: Path | None  # None: in-cluster, as `in_cluster_env` says
    workdir: Path
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    in_cluster_env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # more CLAWHOST_OPERATOR_* settings

    def start(self) -> None:
        env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
        env.update(
            self.in_cluster_env if self.kubeconfig is None else {"KUBECONFIG": str(self.kubeconfig)},
            CLAWHOST_OPERATOR_METRICS_PORT=str(self.metrics_port),
            CLAWHOST_OPERATOR_HEALTH_PORT=str(self.health_port),
            CLAWHOST_OPERATOR_RESYNC_SECONDS="5",
            CLAWHOST_OPERATOR_LOG_LEVEL="DEBUG",  # one line per reconcile: see reconciles_of
        )
        env.update(self.settings)
        self.process = ManagedProcess(
            "operator", [sys.executable, "-m", "clawhost_operator"], self.workdir / "operator.log", env=env
        )
        self.process.start()
        eventually(self.healthy, timeout=60, what="the operator's liveness endpoint")

    def healthy(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            raise AssertionError(f"operator exited:\n{self.process.log_tail()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as response:
            return bool(response.status == 200)

    def kill(self) -> None:
        assert self.process is not None
        assert self.process.popen is not None
        self.process.popen.kill()
        self.process.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def _metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[str, float]:
        """Sums of each metric family, e.g. {"clawhost_operator_api_writes_total": 12.0}."""
        sums: dict[str, float] = {}
        for line in self._metrics_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_part, value = line.rsplit(" ", 1)
            family = name_part.split("{", 1)[0]
            sums[family] = sums.get(family, 0.0) + float(value)
        return sums

    def reconciles(self, trigger: str) -> float:
        """Reconciles so far (ok or failed) that `trigger` queued: resync, first-status, customer, deployment, ..."""
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in self._metrics_text().splitlines()
            if line.startswith("clawhost_operator_reconciles_total{") and f'trigger="{trigger}"' in line
        )

    def reconciles_of(self, customer: str, trigger: str) -> int:
        """Reconciles of one customer that `trigger` queued, from the operator's per-reconcile DEBUG lines."""
        count = 0
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == "reconciled" and (record.get("customer"), record.get("trigger")) == (
                customer,
                trigger,
            ):
                count += 1
        return count

    def log(self) -> str:
        """Everything the operator has logged so far."""
        return self.process.log_path.read_text(errors="replace") if self.process else ""


@dataclass
class CustomerFactory:
    cluster: Cluster
    created: list[str] = field(default_factory=list)

    def bot_secret(self, name: str, token: str) -> None:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": BOT_NS},
            "type": "Opaque",
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(secret))

    @staticmethod
    def new_name() -> str:
        return f"c-{uuid.uuid4().hex[:10]}"

    def create(
        self,
        tier: str = "starter",
        billing: str = "none",
        ids: list[int] | None = None,
        name: str | None = None,
        **spec_extra: Any,
    ) -> str:
        name = name or self.new_name()
        self.bot_secret(f"{name}-bot", f"{uuid.uuid4().int % 10**9}:AA{uuid.uuid4().hex}")
        spec: dict[str, Any] = {
            "tier": tier,
            "telegram": {"botTokenSecretRef": {"name": f"{name}-bot"}, "allowedUserIds": ids or [424242]},
            "billing": {"mode": billing},
            **spec_extra,
        }
        body = {"apiVersion": "clawhost.dev/v1alpha1", "kind": "Customer", "metadata": {"name": name}, "spec": spec}
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))
        self.created.append(name)
        return name

    def get(self, name: str) -> Any:
        return get_json(self.cluster, "customer", name)

    def condition(self, name: str, kind: str = "Ready") -> dict[str, Any] | None:
        customer = self.get(name) or {}
        for condition in (customer.get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return None

    def wait_for(
        self, name: str, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            customer = self.get(name)
            return customer if customer is not None and predicate(customer) else None

        try:
            return eventually(probe, timeout=timeout, what=f"{name}: {what}")
        except AssertionError as error:
            status = (self.get(name) or {}).get("status")
            raise AssertionError(f"{error}; last status: {json.dumps(status)}") from None

    def wait_ready(self, name: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_for(name, lambda c: _ready(c) == "True", "Ready=True", timeout)

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.cluster.patch_customer_status(name, status)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The Events about Customer `name`."""
        selector = f"involvedObject.kind=Customer,involvedObject.name={name}"
        listing = get_json(self.cluster, "events", "-A", "--field-selector", selector)
        return list((listing or {}).get("items", []))

    def as_created(self) -> dict[str, Any]:
        """A new Customer as the API server would store it before anyone wrote its status (a dry-run create)."""
        body = {
            "apiVersion": "clawhost.dev/v1alpha1",
            "kind": "Customer",
            "metadata": {"name": self.new_name()},
            "spec": {"tier": "starter", "telegram": {"botTokenSecretRef": {"name": "x"}, "allowedUserIds": [1]}},
        }
        created = self.cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(body))
        return dict(json.loads(created.stdout))

    def block_pods(self, name: str) -> None:
        """Before `name` is created: its namespace, with a LimitRange its gateway cannot satisfy, so its pod is never
        created and the Customer stays Provisioning for good."""
        ns = namespace_for(name)
        # Labelled as the operator's own: it adopts no namespace it does not manage (its admission policy).
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {LABEL_MANAGED_BY: MANAGER}},
        }
        self.cluster.kubectl("create", "-f", "-", stdin=json.dumps(namespace))
        limit = {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "tiny", "namespace": ns},
            "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]},
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(limit))
        probe_pod = json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "probe", "namespace": ns},
                "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"memory": "4Gi"}}}]},
            }
        )

        def limit_enforced() -> bool:
            attempt = self.cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=probe_pod, check=False)
            return attempt.returncode != 0 and "maximum memory usage per Container is 1Gi" in attempt.stderr

        eventually(limit_enforced, timeout=30, what="admission to enforce the LimitRange")


def _ready(customer: dict[str, Any]) -> str | None:
    for condition in (customer.get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return str(condition["status"])
    return None
