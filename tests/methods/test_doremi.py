"""DoReMi: the exponentiated-gradient update against closed forms, and the proxy on a synthetic
mixture where one domain is harder to learn (it must be up-weighted)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import coolmix as cm
from coolmix.methods.doremi import DoReMiWeights, doremi_step
from coolmix.train.distributed import Env
from coolmix.train.extensions import DoReMiProxy, domain_excess


def test_single_step_closed_form():
    a = doremi_step(np.array([0.5, 0.5]), np.array([1.0, 0.0]), eta=1.0, smoothing=1e-3)
    e = math.e
    expected = (1 - 1e-3) * np.array([e / (e + 1), 1 / (e + 1)]) + 1e-3 / 2
    assert a == pytest.approx(expected, rel=1e-12)


def test_negative_excess_is_clipped():
    a = doremi_step(np.array([0.2, 0.8]), np.array([-5.0, 0.0]), smoothing=0.0)
    assert a == pytest.approx([0.2, 0.8])


def test_absent_domain_keeps_its_weight():
    # b is absent; a and c re-split the mass they held (0.7) by exp(η λ); b keeps 0.3 exactly
    w = DoReMiWeights(["a", "b", "c"], init={"a": 0.4, "b": 0.3, "c": 0.3}, smoothing=0.0)
    cur = w.update({"a": 1.0, "c": 0.0})
    e = math.e
    assert cur["b"] == pytest.approx(0.3, rel=1e-12)
    assert cur["a"] == pytest.approx(0.7 * 0.4 * e / (0.4 * e + 0.3), rel=1e-12)
    # with λ = 0 instead (the old rule), b would have been pushed down
    pushed = doremi_step(np.array([0.4, 0.3, 0.3]), np.array([1.0, 0.0, 0.0]), smoothing=0.0)
    assert pushed[1] < 0.3


def test_constant_excess_converges_to_the_worst_domain_with_smoothing_floor():
    w = DoReMiWeights(["a", "b", "c"], eta=1.0, smoothing=1e-3)
    for _ in range(200):
        w.update({"a": 1.0, "b": 0.0, "c": 0.0})
    cur = w.current()
    # fixed point: b = (1-ε)·b/(a·e + 2b) + ε/3 with a = 1 - 2b, i.e. b ≈ (ε/3)·e/(e-1)
    b = 1e-3 / 3 * math.e / (math.e - 1)
    assert cur["b"] == cur["c"] == pytest.approx(b, rel=1e-2)
    assert cur["a"] == pytest.approx(1 - 2 * b, rel=1e-4)


def test_average_is_the_time_average():
    w = DoReMiWeights(["a", "b"])
    seq = []
    for excess in ([1.0, 0.0], [0.0, 2.0], [0.5, 0.5]):
        seq.append(list(w.update({"a": excess[0], "b": excess[1]}).values()))
    assert list(w.average().values()) == pytest.approx(np.mean(seq, axis=0))
    assert w.as_distribution().weights == pytest.approx(w.average())


def test_excess_is_clipped_per_token_not_per_domain_mean():
    # one example, two target tokens, V = 2, reference logits 0 (ℓ_ref = log 2 on both). With
    # logits [a, 0] and target 0, ℓ = log(1 + e^−a): the proxy is 1 nat worse on the first
    # token and 0.5 nat better on the second. Per-token clip: (1 + 0) / 2; clip of the mean: 0.25.
    targets = torch.tensor([[0, 0]])
    ref = torch.zeros(1, 2, 2)
    proxy = torch.zeros(1, 2, 2)
    proxy[0, 0, 0] = -math.log(2 * math.e - 1)
    proxy[0, 1, 0] = -math.log(2 * math.exp(-0.5) - 1)
    out = domain_excess(proxy, ref, targets, torch.tensor([0]), k=1, pad_id=99)
    assert out[1, 0].item() == 2  # tokens counted
    assert out[0, 0].item() / out[1, 0].item() == pytest.approx(0.5, rel=1e-5)
    # a padded token counts for nothing
    out = domain_excess(proxy, ref, torch.tensor([[0, 1]]), torch.tensor([0]), k=1, pad_id=1)
    assert out[:, 0].tolist() == pytest.approx([1.0, 1.0], rel=1e-5)


# -- the proxy on a synthetic mixture -------------------------------------------------------------

V = 40
EASY, HARD = [0], list(range(16, 32))
HARD_MAP = {t: 16 + (7 * (t - 16) + 3) % 16 for t in HARD}  # a fixed permutation of 16..31


class Bigram(torch.nn.Module):
    """logits(next | token) = table[token]: enough to learn both domains exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(V, V)
        torch.nn.init.zeros_(self.table.weight)

    def forward(self, tokens):
        return self.table(tokens)


