"""Undo what a real node does to the machine beyond its work directory.

The kubelet, containerd's CNI plugins, kube-proxy and kube-router write machine-wide state: iptables chains and
rules, ipsets, a bridge and veth pairs, network namespaces under /run/netns, pod cgroups, containerd shims that
outlive containerd, a few fixed paths (/var/lib/kubelet/device-plugins, /var/log/containers, /var/lib/cni), and
sysctls (the kubelet sets vm.overcommit_memory, kernel.panic and kernel.panic_on_oops; we set ip_forward and bridge
netfilter; kube-proxy sets route_localnet). `HostRecord` notes the originals before the node starts, in a file
outside the work directory, so `clean_host` can put them back after a normal stop and also on the next start after
a harness was SIGKILLed. Only one real node runs per machine (see node_lock), so every `KUBE-*`/`CNI-*` chain, kube
ipset, `cni-*` namespace and kubepods cgroup found here is this node's to remove.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

_MNT_DETACH = 2
RECORD_DIR = Path("/run/clawhost-real-node")
RECORD_FILE = RECORD_DIR / "host-record.json"
BRIDGE = "clawhost0"
SYSCTLS = (
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv4.conf.all.route_localnet",
)
# Paths the kubelet and CNI write whatever their configured directories: removed if the node created them.
FIXED_PATHS = (
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    Path("/var/lib/cni"),
    Path("/usr/libexec/kubernetes"),
    Path("/etc/kubernetes"),
)
_CHAIN_PREFIXES = ("KUBE-", "CNI-", "KUBE-ROUTER")
_IPSET_PREFIXES = ("KUBE-", "kube-router", "inet6:KUBE-", "inet6:kube-router")
_NFT_TABLES = ("kube-proxy", "kube-router")


def _log(message: str) -> None:
    print(f"[real-node] {message}", file=sys.stderr, flush=True)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except FileNotFoundError:
        return None


def write_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value + "\n")


@dataclass
class HostRecord:
    """What the machine looked like before the node started, and where the node keeps its state."""

    workdir: str
    containerd_socket: str
    sysctls: dict[str, str] = field(default_factory=dict)
    existing_paths: list[str] = field(default_factory=list)

    @classmethod
    def take(cls, workdir: Path, containerd_socket: Path) -> HostRecord:
        sysctls = {name: value for name in SYSCTLS if (value := read_sysctl(name)) is not None}
        existing = [str(path) for path in FIXED_PATHS if path.exists()]
        return cls(str(workdir), str(containerd_socket), sysctls, existing)

    def save(self) -> None:
        RECORD_DIR.mkdir(parents=True, exist_ok=True)
        partial = RECORD_FILE.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(self), indent=2))
        os.replace(partial, RECORD_FILE)

    @classmethod
    def load(cls) -> HostRecord | None:
        try:
            return cls(**json.loads(RECORD_FILE.read_text()))
        except FileNotFoundError:
            return None

    @staticmethod
    def forget() -> None:
        RECORD_FILE.unlink(missing_ok=True)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def _unescape(text: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))
    return text


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them in)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda path: len(path.parts), reverse=True)


def unmount_under(root: Path) -> list[Path]:
    """Lazily unmount everything at or below `root` (containers' rootfs, pods' volumes, netns binds)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    done = []
    for point in mounts_under(root):
        if libc.umount2(os.fsencode(point), _MNT_DETACH) == 0:
            done.append(point)
    return done


