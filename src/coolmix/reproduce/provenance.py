"""The report's *Provenance* section: which code, libraries and machine trained each run.

Each run's final record carries its provenance (`coolmix.train.provenance`); a cached run keeps the
provenance of when it was trained, so a report can name the runs trained at another commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coolmix.reproduce.results import Runs
from coolmix.reproduce.tables import markdown

__all__ = ["provenance_section"]


def provenance_section(meta: Mapping[str, Any], runs: Runs) -> str:
    """Which code, libraries and machine trained each run, and the runs trained at another commit
    than the one this report names (cached runs keep the provenance of when they were trained)."""
    if not len(runs):
        return ""
    head = meta.get("git_commit")
    keys = ("git_commit", "torch", "numpy", "python", "machine", "threads")
    groups: dict[tuple[str, ...], list[str]] = {}
    missing = []
    for r in runs.runs:
        prov = r.final.get("provenance")
        if not isinstance(prov, Mapping):
            missing.append(r)
            continue
        groups.setdefault(tuple(str(prov.get(k, "–")) for k in keys), []).append(
            f"{r.experiment}/{r.method}/s{r.seed}"
        )
    lines = ["## Provenance"]
    if groups:
        lines.append("")
        lines.append(
            markdown(
                ["commit", "torch", "numpy", "Python", "machine", "threads", "runs"],
                [[f"`{k[0][:12]}`", *k[1:], str(len(v))] for k, v in sorted(groups.items())],
            )
        )
        other = sorted(x for k, v in groups.items() if k[0] != str(head) for x in v)
        lines.append("")
        lines.append(
            f"Trained at another commit than this report's (`{str(head)[:12]}`): "
            + (", ".join(other) if other else "none")
            + "."
        )
    if missing:
        lines.append("")
        lines.append(
            f"{len(missing)} of {len(runs)} runs record no provenance: they were trained before runs "
            "recorded their commit, library versions and machine, so their commit is unknown (it may "
            "differ from the header's)."
        )
    lines.append("")
    lines.append(
        "Same code, libraries, machine and thread count reproduce a run bit for bit; another CPU reproduces "
        "it to float level (README, *What reproduces where*)."
    )
    return "\n".join(lines)
