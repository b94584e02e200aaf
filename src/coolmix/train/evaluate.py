"""Per-domain evaluation helpers on plain strings and numbers: MT scores, loss means, resource buckets.

The trainer owns batching and decoding; these functions only score and group what it collects.
chrF/chrF++/BLEU come from sacrebleu with offline tokenizers (flores/spm ones need a download).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sacrebleu.metrics import BLEU, CHRF

from coolmix.errors import ConfigError
from coolmix.mixture import resource_buckets

__all__ = [
    "CHAR_TOKENIZED",
    "aggregate_domain_losses",
    "bleu_tokenizer",
    "mt_scores",
    "resource_buckets",
]


CHAR_TOKENIZED = frozenset({"ja", "th", "my", "km", "lo"})
"""Languages written without spaces between words, scored by BLEU on characters (``tokenize="char"``)."""


def bleu_tokenizer(lang: str) -> str:
    """sacrebleu BLEU tokenizer for a language code: "zh" for zh*, "char" for ja/th/my/km/lo, else "13a".

    Only the primary subtag counts, so ``zh_CN``, ``zh-Hant`` and ``pt_BR`` work.

    >>> bleu_tokenizer("zh_CN"), bleu_tokenizer("ja"), bleu_tokenizer("kk")
    ('zh', 'char', '13a')
    """
    primary = lang.replace("-", "_").split("_")[0].lower()
    if primary == "zh":
        return "zh"
    return "char" if primary in CHAR_TOKENIZED else "13a"


def mt_scores(hyps: Sequence[str], refs: Sequence[str], lang: str, tokenize: str | None = None) -> dict:
    """Corpus chrF (chrF2), chrF++ (word_order=2) and BLEU of `hyps` against one reference each.

    Returns ``{"chrf", "chrf++", "bleu"}`` as floats in [0, 100] and ``"signature"``: the three
    sacrebleu signatures, each prefixed by its metric name and joined by " ; "
    (``chrF2|nrefs:1|...|nw:0|... ; chrF2++|... ; BLEU|...|tok:13a|...``), to be logged next to
    the numbers. BLEU uses `bleu_tokenizer(lang)` unless `tokenize` is given.

    >>> s = mt_scores(["the cat sat on the mat"], ["the cat sat on the mat"], "en")
    >>> [round(s[k], 6) for k in ("chrf", "chrf++", "bleu")]
    [100.0, 100.0, 100.0]
    """
    if len(hyps) != len(refs):
        raise ConfigError("hyps", len(hyps), f"needs one hypothesis per reference ({len(refs)})")
    if not hyps:
        raise ConfigError("hyps", [], "nothing to score: at least one sentence is needed")
    metrics = {
        "chrf": CHRF(),
        "chrf++": CHRF(word_order=2),
        "bleu": BLEU(tokenize=tokenize or bleu_tokenizer(lang)),
    }
    hyps, refs = list(hyps), [list(refs)]
    scores = {name: m.corpus_score(hyps, refs) for name, m in metrics.items()}
    out: dict = {name: float(score.score) for name, score in scores.items()}
    # A signature exists only after scoring (it records the number of references).
    out["signature"] = " ; ".join(f"{scores[n].name}|{m.get_signature()}" for n, m in metrics.items())
    return out


def aggregate_domain_losses(sum_loss: Mapping[str, float], count: Mapping[str, int]) -> dict[str, float]:
    """Mean loss per domain: ``sum_loss[d] / count[d]``; NaN for a domain with count 0.

    Both mappings must have the same keys; the output keeps `sum_loss`'s order. Whether the sums
    are per token or per example is the caller's choice, as long as `count` counts the same unit.

    >>> aggregate_domain_losses({"en": 6.0, "sw": 0.0}, {"en": 3, "sw": 0})
    {'en': 2.0, 'sw': nan}
    """
    if set(sum_loss) != set(count):
        raise ConfigError(
            "count", sorted(count), f"must have the same domains as sum_loss {sorted(sum_loss)}"
        )
    return {d: float(s) / count[d] if count[d] > 0 else math.nan for d, s in sum_loss.items()}
