"""`make up`'s engine: starts the platform in the background, is idempotent, installs the CRDs, and `down` cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]


def _cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CLAWHOST_RUN_DIR=str(run_dir))
    return subprocess.run(
        [sys.executable, "-m", "clawhost_localcluster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_up_twice_then_down(cluster: object, tmp_path: Path) -> None:
    # `cluster` is requested so the binaries exist before `up` runs.
    run_dir = tmp_path / "run"
    try:
        first = _cli(run_dir, "up")
        assert first.returncode == 0, first.stderr
        assert "clawhost local platform is up" in first.stdout
        kubeconfig = run_dir / "data" / "cluster" / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in first.stdout

        second = _cli(run_dir, "up")
        assert second.returncode == 0
        assert "already running" in second.stdout

        kubectl_path = next(
            line.split()[-1] for line in first.stdout.splitlines() if line.strip().startswith("kubectl ")
        )
        crd = subprocess.run(
            [kubectl_path, "--kubeconfig", str(kubeconfig), "get", "crd", "customers.clawhost.dev", "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert crd.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/customers.clawhost.dev"
        assert "operator     metrics http://127.0.0.1:" in first.stdout

        # The README's example works against `make up`: the running operator brings it to Ready.
        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl_path, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, check=False
            )

        assert kubectl("apply", "-f", str(REPO / "crds" / "examples" / "customer.yaml")).returncode == 0
        ready = kubectl("wait", "--for=condition=Ready", "customer/alice", "--timeout=90s")
        assert ready.returncode == 0, ready.stderr
        assert _cli(run_dir, "status").returncode == 0
    finally:
        down = _cli(run_dir, "down")
    assert down.returncode == 0
    assert "stopped" in down.stdout
    assert not (run_dir / "data").exists()
    after = _cli(run_dir, "status")
    assert after.returncode == 3
    assert "not running" in after.stdout
