"""The platform image (images/platform.json) assembled on this machine: Debian's Python interpreter and standard
library (no Python download works here), the locked runtime dependencies from uv.lock installed as wheels, and the
services' own packages; every module precompiled, because the root filesystem is read-only at run time."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from clawhost_localcluster.build import BuildError, _run
from clawhost_localcluster.image_base import base_layer, image_config
from clawhost_localcluster.image_cache import cached_directory, log
from clawhost_localcluster.image_description import REPO, PlatformDescription
from clawhost_localcluster.oci import Image, Layer
from clawhost_localcluster.rootfs import RootfsError, debian_package_files, debian_version, is_elf, library_closure
from clawhost_localcluster.versions import cache_root

# Where uv.lock's packages and the services' sources land: the description's PYTHONPATH names it.
APP_ROOT = "/app"
_SKIPPED_PREFIXES = ("/usr/share/", "/usr/lib/binfmt.d/")


def _python_packages(version: str) -> list[str]:
    return [f"python{version}-minimal", f"libpython{version}-minimal", f"libpython{version}-stdlib"]


def _interpreter(version: str) -> Path:
    binary = Path(f"/usr/bin/python{version}")
    if not binary.is_file():
        raise RootfsError(f"{binary} is missing: install Debian's python{version} (make apt)")
    return binary


def _compile(directory: Path, interpreter: Path, prefix: str) -> None:
    # Hash-checked-free .pyc files: the image's files all have mtime 0, so timestamp .pycs would always look stale,
    # and a read-only root could not store fresh ones (PYTHONDONTWRITEBYTECODE).
    _run(
        f"compile {prefix}",
        [
            str(interpreter),
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(directory),
            "-p",
            prefix,
            str(directory),
        ],
        directory,
        dict(os.environ),
    )


def ensure_python_tree(description: PlatformDescription, root: Path | None = None) -> Path:
    """Debian's interpreter and standard library as a tree rooted at `/` (usr/bin/python3.X, usr/lib/python3.X,
    etc/python3.X), cached by the Debian packages' versions."""
    version = description.pins.python
    packages = _python_packages(version)
    versions = ",".join(f"{package}={debian_version(package)}" for package in packages)
    key = hashlib.sha256(versions.encode()).hexdigest()[:16]
    target = (root or cache_root()) / f"python-{version}-debian-{key}"
    interpreter = _interpreter(version)

    def stage(scratch: Path) -> None:
        tree = scratch / "root"
        for package in packages:
            for host in debian_package_files(package):
                image_path = str(host)
                if image_path.startswith(_SKIPPED_PREFIXES):
                    continue
                staged = tree / image_path.lstrip("/")
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(host, staged, follow_symlinks=False)
        for alias in ("python3", "python"):
            (tree / "usr" / "bin" / alias).symlink_to(f"python{version}")
        _compile(tree / "usr" / "lib" / f"python{version}", interpreter, f"/usr/lib/python{version}")

    return cached_directory(target, stage) / "root"


def locked_requirements_key(description: PlatformDescription) -> str:
    digest = hashlib.sha256(description.pins.python.encode() + b"\0")
    for name in (description.pins.lock, "pyproject.toml"):
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    digest.update(",".join(description.pins.dependency_groups).encode())
    return digest.hexdigest()[:16]


def ensure_dependencies(description: PlatformDescription, root: Path | None = None) -> Path:
    """uv.lock's runtime packages (no dev group), installed as wheels with their hashes checked, for the image's
    interpreter; cached by the hash of the lock and pyproject.toml."""
    uv = shutil.which("uv")
    if uv is None:
        raise BuildError("uv is not on PATH (make python installs it)")
    interpreter = _interpreter(description.pins.python)
    target = (root or cache_root()) / f"platform-deps-{locked_requirements_key(description)}"

    def install(scratch: Path) -> None:
        requirements = scratch / "requirements.txt"
        groups = [arg for group in description.pins.dependency_groups for arg in ("--group", group)]
        env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
        _run(
            "platform: export uv.lock's runtime packages",
            [uv, "export", "--frozen", "--no-dev", *groups, "--no-emit-project", "--quiet", "-o", str(requirements)],
            REPO,
            env,
        )
        _run(
            "platform: install the locked wheels",
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-build",
                "--require-hashes",
                "--no-deps",
                "--python",
                str(interpreter),
                "--target",
                str(scratch / "site"),
                "-r",
                str(requirements),
            ],
            scratch,
            env,
        )
        _compile(scratch / "site", interpreter, APP_ROOT)
        requirements.unlink()

    return cached_directory(target, install) / "site"


def _source_files(description: PlatformDescription) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for package, folder in sorted(description.sources.items()):
        source = REPO / folder
        if not (source / "__init__.py").is_file():
            raise BuildError(f"{source} is not a Python package (images/platform.json names it for {package})")
        for path in sorted(source.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append((f"{package}/{path.relative_to(source).as_posix()}", path))
    return files


def ensure_sources(description: PlatformDescription, root: Path | None = None) -> Path:
    """The services' own packages, precompiled, cached by the hash of their files."""
    files = _source_files(description)
    digest = hashlib.sha256(description.pins.python.encode())
    for relative, path in files:
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    target = (root or cache_root()) / f"platform-sources-{digest.hexdigest()[:16]}"

    def stage(scratch: Path) -> None:
        tree = scratch / "app"
        for relative, path in files:
            (tree / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, tree / relative)
        _compile(tree, _interpreter(description.pins.python), APP_ROOT)

    return cached_directory(target, stage) / "app"


def platform_image(description: PlatformDescription, root: Path | None = None) -> Image:
    """The platform image's layers, bottom-up: base (+ the C libraries), Python, locked packages, our sources."""
    python_tree = ensure_python_tree(description, root)
    dependencies = ensure_dependencies(description, root)
    sources = ensure_sources(description, root)

    base = base_layer(description)
    elves = [path for tree in (python_tree, dependencies) for path in tree.rglob("*.so*") if is_elf(path)]
    interpreter = python_tree / "usr" / "bin" / f"python{description.pins.python}"
    closure = library_closure([interpreter, *elves], provided_under=dependencies)
    if closure.missing:
        raise RootfsError(f"libraries not found on this machine: {closure.missing}")
    closure.add_to(base)

    python = Layer().add_tree(python_tree / "usr", "/usr")
    for etc in sorted((python_tree / "etc").iterdir()):
        python.add_tree(etc, f"/etc/{etc.name}")
    packages = Layer().add_tree(dependencies, APP_ROOT)
    application = Layer().add_tree(sources, APP_ROOT)
    log(f"platform: {len(closure.libraries)} shared libraries, {len(elves)} extension modules")
    return Image(description.reference, [base, python, packages, application], image_config(description))
