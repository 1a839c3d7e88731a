"""Evaluating the repository's pure Nix with Debian's nix-instantiate (no nixpkgs, no network): what the deploy
tests read from flake.nix, nixos/ and images/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class NixError(AssertionError):
    """nix-instantiate refused an expression; the message is its error, without the noise of a missing nixbld group."""


def nix_eval(expression: str, *, strict: bool = True) -> Any:
    """The JSON value of a Nix expression, evaluated in the repository (relative paths start there)."""
    command = ["nix-instantiate", "--eval", "--json", "--expr", expression]
    if strict:
        command.insert(2, "--strict")
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO, timeout=120)
    if result.returncode != 0:
        raise NixError("\n".join(line for line in result.stderr.splitlines() if "nixbld" not in line))
    return json.loads(result.stdout)


def nix_string(value: Any) -> str:
    """A Python value as a Nix expression (JSON is read by builtins.fromJSON, so any JSON value works)."""
    return f"(builtins.fromJSON {json.dumps(json.dumps(value))})"
