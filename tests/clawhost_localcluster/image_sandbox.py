"""Run a command from an image-layout tar without a container engine: its layers unpacked into a directory, then
the command started as the image's user with the image's environment, under a read-only root with fresh tmpfs
volumes (what the pods get), in private mount and PID namespaces. A quick check of an image's contents; the real
node runs the same tars through containerd."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clawhost_localcluster.oci import ImageArchive


class SandboxError(RuntimeError):
    """The image could not be unpacked or run; the message says why."""


@dataclass(frozen=True)
class UnpackedImage:
    root: Path
    config: Mapping[str, Any]  # the image config's `config` object (Entrypoint, Cmd, Env, User, WorkingDir)

    def _strings(self, key: str) -> list[str]:
        return [str(item) for item in self.config.get(key) or []]

    @property
    def env(self) -> dict[str, str]:
        pairs = [item.split("=", 1) for item in self._strings("Env")]
        return {key: value for key, value in pairs}

    def argv(self, args: Sequence[str] | None = None) -> list[str]:
        """The process a pod starts: the entrypoint followed by `args` (the pod's), else by the image's cmd."""
        return self._strings("Entrypoint") + (list(args) if args is not None else self._strings("Cmd"))


def unpack(archive: ImageArchive, target: Path) -> UnpackedImage:
    """Every layer of the archive's image, bottom-up, into `target` (owners and modes kept: run as root)."""
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)  # a container's / (a temporary directory is 0700: the user could not even look up /bin)
    with tarfile.open(archive.path) as layout:

        def blob(digest: str) -> bytes:
            member = layout.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            if member is None:
                raise SandboxError(f"{archive.path} has no blob {digest}")
            return member.read()

        manifest = json.loads(blob(archive.manifest_digest))
        config = json.loads(blob(manifest["config"]["digest"]))
    for layer in manifest["layers"]:
        # GNU tar, several times faster than tarfile on a 30,000-file layer.
        name = f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}"
        script = (
            f"tar -xOf {shlex.quote(str(archive.path))} {name} | tar -x --same-owner -p -C {shlex.quote(str(target))}"
        )
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {script}"], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SandboxError(f"unpacking {name} of {archive.path} failed: {result.stderr.strip()}")
    return UnpackedImage(target, config.get("config", {}))


def _command(
    image: UnpackedImage,
    argv: Sequence[str],
    writable: Sequence[str],
    mounts: Mapping[str, Path],
    extra_env: Mapping[str, str] | None,
    user: str | None,
) -> list[str]:
    if os.geteuid() != 0:
        raise SandboxError("running an image's rootfs needs root (mount and PID namespaces, chroot)")
    uid, _, gid = (user or str(image.config.get("User") or "0:0")).partition(":")
    gid = gid or uid
    root = image.root
    for name in ("proc", "dev", *(path.lstrip("/") for path in [*writable, *mounts])):
        (root / name).mkdir(parents=True, exist_ok=True)  # mount points, made before the root turns read-only
    q = shlex.quote

    def inside(path: str) -> str:
        return q(str(root / path.lstrip("/")))

    script = [
        "set -e",
        f"mount --bind {q(str(root))} {q(str(root))}",
        f"mount -o remount,ro,bind {q(str(root))}",
        f"mount -t proc proc {inside('proc')}",
        f"mount --rbind /dev {inside('dev')}",
        *(f"mount -t tmpfs -o mode=0755,uid={uid},gid={gid} tmpfs {inside(path)}" for path in writable),
        # Read-only, like a Secret volume.
        *(
            f"mount --bind {q(str(host))} {inside(path)} && mount -o remount,ro,bind {inside(path)}"
            for path, host in mounts.items()
        ),
    ]
    env = {**image.env, **(extra_env or {})}
    chrooted = [
        "env",
        "-i",
        *(f"{key}={value}" for key, value in env.items()),
        "/usr/sbin/chroot",
        f"--userspec={uid}:{gid}",
        "--groups=",
        str(root),
        *argv,
    ]
    script.append("exec " + " ".join(q(part) for part in chrooted))
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "sh",
        "-c",
        "\n".join(script),
    ]


def run(
    image: UnpackedImage,
    argv: Sequence[str],
    *,
    writable: Sequence[str] = ("/tmp",),
    mounts: Mapping[str, Path] | None = None,
    extra_env: Mapping[str, str] | None = None,
    user: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`argv` in the image as its user (or `user`, "uid:gid"), env = the image's + `extra_env`, root read-only,
    each path in `writable` a fresh tmpfs owned by that user, each of `mounts` (image path -> host directory)
    bound read-only; waits for it to exit."""
    command = _command(image, argv, writable, mounts or {}, extra_env, user)
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)


def start(
    image: UnpackedImage,
    argv: Sequence[str],
    log: Path,
    *,
    writable: Sequence[str] = ("/tmp",),
    mounts: Mapping[str, Path] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Like `run`, in the background, output to `log`; killing the returned process kills everything in it."""
    command = _command(image, argv, writable, mounts or {}, extra_env, None)
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
