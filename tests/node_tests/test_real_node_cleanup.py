"""Nothing of a real node outlives its harness: after a normal stop, and after the harness is SIGKILLed (the next
start removes what it left). A second harness waiting for the machine's one real node is told who holds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clawhost_localcluster.containerd import ContainerdLayout
from clawhost_localcluster.node import NodeLockTimeoutError, acquire_node_lock
from clawhost_localcluster.node_cleanup import SYSCTLS, leftovers, mounts_under, read_sysctl
from clawhost_localcluster.node_environment import RealNodeHolder

pytestmark = pytest.mark.node

HARNESS_DIR = Path(__file__).resolve().parents[1]
NOTHING: dict[str, list[str]] = {"iptables": [], "ipsets": [], "netns": [], "links": [], "cgroups": [], "nft": []}
FIXED = [
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/lib/cni"),
    Path("/etc/cni"),
    Path("/opt/cni"),
]


def _shims(socket: Path) -> list[int]:
    """The containerd shims serving the containerd at `socket` (they outlive it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"containerd-shim" in arguments[0] and str(socket).encode() in arguments:
                found.append(int(entry.name))
    return found


def test_stop_and_sigkill_leave_nothing_behind(real_node_holder: RealNodeHolder, tmp_path: Path) -> None:
    real_node_holder.release()  # this test needs the machine's real node for itself
    # The machine as it is with no real node running: read while holding the node's lock (other harnesses on
    # the machine may run one), released just before the harness below takes it.
    with acquire_node_lock(tmp_path / "before"):
        before_sysctls = {name: read_sysctl(name) for name in SYSCTLS}
        before_paths = {path: path.exists() for path in FIXED}
        assert leftovers() == NOTHING

    # A harness with a pod running, killed without any chance to clean up.
    killed_socket = ContainerdLayout(tmp_path / "killed" / "node" / "containerd").socket
    harness = subprocess.Popen(
        [sys.executable, "-m", "clawhost_localcluster.node_environment", str(tmp_path / "killed")],
        cwd=HARNESS_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert harness.stdout is not None
        line = harness.stdout.readline()
        assert json.loads(line)["ready"] is True, line

        # While it holds the node, a second harness is told who has it instead of starting a second node.
        with pytest.raises(NodeLockTimeoutError, match=f"in use by pid {harness.pid} "):
            acquire_node_lock(tmp_path / "second", wait=1)
    finally:
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait(timeout=30)

    left = leftovers()
    assert left["iptables"], "a killed node leaves its chains (else this test proves nothing)"
    assert left["netns"]
    assert left["cgroups"]
    assert _shims(killed_socket)
    assert read_sysctl("kernel.panic") == "10"  # the kubelet's, still in force

    # The next real node starts by removing what the killed one left; stopping it leaves nothing.
    assert real_node_holder.get().node.node_ready()
    real_node_holder.release()

    with acquire_node_lock(tmp_path / "after"):
        assert leftovers() == NOTHING
        assert {name: read_sysctl(name) for name in SYSCTLS} == before_sysctls
        assert {path: path.exists() for path in FIXED} == before_paths
        assert _shims(killed_socket) == []
    assert mounts_under(tmp_path) == []
    assert mounts_under(real_node_holder.root) == []
