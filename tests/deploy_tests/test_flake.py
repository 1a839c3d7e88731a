"""The flake's Nix parses, its lock pins exactly the inputs it declares (follows included), and nothing is faked."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clawhost_localcluster.nix_eval import REPO, nix_eval

NIX_FILES = sorted(p for p in REPO.glob("**/*.nix") if not {".venv", ".run", ".git"} & set(p.relative_to(REPO).parts))


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_nix_file_parses(path: Path) -> None:
    result = subprocess.run(["nix-instantiate", "--parse", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_nothing_is_faked() -> None:
    """No placeholder hash anywhere in the Nix the flake builds from (a fake hash fails the first real build)."""
    pattern = re.compile(r"fakeHash|fakeSha256|sha256-A{43}=|0{52}")
    offending = [str(p.relative_to(REPO)) for p in NIX_FILES if pattern.search(p.read_text())]
    assert offending == []


def _declared() -> dict[str, Any]:
    declared: dict[str, Any] = nix_eval("(import ./flake.nix).inputs")
    return declared


def _github(url: str) -> tuple[str, str, str | None]:
    match = re.fullmatch(r"github:([^/]+)/([^/]+)(?:/(.+))?", url)
    assert match, f"not a github: flake reference: {url}"
    return match[1].lower(), match[2].lower(), match[3]


def test_flake_lock_pins_exactly_the_declared_inputs() -> None:
    declared = _declared()
    lock = json.loads((REPO / "flake.lock").read_text())
    nodes = lock["nodes"]
    root = nodes[lock["root"]]
    assert set(root["inputs"]) == set(declared), "flake.nix inputs and flake.lock's root inputs differ"
    for name, spec in declared.items():
        node = nodes[root["inputs"][name]]
        owner, repo, ref = _github(spec["url"])
        original = node["original"]
        assert (original["owner"].lower(), original["repo"].lower(), original.get("ref")) == (owner, repo, ref), name
        assert (node["locked"]["owner"].lower(), node["locked"]["repo"].lower()) == (owner, repo), name
        for child, child_spec in spec.get("inputs", {}).items():
            # `follows = ""` drops an input (an empty path); "a/b" follows b of a.
            path = child_spec["follows"].split("/") if child_spec["follows"] else []
            assert node["inputs"][child] == path, f"{name}.inputs.{child} must follow in the lock"


def test_every_lock_node_is_reachable_and_real() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    nodes = lock["nodes"]
    reached, frontier = {lock["root"]}, [lock["root"]]
    while frontier:
        for target in nodes[frontier.pop()].get("inputs", {}).values():
            if isinstance(target, str):  # a list is a `follows` path, resolved through its first element
                assert target in nodes, f"missing node {target}"
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
            elif target:  # [] is an input dropped with `follows = ""`
                assert target[0] in nodes, f"follows path {target} starts at no node"
    assert reached == set(nodes), f"nodes nothing refers to: {set(nodes) - reached}"
    for name, node in nodes.items():
        if name == lock["root"]:
            continue
        locked = node["locked"]
        assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"]), name
        assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"]), name
        assert locked["lastModified"] > 1_600_000_000, name
