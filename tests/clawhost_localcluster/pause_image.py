"""The pod sandbox ("pause") image the real node's containerd names in `sandbox_image`: images/pause alone."""

from __future__ import annotations

from pathlib import Path

from clawhost_localcluster.build import ensure_pause
from clawhost_localcluster.oci import Image, ImageArchive, ImageConfig, Layer, write_image
from clawhost_localcluster.versions import cache_root

PAUSE_IMAGE = "clawhost/pause:1"
# The nobody user: the sandbox needs no privilege, and a fixed id keeps the image byte-identical everywhere.
PAUSE_USER = "65535:65535"


def image_cache() -> Path:
    """Where written image tars are kept between runs (keyed by the hash of their description)."""
    return cache_root() / "images"


def pause_image() -> ImageArchive:
    """The pause image's tar (built and written on first use, reused after)."""
    layer = Layer().add_file("/pause", ensure_pause(), mode=0o755)
    return write_image(Image(PAUSE_IMAGE, [layer], ImageConfig(entrypoint=["/pause"], user=PAUSE_USER)), image_cache())
