"""Both images import into a real containerd (the harness's own instance) under the names the Deployments use and
run through runc with a read-only root and a tmpfs /tmp, as the image's user: the gateway's entrypoint prints the
pinned OpenClaw release, the platform's entrypoint starts the control API, which names its missing settings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from clawhost_localcluster.containerd import ContainerdLayout, ctr, start_containerd
from clawhost_localcluster.image_description import load_gateway, load_platform
from clawhost_localcluster.images import ensure_gateway_image, ensure_platform_image
from clawhost_localcluster.node_cleanup import unmount_under
from clawhost_localcluster.oci import import_image
from clawhost_localcluster.pause_image import PAUSE_IMAGE

pytestmark = [pytest.mark.node, pytest.mark.images, pytest.mark.timeout(900)]
TMPFS = "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:mode=1777"


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerdLayout]:
    root = tmp_path_factory.mktemp("images-containerd")
    layout = ContainerdLayout(root / "containerd")
    process = start_containerd(layout, "docker.io/" + PAUSE_IMAGE)
    try:
        yield layout
    finally:
        for task in ctr(layout, "tasks", "list", "--quiet", check=False).stdout.split():
            ctr(layout, "tasks", "kill", "--signal", "SIGKILL", task, check=False)
            ctr(layout, "tasks", "delete", "--force", task, check=False)
        for container in ctr(layout, "containers", "list", "--quiet", check=False).stdout.split():
            ctr(layout, "containers", "delete", container, check=False)
        process.stop()
        unmount_under(root)


def _run(layout: ContainerdLayout, reference: str, name: str, *argv: str) -> tuple[int, str, dict[str, object]]:
    """`argv` in a fresh container of the image (ctr's command replaces entrypoint and cmd alike, so callers spell
    the entrypoint out from the description); its exit code, output and the runtime spec containerd made."""
    created = ctr(layout, "run", "--read-only", "--mount", TMPFS, "--cgroup", "", reference, name, *argv, check=False)
    info = json.loads(ctr(layout, "containers", "info", name).stdout)
    ctr(layout, "containers", "delete", name, check=False)
    return created.returncode, created.stdout + created.stderr, info["Spec"]


def test_the_gateway_runs_from_containerd_as_the_deployment_names_it(containerd: ContainerdLayout) -> None:
    description = load_gateway()
    archive = ensure_gateway_image()
    import_image(archive, ctr="ctr", address=containerd.socket)
    assert archive.reference == f"docker.io/{description.reference}"
    code, output, spec = _run(containerd, archive.reference, "gateway-version", *description.entrypoint, "--version")
    assert code == 0, output
    assert output.split()[:2] == ["OpenClaw", description.pins.openclaw]
    process = spec["process"]
    assert isinstance(process, dict)
    assert (process["user"]["uid"], process["user"]["gid"]) == (10001, 10001)
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    node_check = "console.log(process.version)"
    code, output, _ = _run(containerd, archive.reference, "gateway-node", "node", "-e", node_check)
    assert code == 0, output
    assert output.strip() == f"v{description.pins.node.version}"


def test_the_platform_runs_from_containerd(containerd: ContainerdLayout) -> None:
    description = load_platform()
    archive = ensure_platform_image()
    import_image(archive, ctr="ctr", address=containerd.socket)
    assert archive.reference == f"docker.io/{description.reference}"
    argv = [*description.entrypoint, description.services["control-api"]]
    code, output, spec = _run(containerd, archive.reference, "platform-control-api", *argv)
    assert code == 2, output
    assert "CLAWHOST_API_DATABASE_URL" in output
    process = spec["process"]
    assert isinstance(process, dict)
    assert process["user"]["uid"] == 10001
