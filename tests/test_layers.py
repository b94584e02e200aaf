"""The package's layer order, as the README's layout line states it, holds for every import (AST-checked).

A module may import coolmix modules of its own layer group (same package) or of earlier groups only;
the core imports no torch (nor any other framework) at any depth; no two modules import each other,
directly or through a cycle. This replaces "torch not in sys.modules" subprocess checks: it sees lazy
imports inside functions too.

Inside the core the same rule holds between its own inner layers (`CORE_LAYERS`: foundations →
distributions and mixture → schedules → engine → planning → config → checks), so a core module may
import its own inner layer or earlier ones only, and never the package root (``coolmix/__init__``, the
public face, imports every layer). Every core module must be placed there by name: a new module the
mapping does not know fails `test_every_core_module_has_an_inner_layer` until it is.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
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


# The core's inner order, innermost first; one home for it (the README's layout line says the same).
CORE_LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # the one exception, type aliases, argument checks, the one file reader/writer, state field reader
    ("foundations", frozenset({"errors", "types", "validate", "fileio", "state_reader"})),
    # what a mixture is: sizes and units, sizes -> probabilities, the rare-domain warning's wording
    ("distributions", frozenset({"mixture", "distributions", "rare_domains"})),
    # p(t) at every step, and the loss weights w(t) = p_target / p(t) it implies
    ("schedules", frozenset({"schedules", "weighting"})),
    # which domain, which item, where it lands, and the state that resumes them
    (
        "engine",
        frozenset(
            {
                "compositions",
                "items",
                "state_format",
                "permutation",
                "counts",
                "seekable",
                "sampler",
                "global_index",
                "packing_state",
                "packing",
            }
        ),
    ),
    # what a whole run will expose, computed before any step is taken
    ("planning", frozenset({"plan_steps", "plan", "targets"})),
    # TOML -> typed, validated configuration of all of the above
    ("config", frozenset({"config", "mixconfig"})),
    # the checks users run on their own schedules and samplers
    ("checks", frozenset({"testing"})),
)
CORE_RANK = {name: i for i, (_, group) in enumerate(CORE_LAYERS) for name in group}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def _imports(path: Path) -> list[str]:
    """Every module imported anywhere in the file (top level or inside functions), absolute names."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(), package, str(path))


def imports_in(source: str, package: str, filename: str = "<source>") -> list[str]:
    """Every module ``source`` imports, absolute; ``package`` resolves its relative imports.

    ``from coolmix import sampler`` imports the submodule ``coolmix.sampler``; ``from coolmix import
    MixtureSampler`` imports the package root ``coolmix`` itself.
    """
    tree = ast.parse(source, filename=filename)
    out = []
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
            where = PKG.parent.joinpath(*mod.split("."))
            names = [a.name for a in node.names]
            subs = [name for name in names if (where / name).is_dir() or (where / f"{name}.py").is_file()]
            out += [f"{mod}.{name}" for name in subs]
            if len(subs) < len(names):  # some name is an attribute of ``mod``: ``mod`` itself runs
                out.append(mod)
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
    """The imports of a module in ``top`` that break the layer order (upward, sibling, framework in core,
    and inside the core an import that climbs `CORE_LAYERS` or reaches the package root)."""
    mine, out = RANK[top], []
    for mod in imports:
        if mine == 0 and mod.split(".")[0] in FRAMEWORKS:
            out.append(f"the numpy core imports {mod}")
        t = _top(mod)
        if t is None or t == top:
            continue
        if t == "":
            if mine == 0:
                out.append(f"the core module {top} imports the package root {mod}: import the module itself")
        elif t not in RANK:
            out.append(f"imports {mod}, which has no layer")
        elif RANK[t] == mine == 0:
            out += core_violations(top, t, mod)
        elif not RANK[t] < mine:
            out.append(f"layer {mine} ({top}) imports {mod} (layer {RANK[t]}: {t})")
    return out


