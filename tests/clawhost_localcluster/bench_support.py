"""What the browser benchmarks share: the platform as `make up` runs it (or one already running), and the lock that
keeps benchmarks of different engineers on this 2-core machine from overlapping."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = Path("/tmp/clawhost-bench.lock")

Log = Callable[[str], None]


@contextmanager
def exclusive(path: Path, log: Log) -> Iterator[None]:
    """Hold the exclusive fcntl lock `path` while measuring (waiting, with a word, while another benchmark has it)."""
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {path} (another benchmark is measuring)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def local_platform(url: str | None, kubeconfig: str | None, log: Log) -> Iterator[tuple[str, str | None]]:
    """The site's URL and the cluster's kubeconfig: the ones given, or those of a platform started as `make up`
    starts it, in a scratch run directory of its own (stopped afterwards)."""
    if url is not None:
        yield url.rstrip("/"), kubeconfig
        return
    with tempfile.TemporaryDirectory(prefix="clawhost-bench-") as run_dir:
        # kwok nodes unless asked otherwise: the browser benchmarks need no real pod, and a real node is machine-wide
        # state that one harness at a time may hold.
        env = {"CLAWHOST_LOCAL_NODE": "kwok", **os.environ, "CLAWHOST_RUN_DIR": run_dir}
        command = [sys.executable, "-m", "clawhost_localcluster"]
        log("starting the local platform as `make up` does (a few minutes on 2 cores)")
        subprocess.run([*command, "up"], env=env, check=True, cwd=REPO, stdout=sys.stderr)
        try:
            state = json.loads((Path(run_dir) / "state.json").read_text())
            yield state["site"].split()[0].rstrip("/"), state["kubeconfig"]
        finally:
            subprocess.run([*command, "down"], env=env, check=False, cwd=REPO, stdout=sys.stderr)
