"""Seq2Seq: shapes, padding invariance, tying, overfitting, and greedy/beam decoding against references."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from coolmix.errors import ConfigError
from coolmix.models import Seq2Seq, Seq2SeqConfig, per_example_loss
from coolmix.models.seq2seq import key_mask

PAD, BOS, EOS = 0, 1, 2  # real tokens are >= 3


def padded_batch(lengths: list[int], width: int, seed: int = 0) -> torch.Tensor:
    """Rows of random real tokens of the given lengths, right-padded with PAD to `width`."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, 32, (len(lengths), width), generator=g)
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    return src


def reference_greedy(model: Seq2Seq, src: torch.Tensor, start: torch.Tensor, max_new: int, eos: int):
    """Step-by-step argmax over the full teacher-forced forward; finished rows continue with PAD."""
    tgt, done, out = start[:, None], torch.zeros(len(src), dtype=torch.bool), []
    for _ in range(max_new):
        nxt = model(src, tgt, src == PAD)[:, -1].argmax(-1).masked_fill(done, PAD)
        out.append(nxt)
        done |= nxt == eos
        tgt = torch.cat([tgt, nxt[:, None]], dim=1)
        if done.all():
            break
    return torch.stack(out, dim=1)


def test_forward_shape(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([5, 9, 2], 9)
    logits = model(src, torch.randint(3, 32, (3, 6)), src == PAD)
    assert logits.shape == (3, 6, 32)


def test_num_params_counts_the_shared_embedding_once(make_seq2seq):
    model = make_seq2seq()
    d, v, t, ff = 32, 32, 16, 64
    attn, mlp, ln = 4 * d * d + 4 * d, 2 * d * ff + ff + d, 2 * d
    enc, dec = 2 * (attn + mlp + 2 * ln), 2 * (2 * attn + mlp + 3 * ln)
    assert model.num_params() == v * d + 2 * t * d + enc + dec + 2 * ln
    assert model.num_params(non_embedding=True) == enc + dec + 2 * ln


def test_one_embedding_serves_source_target_and_output(make_seq2seq):
    model = make_seq2seq()
    assert model.lm_head.weight is model.emb.weight
    assert model.lm_head.weight.data_ptr() == model.emb.weight.data_ptr()
    assert (
        sum(p.shape == (32, 32) and p.data_ptr() == model.emb.weight.data_ptr() for p in model.parameters())
        == 1
    )


def test_padding_does_not_change_the_logits_of_real_tokens(make_seq2seq):
    model = make_seq2seq().eval()
    lengths = [3, 7, 5]
    src = padded_batch(lengths, 7)
    tgt = torch.randint(3, 32, (3, 4))
    batched = model(src, tgt, src == PAD)
    more_pad = F.pad(src, (0, 6), value=PAD)
    torch.testing.assert_close(model(more_pad, tgt, more_pad == PAD), batched, rtol=0, atol=1e-5)
    for i, n in enumerate(lengths):  # each row alone, with no padding at all
        alone = model(src[i : i + 1, :n], tgt[i : i + 1])
        torch.testing.assert_close(alone, batched[i : i + 1], rtol=0, atol=1e-5)


def test_an_all_padding_source_gives_finite_logits(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([0, 4], 4)
    logits = model(src, torch.randint(3, 32, (2, 3)), src == PAD)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_key_mask_keeps_real_tokens_and_all_keys_of_an_all_padding_row():
    pad = torch.tensor([[False, False, True], [True, True, True]])
    keep = key_mask(pad)
    assert keep.shape == (2, 1, 1, 3)
    assert keep[:, 0, 0].tolist() == [[True, True, False], [True, True, True]]
    assert key_mask(None) is None


def test_decoder_is_causal(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([6, 4], 6)
    tgt = torch.randint(3, 32, (2, 8))
    changed = tgt.clone()
    changed[:, 5:] = (changed[:, 5:] + 7) % 32
    a, b = model(src, tgt, src == PAD), model(src, changed, src == PAD)
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=0, atol=1e-6)


def test_every_parameter_gets_a_gradient(make_seq2seq):
    model = make_seq2seq(dropout=0.1)
    src = padded_batch([6, 3], 6)
    tgt = torch.randint(3, 32, (2, 6))
    per_example_loss(model(src, tgt[:, :-1], src == PAD), tgt[:, 1:], PAD)[0].mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_same_seed_same_model(make_seq2seq):
    a, b = make_seq2seq(seed=7), make_seq2seq(seed=7)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_decoder_residual_projections_use_the_decoder_depth():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=4000))
    assert model.encoder[0].mlp.proj.weight.std().item() == pytest.approx(0.02 / 6**0.5, rel=0.05)
    assert model.decoder[0].cross_attn.proj.weight.std().item() == pytest.approx(0.02 / 9**0.5, rel=0.05)


