"""What the images assembled here share: the base layer every description starts from, and the image config."""

from __future__ import annotations

from pathlib import Path

from clawhost_localcluster.image_description import ImageDescription
from clawhost_localcluster.oci import ImageConfig, Layer
from clawhost_localcluster.rootfs import RootfsError, add_merged_usr_links

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def base_layer(description: ImageDescription) -> Layer:
    """What every image here starts from: merged-/usr links, the description's files and directories, the CA
    certificates."""
    layer = Layer()
    add_merged_usr_links(layer)
    for directory in description.directories:
        owner = description.user.uid if directory.owner == "user" else 0
        group = description.user.gid if directory.owner == "user" else 0
        layer.add_directory(directory.path, mode=directory.mode_bits, uid=owner, gid=group)
    for file in description.files:
        layer.add_file(file.path, file.text.encode(), mode=file.mode_bits)
    if not CA_BUNDLE.is_file():
        raise RootfsError(f"{CA_BUNDLE} is missing: install Debian's ca-certificates (make apt)")
    layer.add_file(str(CA_BUNDLE), CA_BUNDLE)
    # The name nixpkgs' cacert uses (the description's SSL_CERT_FILE), beside Debian's.
    layer.add_symlink("/etc/ssl/certs/ca-bundle.crt", CA_BUNDLE.name)
    return layer


def image_config(description: ImageDescription) -> ImageConfig:
    return ImageConfig(
        entrypoint=description.entrypoint,
        cmd=description.cmd,
        env=description.env,
        user=description.user_spec,
        working_dir=description.working_dir,
        exposed_ports=description.exposed_ports,
    )
