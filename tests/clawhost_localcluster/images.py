"""`python -m clawhost_localcluster.images [gateway|platform|all] [--import ADDRESS]`: the project's images as OCI
image-layout tars in ~/.cache/clawhost/images (reused while their inputs are unchanged), optionally imported into
a containerd."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from clawhost_localcluster.build import BuildError
from clawhost_localcluster.gateway_image import gateway_image
from clawhost_localcluster.image_cache import log
from clawhost_localcluster.image_description import DescriptionError, load_gateway, load_platform
from clawhost_localcluster.oci import Image, ImageArchive, ImageError, import_image, write_image
from clawhost_localcluster.platform_image import platform_image
from clawhost_localcluster.rootfs import RootfsError
from clawhost_localcluster.versions import cache_root

IMAGE_ERRORS = (BuildError, DescriptionError, ImageError, RootfsError)


def _ensure(name: str, assemble: Callable[[Path], Image], root: Path | None) -> ImageArchive:
    base = root or cache_root()
    started = time.monotonic()
    image = assemble(base)
    log(f"{name}: writing {image.reference} (hashes every file; an unchanged image is reused)")
    archive = write_image(image, base / "images")
    _remove_older_archives(archive)
    size = archive.path.stat().st_size
    log(f"{name}: {archive.reference} ready, {size / 1e6:.0f} MB, in {time.monotonic() - started:.0f}s")
    return archive


def _remove_older_archives(current: ImageArchive) -> None:
    """Earlier tars of the same reference (inputs since changed): hundreds of MB each, never read again."""
    for digests in current.path.parent.glob("*.json"):
        if digests.stem == current.path.stem:
            continue
        try:
            reference = json.loads(digests.read_text()).get("reference")
        except (OSError, ValueError):
            continue
        if reference == current.reference:
            digests.with_suffix(".tar").unlink(missing_ok=True)
            digests.unlink(missing_ok=True)
            log(f"removed the superseded {digests.with_suffix('.tar').name} of {reference}")


def ensure_gateway_image(root: Path | None = None) -> ImageArchive:
    """The customer gateway image, tagged exactly as the operator's Deployment names it."""
    description = load_gateway()
    return _ensure("gateway", lambda base: gateway_image(description, base), root)


def ensure_platform_image(root: Path | None = None) -> ImageArchive:
    """The platform image (operator, token proxy, control API, onboarding)."""
    description = load_platform()
    return _ensure("platform", lambda base: platform_image(description, base), root)


ENSURE: dict[str, Callable[[Path | None], ImageArchive]] = {
    "gateway": ensure_gateway_image,
    "platform": ensure_platform_image,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clawhost_localcluster.images", description=__doc__)
    parser.add_argument("which", nargs="?", choices=[*ENSURE, "all"], default="all")
    parser.add_argument("--import", dest="address", type=Path, help="containerd socket to import the images into")
    parser.add_argument("--ctr", default="ctr", help="the ctr binary (default: from PATH)")
    args = parser.parse_args(argv)
    names = list(ENSURE) if args.which == "all" else [args.which]
    try:
        for name in names:
            archive = ENSURE[name](None)
            print(f"{name}: {archive.reference} {archive.path}")
            if args.address is not None:
                import_image(archive, ctr=args.ctr, address=args.address)
                log(f"{name}: imported into containerd at {args.address}")
    except IMAGE_ERRORS as error:
        print(f"images: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
