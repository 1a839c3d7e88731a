"""Images written by the OCI writer import into a real containerd under their exact name and run: the pause image
starts, stays up, and exits 0 on SIGTERM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawhost_localcluster.containerd import ContainerdLayout, ctr, remove_socket_dir, start_containerd
from clawhost_localcluster.node_cleanup import unmount_under
from clawhost_localcluster.oci import import_image
from clawhost_localcluster.pause_image import PAUSE_IMAGE, pause_image
from clawhost_localcluster.waiting import eventually

pytestmark = pytest.mark.node


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[ContainerdLayout]:
    layout = ContainerdLayout(tmp_path / "containerd")
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
        unmount_under(tmp_path)
        remove_socket_dir(layout)


def test_pause_image_imports_under_its_name_and_runs(containerd: ContainerdLayout) -> None:
    archive = pause_image()
    import_image(archive, ctr="ctr", address=containerd.socket)
    listed = ctr(containerd, "images", "list").stdout
    assert f"docker.io/{PAUSE_IMAGE} " in listed
    assert archive.manifest_digest in listed

    ctr(containerd, "run", "--detach", f"docker.io/{PAUSE_IMAGE}", "pause-check")

    def status() -> str:
        rows = ctr(containerd, "tasks", "list").stdout.splitlines()[1:]
        return next(row.split()[2] for row in rows if row.split()[0] == "pause-check")

    eventually(lambda: status() == "RUNNING", timeout=20, what="the pause task running")

    def terminated() -> bool:
        # A signal that lands before the Go runtime set up its handlers is dropped (PID 1 has no default
        # actions), as in any pause image; so SIGTERM is sent until the task stops.
        if status() == "RUNNING":
            ctr(containerd, "tasks", "kill", "--signal", "SIGTERM", "pause-check", check=False)
        return status() == "STOPPED"

    eventually(terminated, timeout=20, interval=0.5, what="the pause task stopped by SIGTERM")
    info = json.loads(ctr(containerd, "containers", "info", "pause-check").stdout)
    assert info["Image"] == f"docker.io/{PAUSE_IMAGE}"
    user = info["Spec"]["process"]["user"]
    assert (user["uid"], user["gid"]) == (65535, 65535)
    # PID 1 of a PID namespace ignores signals it does not handle, so STOPPED shows pause handles SIGTERM.
    assert ctr(containerd, "tasks", "delete", "pause-check").returncode == 0
