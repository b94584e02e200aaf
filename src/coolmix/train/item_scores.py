"""Per-item test scores: every test item's loss (and for MT its chrF statistics).

The headline test numbers average a fixed slice of the test set; these keep one value per item
over the *whole* split, so a report can bootstrap over test items inside each seed and say which
gaps the test set can resolve (`coolmix.reproduce.resolution`). Stored in the final metrics
record under ``test_items``:

- ``loss[lang]``: each item's mean token loss; ``tokens[lang]``: its target token count, so the
  split's loss is Σ loss·tokens / Σ tokens, the same token-level mean as the headline number;
- ``chrf[lang]`` (MT): each sentence's chrF sufficient statistics (sacrebleu's 3 counts per
  character n-gram order), so corpus chrF of any resample is exact: chrF(Σ rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError

__all__ = ["ITEMS_KEY", "chrf_from_stats", "chrf_stats", "item_losses", "items_metric", "test_items"]

ITEMS_KEY = "test_items"
LOSS_DIGITS = 5
"""Per-item losses are stored rounded to 1e-5 nats: far below any gap a report reads."""


def item_losses(
    model: Any,
    task: Any,
    data: Any,
    loss_fn: Callable[..., tuple[Any, Any]],
    batch_size: int,
    device: Any,
    autocast: Any,
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """(per-item mean token loss, per-item target tokens) for every item of every domain of ``data``.

    Every rank scores the whole split (it is small: a test set), so no collective is needed.
    """
    import torch

    was_training = model.training
    model.eval()
    losses: dict[str, list[float]] = {}
    tokens: dict[str, list[int]] = {}
    try:
        for k, lang in enumerate(data.names):
            items = np.arange(data.size(k), dtype=np.int64)
            lo: list[float] = []
            tok: list[int] = []
            for i in range(0, len(items), batch_size):
                chunk = items[i : i + batch_size]
                b = task.batch(data, np.full(len(chunk), k, dtype=np.int64), chunk, device)
                with autocast, torch.no_grad():
                    loss, n_tok = loss_fn(model(*b.inputs), b.targets)
                lo += [round(float(x), LOSS_DIGITS) for x in loss.double().tolist()]
                tok += [int(x) for x in n_tok.tolist()]
            losses[lang], tokens[lang] = lo, tok
    finally:
        model.train(was_training)
    return losses, tokens


def chrf_stats(hyps: Sequence[str], refs: Sequence[str]) -> list[list[int]]:
    """Each sentence's chrF statistics (sacrebleu CHRF, chrF2 defaults): one row per sentence."""
    from sacrebleu.metrics import CHRF

    if len(hyps) != len(refs):
        raise ConfigError("hyps", len(hyps), f"needs one hypothesis per reference ({len(refs)})")
    rows = CHRF()._extract_corpus_statistics(list(hyps), [list(refs)])
    return [[int(v) for v in row] for row in rows]


def chrf_from_stats(rows: np.ndarray) -> float:
    """Corpus chrF of sentences whose statistics are ``rows`` (summed, then scored as sacrebleu does).

    >>> s = chrf_stats(["the cat sat", "a dog"], ["the cat sat on", "the dog"])
    >>> round(chrf_from_stats(np.asarray(s)), 4)
    65.5108
    """
    from sacrebleu.metrics import CHRF

    total = np.asarray(rows, dtype=np.int64).sum(axis=0)
    return float(CHRF()._compute_score_from_stats([int(v) for v in total]).score)


def items_metric(items: Mapping[str, Any], lang: str, metric: str, idx: np.ndarray | None = None) -> Any:
    """``metric`` of ``lang`` from a ``test_items`` record, on items ``idx`` (a 2-D array: one value
    per row, a resample; None: every item, one float): Σ l·t / Σ t for ``loss``, corpus chrF of the
    summed statistics for ``chrf``."""
    if metric == "chrf":
        stats = np.asarray(items["chrf"][lang], dtype=np.int64)
        if idx is None:
            return chrf_from_stats(stats)
        return np.array([chrf_from_stats(stats[row]) for row in idx])
    if metric != "loss":
        raise ConfigError("metric", metric, "per-item scores hold loss and chrf only")
    loss = np.asarray(items["loss"][lang], dtype=np.float64)
    tok = np.asarray(items["tokens"][lang], dtype=np.float64)
    if idx is None:
        return float((loss * tok).sum() / tok.sum())
    return (loss[idx] * tok[idx]).sum(axis=1) / tok[idx].sum(axis=1)


def test_items(
    model: Any,
    data: Any,
    loss_fn: Callable[..., tuple[Any, Any]],
    batch_size: int,
    env: Any,
    autocast: Callable[[], Any],
    decode: bool = False,
) -> dict[str, Any]:
    """The ``test_items`` record of a trained model on its whole test split (see the module doc);
    ``decode`` (MT) translates every test sentence for its chrF statistics."""
    from coolmix.train import tasks

    arrays = data.splits["test"]
    losses, tokens = item_losses(model, data.task, arrays, loss_fn, batch_size, env.device, autocast())
    out: dict[str, Any] = {"n": {k: len(v) for k, v in losses.items()}, "loss": losses, "tokens": tokens}
    if decode:
        out["chrf"] = {}
        for k, lang in enumerate(arrays.names):
            hyps, refs = tasks.translate(model, data.task, arrays, k, 0, batch_size, env, autocast())
            out["chrf"][lang] = chrf_stats(hyps, refs) if refs else []
    return out
