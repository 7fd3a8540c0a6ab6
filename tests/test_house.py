"""The house rules of issue 19, checked: the import contract in pyproject.toml, and sizes a reader can hold.

The contract (import-linter: layers in the codec's flow, no circles, front ends on the public API) is
what keeps the package readable as it grows; the sizes are STYLE.md's: no package file over 400 lines,
no function over 60 (counted without its docstring: documentation is not what makes a function long to read).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "streamcodec"
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
#: The package root: the public API and a handful of modules every layer shares; the rest are packages.
ROOT_MODULES = {"__init__.py", "codec.py", "errors.py", "metrics.py", "progress.py", "version.py"}


def test_the_import_contract_holds() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_package_root_holds_only_the_shared_modules() -> None:
    assert {path.name for path in PACKAGE.glob("*.py")} == ROOT_MODULES


def test_no_package_file_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert long == {}


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return (first.end_lineno or first.lineno) - first.lineno + 1
    return 0


def test_no_function_is_over_60_lines() -> None:
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}
