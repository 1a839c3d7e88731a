"""Start a real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler and kwok."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from clawhost_localcluster.build import Binaries
from clawhost_localcluster.pki import Pki, create_pki
from clawhost_localcluster.processes import ManagedProcess, StartupError, free_port, wait_until

FAKE_NODE_COUNT = 4
# Each fake node holds 500 pods of the largest tier; together they exceed 1,000 customers' worth.
FAKE_NODE_CAPACITY = {"cpu": "2000", "memory": "4Ti", "pods": "1000", "ephemeral-storage": "10Ti"}
SERVICE_CIDR = "10.0.0.0/16"
KWOK_NODE_SELECTOR = "type=kwok"

_ADMISSION_PLUGINS = (
    "NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota,DefaultStorageClass,"
    "DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,"
    "MutatingAdmissionPolicy,"
    "Priority,TaintNodesByCondition,PersistentVolumeClaimResize,RuntimeClass,CertificateApproval,"
    "CertificateSigning,CertificateSubjectRestriction,DefaultIngressClass,StorageObjectInUseProtection,"
    "NodeRestriction"
)

# CLAWHOST_APISERVER_PROFILING=1 (for profiling benchmarks; off otherwise): the API server serves /debug/pprof
# and the controller-manager serves /metrics and /debug/pprof without credentials.
_PROFILING = os.environ.get("CLAWHOST_APISERVER_PROFILING") == "1"
_PROFILING_FLAGS = (
    ["--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics,/debug/pprof/*"] if _PROFILING else []
)


def _log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """A self-contained kubeconfig (certs embedded) for the admin user."""

    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "clawhost-local", "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "clawhost-local", "context": {"cluster": "clawhost-local", "user": "admin"}}],
        "current-context": "clawhost-local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _fake_node(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
        "status": {
            "allocatable": FAKE_NODE_CAPACITY,
            "capacity": FAKE_NODE_CAPACITY,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kernelVersion": "fake",
                "osImage": "kwok",
                "containerRuntimeVersion": "kwok",
                "kubeProxyVersion": "fake",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


@dataclass
class ControlPlane:
    """The running control plane; `kubeconfig` is the admin kubeconfig tests, operator and kubectl share."""

    binaries: Binaries
    workdir: Path
    fake_nodes: int = FAKE_NODE_COUNT  # kwok's nodes; 0 starts no kwok (a cluster whose only node is real)
    processes: list[ManagedProcess] = field(default_factory=list)
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    pki: Pki = field(init=False)

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        process.start()
        self.processes.append(process)
        return process

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.server + path, context=self._ssl_context(), timeout=5) as response:  # noqa: S310
            return bytes(response.read())

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster."""
        result = subprocess.run(
            [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise StartupError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _start_kwok(self) -> None:
        kwok = self._spawn(
            "kwok",
            [
                str(self.binaries.kwok),
                f"--kubeconfig={self.kubeconfig}",
                # Only its own fake nodes: a real node in the same cluster is the kubelet's.
                f"--manage-nodes-with-label-selector={KWOK_NODE_SELECTOR}",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.255.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        nodes = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [_fake_node(f"kwok-node-{index}") for index in range(self.fake_nodes)],
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(nodes))

        def nodes_ready() -> bool:
            listing = json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)
            ready = [
                node
                for node in listing["items"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
            ]
            return len(ready) >= self.fake_nodes

        wait_until("kwok nodes to be Ready", nodes_ready, 60, kwok, interval=0.3)

    def start(self) -> None:
        started = time.monotonic()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.pki = create_pki(self.workdir / "pki")
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        write_kubeconfig(self.kubeconfig, self.server, self.pki)

        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name",
                "default",
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 * 1024**3),
                "--log-level",
                "warn",
            ],
        )

        def etcd_healthy() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=2) as response:
                return bool(json.loads(response.read()).get("health") == "true")

        wait_until("etcd /health", etcd_healthy, 30, etcd)
        _log(f"etcd up ({time.monotonic() - started:.1f}s)")

        pki = self.pki
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=Node,RBAC",
                f"--enable-admission-plugins={_ADMISSION_PLUGINS}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                f"--profiling={str(_PROFILING).lower()}",
                # The operator's policy that gives every new Customer its finalizer (beta in 1.34-1.35, GA in 1.36).
                "--feature-gates=MutatingAdmissionPolicy=true",
                "--runtime-config=admissionregistration.k8s.io/v1beta1=true",
                # For a real node's logs, exec and port-forward (kwok nodes never get these calls).
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={pki.admin_cert}",
                f"--kubelet-client-key={pki.admin_key}",
                "--v=0",
            ],
        )

        def apiserver_ready() -> bool:
            return self._get("/readyz") == b"ok"

        wait_until("kube-apiserver /readyz", apiserver_ready, 60, apiserver)
        _log(f"kube-apiserver up at {self.server} ({time.monotonic() - started:.1f}s)")

        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--kube-api-qps=500",
            "--kube-api-burst=1000",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                *common,
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.service_account_key}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--concurrent-deployment-syncs=50",
                "--concurrent-replicaset-syncs=50",
                "--concurrent-namespace-syncs=50",
                "--concurrent-gc-syncs=50",
                "--concurrent-resource-quota-syncs=50",
                "--concurrent-serviceaccount-token-syncs=20",
                "--resource-quota-sync-period=10s",
                *_PROFILING_FLAGS,
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.binaries.kube_scheduler),
                *common,
                f"--secure-port={free_port()}",
                f"--cert-dir={self.workdir / 'sched-certs'}",
            ],
        )
        if self.fake_nodes:
            self._start_kwok()

        def default_service_account() -> bool:
            return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

        wait_until(
            "the default ServiceAccount (controller-manager running)", default_service_account, 60, self.processes[2]
        )
        _log(f"control plane ready: {self.fake_nodes} kwok nodes Ready ({time.monotonic() - started:.1f}s)")

    def check_alive(self) -> None:
        """Raise with the log of any component that has died."""
        for process in self.processes:
            if not process.running:
                raise StartupError(f"{process.name} is not running:\n{process.log_tail()}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
