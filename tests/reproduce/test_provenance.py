"""The report's provenance section names the runs trained at another commit than its own."""

from __future__ import annotations

from pathlib import Path

from coolmix.reproduce.provenance import provenance_section as _provenance_section
from coolmix.reproduce.results import Run, Runs
from coolmix.train.provenance import git_commit, provenance


def run(method, seed, commit=None):
    final = {"sizes": {"en": 10, "sw": 1}, "step": 8}
    if commit:
        final["provenance"] = {
            "git_commit": commit,
            "torch": "2.13.0",
            "numpy": "2.0",
            "python": "3.11.7",
            "machine": "x86_64, cpu, 2 cores",
            "threads": 1,
        }
    return Run("lm", method, "main", seed, Path(f"runs/lm/{method}-s{seed}"), final, ())


def test_lists_runs_trained_at_another_commit_and_counts_unrecorded_ones():
    runs = Runs(
        [run("tau1", 0, "a" * 40), run("tau5", 0, "b" * 40), run("tau5", 1, "b" * 40), run("tau100", 0)]
    )
    text = _provenance_section({"git_commit": "a" * 40}, runs)
    assert "Trained at another commit than this report's (`aaaaaaaaaaaa`): lm/tau5/s0, lm/tau5/s1." in text
    assert "1 of 4 runs record no provenance" in text
    same = _provenance_section({"git_commit": "b" * 40}, runs)
    assert (
        "lm/tau1/s0" in same.split("Trained at another commit")[1]
        and "lm/tau5/s0" not in same.split("Trained at another commit")[1]
    )


def test_provenance_of_this_process_names_commit_and_versions():
    import numpy as np

    p = provenance(3)
    assert p["threads"] == 3 and p["numpy"] == np.__version__
    assert p["git_commit"] == git_commit(Path(__file__).parent)
