"""CorpusSpec validation and config round trips; the registry's option checking."""

from __future__ import annotations

import pytest

from coolmix.data import CORPORA, CorpusSpec, load_corpus
from coolmix.errors import ConfigError


def test_round_trip_through_dict_and_hash():
    spec = CorpusSpec(
        "bible", ("en", "sw"), train_sizes={"en": 100, "sw": 3}, seed=2, options={"min_chars": 3}
    )
    again = CorpusSpec.from_dict(spec.to_dict())
    assert again == spec and hash(again) == hash(spec)
    assert spec.to_dict()["langs"] == ["en", "sw"]


def test_ratios_resolve_with_max_train():
    spec = CorpusSpec(
        "bible", ("en", "it", "zh", "sw"), ratios={"en": 2733, "it": 162, "zh": 39, "sw": 1}, max_train=20000
    )
    assert spec.train_counts() == {"en": 20000, "it": 1186, "zh": 285, "sw": 7}
    assert CorpusSpec("gettext", ("es", "ga"), max_train=50).train_counts() == {"es": 50, "ga": 50}
    assert CorpusSpec("gettext", ("es",)).train_counts() is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "wiki"}, "name"),
        ({"langs": ("en", "en")}, "langs"),
        ({"langs": ("en", "")}, "langs"),
        ({"train_sizes": {"en": 0}}, "train_sizes.en"),
        ({"train_sizes": {"fr": 10}}, "train_sizes.fr"),
        ({"train_sizes": {"en": 1.5}}, "train_sizes.en"),
        ({"ratios": {"en": 1, "sw": 1}}, "max_train"),
        ({"ratios": {"en": 1}, "max_train": 10}, "ratios"),
        ({"ratios": {"en": 1, "sw": -1}, "max_train": 10}, "ratios.sw"),
        ({"ratios": {"en": 1, "sw": 1}, "train_sizes": {"en": 1}, "max_train": 5}, "ratios"),
        ({"max_train": 0}, "max_train"),
        ({"dev_size": -1}, "dev_size"),
        ({"test_size": 2.5}, "test_size"),
        ({"seed": "0"}, "seed"),
        ({"options": [1]}, "options"),
    ],
)
def test_bad_specs_name_the_field(kwargs, field):
    base = {"name": "bible", "langs": ("en", "sw")}
    with pytest.raises(ConfigError) as e:
        CorpusSpec(**{**base, **kwargs})
    assert e.value.field == field


def test_from_dict_rejects_unknown_keys_and_missing_name():
    with pytest.raises(ConfigError, match=r"corpus\.lang="):
        CorpusSpec.from_dict({"name": "bible", "lang": ["en"]})
    with pytest.raises(ConfigError, match=r"corpus\.name"):
        CorpusSpec.from_dict({"langs": ["en"]})


def test_unknown_option_is_rejected_before_any_build(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_corpus(CorpusSpec("bible", ("en",), options={"edition": {"en": "4"}}), tmp_path)
    assert e.value.field == "options.edition"
    assert not (tmp_path / "bible").exists()


def test_registry_lists_every_builder_with_defaults():
    assert set(CORPORA) == {"bible", "gettext", "files", "jsonl", "hub"}
    assert CORPORA["bible"].task == "lm" and CORPORA["gettext"].task == "mt"
    assert "packages" in CORPORA["gettext"].options


def test_cache_dir_env_is_the_default(tmp_path, monkeypatch, fake_bible):
    monkeypatch.setenv("COOLMIX_CACHE", str(tmp_path / "envcache"))
    load_corpus(CorpusSpec("bible", ("en",), dev_size=10, test_size=10))
    assert (tmp_path / "envcache" / "bible" / "manifest.json").is_file()


def test_split_name_is_checked(tmp_path, fake_bible):
    corpus = load_corpus(CorpusSpec("bible", ("en",), dev_size=5, test_size=5), tmp_path)
    with pytest.raises(ConfigError, match="split='valid'"):
        corpus.split("valid")