@pytest.mark.parametrize(
    ("field", "value"),
    [("vocab_size", -3), ("n_enc", 0), ("n_dec", 1.0), ("n_head", 3), ("max_len", 0), ("dropout", 2)],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    field_of_error = "d_model" if field == "n_head" else field  # 128 % 3: blamed on d_model
    with pytest.raises(ConfigError) as e:
        Seq2SeqConfig(**{"vocab_size": 32, field: value})
    assert e.value.field == field_of_error


def overfit(
    model: Seq2Seq, src: torch.Tensor, tgt: torch.Tensor, threshold: float, steps: int = 200
) -> float:
    """Train on one fixed batch until the mean loss is below `threshold`; returns the last loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = per_example_loss(model(src, tgt[:, :-1], src == PAD), tgt[:, 1:], PAD)[0].mean()
        if loss.item() < threshold:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def copy_task(n: int = 4):
    """Sources of varied length and targets [BOS, reversed source, EOS, PAD...]."""
    lengths = [5, 3, 7, 4][:n]
    src = padded_batch(lengths, 7, seed=1)
    tgt = torch.full((n, 9), PAD)
    tgt[:, 0] = BOS
    for i, m in enumerate(lengths):
        tgt[i, 1 : m + 1] = src[i, :m].flip(0)
        tgt[i, m + 1] = EOS
    return src, tgt


def test_overfits_a_fixed_batch(make_seq2seq):
    src, tgt = copy_task()
    loss = overfit(make_seq2seq(), src, tgt, threshold=0.05)
    assert loss < 0.05


def test_trained_model_generates_its_targets_and_stops_at_eos(make_seq2seq):
    model = make_seq2seq(dropout=0.1)
    src, tgt = copy_task()
    assert overfit(model, src, tgt, threshold=0.01, steps=300) < 0.01
    expected = tgt[:, 1:]  # up to the longest EOS: BOS dropped, EOS kept, PAD after it
    assert torch.equal(model.generate(src, 12, BOS, EOS, PAD), expected)
    assert torch.equal(model.generate(src, 12, BOS, EOS, PAD, beam_size=3), expected)
    assert model.training  # generate ran in eval mode and restored the mode


@pytest.mark.parametrize("eos_position", [0, 2, 5])
def test_greedy_generate_matches_step_by_step_argmax(make_seq2seq, eos_position):
    model = make_seq2seq()
    src = padded_batch([6, 2, 4, 6], 6, seed=3)
    start = torch.tensor([BOS, 5, 6, BOS])  # per-example start tokens, e.g. language tags
    free = reference_greedy(model, src, start, 10, eos=-1)  # -1 never occurs: no stopping
    eos = int(free[0, eos_position])  # row 0 stops exactly here (or earlier if the token repeats)
    expected = reference_greedy(model, src, start, 10, eos=eos)
    out = model.generate(src, max_new_tokens=10, bos_id=start, eos_id=eos, pad_id=PAD)
    assert torch.equal(out, expected)
    assert out[0, : eos_position + 1].tolist().count(eos) >= 1
    stop = out[0].tolist().index(eos)
    assert (out[0, stop + 1 :] == PAD).all()


def test_beam_size_one_is_greedy(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([6, 3, 5], 6, seed=4)
    eos = int(reference_greedy(model, src, torch.full((3,), BOS), 8, eos=-1)[1, 3])
    greedy = model.generate(src, 8, BOS, eos, PAD)
    memory, keep = model.eval().encode(src, src == PAD)
    start = torch.full((3,), BOS)
    with torch.no_grad():
        assert torch.equal(model._beam(start, memory, keep, 8, eos, PAD, 1, 1.0), greedy)


def exhaustive_best(model: Seq2Seq, src: torch.Tensor, max_new: int, eos: int) -> list[int]:
    """Highest sum-log-prob sequence of one source, by enumerating every possible output."""
    v, best, best_score = model.cfg.vocab_size, None, float("-inf")
    with torch.no_grad():
        for n in range(1, max_new + 1):
            for body in itertools.product(range(v), repeat=n - 1):
                if eos in body:
                    continue
                tails = [eos] if n < max_new else range(v)
                prefix = torch.tensor([[BOS, *body]])
                logp = F.log_softmax(model(src, prefix), -1)[0]
                base = sum(logp[i, tok].item() for i, tok in enumerate(body))
                for tail in tails:
                    score = base + logp[n - 1, tail].item()
                    if score > best_score:
                        best, best_score = [*body, tail], score
    return best


def test_beam_search_with_enough_beams_finds_the_exact_argmax(make_seq2seq):
    model = make_seq2seq(vocab_size=6).eval()
    for seed in range(3):
        src = torch.randint(3, 6, (1, 4), generator=torch.Generator().manual_seed(seed))
        out = model.generate(src, 3, BOS, EOS, PAD, beam_size=36, length_penalty=0.0)[0].tolist()
        best = exhaustive_best(model, src, 3, EOS)
        assert out[: len(best)] == best and all(t == PAD for t in out[len(best) :])


def test_generate_works_under_bf16_autocast(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([6, 2], 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        greedy = model.generate(src, 5, BOS, EOS, PAD)
        beam = model.generate(src, 5, torch.tensor([BOS, 4]), EOS, PAD, beam_size=2)
    assert greedy.dtype == beam.dtype == torch.long
    assert greedy.shape[0] == beam.shape[0] == 2 and 1 <= greedy.shape[1] <= 5 and 1 <= beam.shape[1] <= 5


def test_generate_rejects_bad_arguments(make_seq2seq):
    model = make_seq2seq()
    src = padded_batch([3], 3)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        model.generate(src, 17, BOS, EOS, PAD)
    with pytest.raises(ConfigError, match="beam_size"):
        model.generate(src, 4, BOS, EOS, PAD, beam_size=0)
