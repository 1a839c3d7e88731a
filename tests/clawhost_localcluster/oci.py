"""Write OCI images as image-layout tars without a registry or a container engine, and import them into containerd.

An image is described by its layers (files, directories and symlinks with their owner and mode) and its config
(entrypoint, command, environment, user). Everything that reaches the tar is fixed by that description: entries
sorted by path, modification times zero, no user or group names, no creation date. The same description therefore
gives the same layer, config and manifest digests on any machine, and `write_image` keys its cache by a hash of the
description (file contents included), so a second call with the same inputs reuses the tar without writing it.
Layers are stored uncompressed: the tar only ever travels to the local containerd, and gzip would cost more time
than the bytes it saves.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

OCI_LAYOUT_VERSION = "1.0.0"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
# containerd's import takes the image's full name from this annotation; the OCI one carries the tag alone.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# Bump when the bytes this module writes change for the same description, so stale cached tars are not reused.
_FORMAT_REVISION = "1"
_CHUNK = 1 << 20

EntryKind = Literal["file", "dir", "symlink"]


class ImageError(ValueError):
    """An image description that cannot be written, or an import containerd refused; the message says which."""


@dataclass(frozen=True)
class Entry:
    """One path in a layer. A file's bytes come from `data` or from the file at `source`."""

    path: str
    kind: EntryKind
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes | None = None
    source: Path | None = None
    link_target: str = ""

    def content_digest(self) -> str:
        digest = hashlib.sha256()
        if self.data is not None:
            digest.update(self.data)
        elif self.source is not None:
            with self.source.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
        return digest.hexdigest()

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.source is not None:
            return self.source.stat().st_size
        return 0


