"""files / jsonl loaders on temporary files: carving, given splits, caps and errors."""

from __future__ import annotations

import json

import pytest

from coolmix.data import CorpusSpec, load_corpus
from coolmix.errors import ConfigError


def lines(path, rows) -> str:
    path.write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def lm_files(tmp_path):
    # "en 17" / "sw 3": the text says its language and line; sw repeats line 0 to test dedupe by text
    en = lines(tmp_path / "en.txt", [f"en {i}" for i in range(300)] + ["", "   "])
    sw = lines(tmp_path / "sw.txt", [f"sw {i}" for i in range(40)] + ["sw 0"])
    return {"en": en, "sw": sw}


def test_lm_files_carved(tmp_path, lm_files):
    spec = CorpusSpec("files", dev_size=10, test_size=12, options={"train": lm_files})
    corpus = load_corpus(spec, tmp_path)
    assert corpus.task == "lm" and corpus.langs == ("en", "sw")
    assert corpus.sizes("dev") == {"en": 10, "sw": 10} and corpus.sizes("test") == {"en": 12, "sw": 12}
    assert corpus.sizes("train")["en"] == 300 - 22
    for lang in corpus.langs:
        held = set(corpus.split("dev")[lang]) | set(corpus.split("test")[lang])
        assert not held & set(corpus.split("train")[lang])
        assert all(t.startswith(f"{lang} ") for t in corpus.split("train")[lang])
    # the two "sw 0" lines (one key) never straddle two splits
    assert sum("sw 0" in corpus.split(s)["sw"] for s in ("train", "dev", "test")) == 1
    assert corpus.manifest["source"]["files"][lm_files["en"]]


def test_lm_files_given_splits_and_caps(tmp_path, lm_files):
    dev = {
        "en": lines(tmp_path / "en.dev", ["en d0", "en d1", "en d2"]),
        "sw": lines(tmp_path / "sw.dev", ["sw d0"]),
    }
    test = {
        "en": lines(tmp_path / "en.test", ["en t0"]),
        "sw": lines(tmp_path / "sw.test", ["sw t0", "sw t1"]),
    }
    spec = CorpusSpec(
        "files",
        ("sw", "en"),
        train_sizes={"en": 5},
        dev_size=2,
        test_size=None,
        options={"train": lm_files, "dev": dev, "test": test},
    )
    corpus = load_corpus(spec, tmp_path)
    assert corpus.langs == ("sw", "en")
    assert corpus.split("dev") == {"sw": ["sw d0"], "en": ["en d0", "en d1"]}
    assert corpus.split("test") == {"sw": ["sw t0", "sw t1"], "en": ["en t0"]}
    assert corpus.sizes("train") == {"sw": 41, "en": 5}


def test_mt_tsv_files_split_by_source(tmp_path):
    es = lines(tmp_path / "es.tsv", [f"Source {i}\tFuente {i}" for i in range(100)])
    ga = lines(tmp_path / "ga.tsv", [f"Source {i}\tFoinse {i}" for i in range(50, 120)])
    spec = CorpusSpec("files", dev_size=8, test_size=8, options={"task": "mt", "train": {"es": es, "ga": ga}})
    corpus = load_corpus(spec, tmp_path)
    assert corpus.task == "mt" and corpus.split("dev")["es"][0][0].startswith("Source ")
    src = {s: {x for v in corpus.split(s).values() for x, _ in v} for s in ("train", "dev", "test")}
    assert not src["train"] & (src["dev"] | src["test"]) and not src["dev"] & src["test"]


def test_jsonl_lm_and_mt(tmp_path):
    lm = tmp_path / "lm.jsonl"
    recs = [{"lang": "it", "text": f"it {i}"} for i in range(60)] + [
        {"lang": "zh", "text": f"zh {i}"} for i in range(30)
    ]
    lm.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    corpus = load_corpus(CorpusSpec("jsonl", dev_size=5, test_size=5, options={"train": str(lm)}), tmp_path)
    assert (
        corpus.task == "lm" and corpus.langs == ("it", "zh") and corpus.sizes("train") == {"it": 50, "zh": 20}
    )
    only_zh = load_corpus(
        CorpusSpec("jsonl", ("zh",), dev_size=5, test_size=5, options={"train": str(lm)}), tmp_path
    )
    assert only_zh.langs == ("zh",) and only_zh.split("dev") == {"zh": corpus.split("dev")["zh"]}

    mt = tmp_path / "mt.jsonl"
    mt.write_text("\n".join(json.dumps({"lang": "fr", "src": f"s{i}", "tgt": f"t{i}"}) for i in range(30)))
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"lang": "fr", "src": "a", "tgt": "b"}))
    opts = {"train": str(mt), "dev": str(dev), "test": str(dev)}
    corpus = load_corpus(CorpusSpec("jsonl", train_sizes={"fr": 10}, options=opts), tmp_path)
    assert (
        corpus.task == "mt"
        and corpus.split("dev") == {"fr": [("a", "b")]}
        and corpus.sizes("train") == {"fr": 10}
    )


def test_bad_files(tmp_path, lm_files):
    cases = [
        ({"train": {"en": str(tmp_path / "nope.txt")}}, "options.train.en", "file not found"),
        ({"train": "en.txt"}, "options.train", "must map language"),
        ({"train": lm_files, "dev": lm_files}, "options.dev", "give both dev and test"),
        ({"train": lm_files, "task": "asr"}, "options.task", "expected 'lm' or 'mt'"),
        ({"train": {"en": lm_files["en"]}, "task": "mt"}, "options.train.en", "source<TAB>target"),
    ]
    for options, field, why in cases:
        with pytest.raises(ConfigError, match=why) as e:
            load_corpus(CorpusSpec("files", options=options), tmp_path)
        assert e.value.field == field
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_corpus(CorpusSpec("files", options={"train": {"fr": str(tmp_path / "latin1.txt")}}), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.train\.de=None: no file"):
        load_corpus(CorpusSpec("files", ("de",), options={"train": lm_files}), tmp_path)
    with pytest.raises(ConfigError, match="dev_size"):  # only 41 sw lines
        load_corpus(CorpusSpec("files", dev_size=30, test_size=30, options={"train": lm_files}), tmp_path)


def test_bad_jsonl(tmp_path):
    bad = tmp_path / "bad.jsonl"
    for text, why in (
        ('{"lang": "it", "text": "ok"}\n{oops\n', "invalid JSON"),
        ('{"text": "no lang"}\n', '"lang"'),
        (
            '{"lang": "it", "text": "lm"}\n{"lang": "it", "src": "mt", "tgt": "x"}\n',
            r"non-empty string fields \['text'\]",
        ),
    ):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=why) as e:
            load_corpus(CorpusSpec("jsonl", options={"train": str(bad)}), tmp_path)
        assert e.value.field == "options.train" and "bad.jsonl:" in str(e.value.value)
    with pytest.raises(ConfigError, match=r"options\.train"):
        load_corpus(CorpusSpec("jsonl", options={}), tmp_path)
