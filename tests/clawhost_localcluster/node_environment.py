"""A cluster whose only node is real: its own control plane (no kwok) plus a RealNode, for tests that run pods.

It is separate from the session's kwok cluster so the kwok tests never see their pods scheduled onto a node that
cannot pull their images, and real pods never land on a fake node. `python -m clawhost_localcluster.node_environment
WORKDIR` runs one until killed (the cleanup tests SIGKILL it to prove the next start removes what it left).
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawhost_localcluster.build import ensure_binaries
from clawhost_localcluster.controlplane import ControlPlane
from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.nettest_image import NETTEST_IMAGE, nettest_image
from clawhost_localcluster.node import RealNode
from clawhost_localcluster.oci import ImageArchive


@dataclass
class RealNodeCluster:
    """The cluster (kubeconfig, kubectl) and its real node (images, containerd, host state)."""

    cluster: Cluster
    node: RealNode
    _imported: set[str] = field(default_factory=set)

    def import_image(self, archive: ImageArchive) -> None:
        """Import once per session: pods with `imagePullPolicy: IfNotPresent` or `Never` then run it."""
        if archive.manifest_digest not in self._imported:
            self.node.import_image(archive)
            self._imported.add(archive.manifest_digest)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, stdin=stdin, check=check)

    def nettest_pod(
        self, namespace: str, name: str, args: list[str] | None = None, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A pod running our nettest tool (default: sleep), restricted-PSA compliant; returned once Ready."""
        self.import_image(nettest_image())
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "nettest",
                        "image": NETTEST_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": args or ["sleep"],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
                    }
                ],
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, "--timeout=120s")
        return dict(json.loads(self.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout))

    def exec(self, namespace: str, pod: str, *command: str) -> Any:
        """Run `command` in the pod's container (check=False: the caller reads returncode and output)."""
        return self.kubectl("exec", "-n", namespace, pod, "--", *command, check=False)

    def connects(self, namespace: str, pod: str, address: str, timeout: float = 2) -> bool:
        """Whether a TCP connection from inside the pod to `address` (host:port) is accepted."""
        return bool(self.exec(namespace, pod, "/nettest", "connect", address, str(timeout)).returncode == 0)

    def fresh_namespace(self, prefix: str = "rn") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name


@contextmanager
def running_real_node_cluster(workdir: Path) -> Iterator[RealNodeCluster]:
    """Start the control plane and the real node (waiting for the machine-wide node lock); stop both on exit."""
    binaries = ensure_binaries()
    control_plane = ControlPlane(binaries, workdir / "cluster", fake_nodes=0)
    node: RealNode | None = None
    try:
        control_plane.start()
        node = RealNode(control_plane, workdir / "node")
        node.start()
        cluster = Cluster(control_plane.kubeconfig, binaries.kubectl, existing=False, control_plane=control_plane)
        yield RealNodeCluster(cluster, node)
    finally:
        if node is not None:
            node.stop()
        control_plane.stop()


class RealNodeHolder:
    """Starts the real-node cluster on first use and keeps it for the session; `release()` stops it (a test that
    needs the machine's node for itself calls it; the next `get()` starts a fresh one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stack: ExitStack | None = None
        self._running: RealNodeCluster | None = None
        self._generation = 0

    def get(self) -> RealNodeCluster:
        if self._running is None:
            self._generation += 1
            stack = ExitStack()
            try:
                self._running = stack.enter_context(running_real_node_cluster(self.root / f"real-{self._generation}"))
            except BaseException:
                stack.close()
                raise
            self._stack = stack
        return self._running

    def release(self) -> None:
        stack, self._stack, self._running = self._stack, None, None
        if stack is not None:
            stack.close()


def _serve_until_killed(workdir: Path) -> None:
    with running_real_node_cluster(workdir) as running:
        running.nettest_pod("default", "probe", ["serve", "8080"])
        print(json.dumps({"ready": True, "kubeconfig": str(running.cluster.kubeconfig)}), flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    _serve_until_killed(Path(sys.argv[1]))
