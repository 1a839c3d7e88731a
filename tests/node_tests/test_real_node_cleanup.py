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


def _shims() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"containerd-shim" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_stop_and_sigkill_leave_nothing_behind(real_node_holder: RealNodeHolder, tmp_path: Path) -> None:
    real_node_holder.release()  # this test needs the machine's real node for itself
    before_sysctls = {name: read_sysctl(name) for name in SYSCTLS}
    before_paths = {path: path.exists() for path in FIXED}
    before_shims = set(_shims())
    assert leftovers() == NOTHING

    # A harness with a pod running, killed without any chance to clean up.
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
    assert set(_shims()) - before_shims
    assert read_sysctl("kernel.panic") == "10"  # the kubelet's, still in force

    # The next real node starts by removing what the killed one left; stopping it leaves nothing.
    assert real_node_holder.get().node.node_ready()
    real_node_holder.release()

    assert leftovers() == NOTHING
    assert {name: read_sysctl(name) for name in SYSCTLS} == before_sysctls
    assert {path: path.exists() for path in FIXED} == before_paths
    assert set(_shims()) <= before_shims
    assert mounts_under(tmp_path) == []
    assert mounts_under(real_node_holder.root) == []
