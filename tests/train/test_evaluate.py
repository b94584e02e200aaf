"""Evaluation helpers: sacrebleu's own numbers, tokenizer choice per language, loss means, buckets."""

import doctest
import math

import pytest
import sacrebleu

import coolmix.train.evaluate
from coolmix.errors import ConfigError
from coolmix.train.evaluate import aggregate_domain_losses, bleu_tokenizer, mt_scores, resource_buckets

HYPS = ["The cat sat on a mat in the sun.", "Preferred audio lang", "Create new layer now"]
REFS = ["The cat sat on the mat in the sun.", "Preferred audio language", "Create a new layer"]
ZH_HYPS = ["我们今天去公园散步。", "这是一个新的图层"]
ZH_REFS = ["我们今天去公园散步了。", "创建一个新的图层"]


@pytest.mark.parametrize(
    ("lang", "hyps", "refs", "tok"),
    [("en", HYPS, REFS, "13a"), ("zh_CN", ZH_HYPS, ZH_REFS, "zh"), ("ja", ZH_HYPS, ZH_REFS, "char")],
)
def test_scores_equal_sacrebleu_called_directly(lang, hyps, refs, tok):
    s = mt_scores(hyps, refs, lang)
    assert s["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    assert s["chrf++"] == sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score
    assert s["bleu"] == sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok).score
    assert all(type(s[k]) is float for k in ("chrf", "chrf++", "bleu"))
    assert all(0 < s[k] < 100 for k in ("chrf", "chrf++", "bleu"))  # a partial match, not degenerate
    assert f"tok:{tok}" in s["signature"]
    assert "chrF2|" in s["signature"] and "chrF2++|" in s["signature"] and "BLEU|" in s["signature"]


def test_identical_strings_score_100():
    s = mt_scores(REFS, REFS, "en")
    assert [s[k] for k in ("chrf", "chrf++", "bleu")] == pytest.approx([100.0] * 3)


def test_tokenize_override():
    s = mt_scores(ZH_HYPS, ZH_REFS, "zh", tokenize="char")
    assert "tok:char" in s["signature"]
    assert s["bleu"] == sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="char").score


@pytest.mark.parametrize(
    ("lang", "tok"),
    [("zh", "zh"), ("zh_TW", "zh"), ("zh-Hant", "zh"), ("ja", "char"), ("th", "char"), ("my", "char"),
     ("km", "char"), ("lo", "char"), ("ko", "13a"), ("pt_BR", "13a"), ("es", "13a")],
)  # fmt: skip
def test_bleu_tokenizer_per_language(lang, tok):
    assert bleu_tokenizer(lang) == tok


def test_mismatched_or_empty_inputs_are_rejected():
    with pytest.raises(ConfigError, match="hyps"):
        mt_scores(HYPS[:2], REFS, "en")
    with pytest.raises(ConfigError, match="hyps"):
        mt_scores([], [], "en")


def test_aggregate_domain_losses():
    out = aggregate_domain_losses({"en": 9.0, "it": 2.5, "sw": 0.0}, {"en": 4, "it": 1, "sw": 0})
    assert list(out) == ["en", "it", "sw"]
    assert out["en"] == 2.25 and out["it"] == 2.5 and math.isnan(out["sw"])
    with pytest.raises(ConfigError, match="count"):
        aggregate_domain_losses({"en": 1.0}, {"en": 1, "sw": 2})


def test_ratio_buckets_at_the_default_thresholds():
    sizes = {"top": 1000, "at_high": 900, "below_high": 899, "at_low": 400, "below_low": 399, "empty": 0}
    expected = ["high", "high", "mid", "mid", "low", "low"]
    assert resource_buckets(sizes) == dict(zip(sizes, expected, strict=True))


def test_ratio_buckets_reproduce_the_papers_opus_split():
    # Li et al. 2025: HRL at the largest size (1M), mid 500K-1M, LRL below 500K.
    sizes = {"es": 1_000_000, "it": 1_000_000, "gl": 515_000, "kk": 500_000, "hi": 499_000, "ha": 76_000}
    buckets = resource_buckets(sizes, high_frac=1.0, low_frac=0.5)
    assert buckets == {"es": "high", "it": "high", "gl": "mid", "kk": "mid", "hi": "low", "ha": "low"}


def test_tercile_buckets():
    nine = {lang: n for lang, n in zip("abcdefghi", [9, 1, 8, 2, 7, 3, 6, 4, 5], strict=True)}
    buckets = resource_buckets(nine, by="tercile")
    assert [lang for lang in nine if buckets[lang] == "high"] == ["a", "c", "e"]
    assert [lang for lang in nine if buckets[lang] == "mid"] == ["g", "h", "i"]
    assert [lang for lang in nine if buckets[lang] == "low"] == ["b", "d", "f"]
    assert resource_buckets({"x": 5}, by="tercile") == {"x": "high"}
    assert resource_buckets({"x": 5, "y": 5}, by="tercile") == {"x": "high", "y": "mid"}  # ties: input order


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sizes": {}}, "sizes"),
        ({"sizes": {"en": 0}}, "sizes"),
        ({"sizes": {"en": -1}}, "sizes['en']"),
        ({"sizes": {"en": 1}, "low_frac": 0.95}, "low_frac"),
        ({"sizes": {"en": 1}, "by": "quartile"}, "by"),
    ],
)
def test_bucket_arguments_are_validated(kwargs, field):
    with pytest.raises(ConfigError) as e:
        resource_buckets(**kwargs)
    assert e.value.field == field


def test_docstring_examples():
    assert doctest.testmod(coolmix.train.evaluate).failed == 0
