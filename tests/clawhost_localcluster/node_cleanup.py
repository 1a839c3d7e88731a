"""Undo what a real node leaves on the machine: mounts under its work directory (more to come with the node)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_MNT_DETACH = 2


def _unescape(field: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (the order to unmount them in)."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda path: len(path.parts), reverse=True)


def unmount_under(root: Path) -> list[Path]:
    """Lazily unmount everything at or below `root` (containers' rootfs, pods' volumes, netns binds)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    done = []
    for point in mounts_under(root):
        if libc.umount2(os.fsencode(point), _MNT_DETACH) == 0:
            done.append(point)
    return done
