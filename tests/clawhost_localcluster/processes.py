"""Start and stop the child processes of the local cluster so none outlives the run, even on SIGKILL of the parent."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent(run_as: tuple[int, int] | None) -> Callable[[], None]:
    def prepare() -> None:
        os.setsid()
        if run_as is not None:
            gid, uid = run_as
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # Set after any uid change: the kernel clears the parent-death signal on credential changes.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return prepare


@dataclass
class ManagedProcess:
    """One child process with its log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    run_as: tuple[int, int] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=_die_with_parent(self.run_as),
            )
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except FileNotFoundError:
            return ""

    def json_log(self) -> list[dict[str, Any]]:
        """The log as the JSON objects the services write, one a line; AssertionError names a line that is not one."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"a {self.name} log line is not a JSON object: {line[:300]!r}") from None
        return records

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


class StartupError(RuntimeError):
    """A component did not come up; the message carries the end of its log."""


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, process: ManagedProcess | None = None, interval: float = 0.1
) -> None:
    """Poll `check` until it returns True; fail early with the log if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.running:
            raise StartupError(f"{process.name} exited while waiting for {what}:\n{process.log_tail()}")
        # Not being up yet is the expected failure while polling.
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    tail = process.log_tail() if process is not None else ""
    raise StartupError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
