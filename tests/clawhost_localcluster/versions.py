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
# The real node's Kubernetes binaries: built by the same wrapper module into a cache entry of their own, so the
# control plane's entry above stays valid and a kwok-only run never waits for them.
KUBERNETES_NODE_COMMANDS = ("kubelet", "kube-proxy")
# In-cluster DNS for the real node's pods (its `kubernetes` plugin serves cluster.local).
COREDNS_VERSION = "v1.15.0"
# The real node's NetworkPolicy enforcer, run policy-only (ipset + iptables; this kernel has no IPVS or nft queue).
KUBE_ROUTER_VERSION = "v2.1.0"


def cache_root() -> Path:
    """Builds live outside the repository so a fresh clone reuses them (override with CLAWHOST_CACHE)."""
    configured = os.environ.get("CLAWHOST_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "clawhost"
