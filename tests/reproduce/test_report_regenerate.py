"""`coolmix report DIR` rebuilds report.md, figures and claims from a committed folder alone
(metrics.json + figures, no runs, no checkpoints, no corpora), byte-for-byte apart from the
header's "generated" line; the header names preset, overrides, seeds, commit and wall time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from coolmix.cli.__main__ import main
from coolmix.reproduce.report import GENERATED, write_report
from coolmix.reproduce.specs import PAPER_MIXTURES
from coolmix.reproduce.theory import fig2_table, inflation_checks

SIZES = {"en": 12000, "it": 710, "zh": 171, "sw": 30}
LM = {
    "tau1": (4.24, 5.64, 5.96, 6.98),
    "tau5": (4.60, 5.00, 5.02, 6.08),
    "tau100": (4.76, 4.90, 4.93, 6.62),
    "cooldown": (4.35, 5.10, 5.00, 5.88),
    "increasing": (4.46, 5.22, 5.37, 6.17),
    "dense1": (4.35, 5.18, 5.28, 5.87),
    "dense2": (4.36, 5.18, 5.29, 5.89),
    "late_upsample": (4.30, 5.40, 5.55, 6.20),
    "tau_warmup": (4.40, 5.20, 5.30, 6.00),
    "doremi": (4.27, 5.45, 6.46, 7.10),
}
OVERRIDES = ["run.total_steps=120", "optim.clip=0"]


def write_run(out: Path, exp: str, method: str, seed: int, vals, role: str = "main", **extra) -> None:
    d = out / "runs" / exp / f"{method}{'-proxy' if role == 'proxy' else ''}-s{seed}-0123abcd"
    d.mkdir(parents=True)
    rng = np.random.default_rng([seed, len(method)])
    steps = [30, 60, 90, 120]
    recs = []
    for i, st in enumerate(steps):
        loss = {
            x: v + 0.5 * (len(steps) - 1 - i) / len(steps) + float(rng.normal(0, 0.01))
            for x, v in zip(SIZES, vals, strict=True)
        }
        recs.append(
            {
                "step": st,
                "tau": 5.0 if i < 2 else 1.0,
                "dev": {"loss": loss},
                "grad_norm": [3.0 + i, 1.0],
                "clipped": [bool(i % 2), False],
                "ledger": {"big": 1},
            }
        )
    final = {
        **recs[-1],
        "sizes": SIZES,
        "time": 10.0 + seed,
        "tokens": dict.fromkeys(SIZES, 1000),
        "epochs": {x: 120 * 8 / n / 4 for x, n in SIZES.items()},
        "test": {"loss": {x: v + float(rng.normal(0, 0.01)) for x, v in zip(SIZES, vals, strict=True)}},
        "final": True,
        "nan_score": float("nan"),
        **extra,
    }
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (d / "result.json").write_text(json.dumps(final))


def theory(out: Path) -> dict:
    rng = np.random.default_rng(0)
    norms = {
        "5.0": {
            "ts_var": 0.1,
            "s_var": 2.0,
            "ts_mean": 5.0,
            "s_mean": 5.0,
            "ts_sample": (5 + 0.3 * rng.standard_normal(200)).round(5).tolist(),
            "s_sample": (5 + 1.4 * rng.standard_normal(200)).round(5).tolist(),
        }
    }
    return {
        "source": str(out.resolve() / "runs/lm/tau1-s0-0123abcd"),
        "fig2": fig2_table(),
        "inflation": inflation_checks(PAPER_MIXTURES),
        "variance": {
            "run": str(out.resolve() / "runs/lm/tau1-s0-0123abcd"),
            "n_per_domain": 8,
            "batch": 32,
            "s": dict.fromkeys(SIZES, 30.0),
            "moments": {"5.0": {"F": 11.3, "gap": 100.0, "gap_equal_s": 90.0}},
            "norms": norms,
            "unbiased": {
                "draws": 100,
                "rel_dist_ts_exact": 0.01,
                "se_ts": 0.02,
                "rel_dist_s_exact": 0.03,
                "se_s": 0.05,
            },
        },
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    for seed in (0, 1):
        for m, vals in LM.items():
            extra = {"doremi_weights": {"en": 0.4, "it": 0.3, "zh": 0.2, "sw": 0.1}} if m == "doremi" else {}
            write_run(out, "lm", m, seed, vals, **extra)
        write_run(
            out,
            "lm",
            "doremi",
            seed,
            LM["tau1"],
            role="proxy",
            doremi={"average": {"en": 0.5, "it": 0.2, "zh": 0.2, "sw": 0.1}},
        )
    (out / "theory.json").write_text(json.dumps(theory(out)))
    meta = {
        "preset": "quick",
        "experiments": ["lm"],
        "overrides": OVERRIDES,
        "seeds": [0, 1],
        "git_commit": "0123456789abcdef",
        "machine": "test machine",
        "wall_seconds": 754.0,
        "runs_trained": 22,
        "runs_cached": 0,
        "notes": [],
    }
    (out / "preset.json").write_text(json.dumps(meta))
    write_report(out)
    return out


def strip_generated(text: str) -> str:
    return "\n".join(x for x in text.splitlines() if not x.startswith(GENERATED))


def test_header_names_preset_overrides_seeds_commit_and_wall_time(out):
    head = (out / "report.md").read_text().split("## ")[0]
    assert "preset: **quick**" in head and "seeds: 0, 1" in head
    assert all(f"`{o}`" in head for o in OVERRIDES)
    assert "`0123456789abcdef`" in head and "12.6 min" in head
    assert sum(x.startswith(GENERATED) for x in head.splitlines()) == 1


def test_metrics_json_keeps_curves_and_relative_paths_only(out):
    text = (out / "metrics.json").read_text()
    assert str(out) not in text and "NaN" not in text  # strict JSON: nan stored as "nan"
    m = json.loads(text)
    run = next(r for r in m["runs"] if r["method"] == "cooldown")
    assert run["dir"] == "runs/lm/cooldown-s0-0123abcd"
    assert [r["step"] for r in run["curve"]] == [30, 60, 90, 120]
    assert "ledger" not in run["curve"][0]
    summary = [(r["clipped"], r["n_steps"], r["grad_norm"]) for r in run["curve"][:2]]
    assert summary == [(0, 2, 2.0), (1, 2, 2.5)]  # per-step lists summarised per record
    assert m["theory"]["variance"]["run"] == "runs/lm/tau1-s0-0123abcd"
    assert len(m["theory"]["variance"]["norms"]["5.0"]["s_sample"]) == 200
    e8 = next(c for c in m["claims"] if c["claim"] == "E8")
    assert e8["primary"] and all(c["n"] == 2 and c["seeds"] == [0, 1] for c in e8["primary"])


def test_report_shows_margins_intervals_weights_epochs_and_clipping(out):
    text = (out / "report.md").read_text()
    for needle in (
        "## Verdict rule and margins",
        "3.38% of the reference method's value",
        "### E8:",
        "| primary |",
        "| secondary |",
        "DoReMi's learned domain weights",
        "| en | 0.400 ± 0.000 |",  # doremi_weights from the main run's summary wins over the proxy's average
        "Epochs per language",
        "clipped steps",
        "| 25.0% |",  # 2 of 8 logged steps clipped
        "## Which direction wins? (E9, beyond the paper)",
        "## Theory checks (T1–T6)",
    ):
        assert needle in text, needle


def test_report_rebuilds_from_the_committed_folder_alone(out, tmp_path):
    committed = tmp_path / "committed"
    committed.mkdir()
    for name in ("report.md", "metrics.json"):
        shutil.copy(out / name, committed / name)
    assert main(["report", str(committed)]) == 0
    assert strip_generated((committed / "report.md").read_text()) == strip_generated(
        (out / "report.md").read_text()
    )
    assert (committed / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()
    figures = {p.name for p in (committed / "figures").iterdir()}
    assert {"lm_curves.png", "fig5_7_ablation.png", "fig2_inflation.png", "fig3_grad_norms.png"} <= figures


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.mark.parametrize(
    "name", sorted(p.parent.name for p in COMMITTED.glob("*/report.md")) if COMMITTED.is_dir() else []
)
def test_committed_reports_rebuild_byte_for_byte(name, tmp_path):
    src = COMMITTED / name
    report = (src / "report.md").read_text()
    if not any(x.startswith(GENERATED) for x in report.splitlines()):
        pytest.skip(f"docs/results/{name} predates regenerable reports (no '{GENERATED.strip()}' line)")
    dst = tmp_path / name
    dst.mkdir()
    shutil.copy(src / "metrics.json", dst / "metrics.json")
    assert main(["report", str(dst)]) == 0
    assert strip_generated((dst / "report.md").read_text()) == strip_generated(report)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("garbage", "metrics.json"),
        ('{"runs": 3}', "metrics.json"),
        ('{"runs": [{"a": 1}]}', "metrics.json runs[0]"),
    ],
)
def test_a_damaged_committed_metrics_json_is_one_line(tmp_path, capsys, text, field):
    (tmp_path / "metrics.json").write_text(text)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{field}=" in err
