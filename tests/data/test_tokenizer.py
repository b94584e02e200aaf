"""BPE tokenizer: round trip after NFKC, control and language tokens, balanced sampling, cache."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coolmix.data import CorpusSpec, load_corpus
from coolmix.data import tokenizer as tokmod
from coolmix.data.tokenizer import SPECIALS, Tokenizer, balanced_sample, train_tokenizer
from coolmix.errors import ConfigError

pytest.importorskip("tokenizers")

EN = [f"the quick brown fox {i} jumps over the lazy dog" for i in range(400)]
SW = ["mbweha mwepesi anaruka juu ya mbwa mvivu", "habari za asubuhi rafiki yangu"]
ZH = ["敏捷的棕色狐狸跳过了懒狗", "早上好我的朋友"] * 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    paths = {}
    for lang, rows in (("en", EN), ("sw", SW), ("zh", ZH)):
        paths[lang] = d / f"{lang}.txt"
        paths[lang].write_text("\n".join(rows), encoding="utf-8")
    spec = CorpusSpec(
        "files", dev_size=0, test_size=0, options={"train": {k: str(v) for k, v in paths.items()}}
    )
    return load_corpus(spec, d)


@pytest.fixture(scope="module")
def tok(corpus, tmp_path_factory):
    return train_tokenizer(corpus, vocab_size=400, cache_dir=tmp_path_factory.mktemp("tokcache"))


def test_ids_of_control_and_language_tokens(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert [tok.lang_id(x) for x in ("en", "sw", "zh")] == [4, 5, 6]
    assert tok.langs == ("en", "sw", "zh") and tok.vocab_size <= 400
    with pytest.raises(ConfigError, match="lang='fr'"):
        tok.lang_id("fr")


def test_decode_skips_specials_and_text_cannot_forge_them(tok):
    ids = tok.encode("mbwa mvivu")
    assert tok.decode([tok.bos_id, tok.lang_id("sw"), *ids, tok.eos_id, tok.pad_id]) == "mbwa mvivu"
    forged = tok.encode("<pad><2sw><eos>")
    assert not set(forged) & {tok.pad_id, tok.eos_id, tok.lang_id("sw")}
    assert tok.decode(forged) == "<pad><2sw><eos>"
    assert tok.encode_batch(["mbwa", "狐狸"]) == [tok.encode("mbwa"), tok.encode("狐狸")]


@given(st.text(max_size=60))
def test_round_trip_is_nfkc(tok, text):
    assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFKC", text)


def test_low_resource_language_gets_vocabulary(corpus, tok, tmp_path):
    # tau=5 samples the two Swahili lines ~60x instead of once: far fewer tokens per Swahili word
    proportional = train_tokenizer(corpus, vocab_size=400, tau=1.0, cache_dir=tmp_path)
    n_tau5, n_tau1 = (sum(len(t.encode(x)) for x in SW) for t in (tok, proportional))
    assert n_tau5 <= 0.6 * n_tau1, (n_tau5, n_tau1)


def test_balanced_sample_counts_follow_temperature():
    domains = {"en": [f"e{i}" for i in range(1000)], "sw": ["s0", "s1"]}
    sample = balanced_sample(domains, tau=1.0, budget=1002, seed=0)
    assert sum(x.startswith("s") for x in sample) == 2  # tau=1: proportional
    sample = balanced_sample(domains, tau=1e9, budget=1000, seed=0)  # ~uniform: 500 each
    assert sum(x.startswith("s") for x in sample) == 500 and sample.count("s0") == sample.count("s1") == 250
    assert balanced_sample(domains, 5.0, 300, seed=1) == balanced_sample(domains, 5.0, 300, seed=1)
    assert balanced_sample(domains, 5.0, 300, seed=1) != balanced_sample(domains, 5.0, 300, seed=2)


def test_cache_hit_retrain_on_corruption_and_save_load(corpus, tmp_path, monkeypatch):
    first = train_tokenizer(corpus, vocab_size=350, tau=5.0, seed=3, cache_dir=tmp_path)
    (path,) = (
        p for p in (tmp_path / "tokenizers").glob("bpe-*.json") if not p.name.endswith(".manifest.json")
    )
    assert corpus.fingerprint in path.name and "-v350-t5-s3-" in path.name
    monkeypatch.setattr(tokmod, "_build", lambda *a: pytest.fail("should load from cache"))
    assert train_tokenizer(corpus, vocab_size=350, tau=5.0, seed=3, cache_dir=tmp_path).encode(
        "fox"
    ) == first.encode("fox")
    monkeypatch.undo()
    path.write_text("{corrupt")
    again = train_tokenizer(corpus, vocab_size=350, tau=5.0, seed=3, cache_dir=tmp_path)
    assert json.loads(path.read_text())["model"]["type"] == "BPE"
    assert again.encode("the lazy dog") == first.encode("the lazy dog")  # training is deterministic
    again.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    assert loaded.encode("狐狸 fox") == first.encode("狐狸 fox") and loaded.langs == first.langs


def _cached_file(root):
    (path,) = (p for p in (root / "tokenizers").glob("bpe-*.json") if not p.name.endswith(".manifest.json"))
    return path


def _retrains(monkeypatch) -> list[int]:
    """Count calls of the BPE trainer (the real one still runs)."""
    calls: list[int] = []
    real = tokmod._build
    monkeypatch.setattr(tokmod, "_build", lambda *a: calls.append(1) or real(*a))
    return calls


@pytest.mark.parametrize(
    "tamper",
    [
        "altered",  # one merge changed: still valid JSON, still loads
        "smaller_vocab",  # a smaller tokenizer copied over the right one (the model-size trap)
        "no_manifest",
        "manifest_wrong_keys",
        "manifest_garbage",
    ],
)
def test_tampered_tokenizer_cache_is_retrained_with_a_warning(corpus, tmp_path, monkeypatch, caplog, tamper):
    first = train_tokenizer(corpus, vocab_size=350, cache_dir=tmp_path)
    path = _cached_file(tmp_path)
    meta = path.with_name(path.stem + ".manifest.json")
    if tamper == "altered":
        data = json.loads(path.read_text(encoding="utf-8"))
        merges = data["model"]["merges"]
        merges[0], merges[1] = merges[1], merges[0]
        path.write_text(json.dumps(data), encoding="utf-8")
        assert Tokenizer.load(path).vocab_size == first.vocab_size  # it would load fine
    elif tamper == "smaller_vocab":
        small = train_tokenizer(corpus, vocab_size=300, cache_dir=tmp_path / "other")
        small.save(path)
        assert Tokenizer.load(path).vocab_size < first.vocab_size
    elif tamper == "no_manifest":
        meta.unlink()
    elif tamper == "manifest_wrong_keys":
        meta.write_text(json.dumps({"format": 1, "sha": "x", "size": 3}), encoding="utf-8")
    else:
        meta.write_bytes(b"\x00" * 40)
    calls = _retrains(monkeypatch)
    with caplog.at_level("WARNING", logger="coolmix"):
        again = train_tokenizer(corpus, vocab_size=350, cache_dir=tmp_path)
    assert calls == [1]
    warned = [r.getMessage() for r in caplog.records if "tokenizer cache" in r.getMessage()]
    assert len(warned) == 1 and "retraining" in warned[0]
    assert again.vocab_size == first.vocab_size
    assert again.encode("the lazy dog mbwa 狐狸") == first.encode("the lazy dog mbwa 狐狸")
    # and the rebuilt entry is trusted again: no retraining, no warning
    calls.clear()
    caplog.clear()
    train_tokenizer(corpus, vocab_size=350, cache_dir=tmp_path)
    assert calls == [] and not [r for r in caplog.records if "tokenizer cache" in r.getMessage()]


def test_mt_corpus_gets_source_side_and_target_tags(tmp_path):
    es = tmp_path / "es.tsv"
    es.write_text("\n".join(f"Open file {i}\tAbrir archivo {i}" for i in range(50)), encoding="utf-8")
    mt = load_corpus(
        CorpusSpec("files", dev_size=0, test_size=0, options={"task": "mt", "train": {"es": str(es)}}),
        tmp_path,
    )
    tok = train_tokenizer(mt, vocab_size=300, cache_dir=tmp_path)
    assert tok.langs == ("es",) and tok.decode(tok.encode("Open archivo")) == "Open archivo"


def test_bad_arguments(corpus, tmp_path):
    for kw, field in (
        ({"vocab_size": 100}, "vocab_size"),
        ({"tau": 0}, "tau"),
        ({"max_texts": 0}, "max_texts"),
    ):
        with pytest.raises(ConfigError) as e:
            train_tokenizer(corpus, cache_dir=tmp_path, **kw)
        assert e.value.field == field
    with pytest.raises(ConfigError, match="cannot load"):
        Tokenizer.load(tmp_path / "missing.json")
    assert SPECIALS == ("<pad>", "<bos>", "<eos>", "<unk>")
