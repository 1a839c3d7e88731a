"""The local platform's supervisor: a process that exits is started again with the same command, after pauses that
double while it keeps failing and start over once it has stayed up; each exit and restart is logged."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from clawhost_api.backoff import Backoff
from clawhost_localcluster.processes import ManagedProcess
from clawhost_localcluster.supervisor import Supervisor
from clawhost_localcluster.waiting import eventually


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_killed_process_is_restarted_and_logged(tmp_path: Path) -> None:
    process = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(3600)"], tmp_path / "s.log"
    )
    process.start()
    lines: list[str] = []
    supervisor = Supervisor([process], backoff=Backoff(first=0.1, limit=0.1), log=lines.append)
    try:
        assert process.popen is not None
        first = process.popen.pid
        eventually(lambda: "up" in process.log_tail(), timeout=30, what="the sleeper to start")
        os.kill(first, signal.SIGKILL)

        def restarted() -> int | None:
            supervisor.poll()
            return process.popen.pid if process.running and process.popen and process.popen.pid != first else None

        second = eventually(restarted, timeout=30, interval=0.05, what="the sleeper to be restarted")
        assert second != first
        assert supervisor.restarts("sleeper") == 1
        assert lines[0].startswith("sleeper exited (code -9); restarting in 0.")
        assert "up" in lines[0]  # the end of its log, to see why it stopped
        assert lines[1] == f"sleeper restarted (pid {second}, restart 1)"
    finally:
        process.stop()


def test_pauses_double_while_failing_and_reset_once_stable(tmp_path: Path) -> None:
    clock = _Clock()
    process = ManagedProcess("crasher", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "c.log")
    process.start()
    lines: list[str] = []
    supervisor = Supervisor(
        [process], backoff=Backoff(first=1.0, limit=4.0), stable_after=60, log=lines.append, clock=clock
    )
    pauses = []
    for _ in range(4):
        eventually(lambda: not process.running, timeout=30, what="the crasher to exit")
        supervisor.poll()  # notices the exit, schedules the restart
        pause = float(lines[-1].split("restarting in ")[1].split("s.")[0])
        pauses.append(pause)
        supervisor.poll()
        assert not process.running  # not before its pause is over
        clock.now += pause + 0.1  # the log rounds the pause to 0.1 s
        supervisor.poll()  # restarts it
        assert lines[-1].startswith("crasher restarted")
    assert "code 3" in lines[0]
    # Jitter takes up to 20% off each pause: 1, 2, 4, 4 (the limit).
    for pause, nominal in zip(pauses, [1.0, 2.0, 4.0, 4.0], strict=True):
        assert nominal * 0.79 <= pause <= nominal, pauses
    assert supervisor.restarts("crasher") == 4

    # Up for longer than stable_after: the next failure starts again from the first pause.
    process.argv = [sys.executable, "-c", "import time; time.sleep(3600)"]
    eventually(lambda: not process.running, timeout=30, what="the crasher to exit")
    supervisor.poll()
    clock.now += 10
    supervisor.poll()
    assert process.running
    clock.now += 61
    supervisor.poll()
    assert process.popen is not None
    process.popen.kill()
    eventually(lambda: not process.running, timeout=30, what="the sleeper to die")
    supervisor.poll()
    assert float(lines[-1].split("restarting in ")[1].split("s.")[0]) <= 1.0
    process.stop()
