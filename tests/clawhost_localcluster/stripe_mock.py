"""Build Stripe's own API double (stripe-mock, a Go module) once into the cache, and run it on a free port."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from clawhost_localcluster.processes import ManagedProcess, free_port
from clawhost_localcluster.versions import cache_root
from clawhost_localcluster.waiting import eventually

STRIPE_MOCK_VERSION = "v0.203.0"
STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock"


def stripe_mock_dir() -> Path:
    return cache_root() / f"stripe-mock-{STRIPE_MOCK_VERSION}"


def build_stripe_mock() -> Path:
    """Path of the stripe-mock binary, building it with `go install` under a lock the first time."""
    target = stripe_mock_dir() / "bin" / "stripe-mock"
    if target.exists():
        return target
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / "stripe-mock.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        scratch = Path(tempfile.mkdtemp(prefix="stripe-mock-", dir=cache_root()))
        try:
            env = dict(os.environ)
            env.update(
                {"CGO_ENABLED": "0", "GOBIN": str(scratch / "bin"), "GOWORK": "off", "GOFLAGS": "-buildvcs=false"}
            )
            env.setdefault("GOTOOLCHAIN", "local")
            print(f"[localcluster] building stripe-mock {STRIPE_MOCK_VERSION}", file=sys.stderr, flush=True)
            result = subprocess.run(
                ["go", "install", f"{STRIPE_MOCK_MODULE}@{STRIPE_MOCK_VERSION}"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"building stripe-mock failed:\n{result.stderr[-3000:]}")
            final = stripe_mock_dir()
            if final.exists():
                shutil.rmtree(final)
            (scratch / "bin").rename(scratch / "bin.done")
            final.mkdir(parents=True)
            (scratch / "bin.done").rename(final / "bin")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


@dataclass
class StripeMock:
    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start_stripe_mock(workdir: Path) -> StripeMock:
    """stripe-mock on a free loopback port (HTTP), answering; the caller stops it."""
    binary = build_stripe_mock()
    port = free_port()
    process = ManagedProcess("stripe-mock", [str(binary), "-http-port", str(port)], workdir / "stripe-mock.log")
    process.start()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not process.running:
            raise RuntimeError(f"stripe-mock exited:\n{process.log_tail()}")
        try:
            response = httpx.get(f"{url}/v1/customers", headers={"Authorization": "Bearer sk_test_123"}, timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    try:
        eventually(answers, timeout=60, what="stripe-mock answers")
    except BaseException:
        process.stop()
        raise
    return StripeMock(url, process)


@contextmanager
def running_stripe_mock(workdir: Path) -> Iterator[StripeMock]:
    """stripe-mock on a free loopback port (HTTP), stopped on exit."""
    mock = start_stripe_mock(workdir)
    try:
        yield mock
    finally:
        mock.stop()


if __name__ == "__main__":
    print(build_stripe_mock())
