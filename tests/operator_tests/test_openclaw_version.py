"""The OpenClaw release is named once per side: the renderer's constant and the image's npm pin agree."""

from __future__ import annotations

import json
from pathlib import Path

from clawhost_operator.openclaw_config import OPENCLAW_VERSION
from clawhost_operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_image_pins_the_release_the_config_is_rendered_for() -> None:
    package = json.loads((REPO / "images" / "openclaw" / "package.json").read_text())
    assert package["dependencies"]["openclaw"] == OPENCLAW_VERSION


def test_the_default_gateway_image_is_tagged_with_that_release() -> None:
    assert OperatorSettings().gateway_image.endswith(f":{OPENCLAW_VERSION}")
