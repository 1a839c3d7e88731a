"""The control API as a real process (what its Deployment runs), for tests that measure the process itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clawhost_localcluster.processes import ManagedProcess


@dataclass
class ControlApiProcess:
    """`python -m clawhost_control_api` as the Deployment runs it: a real process, settings from its environment."""

    port: int
    metrics_port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid

    def memory_kib(self, field: str) -> int:
        """A line of /proc/<pid>/status in KiB: VmRSS (now) or VmHWM (the peak so far)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")


StartApi = Callable[..., ControlApiProcess]  # keyword arguments: extra CLAWHOST_API_* settings
