"""The package's layer order, as the README's layout line states it, holds for every import (AST-checked).

A module may import coolmix modules of its own layer group (same package) or of earlier groups only;
the core imports no torch (nor any other framework) at any depth; no two modules import each other,
directly or through a cycle. This replaces "torch not in sys.modules" subprocess checks: it sees lazy
imports inside functions too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "coolmix"
FRAMEWORKS = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "torchdata",
    "matplotlib",
    "sacrebleu",
    "megatron",
    "grain",
    "torchtitan",
)


def readme_layers() -> list[set[str]]:
    """Groups of top-level names, in order, from the README line starting "Layout, in layer order"."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Layout, in layer order")
    end = text.find("\n\n", start)
    para = text[start : end if end >= 0 else len(text)]
    body = para[para.index("):") + 2 :]
    groups = []
    for chunk in body.split("→"):
        names = set(re.findall(r"`([A-Za-z_]\w*)/?`", chunk.split(". ")[0]))
        if names:
            groups.append(names)
    return groups


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(path: Path) -> list[str]:
    """Every module imported anywhere in the file (top level or inside functions), absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.append(mod)
            # `from coolmix import sampler` imports the submodule coolmix.sampler
            out += [
                f"{mod}.{a.name}"
                for a in node.names
                if (PKG / a.name).exists() or (PKG / f"{a.name}.py").exists()
            ]
    return out


def _top(module: str) -> str | None:
    """The coolmix top-level name (module or package) that ``module`` belongs to; None if not coolmix."""
    parts = module.split(".")
    if parts[0] != "coolmix":
        return None
    return parts[1] if len(parts) > 1 else ""


FILES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
LAYERS = readme_layers()
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}


def test_readme_names_every_module_once():
    tops = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in FILES} - {"__init__", "__main__"}
    named = [n for g in LAYERS for n in g]
    assert len(named) == len(set(named)), f"a name appears in two layers: {named}"
    missing = tops - set(named)
    assert not missing, f"modules with no layer in the README's layout line: {sorted(missing)}"
    ghosts = set(named) - tops
    assert not ghosts, f"the README's layout line names modules that do not exist: {sorted(ghosts)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_follow_the_layer_order(path: Path):
    top = path.relative_to(PKG).parts[0].removesuffix(".py")
    if top in ("__init__", "__main__"):  # the package root re-exports the core; __main__ runs the CLI
        allowed = LAYERS[0] | ({"cli"} if top == "__main__" else set())
        bad = [m for m in _imports(path) if (t := _top(m)) and t not in allowed]
        assert not bad, f"{path.name} imports {bad}"
        return
    bad = violations(top, _imports(path))
    assert not bad, f"{path.relative_to(PKG)}: " + "; ".join(bad)


def violations(top: str, imports: list[str]) -> list[str]:
    """The imports of a module in ``top`` that break the layer order (upward, sibling, framework in core)."""
    mine, out = RANK[top], []
    for mod in imports:
        if mine == 0 and mod.split(".")[0] in FRAMEWORKS:
            out.append(f"the numpy core imports {mod}")
        t = _top(mod)
        if t is None or t == "" or t == top:
            continue
        if t not in RANK:
            out.append(f"imports {mod}, which has no layer")
        elif not (RANK[t] < mine or RANK[t] == mine == 0):
            out.append(f"layer {mine} ({top}) imports {mod} (layer {RANK[t]}: {t})")
    return out


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    names = {_module_name(p) for p in FILES}
    for p in FILES:
        me = _module_name(p)
        graph[me] = {m for m in _imports(p) if m in names and m != me and not me.startswith(m + ".")}
    # a package's __init__ re-exporting its children is not a cycle: drop edges child -> own parent package
    for me, deps in graph.items():
        graph[me] = {d for d in deps if not (me.startswith(d + ".") or d.startswith(me + "."))}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        seen[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if seen.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in seen:
                visit(d)
        stack.pop()
        seen[n] = 2

    for n in sorted(graph):
        if n not in seen:
            visit(n)


def test_layer_checker_sees_violations():
    """The checker itself can fail: a framework in the core, an upward import, a sibling at the same rank."""
    core = next(iter(LAYERS[0]))
    assert violations(core, ["torch.nn", "numpy"]) == ["the numpy core imports torch.nn"]
    assert violations(core, ["coolmix.train.loop"])
    assert violations("train", ["coolmix.cli.train"])
    assert not violations("train", ["coolmix.sampler", "coolmix.models.gpt", "torch"])
    if len(LAYERS[1]) > 1:
        a, b = sorted(LAYERS[1])[:2]
        assert violations(a, [f"coolmix.{b}"])
