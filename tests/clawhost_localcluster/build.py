"""Build etcd, the Kubernetes control-plane binaries and kwok from their Go modules, once, into a versioned cache.

Each artefact set is built in a scratch directory and renamed into place only when complete,
so an interrupted build never leaves a half-filled cache entry; a lock file keeps two
concurrent runs (make up and make test, say) from building the same thing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clawhost_localcluster.versions import (
    CLI_UTILS_VERSION,
    COREDNS_VERSION,
    ETCD_VERSION,
    KUBE_ROUTER_VERSION,
    KUBERNETES_COMMANDS,
    KUBERNETES_NODE_COMMANDS,
    KUBERNETES_VERSION,
    KWOK_VERSION,
    NCA_VERSION,
    cache_root,
)

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/src/", re.MULTILINE)


class BuildError(RuntimeError):
    """A Go build failed; the message names the step and ends with the tool's own output."""


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the local cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path


@dataclass(frozen=True)
class NodeBinaries:
    """Paths of the binaries a real node runs beside containerd and runc (which come from Debian)."""

    kubelet: Path
    kube_proxy: Path
    coredns: Path
    kube_router: Path


def _log(message: str) -> None:
    print(f"[localcluster] {message}", file=sys.stderr, flush=True)


def _go_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false", "GO111MODULE": "on"})
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOWORK"] = "off"
    env["TMPDIR"] = str(scratch)
    return env


