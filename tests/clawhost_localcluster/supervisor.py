"""Keep the local platform's processes running, as a kubelet keeps a pod's containers: one that exits is started
again with the same command, after a pause that doubles while it keeps failing (clawhost_api.backoff's policy) and
resets once it has stayed up for a while; every exit and restart is logged with the exit code and the log's end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from clawhost_api.backoff import Backoff
from clawhost_localcluster.processes import ManagedProcess

# Up this long after a restart counts as healthy again: the next exit starts the pauses from the first.
STABLE_AFTER = 60.0
RESTART_BACKOFF = Backoff(first=1.0, limit=30.0)


def _log(message: str) -> None:
    print(f"[supervisor] {message}", file=sys.stderr, flush=True)


@dataclass
class _Watched:
    process: ManagedProcess
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None
    delays: Iterator[float] | None = None


@dataclass
class Supervisor:
    """Call `poll()` regularly; it restarts what exited (once its pause is over) and returns at once."""

    processes: Sequence[ManagedProcess]
    backoff: Backoff = RESTART_BACKOFF
    stable_after: float = STABLE_AFTER
    log: Callable[[str], None] = _log
    clock: Callable[[], float] = time.monotonic
    _watched: list[_Watched] = field(init=False)

    def __post_init__(self) -> None:
        self._watched = [_Watched(process, started_at=self.clock()) for process in self.processes]

    def restarts(self, name: str) -> int:
        return sum(w.restarts for w in self._watched if w.process.name == name)

    def poll(self) -> None:
        now = self.clock()
        for watched in self._watched:
            process = watched.process
            if process.running:
                if watched.delays is not None and now - watched.started_at >= self.stable_after:
                    watched.delays = None  # healthy again
                continue
            if watched.restart_at is None:
                if watched.delays is None:
                    watched.delays = self.backoff.delays()
                delay = next(watched.delays)
                watched.restart_at = now + delay
                code = process.popen.returncode if process.popen is not None else None
                tail = process.log_tail(800).strip().replace("\n", "\n    ")
                self.log(f"{process.name} exited (code {code}); restarting in {delay:.1f}s. Its log ends:\n    {tail}")
            elif now >= watched.restart_at:
                process.start()
                watched.restarts += 1
                watched.started_at = now
                watched.restart_at = None
                pid = process.popen.pid if process.popen is not None else "?"
                self.log(f"{process.name} restarted (pid {pid}, restart {watched.restarts})")
