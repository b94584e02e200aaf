"""The torch path of `weighted_loss`: sums in float32 at least, tensors checked like arrays,
integer losses converted (not truncating the weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import coolmix as cm

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mean", 10.0),
        ("sum", 10.0 * 64 * 2048),
        ("masked", 10.0),
        ("self_normalized", 10.0),
        ("weight_1e5", 1e5 * 10.0),
    ],
)
def test_half_precision_losses_do_not_overflow(dtype, case, expected):
    loss = torch.full((64, 2048), 10.0, dtype=dtype)
    ids = torch.zeros(64, dtype=torch.long)
    w = torch.tensor([1e5 if case == "weight_1e5" else 1.0, 1.0])
    kw = {}
    if case == "masked":
        kw["mask"] = torch.ones(64, 2048, dtype=torch.bool)
    reduction = {"sum": "sum", "self_normalized": "self_normalized"}.get(case, "mean")
    got = cm.weighted_loss(loss, ids, w, reduction, **kw)
    assert got.dtype == torch.float32
    assert math.isfinite(float(got)) and float(got) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_per_example_losses_with_4096_tokens(dtype):
    loss = torch.full((64,), 10.0, dtype=dtype)
    n = torch.full((64,), 4096.0, dtype=dtype)
    got = cm.weighted_loss(loss, torch.zeros(64, dtype=torch.long), [1.0, 1.0], "sum", n_tokens=n)
    assert float(got) == pytest.approx(10.0 * 4096 * 64)


def test_the_gradient_still_flows_to_a_half_precision_loss():
    loss = torch.full((4, 8), 2.0, dtype=torch.bfloat16, requires_grad=True)
    cm.weighted_loss(loss, torch.tensor([0, 1, 0, 1]), torch.tensor([1.0, 3.0])).backward()
    assert loss.grad is not None and loss.grad.dtype == torch.bfloat16
    assert loss.grad[1, 0].item() == pytest.approx(3.0 / 32)


@pytest.mark.parametrize(
    "weights",
    [[-5.0, 1.0], [math.nan, 1.0], [math.inf, 1.0], [1.0, -math.inf]],
    ids=["neg", "nan", "inf", "-inf"],
)
def test_weight_tensors_are_checked_like_arrays(weights):
    loss = torch.tensor([1.0, 3.0])
    for w in (torch.tensor(weights), np.array(weights), weights):
        with pytest.raises(cm.ConfigError) as e:
            cm.weighted_loss(loss, torch.tensor([0, 1]), w)
        assert e.value.field == "weights"


@pytest.mark.parametrize("n", [[-1.0, 1.0], [math.nan, 1.0], [math.inf, 2.0]])
def test_token_count_tensors_are_checked_like_arrays(n):
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]), [1.0, 1.0], n_tokens=torch.tensor(n))
    assert e.value.field == "n_tokens"


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_losses_are_converted_not_truncating_the_weights(dtype):
    loss = torch.tensor([1, 3]).to(dtype)
    w = torch.tensor([2.2, 1.6883333])
    got = cm.weighted_loss(loss, torch.tensor([0, 1]), w, "sum")
    values = [float(x) for x in loss.tolist()]
    assert got.dtype.is_floating_point
    assert float(got) == pytest.approx(2.2 * values[0] + 1.6883333 * values[1], rel=1e-6)


def test_float64_losses_stay_float64():
    got = cm.weighted_loss(torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([0, 1]), [2.0, 0.5])
    assert got.dtype == torch.float64 and float(got) == 1.75
