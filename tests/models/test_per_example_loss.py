"""`per_example_loss` against hand-written cross-entropy, with padding and label smoothing."""

import math

import pytest
import torch

from coolmix.models import per_example_loss


def hand_loss(logits: torch.Tensor, targets: torch.Tensor, pad: int, eps: float = 0.0) -> list[float]:
    """Per example: mean over non-pad t of -(1-eps)·log p[y_t] - eps·mean_v log p[v], in float64 loops."""
    out = []
    for row_logits, row_targets in zip(logits.double(), targets, strict=True):
        terms = []
        for z, y in zip(row_logits, row_targets.tolist(), strict=True):
            if y == pad:
                continue
            logp = z - torch.logsumexp(z, 0)
            terms.append(-(1 - eps) * logp[y].item() - eps * logp.mean().item())
        out.append(sum(terms) / len(terms) if terms else 0.0)
    return out


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g) * 2
    targets = torch.tensor([[4, 1, 6, 3, 3], [5, 2, 3, 3, 3], [3, 3, 3, 3, 3]])  # pad id 3: not 0
    return logits, targets


def test_mean_over_each_examples_real_tokens(batch):
    logits, targets = batch
    loss, n = per_example_loss(logits, targets, pad_id=3)
    assert n.tolist() == [3, 2, 0]
    assert loss.tolist() == pytest.approx(hand_loss(logits, targets, 3), abs=1e-5)
    assert loss[2].item() == 0.0  # an all-pad example costs nothing instead of 0/0


def test_label_smoothing(batch):
    logits, targets = batch
    loss, _ = per_example_loss(logits, targets, pad_id=3, label_smoothing=0.1)
    assert loss.tolist() == pytest.approx(hand_loss(logits, targets, 3, eps=0.1), abs=1e-5)


def test_uniform_logits_cost_log_v():
    loss, n = per_example_loss(torch.zeros(2, 4, 10), torch.tensor([[1, 2, 0, 0], [5, 5, 5, 5]]), pad_id=0)
    assert loss.tolist() == pytest.approx([math.log(10)] * 2)
    assert n.tolist() == [2, 4]


def test_pad_positions_get_no_gradient(batch):
    logits, targets = batch
    logits.requires_grad_(True)
    per_example_loss(logits, targets, pad_id=3, label_smoothing=0.1)[0].sum().backward()
    pad = targets == 3
    assert torch.count_nonzero(logits.grad[pad]) == 0
    assert torch.count_nonzero(logits.grad[~pad]) == logits.grad[~pad].numel()


def test_bf16_logits_give_a_float32_loss(batch):
    logits, targets = batch
    low = logits.bfloat16()
    loss, _ = per_example_loss(low, targets, pad_id=3)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, per_example_loss(low.float(), targets, pad_id=3)[0])
