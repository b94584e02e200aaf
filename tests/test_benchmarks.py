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
    """The CI step globs the directory (a new benchmark cannot be left out) and passes --smoke."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [line for line in ci if "benchmarks/bench_*.py" in line and not line.lstrip().startswith("#")]
    assert len(steps) == 1, "one CI line loops over benchmarks/bench_*.py"
    assert '"$bench" --smoke' in steps[0] and steps[0].startswith("for bench in benchmarks/bench_*.py;")