def _image_path(path: str) -> str:
    """The layer-relative form of an absolute in-image path ("/bin/sh" -> "bin/sh"); refuses escapes."""
    pure = PurePosixPath("/") / path
    parts = [part for part in pure.parts[1:] if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ImageError(f"not a usable path inside an image: {path!r}")
    return "/".join(parts)


@dataclass
class Layer:
    """A filesystem layer built up from files, directories, symlinks and whole host directory trees."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def _put(self, entry: Entry) -> None:
        parent = PurePosixPath(entry.path).parent
        while str(parent) != ".":
            key = str(parent)
            if key not in self.entries:
                self.entries[key] = Entry(key, "dir", 0o755)
            elif self.entries[key].kind != "dir":
                raise ImageError(
                    f"{entry.path!r} needs {key!r} to be a directory, but it is a {self.entries[key].kind}"
                )
            parent = parent.parent
        self.entries[entry.path] = entry

    def add_file(self, path: str, content: bytes | Path, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Layer:
        """A regular file at `path` holding `content` (bytes, or the bytes of a host file)."""
        if isinstance(content, Path) and not content.is_file():
            raise ImageError(f"{content} is not a regular file (wanted for {path!r})")
        data = content if isinstance(content, bytes) else None
        source = content if isinstance(content, Path) else None
        self._put(Entry(_image_path(path), "file", mode, uid, gid, data=data, source=source))
        return self

    def add_directory(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        self._put(Entry(_image_path(path), "dir", mode, uid, gid))
        return self

    def add_symlink(self, path: str, target: str, *, uid: int = 0, gid: int = 0) -> Layer:
        self._put(Entry(_image_path(path), "symlink", 0o777, uid, gid, link_target=target))
        return self

    def add_tree(
        self,
        source: Path,
        path: str,
        *,
        uid: int = 0,
        gid: int = 0,
        file_mode: int | None = None,
        dir_mode: int = 0o755,
    ) -> Layer:
        """Copy the host directory `source` to `path`: files keep their executable bit (0755 or 0644) unless
        `file_mode` is given, symlinks stay symlinks, and every entry gets `uid`/`gid`."""
        if not source.is_dir():
            raise ImageError(f"{source} is not a directory (wanted for {path!r})")
        root = _image_path(path)
        self._put(Entry(root, "dir", dir_mode, uid, gid))
        for current, dirnames, filenames in os.walk(source):
            dirnames.sort()
            here = Path(current)
            relative = here.relative_to(source)
            prefix = root if str(relative) == "." else f"{root}/{relative.as_posix()}"
            for name in dirnames + sorted(filenames):
                host = here / name
                target = f"{prefix}/{name}"
                info = host.lstat()
                if stat.S_ISLNK(info.st_mode):
                    self._put(Entry(target, "symlink", 0o777, uid, gid, link_target=os.readlink(host)))
                elif stat.S_ISDIR(info.st_mode):
                    self._put(Entry(target, "dir", dir_mode, uid, gid))
                elif stat.S_ISREG(info.st_mode):
                    mode = file_mode if file_mode is not None else (0o755 if info.st_mode & 0o111 else 0o644)
                    self._put(Entry(target, "file", mode, uid, gid, source=host))
                else:
                    raise ImageError(f"{host} is neither a file, a directory nor a symlink")
            # os.walk does not descend into symlinked directories, which the loop above already kept as links.
        return self

    def sorted_entries(self) -> list[Entry]:
        return [self.entries[key] for key in sorted(self.entries)]


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (what `docker inspect` shows under Config)."""

    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    working_dir: str = ""
    exposed_ports: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {}
        if self.entrypoint:
            body["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            body["Cmd"] = list(self.cmd)
        if self.env:
            body["Env"] = [f"{key}={value}" for key, value in self.env.items()]
        if self.user:
            body["User"] = self.user
        if self.working_dir:
            body["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            body["ExposedPorts"] = {port: {} for port in sorted(self.exposed_ports)}
        if self.labels:
            body["Labels"] = dict(sorted(self.labels.items()))
        return body


@dataclass(frozen=True)
class Image:
    """An image to write: its reference (`name:tag`), layers bottom-up, and config."""

    reference: str
    layers: Sequence[Layer]
    config: ImageConfig = ImageConfig()


@dataclass(frozen=True)
class ImageArchive:
    """A written image-layout tar: its path, the fully qualified reference it imports as, and its digests."""

    path: Path
    reference: str
    manifest_digest: str
    config_digest: str


def normalize_reference(reference: str) -> str:
    """The name containerd and the kubelet use for a reference: `clawhost/pause:1` -> `docker.io/clawhost/pause:1`."""
    if not reference or reference != reference.strip() or any(c.isspace() for c in reference):
        raise ImageError(f"not an image reference: {reference!r}")
    name, digest_sep, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
    else:
        repository, tag = name, ""
    if not repository or repository != repository.lower():
        raise ImageError(f"an image repository is lowercase and not empty: {reference!r}")
    first = repository.split("/", 1)[0]
    if "/" not in repository:
        repository = f"docker.io/library/{repository}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repository = f"docker.io/{repository}"
    if digest_sep:
        return f"{repository}{':' + tag if tag else ''}@{digest}"
    return f"{repository}:{tag or 'latest'}"


class _HashingWriter(io.RawIOBase):
    """Writes through to a file while hashing and counting what passes."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self._target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self._target.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


def _tar_info(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mode = entry.mode
    info.uid = entry.uid
    info.gid = entry.gid
    info.uname = ""
    info.gname = ""
    info.mtime = 0
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
    else:
        info.type = tarfile.REGTYPE
        info.size = entry.size()
    return info


def _open_content(entry: Entry) -> BinaryIO:
    if entry.data is not None:
        return io.BytesIO(entry.data)
    assert entry.source is not None  # a file entry has one or the other
    return entry.source.open("rb")


def _write_layer(layer: Layer, target: Path) -> tuple[str, int]:
    """Write the layer tar to `target`; its sha256 (layers are uncompressed, so digest == diff id) and size."""
    with target.open("wb") as handle:
        writer = _HashingWriter(handle)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for entry in layer.sorted_entries():
                info = _tar_info(entry)
                if entry.kind == "file":
                    with _open_content(entry) as content:
                        archive.addfile(info, content)
                        if info.size != entry.size():
                            raise ImageError(f"{entry.source} changed while the image was written")
                else:
                    archive.addfile(info)
    return "sha256:" + writer.digest.hexdigest(), writer.size


def _canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def description_key(image: Image) -> str:
    """A hash of everything that decides the tar's bytes; equal keys mean byte-identical tars."""
    digest = hashlib.sha256()
    digest.update(_canonical({"format": _FORMAT_REVISION, "reference": normalize_reference(image.reference)}))
    digest.update(_canonical(image.config.as_json()))
    for index, layer in enumerate(image.layers):
        digest.update(f"layer {index}\n".encode())
        for entry in layer.sorted_entries():
            content = entry.content_digest() if entry.kind == "file" else ""
            line = [entry.path, entry.kind, entry.mode, entry.uid, entry.gid, entry.link_target, content]
            digest.update(_canonical(line) + b"\n")
    return digest.hexdigest()


def _blob_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    archive.addfile(_blob_info(name, len(data)), io.BytesIO(data))


def _assemble(image: Image, reference: str, target: Path, scratch: Path) -> tuple[str, str]:
    layer_descriptors: list[dict[str, object]] = []
    layer_files: list[tuple[str, Path]] = []
    for index, layer in enumerate(image.layers):
        path = scratch / f"layer-{index}.tar"
        digest, size = _write_layer(layer, path)
        layer_descriptors.append({"mediaType": MEDIA_LAYER, "digest": digest, "size": size})
        layer_files.append((digest, path))
    config = _canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": image.config.as_json(),
            "rootfs": {"type": "layers", "diff_ids": [str(d["digest"]) for d in layer_descriptors]},
        }
    )
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layer_descriptors,
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    tag = reference.rsplit(":", 1)[1] if "@" not in reference else ""
    annotations = {ANNOTATION_CONTAINERD_NAME: reference}
    if tag:
        annotations[ANNOTATION_REF_NAME] = tag
    index_json = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": annotations,
                }
            ],
        }
    )
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", _canonical({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
        _add_bytes(archive, "index.json", index_json)
        seen: set[str] = set()
        blobs: list[tuple[str, bytes | Path]] = [(config_digest, config), (manifest_digest, manifest)]
        blobs += list(layer_files)
        for digest, blob in blobs:
            if digest in seen:
                continue
            seen.add(digest)
            name = "blobs/sha256/" + digest.removeprefix("sha256:")
            if isinstance(blob, bytes):
                _add_bytes(archive, name, blob)
            else:
                with blob.open("rb") as handle:
                    archive.addfile(_blob_info(name, blob.stat().st_size), handle)
    return manifest_digest, config_digest


