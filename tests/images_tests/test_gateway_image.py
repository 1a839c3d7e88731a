"""The gateway image assembled on this machine: from a fresh cache it comes out byte for byte as the shared cache
has it (so reusing by content hash is sound), a second run reuses it, and run with its own entrypoint and env,
as uid 10001 under a read-only root, its Node is the pinned 24.x and OpenClaw reports the pinned release."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.image_description import load_gateway
from clawhost_localcluster.image_sandbox import UnpackedImage, run, unpack
from clawhost_localcluster.images import ensure_gateway_image
from clawhost_localcluster.oci import ImageArchive

pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def archive() -> ImageArchive:
    return ensure_gateway_image()  # the shared cache (~/.cache/clawhost): built once per machine


@pytest.fixture(scope="module")
def unpacked(archive: ImageArchive, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpackedImage]:
    root = tmp_path_factory.mktemp("gateway-rootfs")
    yield unpack(archive, root)
    shutil.rmtree(root)  # hundreds of MB: not left for pytest's last-three-runs retention


def test_a_fresh_cache_assembles_the_same_image_and_a_second_run_reuses_it(
    archive: ImageArchive, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fresh = ensure_gateway_image(tmp_path)
    assert "building node-" in capfd.readouterr().err  # really from nothing: Node fetched, OpenClaw installed
    assert (fresh.manifest_digest, fresh.reference) == (archive.manifest_digest, archive.reference)
    started = time.monotonic()
    again = ensure_gateway_image(tmp_path)
    assert "building" not in capfd.readouterr().err
    assert again.path == fresh.path
    assert time.monotonic() - started < 60
    shutil.rmtree(tmp_path)


def test_it_is_named_as_the_operators_deployment_names_it(archive: ImageArchive) -> None:
    assert archive.reference == f"docker.io/{load_gateway().reference}"


def test_its_config_is_the_descriptions(unpacked: UnpackedImage) -> None:
    description = load_gateway()
    assert unpacked.config["Entrypoint"] == description.entrypoint
    assert unpacked.config["Cmd"] == description.cmd
    assert unpacked.config["User"] == "10001:10001"
    assert unpacked.env == description.env
    assert (unpacked.root / "state").stat().st_uid == 10001
    assert (unpacked.root / "tmp").stat().st_mode & 0o7777 == 0o1777


def test_node_is_the_pinned_24(unpacked: UnpackedImage) -> None:
    result = run(unpacked, ["node", "-e", "console.log(process.version, require('os').userInfo().uid)"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"v{load_gateway().pins.node.version}", "10001"]


def test_openclaw_reports_the_pinned_release_through_the_entrypoint(unpacked: UnpackedImage) -> None:
    result = run(unpacked, unpacked.argv(["--version"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["OpenClaw", load_gateway().pins.openclaw]


def test_the_root_is_read_only_and_tmp_is_writable(unpacked: UnpackedImage) -> None:
    script = (
        "const fs=require('fs');fs.writeFileSync('/tmp/probe','x');"
        "try{fs.writeFileSync('/opt/probe','x');console.log('root writable')}catch(e){console.log(e.code)}"
    )
    result = run(unpacked, ["node", "-e", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "EROFS"


def test_only_the_state_directory_belongs_to_the_user(unpacked: UnpackedImage) -> None:
    owned = []
    for current, dirnames, filenames in os.walk(unpacked.root):
        for name in dirnames + filenames:
            path = Path(current) / name
            if path.lstat().st_uid != 0 or path.lstat().st_gid != 0:
                owned.append(str(path.relative_to(unpacked.root)))
    assert owned == ["state"]
