"""Cache entries for image inputs (a Node release, an npm install, a Python tree): built in a scratch directory,
renamed into place only when complete, under a lock so two runs never build the same entry at once."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clawhost_localcluster.build import _locked


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def cached_directory(target: Path, fill: Callable[[Path], None]) -> Path:
    """`target`, filled once by `fill(scratch)`; later calls (and other processes) reuse it."""
    if target.is_dir():
        return target
    with _locked(target.with_name(target.name + ".lock")):
        if target.is_dir():
            return target
        scratch = target.with_name(target.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.monotonic()
        log(f"building {target.name} (one-off; cached in {target})")
        fill(scratch)
        scratch.rename(target)
        log(f"built {target.name} in {time.monotonic() - started:.0f}s")
    return target
