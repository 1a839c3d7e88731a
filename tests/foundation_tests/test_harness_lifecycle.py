"""The harness stops everything it started and removes its data, on a normal exit, an interrupt or a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.cluster

# Starts a whole environment, prints the pids and data directory, then waits to be interrupted.
DRIVER = """
import json, os, sys, time
from clawhost_localcluster.environment import local_environment
with local_environment() as env:
    pids = [p.popen.pid for p in env.cluster.control_plane.processes]
    pids += [env.redis.process.popen.pid, env.postgres.process.popen.pid]
    info = {"pids": pids, "workdir": str(env.workdir), "kubeconfig": str(env.cluster.kubeconfig)}
    print(json.dumps(info), flush=True)
    while True:
        time.sleep(1)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


Driver = tuple[subprocess.Popen[str], dict[str, object]]


@pytest.fixture
def driver(cluster: object) -> Iterator[Driver]:
    """The harness in its own process, once it printed what it started; killed and its pipe closed afterwards."""
    # `cluster` is requested so the binaries exist (built by the session) before the driver starts.
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    with process:  # on the way out: the pipe closed, the process waited for
        line = process.stdout.readline()
        try:
            assert line, f"the driver exited early with {process.wait()}"
            yield process, json.loads(line)
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_process_and_removes_data(driver: Driver, how: signal.Signals) -> None:
    process, info = driver
    pids = [int(pid) for pid in info["pids"]]  # type: ignore[attr-defined]
    workdir = Path(str(info["workdir"]))
    assert len(pids) == 7
    assert all(_alive(pid) for pid in pids)
    assert workdir.is_dir()
    database_dir = Path((workdir / "postgres" / "cluster-dir").read_text())
    assert database_dir.is_dir()
    process.send_signal(how)
    # An uncaught KeyboardInterrupt makes Python die by SIGINT (-2) after cleanup ran.
    assert process.wait(timeout=90) in (0, -signal.SIGINT)
    eventually(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="every child to exit")
    assert not workdir.exists(), "temp data is removed on exit"
    assert not database_dir.exists(), "the database files are removed on exit"


def test_sigkill_of_the_harness_takes_its_children_down(driver: Driver) -> None:
    process, info = driver
    pids = [int(pid) for pid in info["pids"]]  # type: ignore[attr-defined]
    database_dir = (Path(str(info["workdir"])) / "postgres" / "cluster-dir").read_text()
    process.kill()
    process.wait(timeout=10)
    eventually(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="children to die with their parent")
    # SIGKILL leaves no chance to delete files; the directory is a mkdtemp under the temp dir.
    subprocess.run(["rm", "-rf", str(info["workdir"]), database_dir], check=True)