def _batch(domains: np.ndarray, rng: np.random.Generator):
    """EASY: token 0 → token 32 (one thing to learn). HARD: 16 tokens → a permutation of 16
    targets (higher-entropy targets: 16 things to learn, each seen 1/16 as often)."""
    src, tgt = [], []
    for d in domains:
        if d == 0:
            t = int(rng.choice(EASY))
            src.append(t), tgt.append(32)
        else:
            t = int(rng.choice(HARD))
            src.append(t), tgt.append(HARD_MAP[t])
    src_t = torch.tensor(src)[:, None]
    return SimpleNamespace(
        inputs=(src_t,), targets=torch.tensor(tgt)[:, None], domains=torch.from_numpy(domains)
    )


def _reference() -> Bigram:
    ref = Bigram()
    with torch.no_grad():
        for t in EASY:
            ref.table.weight[t, 32] = 8.0
        for t, y in HARD_MAP.items():
            ref.table.weight[t, y] = 8.0
    return ref


def test_proxy_upweights_the_harder_domain():
    sizes = {"easy": 1000, "hard": 1000}
    sampler = cm.MixtureSampler(sizes, cm.Uniform(), total_steps=60, batch_size=16, seed=0)
    proxy = DoReMiProxy(DoReMiWeights(tuple(sizes)), _reference(), sampler, pad_id=V - 1, env=Env())
    model = Bigram()
    rng = np.random.default_rng(0)
    for step in range(60):
        domains, _ = sampler.batch(step)
        batch = _batch(domains, rng)
        logits = model(*batch.inputs)
        w, norm = proxy.step(step, batch, logits)
        loss_b = torch.nn.functional.cross_entropy(logits[:, 0], batch.targets[:, 0], reduction="none")
        loss = (w[batch.domains] * loss_b).sum() / norm
        model.zero_grad()
        loss.backward()
        with torch.no_grad():  # plain SGD (torch.optim's first use imports dynamo: seconds)
            model.table.weight -= 0.5 * model.table.weight.grad
    avg = proxy.summary()["average"]
    assert avg["hard"] > 0.6 > avg["easy"]
    # the weights train a domain the proxy has not learned yet, not the one already learned
    assert proxy.summary()["current"]["hard"] > avg["easy"]


def test_proxy_does_not_push_down_a_domain_missing_from_the_batch():
    sizes = {"easy": 1000, "hard": 1000}
    sampler = cm.MixtureSampler(sizes, cm.Uniform(), total_steps=4, batch_size=8, seed=0)
    weights = DoReMiWeights(tuple(sizes), smoothing=1e-3)
    proxy = DoReMiProxy(weights, _reference(), sampler, pad_id=V - 1, env=Env())
    batch = _batch(np.zeros(8, dtype=np.int64), np.random.default_rng(0))  # easy only
    proxy.step(0, batch, Bigram()(*batch.inputs))  # the untrained proxy: large excess on easy
    assert weights.current()["hard"] == pytest.approx((1 - 1e-3) * 0.5 + 1e-3 / 2, rel=1e-12)


def test_proxy_weights_and_normaliser_come_from_step_weights(monkeypatch):
    """w = α / q and N = Σ_b w_{d_b} are `coolmix.step_weights`'s self_normalized rule, not a copy."""
    import coolmix.train.extensions as ext

    calls = []

    def spy(*args, **kwargs):
        out = cm.step_weights(*args, **kwargs)
        calls.append((args, kwargs))
        return cm.StepWeights(out.weights * 2, out.normaliser + 0.25)  # marked: step must return these

    monkeypatch.setattr(ext, "step_weights", spy)
    sizes = {"easy": 1000, "hard": 1000}
    sampler = cm.MixtureSampler(sizes, cm.Explicit({"easy": 0.75, "hard": 0.25}), total_steps=4, batch_size=8)
    weights = DoReMiWeights(tuple(sizes))
    proxy = DoReMiProxy(weights, _reference(), sampler, pad_id=V - 1, env=Env())
    domains, _ = sampler.batch(0)
    batch = _batch(domains, np.random.default_rng(0))
    w, norm = proxy.step(0, batch, Bigram()(*batch.inputs))
    ((args, kwargs),) = calls
    assert kwargs == {"reduction": "self_normalized"}
    alpha, q = np.array(list(weights.current().values())), np.array([0.75, 0.25])
    np.testing.assert_array_equal(args[0], q)
    np.testing.assert_array_equal(args[1], alpha)
    np.testing.assert_array_equal(args[2], sampler.global_batch(0)[0])
    assert w.tolist() == torch.tensor(2 * alpha / q, dtype=torch.float32).tolist()
    assert norm == float((alpha / q)[domains].sum()) + 0.25


