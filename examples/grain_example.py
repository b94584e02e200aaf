"""Cooldown inside a Grain pipeline (MaxText's data loader): a coolmix selection map, two dp ranks.

Run: python examples/grain_example.py (needs ``pip install grain``). Grain's own ``mix`` takes static
weights; here the mixture is τ=5 for the first half and τ=1 after (the paper's Cooldown), keyed on
the global sample index, so each rank's Grain checkpoint (``get_state``: one position) resumes it
exactly, and a language at weight 2e-5 keeps its exact share (MaxText's 4-decimal weights drop it).
"""

import grain
import numpy as np

import coolmix as cm
from coolmix.integrations.grain import mix, selection_map
from coolmix.integrations.ranks import DataParallel

sizes = {"en": 200_000, "it": 12_000, "zh": 3_000, "yo": 4}  # documents per language
docs = {n: grain.MapDataset.range(k).map(lambda i, n=n: {"lang": n, "doc": i}) for n, k in sizes.items()}
steps, batch, world = 200, 32, 2
sampler = cm.MixtureSampler(sizes, cm.Cooldown(hot=5, cold=1, at=0.5), total_steps=steps, batch_size=batch)


def rank_pipeline(rank):
    """Rank ``rank``'s loader: its slice of every global batch, batched to batch / world rows."""
    return mix(docs, sampler, dp=DataParallel(rank, world)).to_iter_dataset().batch(batch // world)


def main():
    # 1. counts per phase, summed over the two ranks, against the schedule's target
    counts = np.zeros((2, len(sizes)), dtype=int)
    names = list(sizes)
    for rank in range(world):
        for step, b in enumerate(rank_pipeline(rank)):
            for lang in b["lang"]:
                counts[int(step >= steps // 2), names.index(str(lang))] += 1
    x_half, x_end = sampler.cumulative_target_array(steps // 2), sampler.cumulative_target_array(steps)
    print(f"{'language':8} {'τ=5 half':>9} {'target':>9} {'τ=1 half':>9} {'target':>9}")
    for i, n in enumerate(names):
        print(f"{n:8} {counts[0, i]:9d} {x_half[i]:9.1f} {counts[1, i]:9d} {x_end[i] - x_half[i]:9.1f}")
    assert np.abs(counts[0] - x_half).max() <= 1 and np.abs(counts.sum(0) - x_end).max() <= 1

    # 2. a rare language at τ=1 (p < 5e-5): MaxText's rounding makes it 0; the map keeps its share
    p_yo = cm.temperature_probs(sizes, tau=1)["yo"]
    flat = cm.MixtureSampler(sizes, 1.0, total_steps=4096, batch_size=256)
    d, _ = selection_map(flat).block(0, 4096 * 256)  # the batched path: one vectorised call
    print(f"yo at τ=1: p = {p_yo:.1e}, MaxText weight {round(p_yo, 4)}; in 2^20 samples coolmix has "
          f"{int((d == 3).sum())} (target {4096 * 256 * p_yo:.1f})")

    # 3. a checkpoint is Grain's own iterator state per rank; a fresh pipeline continues exactly
    its = [iter(rank_pipeline(r)) for r in range(world)]
    for it in its:
        for _ in range(80):
            next(it)
    states = [it.get_state() for it in its]
    want = [[next(it)["doc"] for _ in range(5)] for it in its]
    resumed = [iter(rank_pipeline(r)) for r in range(world)]
    for it, state in zip(resumed, states, strict=True):
        it.set_state(state)
    got = [[next(it)["doc"] for _ in range(5)] for it in resumed]
    pairs = [(a, b) for w, g in zip(want, got, strict=True) for a, b in zip(w, g, strict=True)]
    assert all(np.array_equal(a, b) for a, b in pairs)
    print(f"checkpoint after 80 steps {states[0]}: resumed exactly (5 more batches on each rank)")


if __name__ == "__main__":
    main()
