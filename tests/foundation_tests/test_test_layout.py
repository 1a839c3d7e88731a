"""Test folders are named one way and share code only through the harness package, never each other's conftest."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
NOT_TEST_FOLDERS = {"clawhost_localcluster", "bench", "__pycache__"}


def test_every_test_folder_is_named_component_tests() -> None:
    # Folders with Python files only: a renamed folder's leftover __pycache__ is not a test folder.
    folders = {path.name for path in TESTS.iterdir() if path.is_dir() and any(path.glob("*.py"))}
    assert sorted(name for name in folders - NOT_TEST_FOLDERS if not name.endswith("_tests")) == []


def test_no_test_module_imports_a_test_folder() -> None:
    folders = {path.name for path in TESTS.iterdir() if path.is_dir() and path.name.endswith("_tests")}
    offending = []
    for module in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offending += [f"{module.relative_to(TESTS)}: {name}" for name in names if name.split(".")[0] in folders]
    assert offending == []
