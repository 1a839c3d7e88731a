"""What an image's root filesystem takes from this Debian machine: the shared libraries its ELF files load (found
with ldd), a Debian package's files (found with dpkg), and the merged-/usr links Debian's own root has."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from clawhost_localcluster.oci import Layer

# Debian 12 keeps everything under /usr; the top-level names are links, so an ELF's interpreter path
# (/lib64/ld-linux-x86-64.so.2) and the library paths ld.so searches resolve the same inside the image.
MERGED_USR_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
_LDD_LINE = re.compile(r"^\s*(?P<name>\S+)(?:\s+=>\s+(?P<path>\S+|not found))?(?:\s+\(0x[0-9a-f]+\))?\s*$")


class RootfsError(RuntimeError):
    """Something an image needs is missing on this machine; the message says what and how to get it."""


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def image_path_of_host_file(host: Path) -> str:
    """Where a host file lands in the image: its directory resolved (so /lib/x86_64-linux-gnu becomes
    /usr/lib/x86_64-linux-gnu), its own name kept (a library is found by its soname, often a link)."""
    return str(Path(os.path.realpath(host.parent)) / host.name)


@dataclass
class LibraryClosure:
    """Host libraries an image needs (image path -> host file) and the names ldd could not find."""

    libraries: dict[str, Path] = field(default_factory=dict)
    missing: dict[Path, list[str]] = field(default_factory=dict)

    def add_to(self, layer: Layer) -> None:
        for image_path, host in sorted(self.libraries.items()):
            layer.add_file(image_path, Path(os.path.realpath(host)), mode=0o755)


def library_closure(elves: Iterable[Path], *, provided_under: Path | None = None) -> LibraryClosure:
    """Every shared library the given ELF files load (ldd lists the whole closure), with the dynamic loader.
    Libraries that resolve under `provided_under` ship with the files themselves (a wheel's .libs) and are left out."""
    closure = LibraryClosure()
    for elf in elves:
        result = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False)
        if result.returncode != 0 or "not a dynamic executable" in result.stdout + result.stderr:
            continue  # static (tini-static) or not loadable here: nothing to add
        for line in result.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if match is None:
                continue
            name, resolved = match.group("name"), match.group("path")
            if resolved == "not found":
                closure.missing.setdefault(elf, []).append(name)
                continue
            host = Path(resolved or name)
            if not host.is_absolute():
                continue  # linux-vdso.so.1: the kernel's
            if provided_under is not None and Path(os.path.realpath(host)).is_relative_to(provided_under):
                continue
            closure.libraries[image_path_of_host_file(host)] = host
    return closure


def debian_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout:
        raise RootfsError(f"the Debian package {package} is not installed (make apt installs it)")
    return result.stdout


def debian_package_files(package: str) -> list[Path]:
    """The regular files and symlinks a Debian package installed (its directories are implied)."""
    debian_version(package)
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    paths = [Path(line) for line in listed.splitlines() if line.startswith("/")]
    return [path for path in paths if path.is_symlink() or path.is_file()]


def add_merged_usr_links(layer: Layer) -> None:
    for name, target in MERGED_USR_LINKS.items():
        layer.add_directory(f"/{target}")
        layer.add_symlink(f"/{name}", target)
