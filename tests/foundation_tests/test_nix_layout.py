"""The Nix side of the layout parses, and flake.lock pins exactly the inputs flake.nix declares."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NIX_FILES = sorted(p for p in REPO.glob("**/*.nix") if ".venv" not in p.parts and ".run" not in p.parts)


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_nix_file_parses(path: Path) -> None:
    result = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_flake_lock_pins_every_declared_input() -> None:
    evaluated = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", f"(import {REPO}/flake.nix).inputs"],
        capture_output=True,
        text=True,
        check=True,
    )
    declared = json.loads(evaluated.stdout)
    lock = json.loads((REPO / "flake.lock").read_text())
    nodes = lock["nodes"]
    assert set(nodes[lock["root"]]["inputs"]) == set(declared)
    for name, node in nodes.items():
        for target in node.get("inputs", {}).values():
            path = [target] if isinstance(target, str) else target
            assert path[0] in nodes, f"{name} refers to missing node {path[0]}"
        if name != lock["root"]:
            locked = node["locked"]
            assert locked["narHash"].startswith("sha256-"), name
            assert len(locked["rev"]) == 40, name


def test_nixos_hive_names_k3s_nodes() -> None:
    hive = subprocess.run(
        [
            "nix-instantiate",
            "--eval",
            "--json",
            "--expr",
            f"builtins.attrNames (builtins.removeAttrs (import {REPO}/nixos/hive.nix {{ nixpkgs = null; }})"
            ' ["meta" "defaults"])',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(hive.stdout) == ["k3s-1", "k3s-2"]


def test_the_platform_image_holds_the_runtime_dependencies() -> None:
    """images/platform.nix names each runtime dependency of pyproject.toml (nixpkgs spells them the same way)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower() for requirement in declared}
    listing = re.search(
        r"withPackages \(ps: with ps; \[(.*?)\]\)", (REPO / "images" / "platform.nix").read_text(), re.S
    )
    assert listing is not None
    in_image = {word for line in listing.group(1).splitlines() for word in line.split("#")[0].split()}
    assert in_image == wanted
