"""The OCI image-layout writer: byte-identical tars for identical descriptions, reuse of cached tars, the layout
containerd imports (checked member by member), and clear refusals of bad descriptions."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from clawhost_localcluster.oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    Image,
    ImageConfig,
    ImageError,
    Layer,
    normalize_reference,
    write_image,
)


def _tree(root: Path) -> Path:
    (root / "app" / "lib").mkdir(parents=True)
    (root / "app" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "app" / "run.sh").chmod(0o700)
    (root / "app" / "lib" / "data.txt").write_text("payload")
    (root / "app" / "current").symlink_to("lib")
    return root / "app"


def _image(tree: Path, *, uid: int = 10001, env: str = "1") -> Image:
    base = Layer().add_file("/etc/passwd", b"root:x:0:0::/:/sbin/nologin\n").add_directory("/tmp", mode=0o1777)
    app = Layer().add_tree(tree, "/opt/app", uid=uid, gid=uid)
    config = ImageConfig(entrypoint=["/opt/app/run.sh"], env={"MODE": env}, user=f"{uid}:{uid}")
    return Image("clawhost/test:7", [base, app], config)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        out = {}
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            out[member.name] = handle.read() if handle else b""
        return out


def test_same_description_same_bytes_and_cached_tar_reused(tmp_path: Path) -> None:
    first = write_image(_image(_tree(tmp_path / "a")), tmp_path / "cache-a")
    second = write_image(_image(_tree(tmp_path / "b")), tmp_path / "cache-b")
    assert first.manifest_digest == second.manifest_digest
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.path.name == second.path.name

    written = first.path.stat()
    again = write_image(_image(_tree(tmp_path / "c")), tmp_path / "cache-a")
    assert again == first
    assert (again.path.stat().st_ino, again.path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


@pytest.mark.parametrize("change", ["uid", "env", "content"])
def test_any_change_gives_another_digest(tmp_path: Path, change: str) -> None:
    tree = _tree(tmp_path / "a")
    baseline = write_image(_image(tree), tmp_path / "cache")
    if change == "content":
        (tree / "lib" / "data.txt").write_text("payload2")
        changed = write_image(_image(tree), tmp_path / "cache")
    else:
        changed = write_image(_image(tree, **{change: 10002 if change == "uid" else "2"}), tmp_path / "cache")  # type: ignore[arg-type]
    assert changed.manifest_digest != baseline.manifest_digest
    assert changed.path != baseline.path


def test_layout_is_what_containerd_imports(tmp_path: Path) -> None:
    archive = write_image(_image(_tree(tmp_path / "a")), tmp_path / "cache")
    assert archive.reference == "docker.io/clawhost/test:7"
    members = _members(archive.path)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in members.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name
    (descriptor,) = json.loads(members["index.json"])["manifests"]
    assert descriptor["digest"] == archive.manifest_digest
    assert descriptor["annotations"] == {
        ANNOTATION_CONTAINERD_NAME: "docker.io/clawhost/test:7",
        ANNOTATION_REF_NAME: "7",
    }
    manifest = json.loads(members["blobs/sha256/" + archive.manifest_digest.removeprefix("sha256:")])
    config = json.loads(members["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")])
    assert config["config"] == {"Entrypoint": ["/opt/app/run.sh"], "Env": ["MODE=1"], "User": "10001:10001"}
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]

    app_layer = tmp_path / "app-layer.tar"
    app_layer.write_bytes(members["blobs/sha256/" + manifest["layers"][1]["digest"].removeprefix("sha256:")])
    with tarfile.open(app_layer) as layer:
        entries = {m.name: m for m in layer.getmembers()}
    assert list(entries) == sorted(entries)
    assert (entries["opt"].uid, entries["opt"].isdir()) == (0, True)  # parents made for the tree, owned by root
    script = entries["opt/app/run.sh"]
    assert (script.mode, script.uid, script.gid, script.mtime, script.uname) == (0o755, 10001, 10001, 0, "")
    assert entries["opt/app/lib/data.txt"].mode == 0o644
    assert (entries["opt/app/current"].issym(), entries["opt/app/current"].linkname) == (True, "lib")

    base_layer = members["blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")]
    (tmp_path / "base.tar").write_bytes(base_layer)
    with tarfile.open(tmp_path / "base.tar") as layer:
        assert layer.getmember("tmp").mode == 0o1777


def test_bad_descriptions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a usable path"):
        Layer().add_file("/../etc/shadow", b"x")
    with pytest.raises(ImageError, match="is not a directory"):
        Layer().add_tree(tmp_path / "missing", "/opt")
    with pytest.raises(ImageError, match="is not a regular file"):
        Layer().add_file("/bin/x", tmp_path)
    with pytest.raises(ImageError, match="needs 'bin' to be a directory"):
        Layer().add_file("/bin", b"x").add_file("/bin/sh", b"y")
    with pytest.raises(ImageError, match="at least one layer"):
        write_image(Image("clawhost/empty:1", []), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("clawhost/pause:1", "docker.io/clawhost/pause:1"),
        ("clawhost/openclaw-gateway:2026.9.6", "docker.io/clawhost/openclaw-gateway:2026.9.6"),
        ("localhost:5000/x/y", "localhost:5000/x/y:latest"),
        ("ghcr.io/a/b:v1", "ghcr.io/a/b:v1"),
    ],
)
def test_references_normalized_as_the_kubelet_names_them(given: str, normalized: str) -> None:
    assert normalize_reference(given) == normalized


@pytest.mark.parametrize("bad", ["", "Clawhost/x:1", "a b:1", ":tag"])
def test_bad_references_are_refused(bad: str) -> None:
    with pytest.raises(ImageError):
        normalize_reference(bad)
