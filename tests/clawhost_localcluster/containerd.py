"""A containerd of the harness's own: its config, root, state, socket and runc root all live in one work directory,
so it never touches (or needs) a containerd the machine may run, and removing the directory removes its data."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clawhost_localcluster.processes import ManagedProcess, StartupError, wait_until

# Debian's containernetworking-plugins; read in place, so nothing is written to /opt/cni.
CNI_BIN_DIR = Path("/usr/lib/cni")
NAMESPACE = "k8s.io"
SOCKET_ROOT = Path("/run/clawhost-containerd")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string is a JSON string for the characters paths use


@dataclass(frozen=True)
class ContainerdLayout:
    """The paths of one containerd instance under `root`."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def socket(self) -> Path:
        # Unix socket paths are limited to ~104 bytes, so the socket lives under a short per-instance name.
        return SOCKET_ROOT / hashlib.sha256(str(self.root).encode()).hexdigest()[:12] / "containerd.sock"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / "run" / "state"

    @property
    def runc_root(self) -> Path:
        return self.root / "run" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def log(self) -> Path:
        return self.root / "containerd.log"


def write_config(layout: ContainerdLayout, sandbox_image: str) -> None:
    """containerd 1.6's config for the kubelet's CRI: runc with cgroupfs (this VM has cgroup v1 and no systemd),
    overlayfs, CNI from the Debian plugins, and `restrict_oom_score_adj` because the VM lacks CAP_SYS_RESOURCE:
    without it runc fails to lower a container's oom_score_adj below containerd's own."""
    for directory in (
        layout.data,
        layout.state,
        layout.runc_root,
        layout.cni_conf_dir,
        layout.root / "opt",
        layout.socket.parent,
    ):
        directory.mkdir(parents=True, exist_ok=True)
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f"root = {_toml_string(str(layout.data))}",
        f"state = {_toml_string(str(layout.state))}",
        "oom_score = 0",
        "[grpc]",
        f"  address = {_toml_string(str(layout.socket))}",
        "[ttrpc]",
        f"  address = {_toml_string(str(layout.socket) + '.ttrpc')}",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_string(str(layout.root / 'opt'))}",
        f"[{cri}]",
        f"  sandbox_image = {_toml_string(sandbox_image)}",
        "  restrict_oom_score_adj = true",
        "  disable_tcp_service = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_selinux = false",
        "  max_container_log_line_size = 16384",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"  Root = {_toml_string(str(layout.runc_root))}",
        f"[{cri}.cni]",
        f"  bin_dir = {_toml_string(str(CNI_BIN_DIR))}",
        f"  conf_dir = {_toml_string(str(layout.cni_conf_dir))}",
        "  max_conf_num = 1",
    ]
    layout.config.write_text("\n".join(lines) + "\n")


def containerd_process(layout: ContainerdLayout) -> ManagedProcess:
    binary = shutil.which("containerd")
    if binary is None:
        raise StartupError("containerd is not installed (make apt installs Debian's containerd and runc)")
    return ManagedProcess("containerd", [binary, "--config", str(layout.config)], layout.log)


def ctr(layout: ContainerdLayout, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ctr` against this containerd in the kubelet's namespace."""
    binary = shutil.which("ctr")
    if binary is None:
        raise StartupError("ctr is not installed (it comes with Debian's containerd)")
    result = subprocess.run(
        [binary, "--address", str(layout.socket), "--namespace", NAMESPACE, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise StartupError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def remove_socket_dir(layout: ContainerdLayout) -> None:
    shutil.rmtree(layout.socket.parent, ignore_errors=True)


def start_containerd(layout: ContainerdLayout, sandbox_image: str) -> ManagedProcess:
    """Write the config, start containerd and wait until it answers on its socket."""
    write_config(layout, sandbox_image)
    process = containerd_process(layout)
    process.start()

    def answers() -> bool:
        return ctr(layout, "version", check=False).returncode == 0

    wait_until("containerd to answer on its socket", answers, 30, process, interval=0.2)
    return process
