"""The real-node tests' pod image: our static `nettest` tool (serve, connect, resolve, sleep) and nothing else."""

from __future__ import annotations

from clawhost_localcluster.build import NETTEST_SOURCE, ensure_local_program
from clawhost_localcluster.oci import Image, ImageArchive, ImageConfig, Layer, write_image
from clawhost_localcluster.pause_image import image_cache

NETTEST_IMAGE = "clawhost/nettest:1"


def nettest_image() -> ImageArchive:
    """The image's tar (the tool built and the tar written on first use, reused after); runs as uid 10001."""
    layer = (
        Layer()
        .add_file("/nettest", ensure_local_program("nettest", NETTEST_SOURCE), mode=0o755)
        .add_file("/etc/passwd", b"root:x:0:0::/:/nettest\nnettest:x:10001:10001::/:/nettest\n")
        .add_file("/etc/group", b"root:x:0:\nnettest:x:10001:\n")
        .add_directory("/tmp", mode=0o1777)
    )
    config = ImageConfig(entrypoint=["/nettest"], cmd=["sleep"], user="10001:10001")
    return write_image(Image(NETTEST_IMAGE, [layer], config), image_cache())
