"""Per-domain evaluation helpers on plain strings and numbers: MT scores, loss means, resource buckets.

The trainer owns batching and decoding; these functions only score and group what it collects.
chrF/chrF++/BLEU come from sacrebleu with offline tokenizers (flores/spm ones need a download).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from sacrebleu.metrics import BLEU, CHRF

from coolmix.errors import ConfigError

__all__ = [
    "CHAR_TOKENIZED",
    "aggregate_domain_losses",
    "bleu_tokenizer",
    "mt_scores",
    "resource_buckets",
]

Bucket = Literal["high", "mid", "low"]

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


def resource_buckets(
    sizes: Mapping[str, int],
    high_frac: float = 0.9,
    low_frac: float = 0.4,
    by: Literal["ratio", "tercile"] = "ratio",
) -> dict[str, Bucket]:
    """Label each domain high / mid / low resource by its training size.

    ``by="ratio"`` (default): with r = n / max(n), r >= high_frac -> "high", r >= low_frac ->
    "mid", else "low". The paper's OPUS buckets (HRL 1M, mid 500K-1M, LRL < 500K, largest 1M) are
    ``high_frac=1.0, low_frac=0.5``; the defaults 0.9 / 0.4 leave room for near-maximal sizes.
    ``by="tercile"``: rank by size (largest first, ties in input order) and label the first
    ceil(K/3) "high", the last floor(K/3) "low" and the rest "mid"; the fractions are ignored.

    >>> resource_buckets({"es": 31_663, "gl": 18_730, "hi": 9_080, "ga": 2_277})
    {'es': 'high', 'gl': 'mid', 'hi': 'low', 'ga': 'low'}
    >>> resource_buckets({"es": 31_663, "gl": 18_730, "hi": 9_080, "ga": 2_277}, by="tercile")
    {'es': 'high', 'gl': 'high', 'hi': 'mid', 'ga': 'low'}
    """
    if not sizes:
        raise ConfigError("sizes", dict(sizes), "needs at least one domain")
    for d, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"sizes[{d!r}]", n, "must be an integer >= 0")
    if by == "tercile":
        order = sorted(sizes, key=lambda d: -sizes[d])  # stable: ties keep input order
        k = len(order)
        n_high, n_low = math.ceil(k / 3), k // 3
        rank = {d: i for i, d in enumerate(order)}
        return {d: "high" if rank[d] < n_high else "low" if rank[d] >= k - n_low else "mid" for d in sizes}
    if by != "ratio":
        raise ConfigError("by", by, "must be 'ratio' or 'tercile'")
    if not 0.0 <= low_frac <= high_frac <= 1.0:
        raise ConfigError("low_frac", low_frac, f"need 0 <= low_frac <= high_frac={high_frac} <= 1")
    largest = max(sizes.values())
    if largest == 0:
        raise ConfigError("sizes", dict(sizes), "all sizes are 0")
    out: dict[str, Bucket] = {}
    for d, n in sizes.items():
        r = n / largest
        out[d] = "high" if r >= high_frac else "mid" if r >= low_frac else "low"
    return out