def _run(step: str, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    """Run one build command, printing a heartbeat with elapsed time while it works."""
    started = time.monotonic()
    _log(f"{step}: {' '.join(argv[:3])}{' ...' if len(argv) > 3 else ''}")
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            _log(f"{step}: still working, {time.monotonic() - started:.0f}s elapsed")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    finally:
        done.set()
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise BuildError(f"{step} failed (exit {result.returncode}) running {' '.join(argv)}:\n{tail}")
    _log(f"{step}: done in {time.monotonic() - started:.0f}s")
    return result.stdout


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(target: Path, names: Sequence[str], recipe: _Recipe) -> None:
    """Build `names` into `target/bin` unless they are all there already."""
    if all((target / "bin" / name).is_file() for name in names):
        return
    with _locked(target.with_name(target.name + ".lock")):
        if all((target / "bin" / name).is_file() for name in names):
            return
        scratch = target.with_name(target.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "bin").mkdir(parents=True)
        (scratch / "tmp").mkdir()
        started = time.monotonic()
        _log(f"building {target.name} (one-off; cached in {target})")
        recipe(scratch, _go_env(scratch / "tmp"))
        shutil.rmtree(scratch / "tmp", ignore_errors=True)
        shutil.rmtree(scratch / "src", ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
        _log(f"built {target.name} in {time.monotonic() - started:.0f}s")


class _Recipe:
    def __call__(self, scratch: Path, env: dict[str, str]) -> None:  # pragma: no cover - protocol
        raise NotImplementedError


class _EtcdRecipe(_Recipe):
    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        src = scratch / "src"
        src.mkdir()
        _run("etcd: init wrapper module", ["go", "mod", "init", "clawhost.local/etcdbuild"], src, env)
        _run("etcd: fetch module", ["go", "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], src, env)
        _run(
            "etcd: compile",
            [
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                "-s -w",
                "-o",
                str(scratch / "bin" / "etcd"),
                "go.etcd.io/etcd/server/v3",
            ],
            src,
            env,
        )


@dataclass(frozen=True)
class _GoInstallRecipe(_Recipe):
    """`go install package@version` of a module without replace lines."""

    name: str
    package: str

    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        env = dict(env, GOBIN=str(scratch / "bin"))
        _run(
            f"{self.name}: go install",
            ["go", "install", "-trimpath", "-ldflags", "-s -w", self.package],
            scratch,
            env,
        )


@dataclass(frozen=True)
class _KubernetesRecipe(_Recipe):
    commands: Sequence[str]

    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        src = scratch / "src"
        src.mkdir()
        version = KUBERNETES_VERSION
        staging_version = "v0." + version.split(".", 1)[1]
        _run("kubernetes: init wrapper module", ["go", "mod", "init", "clawhost.local/k8sbuild"], src, env)
        info = json.loads(
            _run(
                "kubernetes: download module",
                ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                src,
                env,
            )
        )
        staging = sorted(set(_STAGING_REPLACE.findall(Path(info["GoMod"]).read_text())))
        if not staging:
            raise BuildError(f"no staging modules found in the go.mod of k8s.io/kubernetes@{version}")
        _log(f"kubernetes: pinning {len(staging)} staging modules to {staging_version}")
        edits = [f"-replace={module}={module}@{staging_version}" for module in staging]
        _run("kubernetes: pin staging modules", ["go", "mod", "edit", *edits], src, env)
        packages = [f"k8s.io/kubernetes/cmd/{name}" for name in self.commands]
        _run("kubernetes: resolve dependencies", ["go", "get", *(f"{p}@{version}" for p in packages)], src, env)
        minor = version.split(".")[1]
        stamp = " ".join(
            f"-X {pkg}.{key}={value}"
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for key, value in (
                ("gitVersion", version),
                ("gitMajor", "1"),
                ("gitMinor", minor),
                ("gitTreeState", "clean"),
            )
        )
        _run(
            f"kubernetes: compile {', '.join(self.commands)} (the long step: ~2 GiB per link)",
            ["go", "build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", str(scratch / "bin") + "/", *packages],
            src,
            env,
        )


class _KstatusRecipe(_Recipe):
    """Our `kstatus/main.go` against sigs.k8s.io/cli-utils: what Flux's health checks would say of an object."""

    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        src = scratch / "src"
        src.mkdir()
        shutil.copy(KSTATUS_SOURCE, src / "main.go")
        _run("kstatus: init wrapper module", ["go", "mod", "init", "clawhost.local/kstatus"], src, env)
        _run("kstatus: fetch cli-utils", ["go", "get", f"sigs.k8s.io/cli-utils@{CLI_UTILS_VERSION}"], src, env)
        _run("kstatus: resolve dependencies", ["go", "mod", "tidy"], src, env)
        _run(
            "kstatus: compile",
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(scratch / "bin" / "kstatus"), "."],
            src,
            env,
        )


KSTATUS_SOURCE = Path(__file__).with_name("kstatus") / "main.go"


def ensure_kstatus(root: Path | None = None) -> Path:
    """The kstatus binary, built once per cli-utils version and version of our source (prints progress)."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.25 or newer")
    source = hashlib.sha256(KSTATUS_SOURCE.read_bytes()).hexdigest()[:12]
    target = (root or cache_root()) / f"kstatus-{CLI_UTILS_VERSION}-{source}"
    _build_into(target, ["kstatus"], _KstatusRecipe())
    return target / "bin" / "kstatus"


class _NcaRecipe(_Recipe):
    """network-config-analyzer (IBM's NetworkPolicy analyser, PyPI) in its own virtualenv: it pins PyYAML 6.0.2,
    which the kubernetes client (>= 6.0.3) rules out of the project's environment. `bin/nca` finds the venv
    relative to itself, so the directory still works after it is renamed into place."""

    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        uv = shutil.which("uv")
        if uv is None:
            raise BuildError("uv is not on PATH (make python installs it)")
        venv = scratch / "venv"
        _run("nca: virtualenv", [uv, "venv", "--quiet", "--python", sys.executable, str(venv)], scratch, env)
        package = f"network-config-analyzer=={NCA_VERSION}"
        _run(
            "nca: install",
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), package],
            scratch,
            env,
        )
        wrapper = scratch / "bin" / "nca"
        wrapper.write_text('#!/bin/sh\nexec "$(dirname "$0")/../venv/bin/python" -m nca "$@"\n')
        wrapper.chmod(0o755)


PAUSE_SOURCE = Path(__file__).resolve().parents[2] / "images" / "pause"
NETTEST_SOURCE = Path(__file__).with_name("nettest")


@dataclass(frozen=True)
class _LocalGoRecipe(_Recipe):
    """One of our own small Go programs (the standard library only), built static."""

    name: str
    source: Path

    def __call__(self, scratch: Path, env: dict[str, str]) -> None:
        src = scratch / "src"
        shutil.copytree(self.source, src)
        _run(
            f"{self.name}: compile",
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(scratch / "bin" / self.name), "."],
            src,
            env,
        )


def ensure_local_program(name: str, source: Path, root: Path | None = None) -> Path:
    """Our Go program in `source`, built once per version of its source (a few seconds)."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.25 or newer")
    digest = hashlib.sha256()
    for path in sorted(source.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = (root or cache_root()) / f"{name}-{digest.hexdigest()[:12]}"
    _build_into(target, [name], _LocalGoRecipe(name, source))
    return target / "bin" / name


def ensure_pause(root: Path | None = None) -> Path:
    """The pause binary (images/pause)."""
    return ensure_local_program("pause", PAUSE_SOURCE, root)


def ensure_nca(root: Path | None = None) -> Path:
    """The `nca` command (network-config-analyzer), installed once per version into the cache."""
    target = (root or cache_root()) / f"nca-{NCA_VERSION}"
    _build_into(target, ["nca"], _NcaRecipe())
    return target / "bin" / "nca"


def ensure_binaries(root: Path | None = None) -> Binaries:
    """Return the cached binaries, building whatever is missing (prints progress while it builds)."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.25 or newer")
    base = root or cache_root()
    etcd_dir = base / f"etcd-{ETCD_VERSION}"
    kwok_dir = base / f"kwok-{KWOK_VERSION}"
    k8s_dir = base / f"k8s-{KUBERNETES_VERSION}"
    _build_into(etcd_dir, ["etcd"], _EtcdRecipe())
    _build_into(kwok_dir, ["kwok"], _GoInstallRecipe("kwok", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"))
    _build_into(k8s_dir, list(KUBERNETES_COMMANDS), _KubernetesRecipe(KUBERNETES_COMMANDS))
    return Binaries(
        etcd=etcd_dir / "bin" / "etcd",
        kube_apiserver=k8s_dir / "bin" / "kube-apiserver",
        kube_controller_manager=k8s_dir / "bin" / "kube-controller-manager",
        kube_scheduler=k8s_dir / "bin" / "kube-scheduler",
        kubectl=k8s_dir / "bin" / "kubectl",
        kwok=kwok_dir / "bin" / "kwok",
    )


def ensure_node_binaries(root: Path | None = None) -> NodeBinaries:
    """The real node's kubelet, kube-proxy, CoreDNS and kube-router, built once per version (prints progress)."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain is not on PATH; install Go 1.25 or newer")
    base = root or cache_root()
    node_dir = base / f"k8s-node-{KUBERNETES_VERSION}"
    coredns_dir = base / f"coredns-{COREDNS_VERSION}"
    router_dir = base / f"kube-router-{KUBE_ROUTER_VERSION}"
    _build_into(node_dir, list(KUBERNETES_NODE_COMMANDS), _KubernetesRecipe(KUBERNETES_NODE_COMMANDS))
    _build_into(coredns_dir, ["coredns"], _GoInstallRecipe("coredns", f"github.com/coredns/coredns@{COREDNS_VERSION}"))
    _build_into(
        router_dir,
        ["kube-router"],
        _GoInstallRecipe(
            "kube-router", f"github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@{KUBE_ROUTER_VERSION}"
        ),
    )
    return NodeBinaries(
        kubelet=node_dir / "bin" / "kubelet",
        kube_proxy=node_dir / "bin" / "kube-proxy",
        coredns=coredns_dir / "bin" / "coredns",
        kube_router=router_dir / "bin" / "kube-router",
    )


if __name__ == "__main__":
    try:
        found = ensure_binaries()
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    for field, value in vars(found).items():
        print(f"{field}: {value}")
