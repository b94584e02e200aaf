"""hub loader (OPUS-100 / mC4 code path) on local JSONL files in the hub's column layout."""

from __future__ import annotations

import json

import pytest

from coolmix.data import CorpusSpec, hub, load_corpus
from coolmix.errors import ConfigError


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def opus_files(tmp_path, lang: str, n: int) -> dict[str, str]:
    def rows(split: str, k: int) -> list[dict]:
        return [
            {"translation": {"en": f"{split} sentence {i}", lang: f"{lang} {split} {i}"}} for i in range(k)
        ]

    return {
        s: write(tmp_path / f"opus.{lang}.{s}.jsonl", rows(s, k))
        for s, k in (("train", n), ("validation", 30), ("test", 40))
    }


def test_config_names():
    assert hub.config_name("opus100", "es") == "en-es" and hub.config_name("opus100", "am") == "am-en"
    assert hub.config_name("mc4", "sw") == "sw"


def test_missing_datasets_says_pip_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_datasets(name, *a, **kw):
        if name == "datasets":
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    spec = CorpusSpec(
        "hub", ("es",), options={"dataset": "opus100", "data_files": {"es": opus_files(tmp_path, "es", 5)}}
    )
    with pytest.raises(ConfigError, match="pip install datasets"):
        load_corpus(spec, tmp_path)


def test_opus100_layout(tmp_path):
    pytest.importorskip("datasets")
    files = {"es": opus_files(tmp_path, "es", 200), "ga": opus_files(tmp_path, "ga", 50)}
    spec = CorpusSpec(
        "hub",
        ("es", "ga"),
        train_sizes={"es": 60},
        dev_size=20,
        test_size=None,
        options={"dataset": "opus100", "data_files": files},
    )
    corpus = load_corpus(spec, tmp_path)
    assert corpus.task == "mt" and corpus.sizes("train") == {"es": 60, "ga": 50}
    assert corpus.sizes("dev") == {"es": 20, "ga": 20} and corpus.sizes("test") == {"es": 40, "ga": 40}
    assert corpus.split("dev")["ga"][0] == ("validation sentence 0", "ga validation 0")
    assert all(tgt == f"es train {src.split()[-1]}" for src, tgt in corpus.split("train")["es"])
    again = load_corpus(spec, tmp_path)
    assert again.fingerprint == corpus.fingerprint
    other = load_corpus(CorpusSpec.from_dict({**spec.to_dict(), "seed": 1}), tmp_path)
    assert set(other.split("train")["es"]) != set(corpus.split("train")["es"])
    assert corpus.manifest["source"]["dataset"] == "opus100"


def test_mc4_layout_streams_and_needs_sizes(tmp_path):
    pytest.importorskip("datasets")
    files = {
        lang: {
            "train": write(
                tmp_path / f"mc4.{lang}.train.jsonl",
                [{"text": f"{lang} doc {i}", "url": "u"} for i in range(100)],
            ),
            "validation": write(
                tmp_path / f"mc4.{lang}.val.jsonl", [{"text": f"{lang} val {i}"} for i in range(20)]
            ),
        }
        for lang in ("en", "sw")
    }
    opts = {"dataset": "mc4", "data_files": files, "shuffle_buffer": 16}
    corpus = load_corpus(
        CorpusSpec(
            "hub", ("en", "sw"), train_sizes={"en": 50, "sw": 3}, dev_size=5, test_size=7, options=opts
        ),
        tmp_path,
    )
    assert corpus.task == "lm" and corpus.sizes("train") == {"en": 50, "sw": 3}
    assert corpus.split("dev")["sw"] == [f"sw val {i}" for i in range(5)]
    assert corpus.split("test")["sw"] == [f"sw val {i}" for i in range(5, 12)]
    with pytest.raises(ConfigError, match="mc4 is too large"):
        load_corpus(CorpusSpec("hub", ("en", "sw"), options=opts), tmp_path)


def test_bad_hub_inputs(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(ConfigError, match=r"options\.dataset"):
        load_corpus(CorpusSpec("hub", ("es",), options={"dataset": "wmt"}), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.data_files\.es\.train"):
        load_corpus(
            CorpusSpec(
                "hub",
                ("es",),
                options={"dataset": "opus100", "data_files": {"es": {"train": str(tmp_path / "x")}}},
            ),
            tmp_path,
        )
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    files = {"es": {"train": str(broken), "validation": str(broken), "test": str(broken)}}
    with pytest.raises(ConfigError) as e:
        load_corpus(CorpusSpec("hub", ("es",), options={"dataset": "opus100", "data_files": files}), tmp_path)
    assert e.value.field == "langs"
