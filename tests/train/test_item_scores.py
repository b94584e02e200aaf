"""Per-item test scores: they add up to the headline numbers, and a finished run can be rescored."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import CHRF

from coolmix.errors import ConfigError
from coolmix.train import train
from coolmix.train.item_scores import ITEMS_KEY, chrf_from_stats, chrf_stats
from coolmix.train.rescore import rescore_run


def _weighted(items: dict, lang: str, n: int | None = None) -> float:
    loss = np.asarray(items["loss"][lang][:n])
    tok = np.asarray(items["tokens"][lang][:n], dtype=float)
    return float((loss * tok).sum() / tok.sum())


def test_rescore_adds_up_to_the_headline_test_loss_and_scores_every_item(lm_config, data_cache, tmp_path):
    cfg = lm_config("run.eval_batches=1")  # the headline test loss: the first 8 of 16 test items
    record = train(cfg, tmp_path / "run", cache=data_cache)
    items = rescore_run(tmp_path / "run", data_cache)
    assert items["n"] == {"en": 16, "sw": 16}  # every test item, not the headline's slice
    for lang in ("en", "sw"):
        assert len(items["loss"][lang]) == len(items["tokens"][lang]) == 16
        assert _weighted(items, lang, 8) == pytest.approx(record["test"]["loss"][lang], abs=2e-5)
        assert _weighted(items, lang) != pytest.approx(record["test"]["loss"][lang], abs=1e-6)
    # the trainer writes the same record at the end of the run
    assert record[ITEMS_KEY]["loss"] == items["loss"]
    assert record[ITEMS_KEY]["tokens"] == items["tokens"]


def test_rescore_refuses_a_run_without_its_final_checkpoint(lm_config, data_cache, tmp_path):
    train(lm_config(), tmp_path / "run", cache=data_cache)
    for ckpt in (tmp_path / "run").glob("ckpt-*.pt"):
        ckpt.unlink()
    with pytest.raises(ConfigError, match="final checkpoint"):
        rescore_run(tmp_path / "run", data_cache)
    with pytest.raises(ConfigError, match=r"config\.toml"):
        rescore_run(tmp_path, data_cache)


words = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "é", "x"]), max_size=8)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(words, words), min_size=1, max_size=6), st.data())
def test_chrf_of_summed_statistics_is_sacrebleus_corpus_chrf(pairs, data):
    hyps = [" ".join(h) for h, _ in pairs]
    refs = [" ".join(r) for _, r in pairs]
    stats = np.asarray(chrf_stats(hyps, refs))
    assert chrf_from_stats(stats) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score, abs=1e-9)
    idx = data.draw(st.lists(st.integers(0, len(pairs) - 1), min_size=1, max_size=8))  # a resample
    sub_h, sub_r = [hyps[i] for i in idx], [refs[i] for i in idx]
    assert chrf_from_stats(stats[idx]) == pytest.approx(CHRF().corpus_score(sub_h, [sub_r]).score, abs=1e-9)


def test_chrf_stats_needs_one_hypothesis_per_reference():
    with pytest.raises(ConfigError, match="hyps"):
        chrf_stats(["a"], ["a", "b"])


def test_rescore_cli_refuses_links_and_an_empty_folder_in_one_line(tmp_path, capsys):
    from coolmix.cli.__main__ import main

    assert main(["rescore", str(tmp_path)]) == 2  # no finished runs
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "elsewhere")
    assert main(["rescore", str(tmp_path)]) == 2  # a planted link is never followed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no finished runs" in err[0] and "symbolic link" in err[1]