def core_violations(top: str, target: str, mod: str, order: Mapping[str, int] = CORE_RANK) -> list[str]:
    """Core module ``top`` importing ``mod`` (in core module ``target``): fine at its own inner layer or
    below; an upward import, or a module ``order`` does not place, is a violation."""
    unplaced = [name for name in (top, target) if name not in order]
    if unplaced:
        return [f"core module {name} has no inner layer: add it to CORE_LAYERS" for name in unplaced]
    if order[target] <= order[top]:
        return []
    mine, theirs = CORE_LAYERS[order[top]][0], CORE_LAYERS[order[target]][0]
    return [f"core {mine} ({top}) imports {mod} from a later core layer ({theirs}: {target})"]


def unplaced_core_modules(tops: set[str], order: Mapping[str, int] = CORE_RANK) -> list[str]:
    """The core modules among ``tops`` that `CORE_LAYERS` does not place."""
    return sorted(tops - set(order))


def _core_tops() -> set[str]:
    """Every top-level module but those the README places outside the core (so a new one counts)."""
    tops = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in FILES} - {"__init__", "__main__"}
    return tops - set().union(*LAYERS[1:])


def test_every_core_module_has_an_inner_layer():
    unplaced = unplaced_core_modules(_core_tops())
    assert not unplaced, f"core modules with no inner layer: {unplaced}; place each in CORE_LAYERS"
    ghosts = sorted(set(CORE_RANK) - _core_tops())
    assert not ghosts, f"CORE_LAYERS places modules that do not exist: {ghosts}"


def readme_core_order() -> list[set[str]]:
    """The core's inner groups as the README's layout line lists them (separated by ``▸``)."""
    text = (ROOT / "README.md").read_text()
    start = text.index("Layout, in layer order")
    para = text[start : text.find("\n\n", start)]
    core = para[para.index("):") + 2 :].split("→")[0]
    return [set(re.findall(r"`([A-Za-z_]\w*)`", chunk)) for chunk in core.split("▸")]


def test_readme_states_the_core_order():
    groups = readme_core_order()
    assert len(groups) == len(CORE_LAYERS), f"README: {len(groups)} core groups, tests: {len(CORE_LAYERS)}"
    for (name, members), named in zip(CORE_LAYERS, groups, strict=True):
        assert named <= members, f"the README puts {sorted(named - members)} in the core's {name} layer"


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


def test_core_checker_fails_on_an_upward_import():
    """A synthetic engine module importing the planner (top level and lazily) and the package root: each
    import is reported; the same module importing only its own layer and below passes."""
    source = (
        "import numpy as np\n"
        "from coolmix.counts import exact_counts\n"  # engine -> engine: fine
        "from coolmix.schedules import Schedule\n"  # engine -> schedules: fine
        "from coolmix.plan import plan\n"  # engine -> planning: climbs
        "def seek():\n"
        "    from . import mixconfig\n"  # a lazy, relative import of the config layer: climbs
        "    from coolmix import MixtureSampler\n"  # the package root (the public face): refused
    )
    found = violations("sampler", imports_in(source, "coolmix"))
    assert found == [
        "core engine (sampler) imports coolmix.plan from a later core layer (planning: plan)",
        "core engine (sampler) imports coolmix.mixconfig from a later core layer (config: mixconfig)",
        "the core module sampler imports the package root coolmix: import the module itself",
    ]
    clean = "from coolmix.counts import exact_counts\nfrom coolmix import schedules, validate\n"
    assert violations("sampler", imports_in(clean, "coolmix")) == []
    assert violations("errors", ["coolmix.schedules._base"])  # foundations may import nothing above them
    assert violations("mixture", ["coolmix.weighting"]) and not violations("weighting", ["coolmix.mixture"])


def test_core_checker_fails_on_a_module_it_does_not_place():
    order = {**CORE_RANK, "brand_new": CORE_RANK["sampler"]}
    assert unplaced_core_modules({"sampler", "brand_new"}) == ["brand_new"]
    assert unplaced_core_modules({"sampler", "brand_new"}, order) == []
    assert core_violations("plan", "brand_new", "coolmix.brand_new") == [
        "core module brand_new has no inner layer: add it to CORE_LAYERS"
    ]
    assert core_violations("plan", "brand_new", "coolmix.brand_new", order) == []
    assert core_violations("brand_new", "plan", "coolmix.plan", order)  # placed in the engine: climbs
