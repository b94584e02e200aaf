"""Per-example token losses: the quantity that sampling and loss-weighting both act on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["per_example_loss"]


def per_example_loss(
    logits: Tensor, targets: Tensor, pad_id: int, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Mean token cross-entropy of each example over its non-pad targets, and its token count.

    logits [B, T, V], targets [B, T] -> (loss [B] float32, n_tokens [B] long). With smoothing ε,
    each token costs (1-ε)·(-log p_y) + ε·mean_v(-log p_v) over all V classes (torch's
    definition). An example with no real target token gets loss 0. Computed in float32 even under
    bf16 autocast. Per-example means (not a batch token sum) let `weighted_loss` reweight
    examples by domain.

    >>> logits = torch.zeros(1, 3, 4)  # uniform over 4 classes: -log(1/4) per token
    >>> loss, n = per_example_loss(logits, torch.tensor([[1, 2, 0]]), pad_id=0)
    >>> round(loss.item(), 4), n.tolist()
    (1.3863, [2])
    """
    b, t, v = logits.shape
    tok = F.cross_entropy(
        logits.float().reshape(b * t, v),
        targets.reshape(b * t),
        ignore_index=pad_id,
        reduction="none",
        label_smoothing=label_smoothing,
    ).view(b, t)
    n_tokens = (targets != pad_id).sum(dim=1)
    return tok.sum(dim=1) / n_tokens.clamp(min=1).to(torch.float32), n_tokens
