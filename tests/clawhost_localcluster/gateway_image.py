"""The customer gateway image (images/gateway.json) assembled on this machine: Node 24 from npm, OpenClaw installed
with `npm ci` from the committed lock, Debian's tini-static and CA certificates, the libraries they load."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from clawhost_localcluster.build import BuildError, _run
from clawhost_localcluster.image_base import base_layer, image_config
from clawhost_localcluster.image_cache import cached_directory, log
from clawhost_localcluster.image_description import IMAGES_DIR, GatewayDescription
from clawhost_localcluster.oci import Image, Layer
from clawhost_localcluster.rootfs import RootfsError, debian_version, is_elf, library_closure
from clawhost_localcluster.versions import cache_root

TINI_STATIC = Path("/usr/bin/tini-static")
ENV_BINARY = Path("/usr/bin/env")  # openclaw.mjs starts with `#!/usr/bin/env node`
OPENCLAW_ROOT = "/opt/openclaw"


def _check_integrity(tarball: Path, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise BuildError(f"{tarball.name} does not match the integrity pinned in images/gateway.json ({integrity})")


def ensure_node(description: GatewayDescription, root: Path | None = None) -> Path:
    """The pinned Node release from npm (`bin/node`, stripped; `include/node` for native addons), checked against
    the pinned integrity; cached by version. Returns the package directory."""
    pin = description.pins.node
    target = (root or cache_root()) / f"node-{pin.version}-stripped"

    def fetch(scratch: Path) -> None:
        spec = f"{pin.npm_package}@{pin.version}"
        _run(
            f"node: npm pack {spec}",
            ["npm", "pack", spec, "--pack-destination", str(scratch)],
            scratch,
            _npm_env(None),
        )
        (tarball,) = scratch.glob("*.tgz")
        _check_integrity(tarball, pin.integrity)
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="tar")
        tarball.unlink()
        # The release ships its symbol tables (18 MB of 127); nixpkgs strips its nodejs the same way.
        _run("node: strip", ["strip", str(scratch / "package" / "bin" / "node")], scratch, dict(os.environ))

    package = cached_directory(target, fetch) / "package"
    found = subprocess.run([str(package / "bin" / "node"), "--version"], capture_output=True, text=True, check=True)
    if found.stdout.strip() != f"v{pin.version}":
        raise BuildError(f"{package}/bin/node reports {found.stdout.strip()}, expected v{pin.version}")
    return package


def _npm_env(node_package: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
            # importNpmLock (the Nix build) fetches by each package's `resolved` URL: keep them in the lock.
            "npm_config_omit_lockfile_registry_resolved": "false",
        }
    )
    if node_package is not None:
        # OpenClaw's preinstall checks the Node version; native addons build against this Node's headers.
        env["PATH"] = f"{node_package / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["npm_config_nodedir"] = str(node_package)
    return env


def npm_project_key(project: Path, node_version: str) -> str:
    digest = hashlib.sha256(node_version.encode() + b"\0")
    for name in ("package.json", "package-lock.json"):
        digest.update(name.encode() + b"\0" + (project / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure_openclaw(description: GatewayDescription, node_package: Path, root: Path | None = None) -> Path:
    """`npm ci` of images/<npmProject> under the pinned Node, cached by the hash of package.json, the lock and the
    Node version. Returns the installed `node_modules`."""
    project = IMAGES_DIR / description.npm_project
    if not (project / "package-lock.json").is_file():
        raise BuildError(f"{project}/package-lock.json is missing: run `npm install --package-lock-only` there")
    key = npm_project_key(project, description.pins.node.version)
    target = (root or cache_root()) / f"openclaw-{description.pins.openclaw}-{key}"

    def install(scratch: Path) -> None:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(project / name, scratch / name)
        env = _npm_env(node_package)
        _run("openclaw: npm ci (downloads ~200 MB the first time)", ["npm", "ci", "--omit=dev"], scratch, env)

    modules = cached_directory(target, install) / "node_modules"
    installed = (modules / "openclaw" / "package.json").read_text()
    if f'"version": "{description.pins.openclaw}"' not in installed:
        raise BuildError(f"{modules}/openclaw is not version {description.pins.openclaw}")
    return modules


def gateway_image(description: GatewayDescription, root: Path | None = None) -> Image:
    """The gateway image's layers, bottom-up: base (+ tini, env, the C libraries), Node, OpenClaw."""
    tini_version = debian_version("tini")
    if not tini_version.startswith(description.pins.tini):
        raise RootfsError(f"Debian's tini is {tini_version}; images/gateway.json pins {description.pins.tini}")
    node_package = ensure_node(description, root)
    modules = ensure_openclaw(description, node_package, root)
    node = node_package / "bin" / "node"

    base = base_layer(description)
    base.add_file("/usr/bin/tini", TINI_STATIC, mode=0o755)
    base.add_file("/usr/bin/env", ENV_BINARY, mode=0o755)
    addons = sorted(path for path in modules.rglob("*.node") if path.is_file() and is_elf(path))
    closure = library_closure([ENV_BINARY, node, *addons], provided_under=modules)
    # Addons for other C libraries (koffi's musl build) never load here: their missing libraries do not matter.
    required = {elf: names for elf, names in closure.missing.items() if "musl" not in str(elf)}
    if required:
        raise RootfsError(f"libraries not found on this machine: {required}")
    closure.add_to(base)

    runtime = Layer().add_file("/usr/bin/node", node, mode=0o755)
    application = Layer().add_tree(modules, f"{OPENCLAW_ROOT}/node_modules")
    application.add_symlink("/usr/bin/openclaw", f"{OPENCLAW_ROOT}/node_modules/openclaw/openclaw.mjs")
    log(f"gateway: {len(closure.libraries)} shared libraries, {len(addons)} native addons")
    return Image(description.reference, [base, runtime, application], image_config(description))
