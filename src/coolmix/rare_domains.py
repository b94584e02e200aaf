"""The one rare-domain warning: a domain drawn less than once a batch, and the loss weight it carries.

A domain with 0 < p_i·B < 1 is absent from most exact batches (about 1 − p_i·B of them; iid:
(1 − p_i)^B). With a loss weight w_i > 1 its loss enters at weight w_i in the few batches that
draw it: an unbiased but high-variance estimate (Li et al. 2025, Thm. 2), e.g. w = 110.5 at
p·B = 0.02. `coolmix.plan`, `coolmix.loss_weights`, the trainer and the HF `MixtureTrainer` all
word it through `rare_domain_warning`, so a user sees the same line wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["EXTREME_WEIGHT", "rare_domain_warning", "weight_warnings"]

EXTREME_WEIGHT = 100.0
"""Without a batch size (so without p·B), a loss weight from this value on is worth a warning."""


def rare_domain_warning(
    name: str,
    per_batch: float,
    batch_size: int,
    composition: str = "exact",
    where: str | None = "every phase",
    weight: float | None = None,
) -> str:
    """The warning for a domain drawn p·B < 1 times a batch (``where``: the phases it holds in,
    None for a single distribution), with the loss weight it carries when one is given and > 1.

    >>> rare_domain_warning("sw", 0.02, 64, where=None, weight=110.5)[:64]
    'sw: p·B = 0.02 < 1: absent from about 98% of batches; its loss w'
    """
    # exact composition puts the domain in about p·B of the batches; iid in 1 − (1 − p)^B
    absent = 1 - per_batch if composition == "exact" else (1 - per_batch / batch_size) ** batch_size
    head = f"{name}: p·B = {per_batch:.2g} < 1"
    if where is None:
        text = f"{head}: absent from about {absent:.0%} of batches"
    else:
        text = f"{head} in {where}: absent from about {absent:.0%} of those batches"
    if weight is not None and weight > 1:
        text += f"; its loss weight {weight:.4g} lands on the few batches that draw it (high variance)"
    return text


def weight_warnings(
    names: Sequence[str],
    weights: np.ndarray,
    p_sample: np.ndarray,
    batch_size: int | None = None,
    composition: str = "exact",
    where: str | None = None,
) -> list[str]:
    """Warnings for up-weighted domains (w_i > 1) that are rarely drawn: 0 < p_i·B < 1, or, without
    a batch size, a weight of at least `EXTREME_WEIGHT`."""
    out = []
    for i, n in enumerate(names):
        w, p = float(weights[i]), float(p_sample[i])
        if w <= 1 or p <= 0:
            continue
        if batch_size is not None and p * batch_size < 1:
            out.append(rare_domain_warning(n, p * batch_size, batch_size, composition, where, w))
        elif batch_size is None and w >= EXTREME_WEIGHT:
            out.append(
                f"{n}: loss weight {w:.4g} (p_target / p_sample; drawn with p = {p:.2g}): its rare draws "
                "carry the loss (high variance); pass batch_size= to see how often a batch holds it"
            )
    return out
