"""The pinned versions of everything the local cluster builds, and where builds are cached."""

from __future__ import annotations

import os
from pathlib import Path

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
# kstatus, the status library of Flux and kpt, built into tests/clawhost_localcluster/kstatus to read Customers.
CLI_UTILS_VERSION = "v0.37.2"
# network-config-analyzer (PyPI), the NetworkPolicy analyser the platform's policy tests run over live objects.
NCA_VERSION = "2.1.0"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def cache_root() -> Path:
    """Builds live outside the repository so a fresh clone reuses them (override with CLAWHOST_CACHE)."""
    configured = os.environ.get("CLAWHOST_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clawhost"