# -- a noisy domain separates DoReMi from loss-based DRO --------------------------------------------

NOISE_SRC, NOISE_T = 1, list(range(33, 39))  # token 1 → one of 6 targets at random: entropy log 6


def _batch3(domains: np.ndarray, rng: np.random.Generator):
    """easy / hard as in `_batch`, and noise: token 1 followed by a uniformly random target."""
    src, tgt = [], []
    for d in domains:
        if d == 2:
            src.append(NOISE_SRC), tgt.append(int(rng.choice(NOISE_T)))
        else:
            one = _batch(np.array([d]), rng)
            src.append(int(one.inputs[0][0, 0])), tgt.append(int(one.targets[0, 0]))
    src_t, tgt_t = torch.tensor(src)[:, None], torch.tensor(tgt)[:, None]
    return SimpleNamespace(inputs=(src_t,), targets=tgt_t, domains=torch.from_numpy(domains))


def _reference3() -> Bigram:
    """The reference knows easy and hard, and that noise is uniform over its 6 targets (its loss
    there is the irreducible log 6)."""
    ref = _reference()
    with torch.no_grad():
        ref.table.weight[NOISE_SRC, NOISE_T] = 8.0
    return ref


def _train_weights(steps: int, rule: str) -> dict[str, float]:
    """Average domain weights of a proxy trained with DoReMi's excess-loss rule or loss-based DRO
    (the same exponentiated-gradient step on the proxy's own per-domain loss)."""
    sizes = {"easy": 1000, "hard": 1000, "noise": 1000}
    sampler = cm.MixtureSampler(sizes, cm.Uniform(), total_steps=steps, batch_size=24, seed=0)
    weights = DoReMiWeights(tuple(sizes))
    proxy = DoReMiProxy(weights, _reference3(), sampler, pad_id=V - 1, env=Env())
    model, rng = Bigram(), np.random.default_rng(0)
    for step in range(steps):
        domains, _ = sampler.batch(step)
        batch = _batch3(domains, rng)
        logits = model(*batch.inputs)
        loss_b = torch.nn.functional.cross_entropy(logits[:, 0], batch.targets[:, 0], reduction="none")
        if rule == "doremi":
            w, norm = proxy.step(step, batch, logits)
        else:  # loss-DRO: λ_i = the proxy's mean loss on domain i (no reference)
            d = batch.domains
            per = loss_b.detach()
            lam = {n: float(per[d == i].mean()) for i, n in enumerate(sizes) if bool((d == i).any())}
            weights.update(lam)
            alpha = torch.tensor([weights.current()[n] for n in sizes])
            w = alpha * len(sizes)  # uniform sampling: q = 1/K
            norm = w[d].sum()
        loss = (w[batch.domains].detach() * loss_b).sum() / norm
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            model.table.weight -= 0.5 * model.table.weight.grad
    return weights.average()


def test_doremi_downweights_a_noise_domain_that_loss_dro_upweights():
    """Xie et al.'s point of the reference model: random-token data has a high loss that no model
    can lower. DoReMi's excess loss is ≈ 0 there, loss-based DRO chases it."""
    doremi, dro = _train_weights(150, "doremi"), _train_weights(150, "dro")
    # below / above its uniform share of 1/3 (measured: DoReMi 0.11 with hard at 0.84; DRO 0.55)
    assert doremi["noise"] < 0.2 < 1 / 3 < 0.5 < dro["noise"], (doremi, dro)
    assert doremi["noise"] < doremi["hard"] and dro["noise"] > dro["hard"]