def write_image(image: Image, directory: Path) -> ImageArchive:
    """The image as an OCI image-layout tar in `directory`, named by its description's hash; reused when present."""
    if not image.layers:
        raise ImageError(f"{image.reference}: an image needs at least one layer")
    reference = normalize_reference(image.reference)
    key = description_key(image)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{key}.tar"
    digests = directory / f"{key}.json"
    if target.is_file() and digests.is_file():
        known = json.loads(digests.read_text())
        return ImageArchive(target, reference, known["manifest"], known["config"])
    with tempfile.TemporaryDirectory(dir=directory, prefix=".partial-") as scratch_name:
        scratch = Path(scratch_name)
        partial = scratch / "image.tar"
        manifest_digest, config_digest = _assemble(image, reference, partial, scratch)
        os.replace(partial, target)
    digests.write_text(json.dumps({"manifest": manifest_digest, "config": config_digest, "reference": reference}))
    return ImageArchive(target, reference, manifest_digest, config_digest)


def import_image(archive: ImageArchive, *, ctr: str, address: Path, namespace: str = "k8s.io") -> None:
    """Import the tar into containerd (unpacked for its default snapshotter) under `archive.reference`."""
    binary = shutil.which(ctr) if os.sep not in ctr else ctr
    if binary is None:
        raise ImageError(f"{ctr} not found: install containerd (make apt)")
    command = [binary, "--address", str(address), "--namespace", namespace, "images", "import", str(archive.path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise ImageError(
            f"ctr import of {archive.reference} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    listed = subprocess.run(
        [binary, "--address", str(address), "--namespace", namespace, "images", "list", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if archive.reference not in listed.stdout.split():
        raise ImageError(f"ctr imported {archive.path.name} but containerd does not list {archive.reference}")
