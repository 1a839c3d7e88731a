"""The platform image assembled on this machine: Debian's Python 3.11 with uv.lock's runtime packages and the
services' own, byte for byte the same from a fresh cache, reused on a second run; every service's module loads as
uid 10001 under a read-only root with only /tmp writable, and the token proxy from the image turns ready against
the real API server and Redis."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.environment import Cluster
from clawhost_localcluster.fake_kimi import UPSTREAM_KEY
from clawhost_localcluster.image_description import load_platform
from clawhost_localcluster.image_sandbox import UnpackedImage, run, start, unpack
from clawhost_localcluster.images import ensure_platform_image
from clawhost_localcluster.oci import ImageArchive
from clawhost_localcluster.processes import free_port
from clawhost_localcluster.proxy_process import proxy_kubeconfig
from clawhost_localcluster.services import RedisServer
from clawhost_localcluster.waiting import eventually

pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def archive() -> ImageArchive:
    return ensure_platform_image()


@pytest.fixture(scope="module")
def unpacked(archive: ImageArchive, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpackedImage]:
    root = tmp_path_factory.mktemp("platform-rootfs")
    yield unpack(archive, root)
    shutil.rmtree(root)  # hundreds of MB: not left for pytest's last-three-runs retention


def test_a_fresh_cache_assembles_the_same_image_and_a_second_run_reuses_it(
    archive: ImageArchive, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fresh = ensure_platform_image(tmp_path)
    assert "building platform-deps-" in capfd.readouterr().err
    assert (fresh.manifest_digest, fresh.reference) == (archive.manifest_digest, archive.reference)
    started = time.monotonic()
    again = ensure_platform_image(tmp_path)
    assert "building" not in capfd.readouterr().err
    assert again.path == fresh.path
    assert time.monotonic() - started < 60
    shutil.rmtree(tmp_path)


def test_its_config_is_the_descriptions(archive: ImageArchive, unpacked: UnpackedImage) -> None:
    description = load_platform()
    assert archive.reference == f"docker.io/{description.reference}"
    assert unpacked.config["Entrypoint"] == description.entrypoint
    assert unpacked.config["User"] == "10001:10001"
    assert unpacked.env == description.env


def test_python_is_debians_and_writes_nothing(unpacked: UnpackedImage) -> None:
    script = "import sys; print(sys.version_info[:2] == (3, 11), sys.flags.dont_write_bytecode, sys.prefix)"
    result = run(unpacked, ["/bin/python3", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "1", "/usr"]


@pytest.mark.parametrize("service", sorted(load_platform().services))
def test_each_services_module_loads_as_the_user_under_a_read_only_root(unpacked: UnpackedImage, service: str) -> None:
    module = load_platform().services[service]
    script = (
        f"import os, {module}.__main__ as entry; "
        "assert callable(entry.main); "
        "open('/tmp/probe', 'w').write('x'); "
        "print(os.getuid(), os.access('/app', os.W_OK), entry.__cached__ is not None)"
    )
    result = run(unpacked, ["/bin/python3", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10001", "False", "True"]


def test_the_control_api_from_the_entrypoint_names_its_missing_settings(unpacked: UnpackedImage) -> None:
    result = run(unpacked, unpacked.argv(["clawhost_control_api"]))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CLAWHOST_API_DATABASE_URL" in result.stdout + result.stderr


@pytest.mark.cluster
def test_the_token_proxy_from_the_image_turns_ready(
    unpacked: UnpackedImage, platform_installed: Cluster, redis_server: RedisServer, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    proxy_kubeconfig(platform_installed, secrets)
    (secrets / "api-key").write_text(UPSTREAM_KEY)
    secrets.chmod(0o755)
    for path in secrets.iterdir():
        path.chmod(0o644)
    port, admin_port = free_port(), free_port()
    process = start(
        unpacked,
        unpacked.argv(["clawhost_proxy"]),
        tmp_path / "proxy.log",
        mounts={"/var/run/secrets/clawhost": secrets},
        extra_env={
            "CLAWHOST_PROXY_HOST": "127.0.0.1",
            "CLAWHOST_PROXY_PORT": str(port),
            "CLAWHOST_PROXY_ADMIN_PORT": str(admin_port),
            "CLAWHOST_PROXY_KUBECONFIG": "/var/run/secrets/clawhost/proxy.kubeconfig",
            "CLAWHOST_PROXY_UPSTREAM_API_KEY_FILE": "/var/run/secrets/clawhost/api-key",
            "CLAWHOST_PROXY_REDIS_URL": redis_server.url,
        },
    )
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the proxy exited: {(tmp_path / 'proxy.log').read_text()[-2000:]}")
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=2) as response:
                return bool(response.status == 200)

        eventually(ready, timeout=60, what="the proxy from the image to be ready")
    finally:
        process.kill()
        process.wait(timeout=10)
