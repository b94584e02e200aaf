"""The E3/T3 simulation: exact batch composition, and mini-batch norms from a Gram matrix."""

import numpy as np
import pytest

import coolmix as cm
from coolmix.reproduce.theory import batch_norms, exact_slots


def test_exact_slots_have_the_trainers_per_batch_counts():
    sizes = {"en": 24000, "it": 3000, "zh": 800, "sw": 60}
    slots = exact_slots(sizes, 5.0, batch=32, n_batches=200)
    p = np.array(list(cm.temperature_probs(sizes, tau=5).values()))
    counts = np.stack([np.bincount(row, minlength=4) for row in slots])
    assert (counts.sum(axis=1) == 32).all()
    # exact composition (largest remainder, residuals carried): after every batch each domain's
    # running count is within one example of t·p_i·B; i.i.d. slots drift by several
    steps = np.arange(1, 201)[:, None]
    assert np.abs(counts.cumsum(axis=0) - steps * p * 32).max() <= 1.0
    iid = np.random.default_rng(0).choice(4, size=(200, 32), p=p)
    iid_counts = np.stack([np.bincount(row, minlength=4) for row in iid])
    assert np.abs(iid_counts.cumsum(axis=0) - steps * p * 32).max() > 3.0


def test_batch_norms_equal_the_norm_of_the_weighted_mean_gradient():
    rng = np.random.default_rng(1)
    grads = rng.normal(size=(6, 5))  # 6 examples: 3 of domain 0, 3 of domain 1
    gram = grads @ grads.T
    pools = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    slots = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    w = np.array([0.5, 2.0])
    norms = batch_norms(gram, pools, slots, w, seed=3)
    # replay the same item draws
    r = np.random.default_rng(3)
    idx = np.empty_like(slots)
    for d, pool in enumerate(pools):
        m = slots == d
        idx[m] = pool[r.integers(len(pool), size=int(m.sum()))]
    direct = [np.linalg.norm((w[s][:, None] * grads[i]).sum(0) / 4) for s, i in zip(slots, idx, strict=True)]
    assert norms == pytest.approx(direct, rel=1e-10)


def test_bootstrap_interval_is_recentred_on_the_estimate():
    from coolmix.reproduce.theory import _recentred_ci

    boot = np.exp(np.random.default_rng(0).normal(np.log(4.0), 0.1, size=500))  # centred below 5
    lo, hi = _recentred_ci(5.0, boot, log=True)
    assert lo < 5.0 < hi  # the plain percentile interval, about [3.3, 4.9], would miss it
    assert hi / lo == pytest.approx(np.percentile(boot, 97.5) / np.percentile(boot, 2.5), rel=1e-3)