def _pids_with_argument(argument: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if argument.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _kill_shims(socket: str) -> None:
    """containerd's shims re-parent to init and outlive containerd; they name its socket in their arguments."""
    for pid in _pids_with_argument(socket):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _pod_cgroups() -> list[Path]:
    roots = [hierarchy / "kubepods" for hierarchy in Path("/sys/fs/cgroup").iterdir() if hierarchy.is_dir()]
    return [root for root in roots if root.is_dir()]


def _kill_pods_and_remove_cgroups(timeout: float = 15.0) -> None:
    """Kill every process in the kubelet's pod cgroups (the containers), then remove the cgroups, deepest first.
    A killed process leaves its cgroup only once it has exited, so a cgroup that is still busy is tried again until
    `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        _kill_and_rmdir_pod_cgroups()
        if not _pod_cgroups() or time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def _kill_and_rmdir_pod_cgroups() -> None:
    for root in _pod_cgroups():
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
    for root in _pod_cgroups():
        directories = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for directory in [*directories, root]:
            with contextlib.suppress(OSError):
                directory.rmdir()


def _ours(chain: str) -> bool:
    return chain.startswith(_CHAIN_PREFIXES)


def _clean_iptables() -> list[str]:
    removed = []
    for command in ("iptables", "ip6tables"):
        if shutil.which(command) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            listing = _run([command, "-t", table, "-S"])
            if listing.returncode != 0:
                continue
            chains = []
            for line in listing.stdout.splitlines():
                words = shlex.split(line)
                if words[:1] == ["-N"] and _ours(words[1]):
                    chains.append(words[1])
                elif words[:1] == ["-A"] and not _ours(words[1]):
                    target = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g")), "")
                    comment = " ".join(words).lower()
                    if _ours(target) or "kube-router" in comment or "kubernetes" in comment:
                        _run([command, "-t", table, "-D", *words[1:]])
                        removed.append(f"{command} -t {table} {line}")
            for chain in chains:
                _run([command, "-t", table, "-F", chain])
            for chain in chains:
                _run([command, "-t", table, "-X", chain])
                removed.append(f"{command} -t {table} chain {chain}")
    return removed


def _clean_nftables() -> None:
    if shutil.which("nft") is None:
        return
    for line in _run(["nft", "list", "tables"]).stdout.splitlines():
        words = line.split()
        if len(words) == 3 and words[2] in _NFT_TABLES:
            _run(["nft", "delete", "table", words[1], words[2]])


def _clean_ipsets() -> None:
    if shutil.which("ipset") is None:
        return
    names = [n for n in _run(["ipset", "list", "-n"]).stdout.split() if n.startswith(_IPSET_PREFIXES)]
    for name in names:
        _run(["ipset", "flush", name])
    for name in names:
        _run(["ipset", "destroy", name])


def _clean_links() -> None:
    listing = _run(["ip", "-j", "link", "show", "master", BRIDGE])
    if listing.returncode == 0 and listing.stdout.strip():
        for link in json.loads(listing.stdout):
            _run(["ip", "link", "delete", link["ifname"]])
    _run(["ip", "link", "delete", BRIDGE])


def _clean_netns() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    netns = Path("/run/netns")
    if not netns.is_dir():
        return
    for entry in netns.glob("cni-*"):
        libc.umount2(os.fsencode(entry), _MNT_DETACH)
        with contextlib.suppress(OSError):
            entry.unlink()


def _clean_paths(record: HostRecord) -> None:
    existing = {Path(path) for path in record.existing_paths}
    workdir = record.workdir
    for path in FIXED_PATHS:
        if path not in existing:
            unmount_under(path) if path.exists() else None
            shutil.rmtree(path, ignore_errors=True)
    # Inside directories that were there before, remove only what points into (or came from) this node.
    logs = Path("/var/log/containers")
    if logs in existing:
        for link in logs.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(workdir):
                link.unlink(missing_ok=True)
    plugins = Path("/var/lib/kubelet/device-plugins")
    if Path("/var/lib/kubelet") in existing and plugins.is_dir():
        for socket in plugins.glob("kubelet*"):
            socket.unlink(missing_ok=True)


def _restore_sysctls(record: HostRecord) -> None:
    for name, value in record.sysctls.items():
        if read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                write_sysctl(name, value)


def clean_host(record: HostRecord) -> None:
    """Put the machine back as `record` found it: processes, mounts, network state, paths, then sysctls."""
    _kill_shims(record.containerd_socket)
    _kill_pods_and_remove_cgroups()
    unmount_under(Path(record.workdir))
    _clean_netns()
    _clean_links()
    _clean_iptables()
    _clean_nftables()
    _clean_ipsets()
    _clean_paths(record)
    shutil.rmtree(Path(record.containerd_socket).parent, ignore_errors=True)
    _restore_sysctls(record)


def leftovers() -> dict[str, list[str]]:
    """What a real node could have left on the machine, now (empty lists mean nothing): for tests."""
    chains = []
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            for line in _run([command, "-t", table, "-S"]).stdout.splitlines():
                words = shlex.split(line)
                if len(words) > 1 and (_ours(words[1]) or any(_ours(w) for w in words[2:] if w.isupper())):
                    chains.append(f"{command} -t {table} {line}")
    ipsets = [n for n in _run(["ipset", "list", "-n"]).stdout.split() if n.startswith(_IPSET_PREFIXES)]
    netns = [p.name for p in Path("/run/netns").glob("cni-*")] if Path("/run/netns").is_dir() else []
    links = [BRIDGE] if _run(["ip", "link", "show", BRIDGE]).returncode == 0 else []
    cgroups = [str(p) for p in _pod_cgroups()]
    nft = [
        line
        for line in _run(["nft", "list", "tables"]).stdout.splitlines()
        if line.split()[-1:] in (["kube-proxy"], ["kube-router"])
    ]
    return {"iptables": chains, "ipsets": ipsets, "netns": netns, "links": links, "cgroups": cgroups, "nft": nft}
