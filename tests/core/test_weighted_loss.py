"""`weighted_loss` on per-example and per-token losses, numpy and torch, with every degenerate batch.

Each test states the property; the reference is a hand-written loop over elements, not the code
under test. Before this rewrite: 2-D losses divided by rows, id −1 took the last domain's
weight, empty/all-masked batches gave NaN, and a name → weight mapping raised a numpy TypeError.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import coolmix as cm

W = [2.0, 0.5, 1.0]  # weights reveal the domain: en 2, it 0.5, sw 1


def reference(loss, ids, w, reduction, counted):
    """Σ_j c_j w_j ℓ_j over elements, normalised per the docstring (0.0 when nothing counts)."""
    num = den_mean = den_self = 0.0
    for l, d, c in zip(np.ravel(loss), np.ravel(ids), np.ravel(counted), strict=True):
        if c:
            num += w[d] * l
            den_mean += 1
            den_self += w[d]
    if reduction == "sum":
        return num
    den = den_mean if reduction == "mean" else den_self
    return num / den if den > 0 else 0.0


def test_token_losses_are_normalised_by_tokens_not_rows():
    tok = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]] * 2)  # 2 rows × 6 tokens
    got = cm.weighted_loss(tok, np.array([0, 1]), W, "mean")
    assert got == pytest.approx((2.0 * 21 + 0.5 * 21) / 12)  # was 6× too large (÷ 2 rows)


def test_per_token_domain_ids_from_packing():
    tok = np.array([[1.0, 1.0, 4.0], [3.0, 3.0, 8.0]])
    ids = np.array([[0, 0, 1], [2, 2, 1]])  # each row packs documents of two domains
    assert cm.weighted_loss(tok, ids, W, "mean") == pytest.approx((2 + 2 + 2 + 3 + 3 + 4) / 6)
    assert cm.weighted_loss(tok, ids, W, "self_normalized") == pytest.approx(16 / (2 + 2 + 0.5 + 1 + 1 + 0.5))


@pytest.mark.parametrize("reduction", ["mean", "self_normalized", "sum"])
def test_padding_id_is_ignored_only_when_declared(reduction):
    loss, ids = np.array([1.0, 2.0, 100.0]), np.array([0, 1, -1])
    got = cm.weighted_loss(loss, ids, W, reduction, ignore_index=-1)
    assert got == pytest.approx(reference(loss, ids, W, reduction, ids != -1))
    with pytest.raises(cm.ConfigError) as e:  # before: silently took W[-1] = 1.0
        cm.weighted_loss(loss, ids, W, reduction)
    assert e.value.field == "domain_ids" and e.value.value == -1


def test_ids_out_of_range_name_domain_ids_even_with_an_ignore_index():
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(np.ones(3), np.array([0, 3, -100]), W, ignore_index=-100)
    assert e.value.field == "domain_ids" and e.value.value == 3


def test_mask_drops_elements_whatever_their_loss():
    tok = np.array([[1.0, np.nan, np.inf], [2.0, 4.0, np.nan]])
    mask = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)
    ids = np.array([[0, -7, -7], [1, 1, 99]])  # ids under the mask are not checked
    got = cm.weighted_loss(tok, ids, W, "mean", mask=mask)
    assert got == pytest.approx((2.0 * 1 + 0.5 * 2 + 0.5 * 4) / 3)


def test_mapping_weights_align_by_name():
    loss, ids = np.array([1.0, 3.0]), np.array([0, 1])
    got = cm.weighted_loss(loss, ids, {"sw": 9.0, "en": 2.0, "it": 0.5}, names=["en", "it", "sw"])
    assert got == pytest.approx((2.0 + 1.5) / 2)
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(loss, ids, {"en": 2.0, "it": 0.5})
    assert e.value.field == "names"


@pytest.mark.parametrize("reduction", ["mean", "self_normalized", "sum"])
@pytest.mark.parametrize(
    "batch",
    [
        {"per_example_loss": np.zeros(0), "domain_ids": np.zeros(0, int)},
        {"per_example_loss": np.zeros((0, 5)), "domain_ids": np.zeros(0, int)},
        {"per_example_loss": np.full(3, np.nan), "domain_ids": np.full(3, -1), "ignore_index": -1},
        {"per_example_loss": np.ones((2, 3)), "domain_ids": np.array([0, 1]), "mask": np.zeros((2, 3))},
        {"per_example_loss": np.ones(2), "domain_ids": np.array([0, 1]), "n_tokens": np.zeros(2)},
        {"per_example_loss": np.ones(2), "domain_ids": np.array([0, 1]), "weights": [0.0, 0.0, 0.0]},
    ],
    ids=["empty", "empty-2d", "all-ignored", "all-masked", "zero-tokens", "zero-weights"],
)
def test_degenerate_batches_return_zero_not_nan(batch, reduction):
    args = {"weights": W, **batch}
    got = cm.weighted_loss(reduction=reduction, **args)
    assert isinstance(got, np.floating) and got == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_example_loss": "abc"}, "per_example_loss"),
        ({"per_example_loss": np.ones((2, 2, 2))}, "per_example_loss"),
        ({"per_example_loss": np.ones(()), "domain_ids": np.array(0)}, "per_example_loss"),
        ({"domain_ids": np.array([0.0, 1.0])}, "domain_ids"),
        ({"domain_ids": np.array([True, False])}, "domain_ids"),
        ({"domain_ids": np.array([0, 1, 1])}, "domain_ids"),
        ({"domain_ids": None}, "domain_ids"),
        ({"domain_ids": np.array([0, 5])}, "domain_ids"),
        ({"weights": None}, "weights"),
        ({"weights": 3}, "weights"),
        ({"weights": []}, "weights"),
        ({"weights": [1.0, math.nan]}, "weights"),
        ({"weights": [1.0, -1.0]}, "weights"),
        ({"weights": [[1.0, 1.0]]}, "weights"),
        ({"weights": {"en": 1.0}, "names": ["en", "it"]}, "weights"),
        ({"weights": {"en": 1.0, "it": 1.0, "xx": 1.0}, "names": ["en", "it"]}, "weights"),
        ({"weights": {"en": "heavy", "it": 1.0}, "names": ["en", "it"]}, "weights.en"),
        ({"reduction": "avg"}, "reduction"),
        ({"mask": [1, 0, 1]}, "mask"),
        ({"mask": ["x", "y"]}, "mask"),
        ({"n_tokens": [1.0]}, "n_tokens"),
        ({"n_tokens": [1.0, -2.0]}, "n_tokens"),
        ({"per_example_loss": np.ones((2, 3)), "n_tokens": [1.0, 2.0]}, "n_tokens"),
        ({"ignore_index": 1.5}, "ignore_index"),
    ],
)
def test_malformed_arguments_are_one_config_error(kwargs, field):
    args = {"per_example_loss": np.ones(2), "domain_ids": np.array([0, 1]), "weights": [1.0, 2.0], **kwargs}
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(**args)
    assert e.value.field == field, str(e.value)
    assert "\n" not in str(e.value)


losses_2d = st.integers(1, 4).flatmap(
    lambda b: st.integers(1, 5).flatmap(
        lambda t: st.tuples(
            st.lists(st.floats(0, 10), min_size=b * t, max_size=b * t).map(lambda v: np.reshape(v, (b, t))),
            st.lists(st.integers(-1, 2), min_size=b * t, max_size=b * t).map(lambda v: np.reshape(v, (b, t))),
            st.lists(st.booleans(), min_size=b * t, max_size=b * t).map(lambda v: np.reshape(v, (b, t))),
        )
    )
)


@given(losses_2d, st.sampled_from(["mean", "self_normalized", "sum"]))
def test_per_token_reduction_matches_the_elementwise_definition(case, reduction):
    loss, ids, mask = case
    got = cm.weighted_loss(loss, ids, W, reduction, mask=mask, ignore_index=-1)
    assert got == pytest.approx(reference(loss, ids, W, reduction, mask & (ids != -1)), abs=1e-12)


@given(losses_2d, st.sampled_from(["mean", "self_normalized", "sum"]))
def test_per_row_ids_equal_their_broadcast_per_token_ids(case, reduction):
    loss, ids, mask = case
    rows = np.abs(ids[:, 0])  # one domain per row, in [0, 2]
    per_token = np.repeat(rows[:, None], loss.shape[1], axis=1)
    a = cm.weighted_loss(loss, rows, W, reduction, mask=mask)
    b = cm.weighted_loss(loss, per_token, W, reduction, mask=mask)
    assert a == pytest.approx(b, abs=1e-12)


# -- torch: the same rules, tensors in → tensors out, gradients flow ----------------------------------


def test_torch_matches_numpy_and_backpropagates():
    torch = pytest.importorskip("torch")
    tok = np.array([[1.0, 2.0, 7.0], [3.0, 4.0, 5.0]])
    ids = np.array([[0, 0, -1], [1, 2, -1]])
    t = torch.tensor(tok, requires_grad=True)
    for reduction in ("mean", "self_normalized", "sum"):
        want = cm.weighted_loss(tok, ids, W, reduction, ignore_index=-1)
        got = cm.weighted_loss(t, torch.tensor(ids), torch.tensor(W), reduction, ignore_index=-1)
        assert isinstance(got, torch.Tensor) and got.item() == pytest.approx(float(want))
    loss = cm.weighted_loss(t, torch.tensor(ids), W, "mean", ignore_index=-1)
    loss.backward()
    assert t.grad.flatten().tolist() == pytest.approx([2 / 4, 2 / 4, 0.0, 0.5 / 4, 1 / 4, 0.0])


def test_torch_negative_id_is_an_error_not_the_last_weight():
    torch = pytest.importorskip("torch")
    with pytest.raises(cm.ConfigError) as e:
        cm.weighted_loss(torch.ones(2), torch.tensor([0, -1]), torch.tensor(W))
    assert e.value.field == "domain_ids"
    with pytest.raises(cm.ConfigError):
        cm.weighted_loss(torch.ones(2), torch.tensor([0.0, 1.0]), torch.tensor(W))


@pytest.mark.parametrize("reduction", ["mean", "self_normalized", "sum"])
def test_torch_degenerate_batches_are_zero_with_zero_gradient(reduction):
    torch = pytest.importorskip("torch")
    empty = torch.zeros(0, requires_grad=True)
    got = cm.weighted_loss(empty, torch.zeros(0, dtype=torch.long), W, reduction)
    assert isinstance(got, torch.Tensor) and got.item() == 0.0
    nan = torch.full((2, 2), float("nan"), requires_grad=True)
    got = cm.weighted_loss(nan, torch.tensor([0, 1]), W, reduction, mask=torch.zeros(2, 2, dtype=torch.bool))
    got.backward()
    assert got.item() == 0.0 and torch.equal(nan.grad, torch.zeros(2, 2))
    zero_w = cm.weighted_loss(torch.ones(2), torch.tensor([0, 1]), [0.0, 0.0], reduction)
    assert float(zero_w) == 0.0 and not math.isnan(float(zero_w))


def test_torch_mapping_weights_and_n_tokens():
    torch = pytest.importorskip("torch")
    mean_b, n = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 6.0])
    w = {"en": 2.0, "it": 0.5}
    got = cm.weighted_loss(mean_b, torch.tensor([0, 1]), w, "mean", n, names=["en", "it"])
    assert float(got) == pytest.approx((2.0 * 2 * 1 + 0.5 * 6 * 3) / 8)


@pytest.mark.parametrize("reduction", ["mean", "self_normalized", "sum"])
def test_weights_that_overflow_float64_are_an_error_not_inf(reduction):
    with pytest.raises(cm.ConfigError, match=r"^weights=.*overflows"):
        cm.weighted_loss(np.array([3.0, 3.0]), np.array([0, 1]), np.array([1e308, 1e308]), reduction)


def test_a_nan_loss_stays_visible_and_is_not_blamed_on_the_weights():
    out = cm.weighted_loss(np.array([np.nan, 3.0]), np.array([0, 1]), np.array([1.0, 1.0]))
    assert np.isnan(out)
