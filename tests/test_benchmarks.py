"""Every benchmark has a ``--smoke`` mode, and CI runs all of them with it, so none can break unseen."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted((ROOT / "benchmarks").glob("bench_*.py"))


def _options(path: Path) -> set[str]:
    """The option strings of every ``add_argument`` call in a script."""
    opts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            opts |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return opts


def test_there_are_benchmarks():
    assert len(BENCHES) >= 4


@pytest.mark.parametrize("bench", BENCHES, ids=lambda p: p.name)
def test_every_benchmark_accepts_smoke(bench):
    assert "--smoke" in _options(bench), f"{bench.name} has no --smoke mode (seconds, tiny sizes) for CI"


def test_ci_runs_every_benchmark_with_smoke():
    """The CI step globs the directory (a new benchmark cannot be left out) and passes --smoke, after the
    engines venv exists (benchmarks of the engines run in it)."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [i for i, line in enumerate(ci) if "benchmarks/bench_*.py" in line and not line.startswith("#")]
    assert len(steps) == 1, "one CI line loops over benchmarks/bench_*.py"
    line = ci[steps[0]]
    assert line.startswith("for bench in benchmarks/bench_*.py;") and '"$py" "$bench" --smoke' in line
    made = [i for i, x in enumerate(ci) if "python3 -m venv .venv-engines" in x]
    assert made and made[0] < steps[0], "the smoke loop runs after .venv-engines is created"


ENGINES = ("grain", "megatron", "torchtitan")


@pytest.mark.parametrize("bench", BENCHES, ids=lambda p: p.name)
def test_a_benchmark_of_an_engine_names_the_engines_venv(bench):
    """CI picks .venv-engines for a benchmark whose file runs itself with it; one importing an engine must."""
    tree = ast.parse(bench.read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    if mods & set(ENGINES):
        assert f".venv-engines/bin/python benchmarks/{bench.name}" in bench.read_text()
