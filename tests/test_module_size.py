"""style.md's size rule: a module over ~400 code lines says why in a "Size:" line of its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "coolmix"
LIMIT = 400


def code_lines(src: str) -> int:
    """Lines that are neither blank, comments nor docstrings."""
    doc: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            doc.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return sum(
        1
        for i, line in enumerate(src.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and i not in doc
    )


def test_counter_counts_code_only():
    assert code_lines('"""doc\n\nmore"""\n# c\n\nx = 1\ndef f():\n    """d"""\n    return x\n') == 3


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_large_modules_say_why(path: Path):
    src = path.read_text()
    n = code_lines(src)
    if n <= LIMIT:
        return
    doc = ast.get_docstring(ast.parse(src)) or ""
    assert any(line.startswith("Size:") for line in doc.splitlines()), (
        f"{path.relative_to(PKG)} has {n} code lines (> {LIMIT}) and no 'Size:' reason in its docstring"
    )
