"""A real node in the local cluster: containerd + runc, CNI (bridge, host-local, loopback, portmap), the kubelet,
kube-proxy (iptables mode), kube-router as the NetworkPolicy enforcer and CoreDNS as the cluster's DNS.

Everything lives in one work directory except what Linux keeps machine-wide (see node_cleanup); the machine-wide
lock lets one real node run at a time, and whatever a killed harness left is cleaned before the next node starts.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clawhost_localcluster.build import NodeBinaries, ensure_node_binaries
from clawhost_localcluster.containerd import ContainerdLayout, start_containerd
from clawhost_localcluster.controlplane import ControlPlane
from clawhost_localcluster.node_cleanup import BRIDGE, HostRecord, clean_host, write_sysctl
from clawhost_localcluster.node_network import (
    DnsManifests,
    coredns_image,
    kube_proxy_config,
    kube_router_argv,
    pod_kubeconfig,
    start_api_relay,
)
from clawhost_localcluster.oci import ImageArchive, import_image
from clawhost_localcluster.pause_image import pause_image
from clawhost_localcluster.pki import issue_client_cert
from clawhost_localcluster.processes import ManagedProcess, StartupError, free_port, wait_until
from clawhost_localcluster.relay import TcpRelay

NODE_NAME = "clawhost-node"
POD_CIDR = "10.88.0.0/16"
CLUSTER_DNS_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_LABELS = {"clawhost.dev/node": "real"}
LOCK_PATH = Path("/run/lock/clawhost-real-node.lock")
LOCK_WAIT_ENV = "CLAWHOST_REAL_NODE_LOCK_WAIT"  # seconds a second harness waits for the node (default 1800)


def _log(message: str) -> None:
    print(f"[real-node] {message}", file=sys.stderr, flush=True)


def node_ip() -> str:
    """The machine's address on its default route: what the kubelet reports as the node's InternalIP."""
    routes = json.loads(
        subprocess.run(["ip", "-j", "route", "get", "1.1.1.1"], capture_output=True, text=True, check=True).stdout
    )
    return str(routes[0]["prefsrc"])


class NodeLockTimeoutError(StartupError):
    """Another harness holds the real node for longer than this one would wait."""


def acquire_node_lock(workdir: Path, wait: float | None = None) -> IO[str]:
    """Hold the machine-wide real-node lock (released by the kernel when this process ends, even on SIGKILL)."""
    timeout = float(os.environ.get(LOCK_WAIT_ENV, "1800")) if wait is None else wait
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    handle = LOCK_PATH.open("a+")
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if time.monotonic() >= deadline:
                handle.close()
                raise NodeLockTimeoutError(
                    f"the real node is in use by {holder} (lock {LOCK_PATH}); waited {timeout:.0f}s. "
                    f"Stop that harness (make down) or raise {LOCK_WAIT_ENV}"
                ) from None
            if not announced:
                _log(f"waiting for the real node: in use by {holder} (up to {timeout:.0f}s, {LOCK_WAIT_ENV})")
                announced = True
            time.sleep(1)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} (work dir {workdir})\n")
    handle.flush()
    return handle


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a loopback health endpoint
        return bool(response.status == 200)


def clean_after_killed_node() -> bool:
    """If no harness holds the real node but one left host state (it was killed), remove that state now."""
    if HostRecord.load() is None:
        return False
    try:
        lock = acquire_node_lock(Path("(cleanup)"), wait=0)
    except NodeLockTimeoutError:
        return False  # a running harness owns that state
    try:
        record = HostRecord.load()
        if record is None:
            return False
        clean_host(record)
        HostRecord.forget()
        return True
    finally:
        lock.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class RealNode:
    """The real node of `control_plane`, started by `start()` and removed (with its host state) by `stop()`."""

    control_plane: ControlPlane
    workdir: Path
    binaries: NodeBinaries | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    name: str = NODE_NAME
    ip: str = field(default_factory=node_ip)
    containerd: ContainerdLayout = field(init=False)
    kubelet_port: int = field(init=False, default=0)
    api_relay: TcpRelay | None = field(default=None, init=False)
    _lock: IO[str] | None = field(default=None, init=False)
    _record: HostRecord | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.containerd = ContainerdLayout(self.workdir / "containerd")

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, self.workdir / "logs" / f"{name}.log")
        process.start()
        self.processes.append(process)
        return process

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, stdin=stdin, check=check)

    def import_image(self, archive: ImageArchive) -> None:
        """Make a locally written image available to pods on this node under its exact name."""
        import_image(archive, ctr="ctr", address=self.containerd.socket)

    # ---- host preparation -------------------------------------------------------------------------------------
    def _prepare_host(self) -> None:
        self._lock = acquire_node_lock(self.workdir)
        leftover = HostRecord.load()
        if leftover is not None:
            _log(f"cleaning up what an earlier real node left (work dir {leftover.workdir})")
            clean_host(leftover)
            HostRecord.forget()
        self._record = HostRecord.take(self.workdir, self.containerd.socket)
        self._record.save()
        write_sysctl("net.ipv4.ip_forward", "1")
        write_sysctl("net.bridge.bridge-nf-call-iptables", "1")

    def _write_cni_config(self) -> None:
        conflist = {
            "cniVersion": "1.0.0",
            "name": "clawhost",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (self.containerd.cni_conf_dir / "10-clawhost.conflist").write_text(json.dumps(conflist, indent=2))

    # ---- kubelet ----------------------------------------------------------------------------------------------
    def _kubelet_config(self, path: Path) -> None:
        pki = self.control_plane.pki
        self.kubelet_port = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This VM has cgroup v1 (hybrid) and no systemd as init; kubelet 1.35 refuses v1 unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "address": self.ip,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDNS": [CLUSTER_DNS_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "containerRuntimeEndpoint": f"unix://{self.containerd.socket}",
            "podLogsDir": str(self.workdir / "pod-logs"),
            "volumePluginDir": str(self.workdir / "kubelet" / "volume-plugins"),
            "resolvConf": "/etc/resolv.conf",
            # Locally imported images cannot be pulled again: never garbage-collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
                "nodefs.inodesFree": "2%",
            },
            "serializeImagePulls": False,
            "maxPods": 110,
            "rotateCertificates": False,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "shutdownGracePeriod": "0s",
            "registerWithTaints": [],
        }
        path.write_text(json.dumps(config, indent=2))

    def _start_kubelet(self) -> ManagedProcess:
        plane = self.control_plane
        certs = self.workdir / "kubelet-pki"
        cert, key = issue_client_cert(plane.pki, certs, "node", f"system:node:{self.name}", "system:nodes")
        kubeconfig = _kubeconfig(
            self.workdir / "kubelet.kubeconfig", plane.server, plane.pki.ca_cert, cert, key, "node"
        )
        config = self.workdir / "kubelet-config.json"
        self._kubelet_config(config)
        (self.workdir / "pod-logs").mkdir(exist_ok=True)
        labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
        assert self.binaries is not None
        return self._spawn(
            "kubelet",
            [
                str(self.binaries.kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.workdir / 'kubelet'}",
                f"--cert-dir={certs}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.ip}",
                f"--node-labels={labels}",
                "--v=1",
            ],
        )

    def node_ready(self) -> bool:
        result = self.kubectl("get", "node", self.name, "-o", "json", check=False)
        if result.returncode != 0:
            return False
        conditions = json.loads(result.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # ---- networking beyond CNI ------------------------------------------------------------------------------------
    def _start_kube_proxy(self) -> None:
        plane = self.control_plane
        certs = self.workdir / "kube-proxy-pki"
        cert, key = issue_client_cert(plane.pki, certs, "kube-proxy", "system:kube-proxy", "system:node-proxier")
        kubeconfig = _kubeconfig(
            self.workdir / "kube-proxy.kubeconfig", plane.server, plane.pki.ca_cert, cert, key, "kube-proxy"
        )
        config = self.workdir / "kube-proxy-config.json"
        kube_proxy_config(config, kubeconfig, self.name, POD_CIDR)
        assert self.binaries is not None
        healthz = json.loads(config.read_text())["healthzBindAddress"]
        process = self._spawn("kube-proxy", [str(self.binaries.kube_proxy), f"--config={config}", "--v=1"])
        wait_until("kube-proxy /healthz", lambda: _http_ok(f"http://{healthz}/healthz"), 60, process)

    def _start_kube_router(self) -> None:
        assert self.binaries is not None
        argv = kube_router_argv(self.binaries.kube_router, self.control_plane.kubeconfig, self.name)
        port = next(a.split("=", 1)[1] for a in argv if a.startswith("--health-port="))
        process = self._spawn("kube-router", argv)
        wait_until("kube-router /healthz", lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), 60, process)

    def _start_dns(self) -> None:
        assert self.binaries is not None
        self.api_relay = start_api_relay(self.control_plane, self.ip)
        image = coredns_image(self.binaries.coredns)
        self.import_image(image)
        self.kubectl("create", "serviceaccount", "coredns", "-n", "kube-system", check=False)
        kubeconfig = pod_kubeconfig(
            self.control_plane, self.api_relay, "kube-system", "coredns", self.workdir / "coredns.kubeconfig"
        )
        manifests = DnsManifests(self.name, CLUSTER_DNS_IP, CLUSTER_DOMAIN, image.reference, kubeconfig)
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifests.render()))

    def wait_for_dns(self, timeout: float = 120) -> None:
        kubelet = next(p for p in self.processes if p.name == "kubelet")
        wait_until(
            "CoreDNS Ready",
            lambda: (
                self.kubectl(
                    "rollout", "status", "deployment/coredns", "-n", "kube-system", "--timeout=2s", check=False
                ).returncode
                == 0
            ),
            timeout,
            kubelet,
            interval=0.5,
        )

    # ---- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self.binaries = self.binaries or ensure_node_binaries()
        pause = pause_image()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._prepare_host()
        containerd = start_containerd(self.containerd, pause.reference)
        self.processes.append(containerd)
        self.import_image(pause)
        self._write_cni_config()
        _log(f"containerd up, pause image imported ({time.monotonic() - started:.1f}s)")
        kubelet = self._start_kubelet()
        wait_until(f"node {self.name} Ready", self.node_ready, 120, kubelet, interval=0.5)
        _log(f"node {self.name} ({self.ip}) Ready ({time.monotonic() - started:.1f}s)")
        # kube-router reads the pod network from the Node (nothing allocates node CIDRs here).
        self.kubectl("patch", "node", self.name, "--type=merge", "-p", json.dumps({"spec": {"podCIDR": POD_CIDR}}))
        self._start_kube_proxy()
        self._start_kube_router()
        self._start_dns()
        self.wait_for_dns()
        _log(f"kube-proxy, kube-router and CoreDNS up ({time.monotonic() - started:.1f}s)")

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.running:
                raise StartupError(f"{process.name} is not running:\n{process.log_tail()}")

    def stop(self) -> None:
        """Stop every node process, kill the pods' containers, and put the machine back as it was."""
        started = time.monotonic()
        if self.api_relay is not None:
            self.api_relay.stop()
            self.api_relay = None
        if self.processes:
            self.kubectl("delete", "node", self.name, "--wait=false", check=False)
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self._record is not None:
            clean_host(self._record)
            HostRecord.forget()
            self._record = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        _log(f"node stopped and host state removed ({time.monotonic() - started:.1f}s)")
