"""Browser tests' tools: Debian's Chromium as Playwright launches it here, axe-core from npm (pinned, cached),
accessibility checks and screenshots at phone and desktop width.

Playwright's own browser download does not work on these machines (never `playwright install`): the Debian
package `chromium` is installed by `make browser` and launched directly (`/usr/lib/chromium/chromium` skips the
wrapper script that prints a harmless shell error)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize

from clawhost_localcluster.versions import cache_root

CHROMIUM = Path("/usr/lib/chromium/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
AXE_CORE_VERSION = "4.14.1"
# The widths every page is looked at: a small phone and a laptop.
VIEWPORTS: dict[str, ViewportSize] = {
    "phone": {"width": 375, "height": 740},
    "desktop": {"width": 1280, "height": 900},
}
SERIOUS = ("serious", "critical")


class BrowserSetupError(RuntimeError):
    """Chromium or axe-core is missing; the message says which make target installs it."""


def launch_args() -> dict[str, Any]:
    """What pytest-playwright's `browser_type_launch_args` fixture answers, and what the benchmark launches with."""
    if not CHROMIUM.exists():
        raise BrowserSetupError(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    return {"executable_path": str(CHROMIUM), "args": list(CHROMIUM_ARGS), "headless": True}


def axe_core() -> Path:
    """axe.min.js of the pinned axe-core, fetched once from npm (`npm pack`, which checks the registry's integrity
    hash) into ~/.cache/clawhost."""
    target = cache_root() / f"axe-core-{AXE_CORE_VERSION}" / "axe.min.js"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserSetupError("npm is missing: run `make browser` (Debian's npm package)")
    print(f"[browser] fetching axe-core {AXE_CORE_VERSION} from npm", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        packed = subprocess.run(
            [npm, "pack", f"axe-core@{AXE_CORE_VERSION}", "--json", "--pack-destination", scratch],
            check=True,
            capture_output=True,
            text=True,
        )
        filename = json.loads(packed.stdout)[0]["filename"]
        with tarfile.open(Path(scratch) / filename) as archive:
            member = archive.extractfile("package/axe.min.js")
            if member is None:
                raise BrowserSetupError(f"axe-core {AXE_CORE_VERSION} has no package/axe.min.js")
            partial = Path(scratch) / "axe.min.js"
            partial.write_bytes(member.read())
        partial.replace(target)  # whole or not at all
    return target


@dataclass(frozen=True)
class AxeViolation:
    rule: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.impact}: {self.rule} ({self.help}) at {', '.join(self.targets[:5])}"


def axe_violations(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[AxeViolation]:
    """Run axe-core on the page as it is now (WCAG 2.x A and AA rules and best practices) and return the violations
    of these impacts. axe is injected with `page.evaluate` (a DevTools evaluation, which the page's CSP does not
    govern), never a <script> tag, which the CSP rightly blocks, nor by turning the CSP off."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_core().read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({rule: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    return [AxeViolation(**v) for v in result if v["impact"] in impacts]


def screenshots(page: Page, folder: Path, name: str) -> list[Path]:
    """The page, full length, at each width of VIEWPORTS, as `<folder>/<name>-<width name>.png`; the viewport is
    put back afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    saved = []
    for label, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        path = folder / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    if original is not None:
        page.set_viewport_size(original)
    return saved
