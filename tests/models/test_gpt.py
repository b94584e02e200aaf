"""GPT: shapes, causality, tying, init, determinism, bf16 autocast, DDP-readiness, and overfitting."""

import dataclasses

import pytest
import torch

from coolmix.errors import ConfigError
from coolmix.models import GPT, GPTConfig, per_example_loss

PAD = 0


def test_forward_shape_and_dtype(make_gpt):
    model = make_gpt()
    logits = model(torch.randint(0, 32, (3, 11)))
    assert logits.shape == (3, 11, 32)
    assert logits.dtype == torch.float32


def test_num_params_counts_the_tied_head_once(make_gpt):
    model = make_gpt()
    d, v, t, ff, layers = 32, 32, 16, 64, 2
    per_block = (4 * d * d + 4 * d) + (2 * d * ff + ff + d) + 2 * 2 * d  # attention, MLP, 2 LayerNorms
    assert model.num_params() == v * d + t * d + layers * per_block + 2 * d
    assert model.num_params(non_embedding=True) == layers * per_block + 2 * d


def test_paper_scale_config_has_the_documented_size():
    # data.md §3 measures a 1.32M-parameter decoder at V4k, d128, L4.
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=4000, d_model=128, n_layer=4, n_head=4, d_ff=512, max_len=128))
    assert model.num_params() == 1_321_728


def test_changing_a_future_token_leaves_earlier_logits_unchanged(make_gpt):
    model = make_gpt()
    x = torch.randint(3, 32, (2, 12))
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 5) % 32
    lx, ly = model(x), model(y)
    torch.testing.assert_close(lx[:, :7], ly[:, :7], rtol=0, atol=1e-6)
    assert (lx[:, 7] - ly[:, 7]).abs().max() > 1e-3  # the changed position itself does see it


def test_lm_head_shares_storage_with_token_embedding(make_gpt):
    model = make_gpt()
    assert model.lm_head.weight is model.wte.weight
    assert model.lm_head.weight.data_ptr() == model.wte.weight.data_ptr()
    with torch.no_grad():
        model.wte.weight[5].fill_(3.0)
    assert torch.equal(model.lm_head.weight[5], torch.full((32,), 3.0))


def test_init_std_and_scaled_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=4000, d_model=128, n_layer=4, max_len=128))
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.blocks[0].self_attn.q.weight.std().item() == pytest.approx(0.02, rel=0.05)
    scaled = 0.02 / (2 * 4) ** 0.5
    assert model.blocks[0].self_attn.proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert torch.count_nonzero(model.blocks[0].mlp.fc.bias) == 0


def test_same_seed_same_model_and_different_seed_different_model(make_gpt):
    a, b, c = make_gpt(seed=3), make_gpt(seed=3), make_gpt(seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.wte.weight, c.wte.weight)


def test_every_parameter_gets_a_gradient(make_gpt):
    # DDP without find_unused_parameters needs every parameter to take part in the loss.
    model = make_gpt(dropout=0.1)
    x = torch.randint(3, 32, (2, 9))
    loss, _ = per_example_loss(model(x[:, :-1]), x[:, 1:], PAD)
    loss.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_bf16_autocast_forward_backward_matches_fp32(make_gpt):
    model = make_gpt()
    x = torch.randint(3, 32, (4, 16))
    ref, _ = per_example_loss(model(x[:, :-1]), x[:, 1:], PAD)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x[:, :-1])
        loss, _ = per_example_loss(logits, x[:, 1:], PAD)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    torch.testing.assert_close(loss, ref, rtol=0, atol=0.05)
    loss.mean().backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())


def test_dropout_is_active_in_train_mode_only(make_gpt):
    model = make_gpt(dropout=0.5)
    x = torch.randint(3, 32, (2, 8))
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_sequence_longer_than_max_len_is_rejected(make_gpt):
    with pytest.raises(ValueError, match="max_len=16"):
        make_gpt()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize(
    ("field", "value"),
    [("vocab_size", 0), ("d_model", 30), ("n_layer", 0), ("n_head", True), ("d_ff", 1.5), ("max_len", -1),
     ("dropout", 1.0), ("dropout", -0.1)],
)  # fmt: skip
def test_config_rejects_bad_values_naming_the_field(field, value):
    good = dict(vocab_size=32, d_model=32, n_layer=2, n_head=4, d_ff=64, max_len=16)
    with pytest.raises(ConfigError) as e:
        GPTConfig(**{**good, field: value})
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}=")


def test_config_is_frozen():
    cfg = GPTConfig(vocab_size=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 64  # type: ignore[misc]


def test_overfits_a_fixed_batch(make_gpt):
    model = make_gpt()
    torch.manual_seed(0)
    x = torch.randint(3, 32, (4, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = per_example_loss(model(x[:, :-1]), x[:, 1:], PAD)[0].mean()
        if loss.item() < 0.05:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
