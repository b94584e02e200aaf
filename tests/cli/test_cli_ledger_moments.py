"""`coolmix ledger` on a run's metrics, and `coolmix plan --moments` (which estimator has lower variance)."""

import json

import coolmix as cm
from coolmix.cli.__main__ import main


def test_ledger_table_and_plot(tmp_path, capsys):
    sizes = {"en": 100, "sw": 5}
    s = cm.MixtureSampler(sizes, 5.0, total_steps=20, batch_size=4, seed=0)
    from coolmix.diagnostics import ExposureLedger

    led = ExposureLedger(sizes)
    with (tmp_path / "metrics.jsonl").open("w") as f:
        for t in range(20):
            d, _ = s.batch(t)
            led.record(t, d, probs=list(s.probs_at(t).values()))
            if (t + 1) % 5 == 0:
                f.write(json.dumps({"step": t + 1, "ledger": led.summary()}) + "\n")
    assert main(["ledger", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sw" in out and str(s.cursors["sw"]) in out
    assert (tmp_path / "ledger.png").is_file()


def test_ledger_without_metrics_is_a_one_line_error(tmp_path, capsys):
    assert main(["ledger", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_plan_moments_says_which_estimator_wins(tmp_path, capsys):
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        '[mixture]\nsizes = { H = 9, L = 1 }\n[schedule]\nkind = "constant"\ndist = "inf"\n'
        "[run]\ntotal_steps = 10\nbatch_size = 2\n"
    )
    # paper.md §2 counterexample: uniform sampling of n = (9, 1) with s_H = 10 s_L favours upweighting
    assert main(["plan", str(cfg), "--no-plot", "--out", str(tmp_path), "--moments", "H=10,L=1"]) == 0
    assert "upweighting (scalarization)" in capsys.readouterr().out
    assert main(["plan", str(cfg), "--no-plot", "--out", str(tmp_path), "--moments", "H=1,L=1"]) == 0
    assert "upsampling (temperature sampling)" in capsys.readouterr().out
    assert main(["plan", str(cfg), "--no-plot", "--out", str(tmp_path), "--moments", "H=1"]) == 2
